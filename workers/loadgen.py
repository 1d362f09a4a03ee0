"""Async load generator for OpenAI-compatible streaming endpoints (/v1/completions, /v1/chat/completions).

Definitions (see the team's benchmarks research notes; they follow vLLM `bench serve` where tools disagree):

* TTFT: first SSE event carrying non-empty text, minus the moment the request was sent. Role-only and
  empty chunks do not count (vLLM #3759).
* ITL: gaps between consecutive text-carrying events, pooled over all requests of a level (vLLM/SGLang).
  An engine that packs several tokens into one event shows fewer, longer gaps; `token_count_mismatch` flags it.
* TPOT: per request (E2E - TTFT) / (output tokens - 1), the first token excluded.
* E2E: end of the response stream minus the send time.
* Output tokens: the server's `usage.completion_tokens` when it sends usage, else the text-carrying events;
  both are kept per request and any difference is flagged.
* Duration: first send to last completion of the measured (non-warm-up) requests; throughput and goodput are
  counts over that window. Goodput counts requests meeting every SLO given (TTFT, TPOT against the ITL target,
  E2E), vLLM's definition.

Errors are never dropped: every planned request ends as exactly one sample, ok or with an error class, so
requests_ok + requests_failed == requests sent. Every request is bounded by `request_timeout_s` as a whole,
not only between bytes, so a server that drips bytes forever cannot hang a level.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import httpx
import numpy as np

from workers.http11 import FastTransport
from workers.metrics import arrival_offsets_s, percentiles

Api = Literal["completions", "chat"]
_ERROR_BODY_CHARS = 300
_LOOP_PROBE_INTERVAL_S = 0.01
# The client is "behind" when the 95th-percentile send lag exceeds this share of the mean gap between
# arrivals (or 10 ms, whichever is larger): beyond that the offered load is no longer the requested one.
_BEHIND_GAP_SHARE = 0.1
_BEHIND_FLOOR_MS = 10.0


@dataclass(frozen=True)
class RequestStyle:
    """Per-engine request fields. Strict servers (transformers serve) answer 422 to unknown fields."""

    ignore_eos: bool = False  # vLLM, SGLang, trtllm-serve, llama-server
    min_tokens: bool = False  # vLLM
    stream_usage: bool = True  # stream_options.include_usage
    temperature: float | None = 0.0  # greedy: fastest sampler everywhere, deterministic


REQUEST_STYLES: dict[str, RequestStyle] = {
    "vllm": RequestStyle(ignore_eos=True, min_tokens=True),
    "sglang": RequestStyle(ignore_eos=True),
    "trtllm": RequestStyle(ignore_eos=True),
    "tgi": RequestStyle(),
    "llamacpp": RequestStyle(ignore_eos=True),
    "transformers": RequestStyle(),
}


@dataclass(frozen=True)
class Target:
    base_url: str  # http://127.0.0.1:8000
    model: str
    api: Api = "completions"
    style: RequestStyle = field(default_factory=RequestStyle)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        return self.base_url.rstrip("/") + path

    def body(self, prompt: str, max_tokens: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "stream": True}
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        if self.style.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if self.style.ignore_eos:
            body["ignore_eos"] = True
        if self.style.min_tokens:
            body["min_tokens"] = max_tokens
        if self.style.temperature is not None:
            body["temperature"] = self.style.temperature
        return body


@dataclass(frozen=True)
class RequestPlan:
    prompt: str
    prompt_tokens: int
    max_tokens: int


@dataclass(frozen=True)
class Slo:
    ttft_ms: float | None = None
    itl_ms: float | None = None  # checked against each request's TPOT, and the level's p95 ITL by sweeps
    e2e_ms: float | None = None

    def met_by(self, sample: RequestSample) -> bool:
        if not sample.ok:
            return False
        if self.ttft_ms is not None and (sample.ttft_ms is None or sample.ttft_ms > self.ttft_ms):
            return False
        if self.itl_ms is not None and sample.tpot_ms is not None and sample.tpot_ms > self.itl_ms:
            return False
        return not (self.e2e_ms is not None and (sample.e2e_ms is None or sample.e2e_ms > self.e2e_ms))


@dataclass(frozen=True)
class ClosedLoop:
    concurrency: int


@dataclass(frozen=True)
class OpenLoop:
    rate_per_s: float
    burstiness: float = 1.0  # gamma shape; 1.0 = Poisson
    seed: int = 0


Load = ClosedLoop | OpenLoop


@dataclass
class RequestSample:
    index: int
    ok: bool = False
    error: str | None = None
    scheduled_s: float | None = None  # open loop: planned send time from the level start
    sent: bool = False
    sent_s: float = 0.0  # from the level start
    elapsed_ms: float | None = None  # send to success or failure, for the level's duration
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None
    itl_max_ms: float | None = None  # the longest stall inside this request
    prompt_tokens_planned: int = 0
    prompt_tokens: int | None = None  # server usage
    max_tokens: int = 0
    output_tokens: int = 0  # usage when present, else text events
    usage_output_tokens: int | None = None
    text_events: int = 0
    token_count_mismatch: bool = False
    short_output: bool = False  # fewer tokens than max_tokens: the engine stopped early
    malformed_lines: int = 0
    finish_reason: str | None = None
    meets_slo: bool = False
    itl_ms: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy was a visible share of client CPU at high request rates.
        # itl_ms is left out: pooled into the level's ITL distribution, per-token gaps would dwarf the result.
        return {name: getattr(self, name) for name in _SAMPLE_FIELDS}


_SAMPLE_FIELDS = tuple(f.name for f in fields(RequestSample) if f.name != "itl_ms")


class StreamError(Exception):
    """A request failed in a way the sample records as its error class."""

    def __init__(self, kind: str, detail: str = "") -> None:
        self.kind = kind
        super().__init__(f"{kind}: {detail}" if detail else kind)


# ---------------------------------------------------------------------------------------------- SSE


class SseDecoder:
    """Server-sent events from the raw byte stream, tolerant of what real and broken servers send.

    Each `data:` line is normally one JSON event; a payload split over several `data:` lines (allowed by the
    SSE spec) is joined until it parses or a blank line ends the event. Comments (`:`), `event:`, `id:` and
    `retry:` lines are ignored. Anything else, or a payload that never parses, counts as malformed. Works on
    bytes end to end (json.loads takes bytes): decoding text first costs more than the parse itself.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._partial = b""
        self.malformed = 0
        self.done = False

    def feed_bytes(self, data: bytes) -> list[dict[str, Any]]:
        """Events completed by this piece of the body; a line cut between pieces waits for its end."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        events: list[dict[str, Any]] = []
        for line in lines:
            events += self.feed(line)
        return events

    def feed(self, line: bytes) -> list[dict[str, Any]]:
        line = line.rstrip(b"\r")
        if not line:
            self._drop_pending()
            return []
        if line.startswith((b":", b"event:", b"id:", b"retry:")):
            return []
        if not line.startswith(b"data:"):
            self.malformed += 1
            return []
        payload = line[5:].lstrip(b" ")
        if payload == b"[DONE]" and not self._pending:
            self.done = True
            return []
        self._pending.append(payload)
        try:
            event = json.loads(b"\n".join(self._pending))
        except ValueError:
            return []
        self._pending.clear()
        if not isinstance(event, dict):
            self.malformed += 1
            return []
        return [event]

    def close(self) -> list[dict[str, Any]]:
        """End of the body: a last line without its newline still counts; an unfinished payload does not."""
        events = self.feed(self._partial) if self._partial else []
        self._partial = b""
        self._drop_pending()
        return events

    def _drop_pending(self) -> None:
        if self._pending:
            self.malformed += 1
            self._pending.clear()


def event_text(event: Mapping[str, Any]) -> str:
    """Generated text in a completions or chat chunk; reasoning text counts as output too (as vLLM)."""
    choices = event.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    text = choice.get("text")
    if isinstance(text, str):
        return text
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return ""
    parts = [delta.get("content"), delta.get("reasoning_content"), delta.get("reasoning")]
    return "".join(p for p in parts if isinstance(p, str))


def _finish_reason(event: Mapping[str, Any]) -> str | None:
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


# ---------------------------------------------------------------------------------------------- one request


class HttpSession:
    """httpx, with the per-request work that is not the server's kept out of the timed path.

    Requests are built (URL, headers, JSON body) before the send timestamp, and sent straight through
    httpx's public transport API rather than the client's auth/redirect/cookie layers, which a benchmark
    never needs. For http:// targets the transport is workers.http11.FastTransport (parses a whole network
    read at once instead of one token chunk at a time); https:// goes through httpx's default transport.
    """

    def __init__(self, max_connections: int, timeout_s: float, *, fast: bool = True) -> None:
        timeout = httpx.Timeout(connect=min(10.0, timeout_s), read=timeout_s, write=timeout_s, pool=timeout_s)
        # trust_env=False: proxies from the environment must never carry benchmark traffic.
        self._builder = httpx.AsyncClient(timeout=timeout, trust_env=False)
        self._transport: httpx.AsyncBaseTransport
        if fast:
            self._transport = FastTransport(max_connections)
        else:
            limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
            self._transport = httpx.AsyncHTTPTransport(limits=limits, retries=0)

    def build(self, target: Target, plan: RequestPlan) -> httpx.Request:
        body = json.dumps(target.body(plan.prompt, plan.max_tokens)).encode()
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            # The SSE parser reads raw bytes: a compressed stream would be unreadable and delay every token.
            "accept-encoding": "identity",
            **target.headers,
        }
        return self._builder.build_request("POST", target.url, content=body, headers=headers)

    async def send(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)

    async def __aenter__(self) -> HttpSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._transport.aclose()
        await self._builder.aclose()


async def stream_request(
    http: HttpSession,
    target: Target,
    plan: RequestPlan,
    sample: RequestSample,
    *,
    level_start: float,
) -> None:
    """Send one streaming request and fill `sample`; raises StreamError (or httpx errors) on failure."""
    request = http.build(target, plan)
    decoder = SseDecoder()
    token_times: list[float] = []
    usage: Mapping[str, Any] | None = None
    sent = time.perf_counter()
    sample.sent = True
    sample.sent_s = sent - level_start
    response = await http.send(request)
    try:
        if response.status_code != 200:
            raw = await response.aread()
            detail = raw[:_ERROR_BODY_CHARS].decode("utf-8", errors="replace")
            raise StreamError(f"http_{response.status_code}", detail)
        async for data in response.aiter_raw():
            # Stamped before parsing: events that came in one network read arrived together, and the time
            # spent decoding them is the client's, not the server's.
            now = time.perf_counter()
            for event in decoder.feed_bytes(data):
                usage = _consume(event, sample, token_times, now) or usage
        for event in decoder.close():
            usage = _consume(event, sample, token_times, time.perf_counter()) or usage
    finally:
        await response.aclose()
    end = time.perf_counter()
    sample.malformed_lines = decoder.malformed
    _fill_timings(sample, sent, end, token_times, usage)
    if decoder.malformed:
        raise StreamError("malformed_stream", f"{decoder.malformed} unparseable SSE line(s)")
    if not decoder.done and sample.finish_reason is None:
        raise StreamError("incomplete_stream", "stream ended without [DONE] or finish_reason")
    if sample.output_tokens == 0:
        raise StreamError("no_output", "the stream carried no generated text")


def _consume(
    event: Mapping[str, Any], sample: RequestSample, token_times: list[float], now: float
) -> Mapping[str, Any] | None:
    """Record one event; returns its usage block, if any."""
    if event.get("error"):
        raise StreamError("server_error", json.dumps(event["error"])[:_ERROR_BODY_CHARS])
    if event_text(event):
        token_times.append(now)
    sample.finish_reason = _finish_reason(event) or sample.finish_reason
    usage = event.get("usage")
    return usage if isinstance(usage, Mapping) and usage else None


def _fill_timings(
    sample: RequestSample, sent: float, end: float, token_times: list[float], usage: Mapping[str, Any] | None
) -> None:
    sample.text_events = len(token_times)
    sample.e2e_ms = (end - sent) * 1000.0
    if token_times:
        sample.ttft_ms = (token_times[0] - sent) * 1000.0
        sample.itl_ms = [(b - a) * 1000.0 for a, b in itertools.pairwise(token_times)]
        sample.itl_max_ms = max(sample.itl_ms) if sample.itl_ms else None
    completion = usage.get("completion_tokens") if usage else None
    prompt = usage.get("prompt_tokens") if usage else None
    sample.usage_output_tokens = completion if isinstance(completion, int) else None
    sample.prompt_tokens = prompt if isinstance(prompt, int) else None
    sample.output_tokens = (
        sample.usage_output_tokens if sample.usage_output_tokens is not None else len(token_times)
    )
    sample.token_count_mismatch = (
        sample.usage_output_tokens is not None and sample.usage_output_tokens != sample.text_events
    )
    sample.short_output = sample.output_tokens < sample.max_tokens
    if sample.ttft_ms is not None and sample.output_tokens > 1:
        sample.tpot_ms = (sample.e2e_ms - sample.ttft_ms) / (sample.output_tokens - 1)


async def run_request(
    http: HttpSession,
    target: Target,
    plan: RequestPlan,
    index: int,
    *,
    level_start: float,
    timeout_s: float,
    scheduled_s: float | None = None,
) -> RequestSample:
    """One request as one sample: never raises for request failures, only for cancellation of the level."""
    sample = RequestSample(
        index=index,
        scheduled_s=scheduled_s,
        prompt_tokens_planned=plan.prompt_tokens,
        max_tokens=plan.max_tokens,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await stream_request(http, target, plan, sample, level_start=level_start)
        sample.ok = True
        sample.elapsed_ms = sample.e2e_ms
    except StreamError as exc:
        sample.error = str(exc)
    except TimeoutError:
        sample.error = f"timeout: no complete response within {timeout_s:g} s"
    except httpx.TimeoutException as exc:
        sample.error = f"timeout: {type(exc).__name__}"
    except httpx.HTTPError as exc:
        sample.error = f"connection: {type(exc).__name__}: {exc}"[:_ERROR_BODY_CHARS]
    except (OSError, ValueError) as exc:
        sample.error = f"client: {type(exc).__name__}: {exc}"[:_ERROR_BODY_CHARS]
    if sample.elapsed_ms is None and sample.sent:
        sample.elapsed_ms = (time.perf_counter() - level_start - sample.sent_s) * 1000.0
    return sample


# ---------------------------------------------------------------------------------------------- a level


@dataclass
class _Run:
    target: Target
    http: HttpSession
    timeout_s: float
    stop: asyncio.Event
    on_sample: Callable[[RequestSample], None] | None
    start: float = 0.0
    samples: list[RequestSample] = field(default_factory=list)
    send_lags_ms: list[float] = field(default_factory=list)

    def record(self, sample: RequestSample) -> None:
        self.samples.append(sample)
        if self.on_sample is not None:
            self.on_sample(sample)


async def _closed_loop(run: _Run, plans: Sequence[RequestPlan], concurrency: int) -> None:
    next_index = 0

    async def user() -> None:
        nonlocal next_index
        while next_index < len(plans) and not run.stop.is_set():
            index = next_index
            next_index += 1  # no await between the check and the claim: single-threaded, no race
            sample = await run_request(
                run.http, run.target, plans[index], index, level_start=run.start, timeout_s=run.timeout_s
            )
            run.record(sample)

    await asyncio.gather(*(user() for _ in range(min(concurrency, len(plans)))))


async def _open_loop(run: _Run, plans: Sequence[RequestPlan], load: OpenLoop) -> None:
    rng = np.random.default_rng(load.seed)
    offsets = arrival_offsets_s(rng, rate_per_s=load.rate_per_s, count=len(plans), burstiness=load.burstiness)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        sample = await run_request(
            run.http,
            run.target,
            plans[index],
            index,
            level_start=run.start,
            timeout_s=run.timeout_s,
            scheduled_s=scheduled,
        )
        run.record(sample)

    try:
        for index, offset in enumerate(offsets):
            delay = run.start + offset - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if run.stop.is_set():
                break
            run.send_lags_ms.append(max(0.0, (time.perf_counter() - run.start - offset) * 1000.0))
            task = asyncio.create_task(one(index, offset))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        # A cancelled dispatcher must not leave requests running into the next level.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _drive(run: _Run, plans: Sequence[RequestPlan], load: Load) -> None:
    if isinstance(load, ClosedLoop):
        await _closed_loop(run, plans, load.concurrency)
    else:
        await _open_loop(run, plans, load)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (it comes with uvicorn): its faster I/O keeps the client's own overhead out of
    the timings at high rates. Use as `asyncio.Runner(loop_factory=new_event_loop)`."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


async def _probe_loop_lag(stop: asyncio.Event, lags_ms: list[float]) -> None:
    """How late the event loop wakes up: a busy client delays every timestamp it takes by this much."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(_LOOP_PROBE_INTERVAL_S)
        lags_ms.append(max(0.0, (time.perf_counter() - before - _LOOP_PROBE_INTERVAL_S) * 1000.0))


