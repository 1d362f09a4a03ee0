"""`python -m workers bench|probe|report`: the worker without Django, for air-gapped GPU hosts.

    python -m workers bench --engine E --model PATH|SLUG [--dummy-weights] --device cpu|cuda --isl N --osl N
        (--concurrency 1,4,16 | --rate 0.5,1,2 | --sweep --slo-ttft-ms MS) --requests N --out result.json

Exit status: 0 done, 2 bad arguments, 3 engine failed, 4 cancelled (SIGINT/SIGTERM; the partial result is
still written), 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from workers.engines import ENGINE_NAMES, QUANTIZATIONS
from workers.errors import BenchmarkCancelled, BenchmarkError, EngineError, InvalidSpec
from workers.metrics import LengthDistribution
from workers.runner import BenchmarkSpec, run_benchmark

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENGINE, EXIT_CANCELLED = 0, 1, 2, 3, 4


def _int_list(raw: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {raw!r}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency levels must be integers >= 1")
    return values


def _float_list(raw: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {raw!r}") from exc
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError("rates must be numbers > 0 (requests per second)")
    return values


def _length(raw: str) -> int | dict[str, Any]:
    """N, or the workload JSON's distribution: '{"mean": 800, "p50": 600, "p95": 2400, "max": 8000}'."""
    try:
        value: int | dict[str, Any] = int(raw) if raw.strip().isdigit() else json.loads(raw)
        LengthDistribution.parse(value)
    except (ValueError, InvalidSpec) as exc:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a token count or a length distribution: {exc}"
        ) from exc
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("bench", help="launch an engine and benchmark it")
    bench.add_argument("--engine", required=True, choices=ENGINE_NAMES)
    bench.add_argument("--model", required=True, help="local model directory / .gguf file, or a catalog slug")
    bench.add_argument("--dummy-weights", action="store_true", help="random weights at the model's shape")
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    bench.add_argument("--isl", type=_length, required=True, help="prompt tokens: N or a distribution JSON")
    bench.add_argument("--osl", type=_length, required=True, help="output tokens: N or a distribution JSON")
    load = bench.add_mutually_exclusive_group(required=True)
    load.add_argument("--concurrency", type=_int_list, help="closed-loop levels, e.g. 1,4,16")
    load.add_argument("--rate", type=_float_list, help="open-loop request rates per second, e.g. 0.5,1,2")
    load.add_argument("--sweep", action="store_true", help="search the highest rate that holds the SLO")
    bench.add_argument("--requests", type=int, required=True, help="measured requests per level")
    bench.add_argument("--out", type=Path, required=True, help="where to write result.json")
    bench.add_argument("--quant", choices=QUANTIZATIONS, default="bf16")
    bench.add_argument("--tp", type=int, default=1, help="tensor-parallel degree")
    bench.add_argument("--port", type=int, help="engine port (default: a free one)")
    bench.add_argument("--max-model-len", type=int, help="context per sequence (default: fits isl+osl)")
    bench.add_argument("--max-num-seqs", type=int, help="sequences batched at once")
    bench.add_argument("--gpu-memory-fraction", type=float, default=0.90)
    bench.add_argument("--no-prefix-caching", action="store_true")
    bench.add_argument("--served-name", help="model name the engine answers to")
    bench.add_argument("--api", choices=("completions", "chat"), default="completions")
    bench.add_argument("--startup-timeout", type=_positive_float, default=1800.0, help="seconds")
    bench.add_argument("--request-timeout", type=_positive_float, default=600.0, help="seconds per request")
    bench.add_argument("--warmup-requests", type=int, default=2)
    bench.add_argument("--slo-ttft-ms", type=_positive_float)
    bench.add_argument("--slo-itl-ms", type=_positive_float)
    bench.add_argument("--slo-e2e-ms", type=_positive_float)
    bench.add_argument("--sweep-start-rate", type=_positive_float, default=1.0)
    bench.add_argument("--sweep-budget", type=_positive_float, default=1800.0, help="seconds")
    bench.add_argument("--burstiness", type=_positive_float, default=1.0, help="gamma shape; 1 = Poisson")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--shrink", action="store_true", help="tiny version of the architecture (smoke tests)")
    bench.add_argument("--work-dir", help="keeps dummy models (cached) and engine logs; default a temp dir")
    bench.add_argument("--tokenizer", help="tokenizer.json directory or .gguf when the model has none")
    bench.add_argument(
        "--base-url", help="benchmark an engine already running there instead of launching one"
    )
    bench.add_argument("--container", action="store_true", help="run the engine's pinned image with docker")
    bench.add_argument(
        "--no-samples", action="store_true", help="leave per-request samples out of the result"
    )
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bench.add_argument("extra_args", nargs="*", help="after --: extra engine flags, passed through verbatim")

    commands.add_parser("probe", help="print this host's hardware and installed engines as JSON")

    report = commands.add_parser("report", help="post a result.json to the advisor")
    report.add_argument("result", type=Path)
    report.add_argument("--url", required=True, help="e.g. https://advisor/api/v1/benchmark-runs/42/results/")
    report.add_argument("--token", required=True, help="the run's token (sent as a Bearer token)")
    return parser


