"""How fast can our load generator drive an engine before it distorts what it measures?

Starts a fast OpenAI-compatible stub in its own process (64 streamed tokens per request, no artificial delay;
it records its own time to first byte per request), then:

1. ours: open-loop Poisson levels at rising rates, each compared with the stub's server-side TTFB; the highest
   rate at which the client adds under 1 ms to the median TTFT (and keeps the schedule, and gets every answer)
   is reported, found by doubling and then bisecting;
2. GuideLLM, the peer: `guidellm run` against the same stub at the same kind of load, its TTFT compared with
   the stub's TTFB the same way.

Every loop is bounded in count and time; the only target is 127.0.0.1.

    .venv/bin/python scripts/bench_loadgen.py [--budget-s 900] [--skip-guidellm]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.dummy import write_tokenizer
from workers.launch import free_port
from workers.loadgen import (
    REQUEST_STYLES,
    ClosedLoop,
    Load,
    OpenLoop,
    RequestPlan,
    Target,
    new_event_loop,
    run_level,
)
from workers.metrics import percentiles
from workers.prompts import PromptFactory, load_tokenizer

HOST = "127.0.0.1"
OUTPUT_TOKENS = 64
PROMPT_TOKENS = 128
ADDED_TTFT_LIMIT_MS = 1.0
START_RATE_PER_S = 25.0
MAX_RATE_PER_S = 20_000.0
LEVEL_SECONDS = 4.0  # requests per level = rate x this, within the bounds below
MIN_LEVEL_REQUESTS, MAX_LEVEL_REQUESTS = 100, 20_000
MAX_DOUBLINGS, MAX_BISECTIONS = 12, 5
STUB_START_TIMEOUT_S = 30.0
GUIDELLM_TIMEOUT_S = 120.0  # one GuideLLM run, start-up included (about 40 s here)
GUIDELLM_LOW_RATE_PER_S = 50.0


# ---------------------------------------------------------------------------------------------- the stub


class Stub:
    """Minimal HTTP/1.1 keep-alive server speaking just enough of the OpenAI streaming API.

    Everything a response needs is pre-encoded; the first event goes out in the same write as the headers, the
    other 63 right after, so the stub's TTFB is its parse time alone.
    """

    def __init__(self) -> None:
        self.ttfb_ns: list[int] = []
        self._completion = self._encode_stream(chat=False)
        self._chat = self._encode_stream(chat=True)

    @staticmethod
    def _chunk(payload: bytes) -> bytes:
        return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

    def _encode_stream(self, *, chat: bool) -> tuple[bytes, bytes]:
        def event(choice: dict[str, Any], usage: dict[str, int] | None = None) -> bytes:
            obj = "chat.completion.chunk" if chat else "text_completion"
            body: dict[str, Any] = {"id": "stub", "object": obj, "model": "stub", "choices": [choice]}
            if usage:
                body["usage"] = usage
            return self._chunk(b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n")

        def token(i: int) -> dict[str, Any]:
            return {"index": 0, "delta": {"content": f" t{i}"}} if chat else {"index": 0, "text": f" t{i}"}

        head = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"connection: keep-alive\r\n\r\n"
        )
        first = head + event(token(0))
        total = PROMPT_TOKENS + OUTPUT_TOKENS
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "total_tokens": total}
        finish: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        empty: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        finish |= empty
        rest = b"".join(event(token(i)) for i in range(1, OUTPUT_TOKENS))
        rest += event(finish, usage) + self._chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        return first, rest

    @staticmethod
    def _json_response(payload: Any, status: str = "200 OK") -> bytes:
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                start = time.perf_counter_ns()
                request_line, _, header_block = head.partition(b"\r\n")
                method, path = request_line.split(b" ")[:2]
                length = 0
                for line in header_block.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(self._respond(method, path, body, start))
                await writer.drain()
        writer.close()

    def _respond(self, method: bytes, path: bytes, body: bytes, start_ns: int) -> bytes:
        if path.endswith(b"/completions") and method == b"POST":
            request = json.loads(body)
            first, rest = self._chat if path.endswith(b"/chat/completions") else self._completion
            if not request.get("stream"):
                text = "".join(f" t{i}" for i in range(OUTPUT_TOKENS))
                usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": OUTPUT_TOKENS}
                return self._json_response({"choices": [{"index": 0, "text": text}], "usage": usage})
            # Measured at the moment the first token is handed to the socket.
            self.ttfb_ns.append(time.perf_counter_ns() - start_ns)
            return first + rest
        if path == b"/stats":
            samples, self.ttfb_ns = self.ttfb_ns, []
            return self._json_response({"ttfb_ms": [ns / 1e6 for ns in samples]})
        if path in (b"/health", b"/v1/models"):
            return self._json_response({"object": "list", "data": [{"id": "stub", "object": "model"}]})
        return self._json_response({"error": "not found"}, "404 Not Found")


def serve_stub(port: int, lifetime_s: float) -> None:
    """Serve until the parent benchmark exits (checked every second) or `lifetime_s` passes."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    parent = os.getppid()

    async def main() -> None:
        stub = Stub()
        server = await asyncio.start_server(stub.handle, HOST, port, backlog=4096)
        async with server:
            deadline = time.monotonic() + lifetime_s
            while time.monotonic() < deadline and os.getppid() == parent:
                await asyncio.sleep(1.0)

    asyncio.run(main())


