"""Which weights an engine loads for a (model, quantization): a published checkpoint, the model's own weights
quantized while loading, or nothing, with the reason.

Data: apps/catalog/data/checkpoints.csv, one row per published checkpoint with the engines known to load it and
its source. Load-time quantization comes from the pinned engine releases (workers/release_data/engines.json:
vLLM, SGLang and TGI make FP8 from 16-bit weights). No Django: the planner calls `checkpoint_for` to refuse the
options no engine can load and to size memory and speed by the precision the engine really runs (`runs_as`:
gpt-oss runs its published MXFP4 experts even when asked for 16-bit).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from workers.engines import ENGINES

DATA_FILE = Path(__file__).resolve().parent / "data" / "checkpoints.csv"
SIXTEEN_BIT = ("bf16", "fp16")
Method = Literal["native", "prequantized", "quantize_on_load"]


@dataclass(frozen=True)
class Checkpoint:
    model: str
    quant: str  # the option's quantization
    engine: str
    repo: str  # Hugging Face repository the engine loads
    file: str | None  # one file of it (a GGUF), or None for the whole repository
    method: Method
    runs_as: str  # the precision the engine really runs: memory and speed follow this, not `quant`
    source_url: str
    checked_on: str
    notes: str

    @property
    def quantize_on_load(self) -> bool:
        return self.method == "quantize_on_load"


@dataclass(frozen=True)
class Refusal:
    model: str
    quant: str
    engine: str
    reason: str


@dataclass(frozen=True)
class _Row:
    model: str
    quant: str
    engines: tuple[str, ...]
    method: Method
    repo: str
    file: str | None
    runs_as: str
    source_url: str
    checked_on: str
    notes: str


@functools.cache
def _rows() -> tuple[_Row, ...]:
    with DATA_FILE.open(newline="", encoding="utf-8") as handle:
        return tuple(
            _Row(
                model=row["model"],
                quant=row["quant"],
                engines=tuple(e for e in row["engines"].split(";") if e),
                method="native" if row["method"] == "native" else "prequantized",
                repo=row["repo"],
                file=row["file"] or None,
                runs_as=row["runs_as"],
                source_url=row["source_url"],
                checked_on=row["checked_on"],
                notes=row["notes"],
            )
            for row in csv.DictReader(handle)
        )


def known_models() -> tuple[str, ...]:
    return tuple(dict.fromkeys(row.model for row in _rows()))


def _checkpoint(row: _Row, engine: str, quant: str, *, method: Method, runs_as: str) -> Checkpoint:
    return Checkpoint(
        model=row.model,
        quant=quant,
        engine=engine,
        repo=row.repo,
        file=row.file,
        method=method,
        runs_as=runs_as,
        source_url=row.source_url,
        checked_on=row.checked_on,
        notes=row.notes,
    )


def checkpoint_for(model: str, quant: str, engine: str) -> Checkpoint | Refusal:
    """What `engine` loads to serve `model` at `quant` (catalog slugs), or why it cannot.

    Order: a published checkpoint in that precision that the engine loads; for 16-bit, the model's own
    weights (cast with --dtype; a model published only in another precision runs as that); the model's 16-bit
    weights quantized while loading where the pinned engine release does that; otherwise a Refusal.
    """
    definition = ENGINES.get(engine)
    if definition is None:
        return Refusal(model, quant, engine, f"unknown engine {engine!r}")
    rows = [row for row in _rows() if row.model == model]
    if not rows:
        return Refusal(model, quant, engine, f"no checkpoint of {model} is listed in {DATA_FILE.name}")
    for row in rows:
        if row.quant == quant and engine in row.engines:
            return _checkpoint(row, engine, quant, method=row.method, runs_as=row.runs_as)
    if engine == "llamacpp":
        return Refusal(
            model, quant, engine, f"llama.cpp loads one GGUF file; no {quant} GGUF of {model} is listed"
        )
    native = next((row for row in rows if row.method == "native"), None)
    published_in = f"{model} is published in {native.runs_as} ({native.repo})" if native else ""
    if quant in SIXTEEN_BIT and native is not None and native.quant in SIXTEEN_BIT:
        if engine not in native.engines:
            return Refusal(
                model, quant, engine, f"{definition.display_name} is not known to load {native.repo}"
            )
        runs_as = quant if native.runs_as in SIXTEEN_BIT else native.runs_as
        return _checkpoint(native, engine, quant, method="native", runs_as=runs_as)
    can_make = quant in definition.quantize_on_load
    if can_make and native is not None and native.runs_as in SIXTEEN_BIT and engine in native.engines:
        return _checkpoint(native, engine, quant, method="quantize_on_load", runs_as=quant)
    if quant in SIXTEEN_BIT:
        return Refusal(model, quant, engine, f"{published_in}; no {quant} checkpoint is published")
    others = sorted({row.quant for row in rows if engine in row.engines and row.method == "prequantized"})
    elsewhere = f"; {definition.display_name} loads it as {', '.join(others)}" if others else ""
    made = (
        f"{definition.display_name} {definition.version} quantizes to "
        f"{', '.join(sorted(definition.quantize_on_load))} only while loading"
        if definition.quantize_on_load
        else f"{definition.display_name} does not quantize while loading"
    )
    return Refusal(
        model,
        quant,
        engine,
        f"no {quant} checkpoint of {model} that {definition.display_name} loads is published, and {made}"
        f"{elsewhere}",
    )