async def run_level(
    target: Target,
    plans: Sequence[RequestPlan],
    load: Load,
    *,
    warmup: Sequence[RequestPlan] = (),
    request_timeout_s: float = 300.0,
    slo: Slo | None = None,
    stop: asyncio.Event | None = None,
    on_sample: Callable[[RequestSample], None] | None = None,
    max_connections: int = 1024,
) -> dict[str, Any]:
    """Run warm-up requests (excluded), then `plans` under `load`; returns the level's metrics and samples.

    Setting `stop` ends the level early: no new requests are sent, those in flight are cancelled and
    recorded as failed ("cancelled"), and the level is marked `aborted`.
    """
    stop = stop or asyncio.Event()
    connections = load.concurrency if isinstance(load, ClosedLoop) else max_connections
    fast = target.base_url.startswith("http://")
    async with HttpSession(max(1, min(connections, max_connections)), request_timeout_s, fast=fast) as http:
        warm = _Run(target, http, request_timeout_s, stop, None, start=time.perf_counter())
        if warmup:
            width = load.concurrency if isinstance(load, ClosedLoop) else len(warmup)
            await _closed_loop(warm, warmup, width)
        run = _Run(target, http, request_timeout_s, stop, on_sample)
        loop_lags_ms: list[float] = []
        probe_stop = asyncio.Event()
        probe = asyncio.create_task(_probe_loop_lag(probe_stop, loop_lags_ms))
        run.start = time.perf_counter()
        main = asyncio.create_task(_drive(run, plans, load))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
        aborted = stop.is_set() and len(run.samples) < len(plans)
        if not main.done():
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
        stopper.cancel()
        probe_stop.set()
        await probe
    _record_unfinished(run, plans, load)
    return summarize_level(
        run.samples, load, slo=slo, send_lags_ms=run.send_lags_ms, loop_lags_ms=loop_lags_ms
    ) | {
        "aborted": aborted,
        "warmup_requests": len(warmup),
        "warmup_failed": sum(1 for w in warm.samples if not w.ok),
    }