@contextlib.contextmanager
def stub_process(lifetime_s: float) -> Iterator[str]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve-stub", str(port), "--stub-lifetime-s", str(lifetime_s)]
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    base_url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + STUB_START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base_url + "/health", timeout=1.0, trust_env=False).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("the stub did not start")
        yield base_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def stub_ttfb_ms(base_url: str) -> list[float]:
    """The stub's TTFB samples since the last call (the call resets them)."""
    samples: list[float] = httpx.get(base_url + "/stats", timeout=10.0, trust_env=False).json()["ttfb_ms"]
    return samples


# ---------------------------------------------------------------------------------------------- ours


def _requests_for(rate: float) -> int:
    return int(min(MAX_LEVEL_REQUESTS, max(MIN_LEVEL_REQUESTS, rate * LEVEL_SECONDS)))


def measure_ours(base_url: str, factory: PromptFactory, load: Load, count: int) -> dict[str, Any]:
    prompt = factory.make(PROMPT_TOKENS)  # one prompt: the stub ignores content, and this keeps setup cheap
    plans = [RequestPlan(prompt.text, prompt.tokens, OUTPUT_TOKENS)] * count
    target = Target(base_url, "stub", style=REQUEST_STYLES["vllm"])
    stub_ttfb_ms(base_url)  # reset
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        level = runner.run(run_level(target, plans, load, warmup=plans[:20], request_timeout_s=30.0))
    server = percentiles(stub_ttfb_ms(base_url))
    return summarize(level, server, count)


def summarize(level: dict[str, Any], server: dict[str, float | None], count: int) -> dict[str, Any]:
    ttft, client = level["ttft_ms"], level["client"]
    added_p50 = (ttft["p50"] or math.inf) - (server["p50"] or 0.0)
    added_p99 = (ttft["p99"] or math.inf) - (server["p99"] or 0.0)
    return {
        "requests": count,
        "ok": level["requests_ok"],
        "sent_per_s": client.get("achieved_send_rate_per_s"),
        "completed_per_s": level.get("completion_rate_per_s"),
        "ttft_p50_ms": ttft["p50"],
        "ttft_p99_ms": ttft["p99"],
        "server_ttfb_p50_ms": server["p50"],
        "server_ttfb_p99_ms": server["p99"],
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "send_lag_p95_ms": (client.get("send_lag_ms") or {}).get("p95"),
        "loop_lag_p99_ms": client["event_loop_lag_ms"]["p99"],
        "fell_behind": client["fell_behind"],
        "output_tokens_per_s": level["output_tokens_per_s"],
    }


def sustains(row: dict[str, Any]) -> bool:
    completed = row["completed_per_s"] or 0.0
    sent = row["sent_per_s"] or 0.0
    return (
        row["ok"] == row["requests"]
        and not row["fell_behind"]
        and row["added_p50_ms"] < ADDED_TTFT_LIMIT_MS
        and completed >= 0.9 * sent
    )


