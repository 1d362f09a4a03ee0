"""Hardware and engine probe on this host (no GPU here; the GPU branch runs on GPU hosts)."""

from __future__ import annotations

import json
import shutil

from workers.probe import probe_engines, probe_hardware, probe_host


def test_hardware_probe_describes_this_host_as_json() -> None:
    hardware = probe_hardware().to_dict()

    assert json.loads(json.dumps(hardware)) == hardware
    assert hardware["cpu_cores"] >= 1
    assert hardware["memory_mib"] > 0
    assert hardware["cpu_model"]
    if shutil.which("nvidia-smi") is None:
        assert hardware["accelerator"] in ("cpu", "cuda")  # torch may still see a GPU
    if hardware["accelerator"] == "cpu":
        assert hardware["accelerator_count"] == 0
        assert hardware["accelerator_model"] == hardware["cpu_model"]
    else:
        assert hardware["accelerator_count"] == len(hardware["devices"]) > 0
        assert hardware["accelerator_memory_mib"] > 0


def test_engine_probe_finds_the_engines_installed_in_this_venv() -> None:
    engines = probe_engines()

    # the worker extra installs transformers with its serving extra
    assert "transformers" in engines
    assert engines["transformers"]["version"]
    assert any(launcher.startswith("module:") for launcher in engines["transformers"]["launchers"])
    assert set(engines) <= {"vllm", "sglang", "trtllm", "tgi", "llamacpp", "transformers"}


def test_host_probe_is_what_a_worker_registers_with() -> None:
    host = probe_host()

    assert set(host) == {"hardware", "engines", "docker"}
    assert isinstance(host["docker"], bool)
    json.dumps(host)