def _record_unfinished(run: _Run, plans: Sequence[RequestPlan], load: Load) -> None:
    """Requests never sent or cut off by a stop still appear, as failures, so the counts add up."""
    seen = {s.index for s in run.samples}
    for index, plan in enumerate(plans):
        if index not in seen:
            sample = RequestSample(
                index=index, prompt_tokens_planned=plan.prompt_tokens, max_tokens=plan.max_tokens
            )
            sample.error = "cancelled: the level was stopped before this request finished"
            run.samples.append(sample)
    run.samples.sort(key=lambda s: s.index)


# ---------------------------------------------------------------------------------------------- summary


def _error_class(error: str) -> str:
    return error.split(":", 1)[0]


def summarize_level(
    samples: Sequence[RequestSample],
    load: Load,
    *,
    slo: Slo | None = None,
    send_lags_ms: Sequence[float] = (),
    loop_lags_ms: Sequence[float] = (),
) -> dict[str, Any]:
    ok = [s for s in samples if s.ok]
    for sample in samples:
        sample.meets_slo = slo.met_by(sample) if slo is not None else sample.ok
    sent = [s for s in samples if s.sent]
    if sent:
        first_send = min(s.sent_s for s in sent)
        last_end = max(s.sent_s + (s.elapsed_ms or 0.0) / 1000.0 for s in sent)
        duration_s = max(last_end - first_send, 1e-9)
    else:
        duration_s = 0.0

    def per_s(count: float) -> float:
        return count / duration_s if duration_s else 0.0

    level: dict[str, Any] = (
        {"concurrency": load.concurrency}
        if isinstance(load, ClosedLoop)
        else {"rate": load.rate_per_s, "burstiness": load.burstiness}
    )
    level |= {
        "ttft_ms": percentiles([s.ttft_ms for s in ok if s.ttft_ms is not None]),
        "itl_ms": percentiles([gap for s in ok for gap in s.itl_ms]),
        "tpot_ms": percentiles([s.tpot_ms for s in ok if s.tpot_ms is not None]),
        "e2e_ms": percentiles([s.e2e_ms for s in ok if s.e2e_ms is not None]),
        "output_tokens_per_s": per_s(sum(s.output_tokens for s in ok)),
        "input_tokens_per_s": per_s(sum(s.prompt_tokens or s.prompt_tokens_planned for s in ok)),
        "requests_per_s": per_s(len(ok)),
        "goodput_requests_per_s": per_s(sum(1 for s in ok if s.meets_slo)),
        "completion_rate_per_s": _completion_rate(ok),
        "requests_ok": len(ok),
        "requests_failed": len(samples) - len(ok),
        "errors": dict(Counter(_error_class(s.error) for s in samples if s.error)),
        "duration_s": duration_s,
        "mean_prompt_tokens": _mean([s.prompt_tokens or s.prompt_tokens_planned for s in ok]),
        "mean_output_tokens": _mean([s.output_tokens for s in ok]),
        "token_count_mismatches": sum(1 for s in ok if s.token_count_mismatch),
        "short_outputs": sum(1 for s in ok if s.short_output),
        "token_source": _token_source(ok),
        "client": _client_health(samples, load, send_lags_ms, loop_lags_ms),
        "samples": [s.to_dict() for s in samples],
    }
    return level