def find_max_rate(
    base_url: str, factory: PromptFactory, deadline: float
) -> tuple[float | None, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []

    def run(rate: float) -> bool:
        row = {"rate": rate} | measure_ours(
            base_url, factory, OpenLoop(rate, seed=len(rows)), _requests_for(rate)
        )
        row["holds"] = sustains(row)
        rows.append(row)
        print_row("ours", row)
        return bool(row["holds"])

    passing, failing, rate = None, None, START_RATE_PER_S
    for _ in range(MAX_DOUBLINGS):
        if time.monotonic() + _requests_for(rate) / rate * 2 > deadline or rate > MAX_RATE_PER_S:
            break
        if not run(rate):
            failing = rate
            break
        passing, rate = rate, rate * 2
    for _ in range(MAX_BISECTIONS):
        if passing is None or failing is None or failing / passing < 1.1:
            break
        middle = math.sqrt(passing * failing)
        if time.monotonic() + _requests_for(middle) / middle * 2 > deadline:
            break
        if run(middle):
            passing = middle
        else:
            failing = middle
    return passing, rows


# ---------------------------------------------------------------------------------------------- GuideLLM


def measure_guidellm(
    base_url: str, tokenizer_dir: Path, rate: float, count: int, work: Path
) -> dict[str, Any]:
    scenario = {
        "spec": {
            "backend": {
                "kind": "openai_http",
                "target": base_url,
                "model": "stub",
                "validate_backend": False,
            },
            "profile": {"kind": "poisson", "rate": [rate]},
            "data": [
                {"kind": "synthetic_text", "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS}
            ],
            "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer_dir)},
            "constraints": [{"kind": "max_requests", "count": count}],
            "outputs": [{"kind": "json", "path": str(work / f"guidellm-{rate:g}.json")}],
        }
    }
    scenario_path = work / f"scenario-{rate:g}.json"
    scenario_path.write_text(json.dumps(scenario))
    guidellm = shutil.which("guidellm") or str(Path(sys.executable).parent / "guidellm")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    stub_ttfb_ms(base_url)  # reset
    started = time.monotonic()
    process = subprocess.Popen(
        [guidellm, "run", "--scenario", str(scenario_path), "--disable-console-interactive"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # GuideLLM forks workers: a timeout must reach them all
    )
    try:
        output, _ = process.communicate(timeout=GUIDELLM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {"rate": rate, "error": f"GuideLLM did not finish within {GUIDELLM_TIMEOUT_S:g} s"}
    wall_s = time.monotonic() - started
    server = percentiles(stub_ttfb_ms(base_url))
    if process.returncode != 0:
        return {"rate": rate, "error": output[-600:]}
    report = json.loads((work / f"guidellm-{rate:g}.json").read_text())
    return {"rate": rate, "wall_s": wall_s} | guidellm_row(report, server, count)


def _guidellm_metric(metrics: dict[str, Any], name: str) -> dict[str, Any]:
    successful: dict[str, Any] = metrics[name]["successful"]
    return successful


def guidellm_row(report: dict[str, Any], server: dict[str, float | None], count: int) -> dict[str, Any]:
    benchmark = report["benchmarks"][-1]
    metrics = benchmark["metrics"]
    ttft = _guidellm_metric(metrics, "time_to_first_token_ms")
    ttft_p50, ttft_p99 = ttft["percentiles"]["p50"], ttft["percentiles"]["p99"]
    totals = metrics["request_totals"]
    return {
        "requests": count,
        "ok": totals["successful"],
        # successful requests over GuideLLM's own measured duration (its per-second mean is bucketed)
        "completed_per_s": totals["successful"] / benchmark["duration"] if benchmark["duration"] else None,
        "ttft_p50_ms": ttft_p50,
        "ttft_p99_ms": ttft_p99,
        "server_ttfb_p50_ms": server["p50"],
        "server_ttfb_p99_ms": server["p99"],
        "added_p50_ms": ttft_p50 - (server["p50"] or 0.0),
        "added_p99_ms": ttft_p99 - (server["p99"] or 0.0),
        "output_tokens_per_s": _guidellm_metric(metrics, "output_tokens_per_second")["mean"],
    }


# ---------------------------------------------------------------------------------------------- report


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


COLUMNS = (
    ("rate", "rate/s"),
    ("requests", "reqs"),
    ("ok", "ok"),
    ("sent_per_s", "sent/s"),
    ("completed_per_s", "done/s"),
    ("ttft_p50_ms", "TTFT p50"),
    ("ttft_p99_ms", "TTFT p99"),
    ("server_ttfb_p50_ms", "stub p50"),
    ("added_p50_ms", "added p50"),
    ("added_p99_ms", "added p99"),
    ("loop_lag_p99_ms", "loop lag p99"),
    ("fell_behind", "behind"),
    ("holds", "holds"),
)


def print_header() -> None:
    print(f"{'client':9}" + "".join(f"{title:>13}" for _, title in COLUMNS), flush=True)


def print_row(client: str, row: dict[str, Any]) -> None:
    if "error" in row:
        print(f"{client:9}{row['rate']:>13.1f}  error: {row['error']}", flush=True)
        return
    print(f"{client:9}" + "".join(f"{_fmt(row.get(key)):>13}" for key, _ in COLUMNS), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve-stub", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stub-lifetime-s", type=float, default=900.0, help=argparse.SUPPRESS)
    parser.add_argument("--budget-s", type=float, default=900.0, help="wall-clock bound for the whole run")
    parser.add_argument("--skip-guidellm", action="store_true")
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub(args.serve_stub, args.stub_lifetime_s)
        return 0

    deadline = time.monotonic() + args.budget_s
    lifetime_s = args.budget_s + GUIDELLM_TIMEOUT_S
    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp, stub_process(lifetime_s) as base_url:
        work = Path(tmp)
        write_tokenizer(work / "tokenizer", vocab_size=512, max_context=4096)
        factory = PromptFactory(load_tokenizer(work / "tokenizer"))
        print(f"stub at {base_url}: {OUTPUT_TOKENS} tokens per request, prompt {PROMPT_TOKENS} tokens")
        print(
            f"criterion: median client TTFT minus stub TTFB < {ADDED_TTFT_LIMIT_MS} ms, on schedule, all ok\n"
        )
        print_header()
        closed = {"rate": None} | measure_ours(base_url, factory, ClosedLoop(64), 4000)
        print_row("ours c=64", closed)
        guidellm_reserve_s = 0.0 if args.skip_guidellm else 3 * GUIDELLM_TIMEOUT_S
        max_rate, rows = find_max_rate(base_url, factory, deadline - guidellm_reserve_s)
        print(
            f"\nours: highest rate sustained with < {ADDED_TTFT_LIMIT_MS} ms added median TTFT: {_fmt(max_rate, 1)}/s"
        )
        print(f"ours: closed loop at concurrency 64: {_fmt(closed['completed_per_s'], 0)} requests/s")
        if args.skip_guidellm or max_rate is None:
            return 0
        print("\nGuideLLM against the same stub (poisson):")
        print_header()
        # A low rate GuideLLM can keep, then half and all of the rate ours sustained.
        for rate in (GUIDELLM_LOW_RATE_PER_S, max_rate / 2, max_rate):
            count = min(_requests_for(rate), 2000)
            if time.monotonic() + GUIDELLM_TIMEOUT_S > deadline:
                print("GuideLLM: budget exhausted")
                break
            ours = {"rate": rate} | measure_ours(base_url, factory, OpenLoop(rate, seed=99), count)
            ours["holds"] = sustains(ours)
            print_row("ours", ours)
            row = measure_guidellm(base_url, work / "tokenizer", rate, count, work)
            print_row("guidellm", row)
            if "wall_s" in row:
                print(f"{'':9}(guidellm wall time {row['wall_s']:.1f} s incl. start-up)")
        print(
            "\nmedians of all ours levels' added TTFT: "
            f"{_fmt(statistics.median(r['added_p50_ms'] for r in rows if r['holds']) if rows else None, 3)} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
