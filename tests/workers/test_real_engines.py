"""Real engines on CPU, launched by the worker's launcher and measured by its load generator.

transformers serve (continuous batching) on a tiny random Llama, and llama.cpp's own llama-server (built by
`make install-test`, the pinned build) with parallel slots, on the same kind of model written as GGUF and
quantized by llama.cpp. Nothing stands in for an engine here.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.manifests.layout import layout_for
from tests.manifests.helpers import listening_locally, make_request
from tests.workers.conftest import needs_llama_cpp, needs_llama_server
from workers.engines import ServeConfig
from workers.launch import EngineProcess, free_port, launch
from workers.loadgen import REQUEST_STYLES, ClosedLoop, Load, RequestPlan, Target, run_level
from workers.prompts import PromptFactory, chat_overhead_tokens, load_tokenizer

pytestmark = pytest.mark.integration

ISL, OSL, REQUESTS = 16, 8, 4
CHAT_ISL = 32  # room for the chat template's 17 tokens around the message
STARTUP_TIMEOUT_S = 300.0  # a loaded 2-core machine starts transformers in ~10 s; leave room
REQUEST_TIMEOUT_S = 120.0  # the first transformers request warms up for several seconds


def _plans(tokenizer_path: Path, count: int, seed: int, *, chat: bool = False) -> list[RequestPlan]:
    isl = CHAT_ISL if chat else ISL
    template_tokens = chat_overhead_tokens(tokenizer_path) if chat else None
    factory = PromptFactory(load_tokenizer(tokenizer_path), seed=seed, template_tokens=template_tokens)
    return [RequestPlan(p.text, p.tokens, OSL) for p in (factory.make(isl) for _ in range(count))]


def _levels(target: Target, tokenizer_path: Path, loads: list[Load]) -> list[dict[str, Any]]:
    chat = target.api == "chat"

    async def run() -> list[dict[str, Any]]:
        levels = []
        for index, load in enumerate(loads):
            warmup = _plans(tokenizer_path, 1, seed=100, chat=chat) if index == 0 else []
            plans = _plans(tokenizer_path, REQUESTS, seed=index, chat=chat)
            levels.append(
                await run_level(target, plans, load, warmup=warmup, request_timeout_s=REQUEST_TIMEOUT_S)
            )
        return levels

    return asyncio.run(run())


def _assert_sane(level: dict[str, Any], *, usage: bool) -> None:
    assert level["requests_ok"] == REQUESTS, level["errors"]
    assert level["requests_failed"] == 0
    for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
        p = level[metric]
        assert 0 <= p["p50"] <= p["p90"] <= p["p95"] <= p["p99"] <= p["max"], (metric, p)
    # A gap can be 0: tokens flushed in one network read share its timestamp. The others cannot.
    assert level["ttft_ms"]["p50"] > 0
    assert level["tpot_ms"]["p50"] > 0
    assert level["ttft_ms"]["p50"] < level["e2e_ms"]["p50"]
    assert level["output_tokens_per_s"] > 0
    assert level["requests_per_s"] > 0
    assert level["token_count_mismatches"] == 0
    for sample in level["samples"]:
        assert sample["output_tokens"] == OSL  # tokens counted = tokens asked
        assert sample["text_events"] == OSL
        assert not sample["short_output"]
        if usage:
            assert sample["usage_output_tokens"] == OSL
            assert sample["prompt_tokens"] == ISL  # exact prompt length, as the server counts it
    assert level["token_source"] == ("usage" if usage else "stream_events")


def _assert_stopped(engine: EngineProcess) -> None:
    assert engine.exit_code() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(engine.process.pid, 0)  # type: ignore[union-attr]  # the whole process group is gone


def test_transformers_serve_on_cpu(tiny_llama_dir: Path, tmp_path: Path) -> None:
    # given
    config = ServeConfig(
        engine="transformers",
        model_path=str(tiny_llama_dir),
        served_name="tiny",
        device="cpu",
        host="127.0.0.1",
        port=free_port(),
        max_model_len=256,
        max_num_seqs=4,
    )

    # when
    with launch(config, log_path=tmp_path / "transformers.log") as engine:
        engine.wait_ready(STARTUP_TIMEOUT_S)
        version = engine.version()
        target = Target(engine.base_url, str(tiny_llama_dir), style=REQUEST_STYLES[engine.flavour])
        closed = _levels(target, tiny_llama_dir, [ClosedLoop(1), ClosedLoop(2)])
        chat_target = Target(engine.base_url, str(tiny_llama_dir), api="chat", style=target.style)
        (chat,) = _levels(chat_target, tiny_llama_dir, [ClosedLoop(2)])

    # then
    assert version.startswith("5.")
    for level in closed:
        _assert_sane(level, usage=True)
    assert [level["concurrency"] for level in closed] == [1, 2]
    assert chat["requests_ok"] == REQUESTS
    assert all(s["output_tokens"] == OSL for s in chat["samples"])
    assert all(s["prompt_tokens"] == CHAT_ISL for s in chat["samples"])  # the template's tokens included
    _assert_stopped(engine)


@needs_llama_cpp
@needs_llama_server
@pytest.mark.parametrize(("quant", "prefix_caching"), [("q8_0", True), ("q4_k_m", False)])
def test_llama_server_on_cpu(
    quant: str, prefix_caching: bool, tiny_gguf_files: dict[str, Path], tmp_path: Path
) -> None:
    # given a CPU bundle's llama-server arguments (prompt caching off spells --no-cache-prompt)
    model = tiny_gguf_files[quant]
    layout = layout_for(
        make_request(
            "llamacpp",
            quant=f"gguf-{quant}",
            gpu="cpu",
            tp=1,
            model_path=str(model),
            served_name=f"tiny-{quant}",
            max_model_len=256,
            max_num_seqs=2,
            prefix_caching=prefix_caching,
            weights_gb=0.01,
        )
    )
    config = replace(layout.serve, host="127.0.0.1", port=free_port())

    # when
    with launch(config, log_path=tmp_path / "llama.log") as engine:
        engine.wait_ready(STARTUP_TIMEOUT_S)
        version = engine.version()
        props = httpx.get(engine.base_url + "/props", timeout=10).json()
        target = Target(engine.base_url, config.served_name, style=REQUEST_STYLES[engine.flavour])
        (level,) = _levels(target, model, [ClosedLoop(2)])
        metrics = httpx.get(engine.base_url + "/metrics", timeout=10).text

    # then the pinned build ran with one slot per concurrent sequence and exported the queue gauge
    assert engine.flavour == "llamacpp"
    assert engine.plan.argv[1:] == listening_locally(layout.args, "127.0.0.1", config.effective_port)
    assert engine.plan.argv[0].endswith("llama-server")
    assert version.startswith(f"{engine.config.definition.version}-")  # e.g. "b11312-<commit>"
    assert props["total_slots"] == config.max_num_seqs
    assert ("--no-cache-prompt" in engine.plan.argv) is not prefix_caching
    assert f"{config.definition.queue_metric} " in metrics
    _assert_sane(level, usage=True)
    _assert_stopped(engine)
