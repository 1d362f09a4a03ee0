"""Launch plans per engine and flavour, and what happens when a real engine fails."""

from __future__ import annotations

import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.workers.conftest import needs_llama_cpp, needs_llama_server
from workers.engines import ServeConfig, serve_args
from workers.errors import EngineCrashed, EngineStartError
from workers.launch import bare_launch_plan, container_launch_plan, free_port, launch
from workers.runner import BenchmarkSpec, run_benchmark


def _config(engine: str, model_path: str = "/m", **overrides: Any) -> ServeConfig:
    fields: dict[str, Any] = {"engine": engine, "model_path": model_path, "served_name": "m", "port": 8123}
    return ServeConfig(**(fields | overrides))


def test_llamacpp_runs_only_as_llama_server(monkeypatch: pytest.MonkeyPatch) -> None:
    # No single-sequence stand-in: without the binary the image runs, the launch is refused.
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    config = _config("llamacpp", "/m.gguf", quantization="gguf-q8_0", device="cpu", max_model_len=512)

    with pytest.raises(EngineStartError, match="'llama-server' is not installed"):
        bare_launch_plan(config)


def test_an_engine_in_another_virtualenv_runs_under_its_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVISOR_VLLM_PYTHON", "/opt/vllm-cpu/bin/python")
    config = _config("vllm", "/models/m", device="cpu", engine_version="0.32.0")

    plan = bare_launch_plan(config)

    assert plan.argv == [
        "/opt/vllm-cpu/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        *serve_args(config),
    ]
    assert plan.env["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_engine_files_are_written_where_the_arguments_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "trtllm-serve"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    config = _config("trtllm", "/models/m", config_dir=str(tmp_path / "etc"))

    plan = bare_launch_plan(config)
    (path,) = plan.files
    assert plan.argv[plan.argv.index("--extra_llm_api_options") + 1] == path
    assert path.startswith(str(tmp_path / "etc"))


def test_llamacpp_prefers_llama_server_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))
    config = _config("llamacpp", "/m.gguf", quantization="gguf-q8_0", device="cpu")

    plan = bare_launch_plan(config)

    assert plan.flavour == "llamacpp"
    assert plan.argv == [str(binary), *serve_args(config)]


def test_python_engines_run_in_this_interpreter_and_offline() -> None:
    plan = bare_launch_plan(_config("transformers", device="cpu"))

    assert Path(plan.argv[0]).name == "transformers"
    assert plan.argv[1] == "serve"
    assert plan.argv[2:] == serve_args(_config("transformers", device="cpu"))
    assert plan.env["HF_HUB_OFFLINE"] == "1"


def test_a_missing_engine_binary_is_a_clear_start_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(EngineStartError, match="text-generation-launcher"):
        bare_launch_plan(_config("tgi"))


def test_container_plan_runs_the_pinned_image_with_the_same_args() -> None:
    config = _config("tgi", "/models/m", prefix_caching=False)

    plan = container_launch_plan(config, name="bench-1")

    image_at = plan.argv.index(config.definition.image)
    assert plan.argv[:2] == ["docker", "run"]
    assert plan.argv[image_at + 1 :] == serve_args(config)
    assert "PREFIX_CACHING=0" in plan.argv
    assert "/models/m:/models/m:ro" in plan.argv
    assert "127.0.0.1:8123:8123" in plan.argv
    assert plan.container_name == "bench-1"


@pytest.mark.integration
@needs_llama_cpp
@needs_llama_server
def test_an_engine_that_dies_while_starting_reports_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(256))  # a real llama.cpp server, fed a corrupt model
    config = _config("llamacpp", str(broken), quantization="gguf-q8_0", device="cpu", port=free_port())

    with pytest.raises(EngineStartError) as caught, launch(config, log_path=tmp_path / "e.log") as engine:
        engine.wait_ready(timeout_s=120)

    assert caught.value.exit_code not in (None, 0)
    assert caught.value.log_tail
    assert "last engine log lines" in str(caught.value)
    with pytest.raises(ProcessLookupError):
        os.killpg(engine.process.pid, 0)  # type: ignore[union-attr]


@pytest.mark.integration
@needs_llama_cpp
@needs_llama_server
def test_an_engine_killed_mid_run_raises_with_partial_result(tmp_path: Path) -> None:
    # given a real engine, killed as the level starts (as the OOM killer would)
    spec = BenchmarkSpec(
        engine="llamacpp",
        model="llama-3.1-8b",
        dummy_weights=True,
        shrink=True,
        device="cpu",
        quantization="gguf-q8_0",
        isl=16,
        osl=64,
        concurrency=(1,),
        requests=50,
        warmup_requests=1,
        startup_timeout_s=300,
        request_timeout_s=60,
        work_dir=str(tmp_path),
    )
    pid: list[int] = []

    def on_progress(event: dict[str, Any]) -> None:
        if event["event"] == "engine_started":
            pid.append(event["pid"])
        if event["event"] == "level_started":
            os.killpg(pid[0], signal.SIGKILL)

    # when / then
    with pytest.raises(EngineCrashed) as caught:
        run_benchmark(spec, on_progress=on_progress)

    assert caught.value.exit_code == -signal.SIGKILL
    assert caught.value.partial_result is not None
    assert caught.value.partial_result["error"].startswith("llama.cpp server was killed by SIGKILL")
    assert caught.value.partial_result["engine"]["flavour"] == "llamacpp"
