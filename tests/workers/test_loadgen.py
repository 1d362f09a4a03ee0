"""The load generator against a server that misbehaves in every way engines and proxies do."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.workers.bad_server import TOKENS, BadServer
from workers.loadgen import (
    REQUEST_STYLES,
    ClosedLoop,
    OpenLoop,
    RequestPlan,
    Slo,
    SseDecoder,
    Target,
    event_text,
    run_level,
)

REQUEST_TIMEOUT_S = 1.0


def _plan(mode: str, max_tokens: int = TOKENS) -> RequestPlan:
    return RequestPlan(prompt=f"mode:{mode}", prompt_tokens=5, max_tokens=max_tokens)


async def _level(
    plans: list[RequestPlan], load: Any, **kwargs: Any
) -> tuple[dict[str, Any], BadServer, float]:
    server = BadServer()
    async with server.running():
        target = Target(server.base_url, "bad", style=kwargs.pop("style", REQUEST_STYLES["vllm"]))
        started = time.monotonic()
        level = await run_level(target, plans, load, request_timeout_s=REQUEST_TIMEOUT_S, **kwargs)
        return level, server, time.monotonic() - started


def test_every_misbehaviour_becomes_one_clean_sample_and_the_level_finishes() -> None:
    # given one request per behaviour, two of which never finish on their own
    modes = [
        "ok",
        "slow_first_byte",
        "drip",
        "drop",
        "malformed",
        "wrong_usage",
        "http_500",
        "no_done",
        "split_data",
        "error_event",
    ]
    plans = [_plan(mode) for mode in modes]

    # when
    level, _server, elapsed_s = asyncio.run(_level(plans, ClosedLoop(concurrency=4)))

    # then the counts add up and nothing was dropped
    samples = {modes[s["index"]]: s for s in level["samples"]}
    assert len(level["samples"]) == len(modes)
    assert level["requests_ok"] + level["requests_failed"] == len(modes)
    assert level["requests_ok"] == 3  # ok, wrong_usage, split_data
    # and the stuck requests were cut by the per-request deadline, not waited out
    assert elapsed_s < 4 * REQUEST_TIMEOUT_S
    expected_errors = {
        "slow_first_byte": "timeout",
        "drip": "timeout",
        "drop": "connection",
        "malformed": "malformed_stream",
        "http_500": "http_500",
        "no_done": "incomplete_stream",
        "error_event": "server_error",
    }
    for mode, error_class in expected_errors.items():
        assert samples[mode]["ok"] is False, mode
        assert samples[mode]["error"].split(":")[0] == error_class, (mode, samples[mode]["error"])
    assert "CUDA out of memory" in samples["http_500"]["error"]
    assert samples["malformed"]["malformed_lines"] == 2
    assert level["errors"] == {
        e: list(expected_errors.values()).count(e) for e in set(expected_errors.values())
    }


def test_usage_that_disagrees_with_the_stream_is_flagged_and_usage_counts() -> None:
    level, _server, _ = asyncio.run(_level([_plan("wrong_usage"), _plan("ok")], ClosedLoop(1)))

    wrong, right = level["samples"]
    assert wrong["ok"]
    assert wrong["token_count_mismatch"]
    assert wrong["output_tokens"] == TOKENS + 3
    assert wrong["text_events"] == TOKENS
    assert right["ok"]
    assert not right["token_count_mismatch"]
    assert right["output_tokens"] == TOKENS
    assert level["token_count_mismatches"] == 1


def test_a_payload_split_over_data_lines_is_one_event() -> None:
    level, _server, _ = asyncio.run(_level([_plan("split_data")], ClosedLoop(1)))

    sample = level["samples"][0]
    assert sample["ok"], sample["error"]
    assert sample["text_events"] == TOKENS
    assert sample["malformed_lines"] == 0


def test_chat_role_only_chunk_does_not_count_as_first_token() -> None:
    async def run() -> dict[str, Any]:
        server = BadServer()
        async with server.running():
            target = Target(server.base_url, "bad", api="chat", style=REQUEST_STYLES["transformers"])
            return await run_level(target, [_plan("ok")], ClosedLoop(1), request_timeout_s=REQUEST_TIMEOUT_S)

    level = asyncio.run(run())

    sample = level["samples"][0]
    assert sample["ok"], sample["error"]
    assert sample["text_events"] == TOKENS
    assert sample["ttft_ms"] >= 20.0  # the server waits 20 ms after the role chunk
    assert sample["usage_output_tokens"] is None
    assert level["token_source"] == "stream_events"


def test_request_fields_follow_the_engine_style() -> None:
    plans = [_plan("ok", max_tokens=3)]
    _level_vllm, vllm_server, _ = asyncio.run(_level(plans, ClosedLoop(1), style=REQUEST_STYLES["vllm"]))
    _level_tf, tf_server, _ = asyncio.run(_level(plans, ClosedLoop(1), style=REQUEST_STYLES["transformers"]))

    vllm_body, tf_body = vllm_server.requests[0], tf_server.requests[0]
    assert vllm_body["ignore_eos"] is True
    assert vllm_body["min_tokens"] == 3
    assert vllm_body["stream"] is True
    assert vllm_body["stream_options"] == {"include_usage": True}
    # transformers serve answers 422 to fields it does not know
    assert "ignore_eos" not in tf_body
    assert "min_tokens" not in tf_body
    assert tf_body["max_tokens"] == 3


def test_warmup_requests_are_sent_but_not_measured() -> None:
    level, server, _ = asyncio.run(_level([_plan("ok")] * 3, ClosedLoop(2), warmup=[_plan("http_500")] * 2))

    assert len(server.requests) == 5
    assert level["requests_ok"] == 3
    assert level["requests_failed"] == 0
    assert level["warmup_requests"] == 2
    assert level["warmup_failed"] == 2
    assert level["errors"] == {}


def test_open_loop_keeps_the_schedule_and_reports_send_lag() -> None:
    plans = [_plan("ok")] * 40

    level, _server, elapsed_s = asyncio.run(_level(plans, OpenLoop(rate_per_s=100.0, seed=3)))

    assert level["rate"] == 100.0
    assert level["requests_ok"] == 40
    scheduled = [s["scheduled_s"] for s in level["samples"]]
    assert scheduled == sorted(scheduled)
    assert scheduled[0] == 0.0
    client = level["client"]
    assert client["send_lag_ms"]["p50"] is not None
    assert client["send_lag_ms"]["p50"] >= 0
    assert client["offered_rate_per_s"] == 100.0
    assert isinstance(client["fell_behind"], bool)
    assert elapsed_s < 10.0


def test_goodput_counts_only_requests_meeting_every_slo() -> None:
    # A 0.001 ms TTFT target nothing can meet, then a generous one everything meets.
    plans = [_plan("ok")] * 4
    strict, _, _ = asyncio.run(_level(plans, ClosedLoop(2), slo=Slo(ttft_ms=0.001)))
    loose, _, _ = asyncio.run(_level(plans, ClosedLoop(2), slo=Slo(ttft_ms=60_000.0, itl_ms=60_000.0)))

    assert strict["goodput_requests_per_s"] == 0.0
    assert strict["requests_per_s"] > 0
    assert loose["goodput_requests_per_s"] == pytest.approx(loose["requests_per_s"])


def test_stopping_a_level_records_unfinished_requests_as_failed() -> None:
    async def run() -> tuple[dict[str, Any], float]:
        server = BadServer()
        async with server.running():
            target = Target(server.base_url, "bad")
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(0.3, stop.set)
            started = time.monotonic()
            plans = [_plan("drip")] * 3 + [_plan("ok")] * 3
            level = await run_level(target, plans, ClosedLoop(3), request_timeout_s=30.0, stop=stop)
            return level, time.monotonic() - started

    level, elapsed_s = asyncio.run(run())

    assert level["aborted"] is True
    assert elapsed_s < 5.0
    assert level["requests_ok"] + level["requests_failed"] == 6
    assert level["errors"].get("cancelled", 0) >= 3


def test_sse_decoder_ignores_comments_and_fields_and_counts_garbage() -> None:
    decoder = SseDecoder()
    body = b': ping\nevent: message\nid: 7\nretry: 100\ndata: {"a": 1}\n\nnonsense\ndata: [DONE]\n\n'

    events = decoder.feed_bytes(body) + decoder.close()

    assert events == [{"a": 1}]
    assert decoder.malformed == 1
    assert decoder.done


def test_sse_decoder_joins_lines_cut_between_network_reads() -> None:
    decoder = SseDecoder()
    body = b'data: {"choices": [{"text": "a"}]}\r\n\r\ndata: {"choices": [{"text": "b"}]}'
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]

    events = [event for piece in pieces for event in decoder.feed_bytes(piece)] + decoder.close()

    assert [event_text(e) for e in events] == ["a", "b"]  # the last line had no newline: close() keeps it
    assert decoder.malformed == 0


def test_sse_decoder_drops_an_unparseable_event_at_the_blank_line() -> None:
    decoder = SseDecoder()

    events = decoder.feed_bytes(b'data: {"a": \n\ndata: {"b": 2}\r\n') + decoder.close()

    assert events == [{"b": 2}]
    assert decoder.malformed == 1


def test_event_text_reads_completions_chat_and_reasoning() -> None:
    assert event_text({"choices": [{"text": "a"}]}) == "a"
    assert event_text({"choices": [{"delta": {"content": "b"}}]}) == "b"
    assert event_text({"choices": [{"delta": {"reasoning_content": "c"}}]}) == "c"
    assert event_text({"choices": [{"delta": {"role": "assistant"}}]}) == ""
    assert event_text({"choices": []}) == ""
    assert event_text({"usage": {"completion_tokens": 3}}) == ""
