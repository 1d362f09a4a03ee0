"""Catalog model architectures shipped with the worker (workers/architectures.json).

workers/ never imports the catalog app (GPU hosts run without Django), so the shapes it needs to build random
weights for `--model SLUG --dummy-weights` are copied here from apps/catalog/data/models.csv. Regenerate after
the catalog changes (tests/workers check they agree):

    python -m workers.architectures apps/catalog/data/models.csv > workers/architectures.json
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

from workers.errors import InvalidSpec

ARCHITECTURES_PATH = Path(__file__).resolve().parent / "architectures.json"
_NUMBER = re.compile(r"\d+")

# transformers model_type per family, and config fields the catalog shape does not carry. The catalog CSV
# names the repository, not the model_type, so the family is recognised from the slug.
_FAMILIES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("mixtral", "mixtral", {"rope_theta": 1_000_000.0}),
    ("mistral", "mistral", {"rope_theta": 1_000_000.0, "sliding_window": None}),
    ("qwen2", "qwen2", {"rope_theta": 1_000_000.0}),
    ("qwen3", "qwen3", {"rope_theta": 1_000_000.0}),
    ("phi-4", "phi3", {"rope_theta": 250_000.0}),
    (
        "gemma-2",
        "gemma2",
        {"sliding_window": 4096, "query_pre_attn_scalar": 144, "tie_word_embeddings": True},
    ),
    ("llama", "llama", {"rope_theta": 500_000.0}),
)


def _family(slug: str) -> tuple[str, dict[str, Any]]:
    for marker, model_type, overrides in _FAMILIES:
        if marker in slug:
            return model_type, overrides
    return "llama", {}


def _experts(row: dict[str, str]) -> tuple[int, int]:
    """(experts, experts per token) from the free-text type/notes columns, as the catalog parser reads them."""
    match = re.search(r"(\d+)\s*experts.*?top-?(\d+)", f"{row.get('type', '')} {row.get('notes', '')}", re.I)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _int(raw: str) -> int:
    match = _NUMBER.search(raw.replace(",", ""))
    if match is None:
        raise InvalidSpec(f"no number in {raw!r}")
    return int(match.group())


# Model types whose transformers config the catalog fields above describe completely, per feature. A catalog
# model outside them (DeepSeek's latent attention, gpt-oss and Gemma 3 sliding layers, Llama 4 chunks, MoE
# families other than Mixtral's) would be built as a different architecture, so it is left out and
# `--dummy-weights` refuses it by name rather than benchmark a stand-in.
_MOE_TYPES = frozenset({"mixtral"})
_LOCAL_ATTENTION_TYPES = frozenset({"gemma2"})


def _buildable(row: dict[str, str], model_type: str, experts: int) -> bool:
    if (row.get("attention") or "gqa") != "gqa":
        return False
    if experts and model_type not in _MOE_TYPES:
        return False
    return not (row.get("local_attention") and model_type not in _LOCAL_ATTENTION_TYPES)


def architectures_from_csv(path: Path) -> dict[str, dict[str, Any]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    result: dict[str, dict[str, Any]] = {}
    for row in rows:
        model_type, overrides = _family(row["slug"])
        experts, per_token = _experts(row)
        if not _buildable(row, model_type, experts):
            continue
        result[row["slug"]] = {
            "name": row["model"],
            "hf_repo": row["hf_repo"],
            "model_type": model_type,
            "layers": _int(row["layers"]),
            "hidden": _int(row["hidden"]),
            "attention_heads": _int(row["attn_heads"]),
            "kv_heads": _int(row["kv_heads"]),
            "head_dim": _int(row["head_dim"]),
            "intermediate": _int(row["intermediate"]),
            "vocab": _int(row["vocab"]),
            "max_context": _int(row["max_position_embeddings"]),
            "num_experts": experts,
            "experts_per_token": per_token,
            "config_overrides": overrides,
        }
    return result


def load_architectures(path: Path = ARCHITECTURES_PATH) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return data


def architecture(slug: str) -> dict[str, Any]:
    known = load_architectures()
    if slug not in known:
        raise InvalidSpec(f"unknown model {slug!r}: not a path and not one of {', '.join(sorted(known))}")
    return known[slug]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            "usage: python -m workers.architectures PATH/models.csv > workers/architectures.json",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(architectures_from_csv(Path(argv[0])), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
