"""One benchmark end to end: prepare the model, launch the engine, warm up, run the load levels (or a sweep),
stop the engine, return the result.json dict. The Celery task calls `run_benchmark` in-process; the CLI
(`python -m workers bench`) calls the same function and writes the dict to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from workers import dummy
from workers.architectures import architecture, load_architectures
from workers.engines import ENGINES, ServeConfig, check_supported, serve_env
from workers.errors import BenchmarkCancelled, BenchmarkError, EngineCrashed, InvalidSpec
from workers.launch import EngineProcess, free_port, installed_release, launch
from workers.loadgen import (
    REQUEST_STYLES,
    ClosedLoop,
    Load,
    OpenLoop,
    RequestPlan,
    RequestSample,
    Slo,
    Target,
    new_event_loop,
)
from workers.loadgen import run_level as loadgen_run_level
from workers.metrics import LengthDistribution
from workers.probe import probe_hardware
from workers.prompts import PromptFactory, chat_overhead_tokens, load_tokenizer
from workers.sweep import SweepPolicy, sweep

RESULT_SCHEMA_VERSION = 1
ProgressCallback = Callable[[dict[str, Any]], None]
CancelCheck = Callable[[], bool]
_HEARTBEAT_INTERVAL_S = 5.0
_CANCEL_POLL_INTERVAL_S = 1.0
_WATCH_INTERVAL_S = 0.5
_DUMMY_MARKER = ".advisor-dummy.json"
_DTYPE_OF_QUANT = {"bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class BenchmarkSpec:
    """Everything one benchmark run needs. Lengths are tokens; an int is a fixed length, a mapping is the
    workload JSON's {"mean", "p50", "p95", "max"}. Give `concurrency` (closed loop) or `rates` (open loop,
    requests/s), or `sweep=True` to search the highest rate holding the SLO."""

    engine: str
    model: str  # a local directory or .gguf file, or a catalog slug (with dummy_weights)
    device: Literal["cpu", "cuda"] = "cuda"
    isl: int | Mapping[str, Any] = 512
    osl: int | Mapping[str, Any] = 128
    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    requests: int = 100  # measured requests per level
    dummy_weights: bool = False
    quantization: str = "bf16"
    tensor_parallel: int = 1
    max_model_len: int | None = None  # default: fits the longest prompt plus output
    max_num_seqs: int | None = None
    gpu_memory_fraction: float = 0.90
    prefix_caching: bool = True
    port: int | None = None  # default: a free port
    served_name: str | None = None
    api: Literal["completions", "chat"] = "completions"
    startup_timeout_s: float = 1800.0
    request_timeout_s: float = 600.0
    warmup_requests: int = 2  # after the engine is healthy, before the first level; never measured
    slo_ttft_ms: float | None = None
    slo_itl_ms: float | None = None
    slo_e2e_ms: float | None = None
    sweep: bool = False
    sweep_start_rate: float = 1.0
    sweep_budget_s: float = 1800.0
    burstiness: float = 1.0  # open loop: gamma shape, 1.0 = Poisson
    seed: int = 0
    shrink: bool = False  # tiny version of a catalog architecture: smoke tests on CPU
    work_dir: str | None = None  # dummy models (cached by parameters) and engine logs; default a temp dir
    tokenizer: str | None = None  # where prompts get their tokenizer when the model path has none
    base_url: str | None = None  # benchmark an engine that is already running instead of launching one
    container: bool = False  # launch the engine's pinned image with docker instead of a bare process
    extra_args: tuple[str, ...] = ()
    keep_samples: bool = True

    def validate(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidSpec(f"unknown engine {self.engine!r}; known: {', '.join(ENGINES)}")
        if bool(self.concurrency) + bool(self.rates) + self.sweep != 1:
            raise InvalidSpec("give exactly one of concurrency levels, rates, or sweep")
        if any(c < 1 for c in self.concurrency) or any(not r > 0 for r in self.rates):
            raise InvalidSpec("concurrency levels must be >= 1 and rates > 0")
        if self.requests < 1:
            raise InvalidSpec("requests per level must be at least 1")
        if self.sweep and self.slo_ttft_ms is None and self.slo_itl_ms is None and self.slo_e2e_ms is None:
            raise InvalidSpec("a sweep needs at least one SLO (slo_ttft_ms, slo_itl_ms or slo_e2e_ms)")
        LengthDistribution.parse(self.isl)
        LengthDistribution.parse(self.osl)

    @property
    def slo(self) -> Slo:
        return Slo(ttft_ms=self.slo_ttft_ms, itl_ms=self.slo_itl_ms, e2e_ms=self.slo_e2e_ms)


# ---------------------------------------------------------------------------------------------- progress


@dataclass
class _Reporter:
    """Throttled progress and cancellation: callers may hit a database in both callbacks."""

    on_progress: ProgressCallback | None
    should_cancel: CancelCheck | None
    started: float = field(default_factory=time.monotonic)
    phase: str = "starting"
    last_heartbeat: float = 0.0
    last_cancel_check: float = 0.0
    cancelled: bool = False

    def emit(self, event: str, **fields: Any) -> None:
        self.last_heartbeat = time.monotonic()
        if self.on_progress is not None:
            payload = {
                "event": event,
                "phase": self.phase,
                "elapsed_s": round(time.monotonic() - self.started, 3),
            }
            self.on_progress(payload | fields)

    def set_phase(self, phase: str, message: str = "") -> None:
        self.phase = phase
        self.emit("phase", message=message)

    def heartbeat(self, **fields: Any) -> None:
        if time.monotonic() - self.last_heartbeat >= _HEARTBEAT_INTERVAL_S:
            self.emit("heartbeat", **fields)

    def cancel_requested(self) -> bool:
        if self.cancelled:
            return True
        now = time.monotonic()
        if self.should_cancel is not None and now - self.last_cancel_check >= _CANCEL_POLL_INTERVAL_S:
            self.last_cancel_check = now
            self.cancelled = bool(self.should_cancel())
        return self.cancelled


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class PreparedModel:
    path: Path  # what the engine loads: a directory or a .gguf file
    tokenizer_path: Path  # directory with tokenizer.json, or the .gguf file
    name: str
    engine_dummy_weights: bool  # the engine makes random weights itself (--load-format dummy)
    info: dict[str, Any]


def _default_served_name(spec: BenchmarkSpec) -> str:
    return spec.served_name or Path(spec.model).name.removesuffix(".gguf") or "model"


def prepare_model(
    spec: BenchmarkSpec, work_dir: Path, on_progress: dummy.ProgressHook | None = None
) -> PreparedModel:
    """Resolve --model to something the engine can load, building random weights when asked."""
    local = Path(spec.model).expanduser()
    tokenizer_override = Path(spec.tokenizer) if spec.tokenizer else None
    if local.exists():
        return _prepare_local(spec, local.resolve(), work_dir, tokenizer_override, on_progress)
    if spec.model not in load_architectures():
        raise InvalidSpec(f"--model {spec.model!r} is neither an existing path nor a catalog slug")
    if not spec.dummy_weights:
        raise InvalidSpec(f"{spec.model} is a catalog slug: add --dummy-weights, or give a local model path")
    arch = architecture(spec.model)
    return _build_dummy(
        spec, work_dir, architecture=arch, config_json=None, name=spec.model, on_progress=on_progress
    )


def _prepare_local(
    spec: BenchmarkSpec,
    local: Path,
    work_dir: Path,
    tokenizer: Path | None,
    on_progress: dummy.ProgressHook | None,
) -> PreparedModel:
    info: dict[str, Any] = {"path": str(local), "dummy_weights": spec.dummy_weights}
    if local.is_file():
        if spec.dummy_weights:
            raise InvalidSpec("--dummy-weights needs a model directory or a catalog slug, not a file")
        return PreparedModel(local, tokenizer or local, local.name, False, info)
    if spec.dummy_weights and (local / "config.json").is_file():
        # A real config with random weights: the engine's own dummy loader if it has one, else built here.
        if ENGINES[spec.engine].supports_dummy_weights and spec.engine != "llamacpp":
            return PreparedModel(local, tokenizer or local, local.name, True, info)
        config_json = local / "config.json"
        return _build_dummy(
            spec,
            work_dir,
            architecture=None,
            config_json=config_json,
            name=local.name,
            on_progress=on_progress,
        )
    return PreparedModel(local, tokenizer or local, local.name, False, info)


def _build_dummy(
    spec: BenchmarkSpec,
    work_dir: Path,
    *,
    architecture: Mapping[str, Any] | None,
    config_json: Path | None,
    name: str,
    on_progress: dummy.ProgressHook | None,
) -> PreparedModel:
    engine_dummy = ENGINES[spec.engine].supports_dummy_weights
    dtype = _DTYPE_OF_QUANT.get(spec.quantization, "bfloat16")
    key = {
        "name": name,
        "architecture": dict(architecture) if architecture else None,
        "config": json.loads(config_json.read_text()) if config_json else None,
        "shrink": spec.shrink,
        "dtype": dtype,
        "weights": not engine_dummy,
        "quantization": spec.quantization if engine_dummy else None,
        "seed": spec.seed,
        "format": 1,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    model_dir = work_dir / "models" / f"{name}-{digest}"
    marker = model_dir / _DUMMY_MARKER
    if not marker.is_file():
        if model_dir.exists():
            shutil.rmtree(model_dir)  # a build interrupted half-way
        built = dummy.build_model_dir(
            model_dir,
            architecture=architecture,
            config_json=config_json,
            shrink=spec.shrink,
            dtype=dtype,
            weights=not engine_dummy,
            quantization=spec.quantization if engine_dummy else None,
            seed=spec.seed,
            on_progress=on_progress,
        )
        marker.write_text(json.dumps({**key, "parameter_count": built.parameter_count}, sort_keys=True))
    meta = json.loads(marker.read_text())
    info = {
        "path": str(model_dir),
        "dummy_weights": True,
        "architecture": architecture,
        "shrunk": spec.shrink,
        "parameter_count": meta["parameter_count"],
    }
    if spec.engine == "llamacpp":
        gguf_path = _dummy_gguf(model_dir, spec.quantization)
        info["gguf"] = str(gguf_path)
        return PreparedModel(gguf_path, model_dir, name, False, info)
    return PreparedModel(model_dir, model_dir, name, engine_dummy, info)


def _dummy_gguf(model_dir: Path, quantization: str) -> Path:
    f16 = model_dir / "model-f16.gguf"
    if not f16.is_file():
        dummy.write_gguf(model_dir, f16.with_suffix(".partial"), file_type="f16")
        f16.with_suffix(".partial").rename(f16)
    if not quantization.startswith("gguf-"):
        return f16  # bf16/fp16 on llama.cpp: an F16 GGUF
    quant = quantization.removeprefix("gguf-")
    out = model_dir / f"model-{quant}.gguf"
    if not out.is_file():
        dummy.quantize_gguf(f16, out.with_suffix(".partial"), quant)
        out.with_suffix(".partial").rename(out)
    return out


# ---------------------------------------------------------------------------------------------- plans


def _plans(
    factory: PromptFactory, isl: LengthDistribution, osl: LengthDistribution, count: int, seed: int
) -> list[RequestPlan]:
    rng = np.random.default_rng(seed)
    prompt_lengths = isl.sample(rng, count)
    output_lengths = osl.sample(rng, count)
    plans = []
    for prompt_tokens, output_tokens in zip(prompt_lengths, output_lengths, strict=True):
        prompt = factory.make(prompt_tokens)
        plans.append(RequestPlan(prompt.text, prompt.tokens, output_tokens))
    return plans


def _default_max_model_len(isl: LengthDistribution, osl: LengthDistribution) -> int:
    # Room for the longest prompt and output with a little slack, rounded up so caches align to blocks.
    needed = isl.max + osl.max + 64
    return max(1024, math.ceil(needed / 256) * 256)


def _checkpoint_is_quantized(model: PreparedModel) -> bool:
    """Whether the weights on disk already carry a quantization format (their config.json says which)."""
    if model.path.suffix == ".gguf":
        return True
    config_path = model.path / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "quantization_config" in config


def serve_config_for(
    spec: BenchmarkSpec, model: PreparedModel, port: int, *, config_dir: Path | None = None
) -> ServeConfig:
    isl, osl = LengthDistribution.parse(spec.isl), LengthDistribution.parse(spec.osl)
    max_num_seqs = spec.max_num_seqs
    if max_num_seqs is None:
        # llama.cpp, and any engine on CPU, reserve KV cache for every sequence up front: size it to the load
        # rather than to a GPU engine's 256.
        small = spec.engine == "llamacpp" or spec.device == "cpu"
        max_num_seqs = max((*spec.concurrency, 16)) if small else 256
    config = ServeConfig(
        engine=spec.engine,
        model_path=str(model.path),
        served_name=_default_served_name(replace(spec, model=model.name)),
        quantization=spec.quantization,
        tensor_parallel=spec.tensor_parallel,
        max_model_len=spec.max_model_len or _default_max_model_len(isl, osl),
        max_num_seqs=max_num_seqs,
        gpu_memory_fraction=spec.gpu_memory_fraction,
        prefix_caching=spec.prefix_caching,
        # 16-bit weights asked to run quantized are quantized while loading, where the engine can (fp8).
        quantize_on_load=spec.quantization not in ("bf16", "fp16") and not _checkpoint_is_quantized(model),
        dummy_weights=model.engine_dummy_weights,
        device=spec.device,
        host="127.0.0.1",  # the load generator runs on this host; nothing else should reach the engine
        port=port,
        extra_args=spec.extra_args,
    )
    if not spec.container:
        # A bare launch runs whatever release is installed: spell the arguments for its parser.
        config = replace(config, engine_version=installed_release(spec.engine))
        if config_dir is not None:
            config = replace(config, config_dir=str(config_dir))  # engine files go beside the process
    check_supported(config)
    return config


# ---------------------------------------------------------------------------------------------- running


@dataclass
class _Session:
    spec: BenchmarkSpec
    reporter: _Reporter
    target: Target
    factory: PromptFactory
    engine: EngineProcess | None
    result: dict[str, Any]
    crashed: EngineCrashed | None = None


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


async def _watch(session: _Session, stop: asyncio.Event, progress: dict[str, int]) -> None:
    """Stop the level when the engine dies or a cancel arrives; send heartbeats while it runs."""
    while not stop.is_set():
        if session.engine is not None and session.engine.exit_code() is not None:
            try:
                session.engine.check_alive()
            except EngineCrashed as exc:
                session.crashed = exc
            stop.set()
            return
        if session.reporter.cancel_requested():
            stop.set()
            return
        session.reporter.heartbeat(**progress)
        await asyncio.sleep(_WATCH_INTERVAL_S)


async def _measure(session: _Session, load: Load, index: int, total: int | None) -> dict[str, Any]:
    spec = session.spec
    isl, osl = LengthDistribution.parse(spec.isl), LengthDistribution.parse(spec.osl)
    plans = _plans(session.factory, isl, osl, spec.requests, spec.seed + 1000 * (index + 1))
    load_fields: dict[str, float] = (
        {"concurrency": load.concurrency} if isinstance(load, ClosedLoop) else {"rate": load.rate_per_s}
    )
    session.reporter.emit("level_started", level_index=index, levels_total=total, load=load_fields)
    stop = asyncio.Event()
    progress = {"level_index": index, "requests_done": 0, "requests_total": len(plans)}

    def on_sample(_sample: RequestSample) -> None:
        progress["requests_done"] += 1

    watcher = asyncio.create_task(_watch(session, stop, progress))
    try:
        level = await loadgen_run_level(
            session.target,
            plans,
            load,
            request_timeout_s=spec.request_timeout_s,
            slo=spec.slo,
            stop=stop,
            on_sample=on_sample,
        )
    finally:
        stop.set()
        await watcher
    if not spec.keep_samples:
        level.pop("samples", None)
    if session.crashed is not None:
        raise session.crashed
    session.result["levels"].append(level)
    if session.reporter.cancelled:
        raise BenchmarkCancelled("cancelled during a level", partial_result=session.result)
    summary = {k: v for k, v in level.items() if k != "samples"}
    session.reporter.emit("level_finished", level_index=index, levels_total=total, level=summary)
    return level


async def _warm_up(session: _Session) -> None:
    spec = session.spec
    if spec.warmup_requests < 1:
        return
    isl, osl = LengthDistribution.parse(spec.isl), LengthDistribution.parse(spec.osl)
    plans = _plans(session.factory, isl, osl, spec.warmup_requests, spec.seed)
    width = min(spec.warmup_requests, max((*spec.concurrency, 1)))
    level = await loadgen_run_level(
        session.target, plans, ClosedLoop(width), request_timeout_s=spec.request_timeout_s
    )
    if level["requests_ok"] == 0:
        errors = sorted({s["error"] for s in level["samples"] if s["error"]})
        raise EngineCrashed(
            f"every warm-up request failed: {'; '.join(errors)[:500]}",
            log_tail=session.engine.log_tail() if session.engine else "",
        )
    session.result["warmup"] = {
        k: v for k, v in level.items() if k in ("requests_ok", "requests_failed", "e2e_ms")
    }


async def _run_levels(session: _Session) -> None:
    spec = session.spec
    await _warm_up(session)
    session.reporter.set_phase("measuring")
    if spec.sweep:
        await _run_sweep(session)
        return
    loads: list[Load] = [ClosedLoop(c) for c in spec.concurrency] or [
        OpenLoop(r, burstiness=spec.burstiness, seed=spec.seed + i) for i, r in enumerate(spec.rates)
    ]
    for index, load in enumerate(loads):
        if session.reporter.cancel_requested():
            raise BenchmarkCancelled("cancelled between levels", partial_result=session.result)
        await _measure(session, load, index, len(loads))


async def _run_sweep(session: _Session) -> None:
    spec = session.spec
    policy = SweepPolicy(start_rate_per_s=spec.sweep_start_rate, time_budget_s=spec.sweep_budget_s)
    counter = iter(range(policy.max_levels))
    # A level lasts about requests/rate plus one request's latency; the warm-up gives the first latency guess.
    warmup_e2e_ms = (session.result.get("warmup") or {}).get("e2e_ms", {}).get("max")
    last_e2e_s = [warmup_e2e_ms / 1000.0 if warmup_e2e_ms else spec.request_timeout_s]

    async def measure(rate: float) -> dict[str, Any]:
        if session.reporter.cancel_requested():
            raise BenchmarkCancelled("cancelled between sweep levels", partial_result=session.result)
        index = next(counter)
        level = await _measure(
            session, OpenLoop(rate, burstiness=spec.burstiness, seed=spec.seed + index), index, None
        )
        last_e2e_s[0] = (level["e2e_ms"]["p99"] or spec.request_timeout_s * 1000.0) / 1000.0
        return level

    def estimate_s(rate: float) -> float:
        return spec.requests / rate + last_e2e_s[0]

    outcome = await sweep(measure, spec.slo, policy, estimate_s=estimate_s)
    session.result["sweep"] = {k: v for k, v in outcome.items() if k != "levels"} | {"policy": asdict(policy)}


def _tokenizer_sha256(path: Path) -> str | None:
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        return None
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _work_dir(spec: BenchmarkSpec) -> Iterator[Path]:
    if spec.work_dir is not None:
        path = Path(spec.work_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as tmp:
        yield Path(tmp)


def _base_result(spec: BenchmarkSpec) -> dict[str, Any]:
    isl, osl = LengthDistribution.parse(spec.isl), LengthDistribution.parse(spec.osl)
    return {
        "schema_version": RESULT_SCHEMA_VERSION,
        "started_at": _iso_now(),
        "finished_at": None,
        "model": spec.model,
        "device": spec.device,
        "quant": spec.quantization,
        "tp": spec.tensor_parallel,
        "isl": isl.max if isl.is_fixed else isl.to_dict(),
        "osl": osl.max if osl.is_fixed else osl.to_dict(),
        "api": spec.api,
        "mode": "sweep" if spec.sweep else ("concurrency" if spec.concurrency else "rate"),
        "requests_per_level": spec.requests,
        "slo": {"ttft_ms": spec.slo_ttft_ms, "itl_ms": spec.slo_itl_ms, "e2e_ms": spec.slo_e2e_ms},
        "levels": [],
        "sweep": None,
        "notes": [],
        "cancelled": False,
        "error": None,
    }


def run_benchmark(
    spec: BenchmarkSpec,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> dict[str, Any]:
    """Run the benchmark; returns the result.json dict.

    Raises InvalidSpec before anything starts, EngineStartError / EngineCrashed (with the engine's last log
    lines) when the engine fails, BenchmarkCancelled (with `partial_result`) when `should_cancel()` turned
    True. All are BenchmarkError. The engine is always stopped before this returns or raises. Must not be
    called from a running event loop (it runs its own).
    """
    spec.validate()
    # Refuse an impossible candidate before spending minutes on random weights.
    check_supported(
        ServeConfig(
            engine=spec.engine,
            model_path=spec.model,
            served_name="-",
            quantization=spec.quantization,
            tensor_parallel=spec.tensor_parallel,
            gpu_memory_fraction=spec.gpu_memory_fraction,
            device=spec.device,
        )
    )
    reporter = _Reporter(on_progress, should_cancel)
    result = _base_result(spec)
    try:
        _run(spec, reporter, result)
    except BenchmarkError as exc:
        result["finished_at"] = _iso_now()
        result["error"] = str(exc).splitlines()[0]
        result["cancelled"] = isinstance(exc, BenchmarkCancelled)
        exc.partial_result = result
        reporter.set_phase("failed", message=result["error"])
        raise
    result["finished_at"] = _iso_now()
    reporter.set_phase("done")
    return result


def _run(spec: BenchmarkSpec, reporter: _Reporter, result: dict[str, Any]) -> None:
    reporter.set_phase("probing")
    result["hardware"] = probe_hardware().to_dict()
    with _work_dir(spec) as work_dir:
        reporter.set_phase("preparing_model", message=spec.model)

        def on_weights(written_bytes: int, total_bytes: int) -> None:
            reporter.heartbeat(weights_written_bytes=written_bytes, weights_total_bytes=total_bytes)
            if reporter.cancel_requested():
                raise BenchmarkCancelled("cancelled while building random weights", partial_result=result)

        model = prepare_model(spec, work_dir, on_weights)
        result["model_info"] = model.info
        tokenizer_path = model.tokenizer_path
        template_tokens = chat_overhead_tokens(tokenizer_path) if spec.api == "chat" else None
        factory = PromptFactory(
            load_tokenizer(tokenizer_path), seed=spec.seed, template_tokens=template_tokens
        )
        result["tokenizer"] = {"path": str(tokenizer_path), "sha256": _tokenizer_sha256(tokenizer_path)}
        port = spec.port or free_port()
        config = serve_config_for(spec, model, port, config_dir=work_dir / "engine-config")
        if spec.base_url is not None:
            _run_against(spec, reporter, result, factory, config, None, spec.base_url, flavour=spec.engine)
        else:
            _run_launched(spec, reporter, result, factory, config, work_dir)


def _run_launched(
    spec: BenchmarkSpec,
    reporter: _Reporter,
    result: dict[str, Any],
    factory: PromptFactory,
    config: ServeConfig,
    work_dir: Path,
) -> None:
    log_path = work_dir / "logs" / f"{spec.engine}-{config.effective_port}-{int(time.time())}.log"
    reporter.set_phase("starting_engine")

    def on_tick(elapsed_s: float) -> None:
        reporter.heartbeat(startup_s=round(elapsed_s, 1))
        if reporter.cancel_requested():
            raise BenchmarkCancelled("cancelled while the engine was starting", partial_result=result)

    with launch(config, log_path=log_path, container=spec.container) as engine:
        pid = engine.process.pid if engine.process is not None else None
        reporter.emit("engine_started", pid=pid, command=engine.plan.argv, log_path=str(log_path))
        result["engine"] = {
            "name": spec.engine,
            "version": None,
            "args": engine.plan.serve_args,
            "env": serve_env(config),
            "command": engine.plan.argv,
            "flavour": engine.flavour,
            "image": config.definition.image,
            "log_path": str(log_path),
        }
        ready_s = engine.wait_ready(spec.startup_timeout_s, on_tick=on_tick)
        result["engine"]["version"] = engine.version()
        result["engine"]["ready_after_s"] = round(ready_s, 2)
        try:
            _run_against(
                spec, reporter, result, factory, config, engine, engine.base_url, flavour=engine.flavour
            )
        finally:
            reporter.set_phase("stopping")
            result["engine"]["log_tail"] = engine.log_tail(20)


def _run_against(
    spec: BenchmarkSpec,
    reporter: _Reporter,
    result: dict[str, Any],
    factory: PromptFactory,
    config: ServeConfig,
    engine: EngineProcess | None,
    base_url: str,
    *,
    flavour: str,
) -> None:
    if engine is None:
        result["engine"] = {
            "name": spec.engine,
            "version": None,
            "args": [],
            "flavour": flavour,
            "external": True,
        }
    # transformers serve has no alias: it answers to the path it loaded.
    model_name = config.model_path if spec.engine == "transformers" else config.served_name
    target = Target(base_url, model_name, api=spec.api, style=REQUEST_STYLES[flavour])
    result["engine"]["request_style"] = asdict(target.style)
    session = _Session(spec, reporter, target, factory, engine, result)
    reporter.set_phase("warming_up")
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_run_levels(session))