def spec_from_args(args: argparse.Namespace) -> BenchmarkSpec:
    return BenchmarkSpec(
        engine=args.engine,
        model=args.model,
        device=args.device,
        isl=args.isl,
        osl=args.osl,
        concurrency=args.concurrency or (),
        rates=args.rate or (),
        sweep=args.sweep,
        requests=args.requests,
        dummy_weights=args.dummy_weights,
        quantization=args.quant,
        tensor_parallel=args.tp,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_fraction=args.gpu_memory_fraction,
        prefix_caching=not args.no_prefix_caching,
        port=args.port,
        served_name=args.served_name,
        api=args.api,
        startup_timeout_s=args.startup_timeout,
        request_timeout_s=args.request_timeout,
        warmup_requests=args.warmup_requests,
        slo_ttft_ms=args.slo_ttft_ms,
        slo_itl_ms=args.slo_itl_ms,
        slo_e2e_ms=args.slo_e2e_ms,
        sweep_start_rate=args.sweep_start_rate,
        sweep_budget_s=args.sweep_budget,
        burstiness=args.burstiness,
        seed=args.seed,
        shrink=args.shrink,
        work_dir=args.work_dir,
        tokenizer=args.tokenizer,
        base_url=args.base_url,
        container=args.container,
        extra_args=tuple(args.extra_args),
        keep_samples=not args.no_samples,
    )


def _print_progress(event: dict[str, Any]) -> None:
    if event["event"] == "level_finished":
        level = event["level"]
        load = (
            f"concurrency {level['concurrency']}" if "concurrency" in level else f"rate {level['rate']:g}/s"
        )
        print(
            f"[{event['elapsed_s']:8.1f}s] {load}: ok {level['requests_ok']} failed {level['requests_failed']}, "
            f"TTFT p50 {_ms(level['ttft_ms']['p50'])} p99 {_ms(level['ttft_ms']['p99'])}, "
            f"TPOT p50 {_ms(level['tpot_ms']['p50'])}, {level['output_tokens_per_s']:.1f} output tok/s",
            file=sys.stderr,
        )
    elif event["event"] in ("phase", "level_started"):
        detail = event.get("message") or event.get("load") or ""
        print(f"[{event['elapsed_s']:8.1f}s] {event['event']} {event['phase']} {detail}", file=sys.stderr)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)  # never leave a half-written result where an importer might pick it up


def _bench(args: argparse.Namespace) -> int:
    spec = spec_from_args(args)
    stop_requested = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True
        print(f"signal {signum}: stopping after cleanup", file=sys.stderr)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = run_benchmark(spec, None if args.quiet else _print_progress, lambda: stop_requested)
    except BenchmarkError as exc:
        if exc.partial_result is not None:
            _write(args.out, exc.partial_result)
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, BenchmarkCancelled):
            return EXIT_CANCELLED
        return (
            EXIT_USAGE if isinstance(exc, InvalidSpec) else EXIT_ENGINE if isinstance(exc, EngineError) else 1
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _write(args.out, result)
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "probe":
        from workers.probe import probe_host

        print(json.dumps(probe_host(), indent=2))
        return EXIT_OK
    if args.command == "report":
        from workers.report import ReportError, post_result

        try:
            post_result(args.url, args.token, json.loads(args.result.read_text()))
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    try:
        return _bench(args)
    except InvalidSpec as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