def _completion_rate(ok: Sequence[RequestSample]) -> float | None:
    """Completions per second between the first and the last completion.

    Unlike requests_per_s (first send to last completion) it carries no one-request latency in its
    denominator, so it equals the sending rate when the engine keeps up and the service rate when it does
    not: the saturation test of a sweep compares the two.
    """
    ends = sorted(s.sent_s + (s.elapsed_ms or 0.0) / 1000.0 for s in ok)
    if len(ends) < 2 or ends[-1] <= ends[0]:
        return None
    return (len(ends) - 1) / (ends[-1] - ends[0])


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _token_source(ok: Sequence[RequestSample]) -> str:
    with_usage = sum(1 for s in ok if s.usage_output_tokens is not None)
    if not ok or with_usage == len(ok):
        return "usage"
    return "stream_events" if with_usage == 0 else "mixed"


def _client_health(
    samples: Sequence[RequestSample], load: Load, send_lags_ms: Sequence[float], loop_lags_ms: Sequence[float]
) -> dict[str, Any]:
    """Whether the client kept up: send lag against the schedule (open loop) and event-loop wake-up lag."""
    health: dict[str, Any] = {"event_loop_lag_ms": percentiles(loop_lags_ms)}
    if isinstance(load, ClosedLoop):
        health["fell_behind"] = False
        return health
    lags = percentiles(send_lags_ms)
    sends = sorted(s.sent_s for s in samples if s.sent)
    achieved = (len(sends) - 1) / (sends[-1] - sends[0]) if len(sends) > 1 and sends[-1] > sends[0] else None
    allowed_ms = max(_BEHIND_FLOOR_MS, _BEHIND_GAP_SHARE * 1000.0 / load.rate_per_s)
    p95_lag = lags["p95"]
    health |= {
        "send_lag_ms": lags,
        "offered_rate_per_s": load.rate_per_s,
        "achieved_send_rate_per_s": achieved,
        "allowed_send_lag_ms": allowed_ms,
        "fell_behind": p95_lag is not None and p95_lag > allowed_ms,
    }
    return health
