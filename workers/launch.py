"""Start an engine from a ServeConfig, wait until it serves, read its version, stop it cleanly.

Bare processes run with exactly `engines.serve_args(config)` (the arguments the manifests deploy), in their
own process group so stopping reaches every worker process the engine forks, with stdout and stderr captured
to a log file whose tail goes into every error. Containers get the same arguments after the image.

llama.cpp has two launcher flavours on bare hosts. `llama-server` (the binary the manifests' image runs) is
used when it is on PATH; otherwise llama-cpp-python's `python -m llama_cpp.server`, which takes different
flags, gets the equivalent settings. That server runs one sequence at a time (no parallel slots), so its
numbers are a single-stream lower bound, not what the llama-server image would do; results record the flavour.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from workers.engines import ServeConfig, container_args, serve_args, serve_env
from workers.errors import EngineCrashed, EngineStartError, InvalidSpec

LOG_TAIL_LINES = 40
_POLL_INTERVAL_S = 0.5
_PROBE_TIMEOUT_S = 5.0
# Never download anything: benchmark hosts may be air-gapped, and weights must come from the local path.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
_PACKAGES = {
    "vllm": "vllm",
    "sglang": "sglang",
    "trtllm": "tensorrt_llm",
    "transformers": "transformers",
    "llamacpp-python": "llama_cpp_python",
}
# Endpoints that report a running server's own version, and the JSON key holding it.
_VERSION_ENDPOINTS = {
    "vllm": ("/version", "version"),
    "sglang": ("/get_server_info", "version"),
    "tgi": ("/info", "version"),
    "llamacpp": ("/props", "build_info"),
}


@dataclass(frozen=True)
class LaunchPlan:
    """What will run: argv, the environment added to the worker's, and which launcher flavour it is."""

    argv: list[str]
    env: dict[str, str]
    flavour: str  # the engine name, or "llamacpp-python" for llama-cpp-python's server
    serve_args: list[str]  # the manifests' arguments, recorded in results even when the flavour differs
    container_name: str | None = None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _python_module_argv(command: tuple[str, ...]) -> list[str]:
    """Run `python3 -m module` with this interpreter when the module is importable here (same venv)."""
    is_module = len(command) >= 3 and command[0].startswith("python") and command[1] == "-m"
    if is_module and importlib.util.find_spec(command[2].split(".")[0]) is not None:
        return [sys.executable, *command[1:]]
    return list(command)


def _executable(name: str) -> str | None:
    """On PATH, or next to this interpreter (a venv whose bin/ is not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def llama_cpp_python_args(config: ServeConfig) -> list[str]:
    """llama-cpp-python's server flags equivalent to llama-server's serve_args (one sequence, no slots)."""
    threads = str(os.cpu_count() or 1)
    args = [
        "--model", config.model_path,
        "--model_alias", config.served_name,
        "--host", config.host,
        "--port", str(config.effective_port),
        "--n_ctx", str(config.max_model_len),
        "--n_gpu_layers", "0" if config.device == "cpu" else "-1",
        # Its defaults are 1 decode thread and 2 batch threads; llama-server uses every core.
        "--n_threads", threads,
        "--n_threads_batch", threads,
        # By default a new request cuts off the one streaming; llama-server queues it in a slot instead.
        "--interrupt_requests", "False",
    ]  # fmt: skip
    if config.device != "cpu" and config.tensor_parallel > 1:
        args += ["--split_mode", "2"]  # LLAMA_SPLIT_MODE_ROW, as llama-server's --split-mode row
    return args


def bare_launch_plan(config: ServeConfig) -> LaunchPlan:
    args = serve_args(config)  # validates the candidate first
    env = {**OFFLINE_ENV, **serve_env(config), "PYTHONUNBUFFERED": "1"}
    definition = config.definition
    if config.engine == "llamacpp":
        if _executable("llama-server"):
            return LaunchPlan([_executable("llama-server") or "llama-server", *args], env, "llamacpp", args)
        if (
            importlib.util.find_spec("llama_cpp") is not None
            and importlib.util.find_spec("uvicorn") is not None
        ):
            argv = [sys.executable, "-m", "llama_cpp.server", *llama_cpp_python_args(config)]
            return LaunchPlan(argv, env, "llamacpp-python", args)
        raise EngineStartError(
            "llama.cpp: neither llama-server on PATH nor llama-cpp-python[server] installed"
        )
    command = definition.bare_command
    if command[0].startswith("python"):
        argv = [*_python_module_argv(command), *args]
    else:
        executable = _executable(command[0])
        if executable is None:
            raise EngineStartError(f"{definition.display_name}: {command[0]!r} is not installed on this host")
        argv = [executable, *command[1:], *args]
    return LaunchPlan(argv, env, config.engine, args)


def container_launch_plan(
    config: ServeConfig,
    *,
    name: str,
    runtime: str = "docker",
    mounts: Mapping[str, str] | None = None,
    shm_size: str = "16g",
) -> LaunchPlan:
    """`docker run` for the engine's pinned image with the manifests' command and arguments.

    The model path inside the container is the same as outside (mounted read-only), so serve_args need no
    rewriting. Host networking is avoided; only the engine port is published, on loopback.
    """
    command, args = container_args(config)
    env = {**OFFLINE_ENV, **serve_env(config)}
    model_dir = str(
        Path(config.model_path).parent if Path(config.model_path).is_file() else config.model_path
    )
    volumes = {model_dir: model_dir, **(mounts or {})}
    port = config.effective_port
    argv = [runtime, "run", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:{port}", "--shm-size", shm_size]
    if config.device != "cpu":
        argv += ["--gpus", "all", "--ipc", "host"]
    for key, value in sorted(env.items()):
        argv += ["-e", f"{key}={value}"]
    for host_path, container_path in sorted(volumes.items()):
        argv += ["-v", f"{host_path}:{container_path}:ro"]
    argv += [config.definition.image, *(command or []), *args]
    return LaunchPlan(argv, {}, config.engine, args, container_name=name)


def _read_tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(deque(text.splitlines(), maxlen=lines))


@dataclass
class EngineProcess:
    """A started engine. Use as a context manager so it is always stopped, whatever happens inside."""

    config: ServeConfig
    plan: LaunchPlan
    log_path: Path
    connect_host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float | None = None
    _log_file: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.connect_host}:{self.config.effective_port}"

    @property
    def flavour(self) -> str:
        return self.plan.flavour

    def start(self) -> EngineProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"$ {' '.join(self.plan.argv)}\n".encode())
        self._log_file.flush()
        executable = self.plan.argv[0]
        if shutil.which(executable, path=self.plan.env.get("PATH", os.environ.get("PATH"))) is None:
            self._log_file.close()
            raise EngineStartError(f"could not run {executable}: no such executable")
        # Through workers.guard, so the engine dies with the worker even when the worker is killed outright.
        guard = [sys.executable, "-m", "workers.guard", str(os.getpid())]
        if self.plan.container_name is not None:
            guard += ["--container", self.plan.container_name]
        try:
            self.process = subprocess.Popen(
                [*guard, "--", *self.plan.argv],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.plan.env},
                start_new_session=True,  # own process group: stop() signals the engine's workers too
            )
        except OSError as exc:
            self._log_file.close()
            raise EngineStartError(f"could not run {executable}: {exc}") from exc
        self.started_at = time.monotonic()
        return self

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return _read_tail(self.log_path, lines)

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process is not None else None

    def check_alive(self) -> None:
        """Raise EngineCrashed (with the log tail) if the engine has exited."""
        code = self.exit_code()
        if code is not None:
            raise EngineCrashed(
                f"{self.config.definition.display_name} {exit_description(code)} during the benchmark",
                log_tail=self.log_tail(),
                exit_code=code,
            )

    def wait_ready(self, timeout_s: float, on_tick: Callable[[float], None] | None = None) -> float:
        """Poll the health endpoint until it answers 200; returns seconds taken.

        Engines without the definition's health path (llama-cpp-python has no /health) answer 404 there;
        then /v1/models answering 200 counts as ready. `on_tick(elapsed_s)` runs every poll, for heartbeats
        and cancellation (an exception it raises propagates; the caller's context manager stops the engine).
        """
        deadline = self.started_at + timeout_s
        health = self.config.definition.health_path
        with httpx.Client(timeout=_PROBE_TIMEOUT_S, trust_env=False) as client:
            while True:
                code = self.exit_code()
                if code is not None:
                    raise EngineStartError(
                        f"{self.config.definition.display_name} exited with code {code} while starting",
                        log_tail=self.log_tail(),
                        exit_code=code,
                    )
                if self._probe(client, health):
                    self.ready_after_s = time.monotonic() - self.started_at
                    return self.ready_after_s
                now = time.monotonic()
                if now >= deadline:
                    raise EngineStartError(
                        f"{self.config.definition.display_name} was not healthy after {timeout_s:g} s",
                        log_tail=self.log_tail(),
                    )
                if on_tick is not None:
                    on_tick(now - self.started_at)
                time.sleep(_POLL_INTERVAL_S)

    def _probe(self, client: httpx.Client, health_path: str) -> bool:
        try:
            response = client.get(self.base_url + health_path)
            if response.status_code == 200:
                return True
            if response.status_code == 404:
                return client.get(self.base_url + "/v1/models").status_code == 200
        except httpx.HTTPError:
            pass  # not listening yet
        return False

    def version(self) -> str:
        """The running engine's version: its own endpoint, else the installed package, else `--version`."""
        endpoint = _VERSION_ENDPOINTS.get(self.plan.flavour)
        if endpoint is not None:
            with (
                contextlib.suppress(httpx.HTTPError, ValueError),
                httpx.Client(timeout=5.0, trust_env=False) as c,
            ):
                response = c.get(self.base_url + endpoint[0])
                if response.status_code == 200:
                    value = response.json().get(endpoint[1])
                    if value:
                        return str(value)
        if self.plan.container_name is not None:
            return self.config.definition.image.rsplit(":", 1)[-1]
        return installed_version(self.plan.flavour, self.plan.argv[0]) or "unknown"

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM the process group, wait up to `grace_s`, then SIGKILL whatever is left of it."""
        if self.process is None:
            return None
        if self.plan.container_name is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [self.plan.argv[0], "stop", "-t", str(int(grace_s)), self.plan.container_name],
                    capture_output=True,
                    timeout=grace_s + 10,
                    check=False,
                )
        pgid = self.process.pid  # start_new_session made the engine its group's leader
        _signal_group(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_s)
        # Workers forked by the engine can outlive the leader; the group id reaches them all.
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.process.returncode

    def __enter__(self) -> EngineProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def exit_description(code: int) -> str:
    """How a process ended, for a person: a negative status is the signal that killed it."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = " (what the kernel's out-of-memory killer sends)" if -code == signal.SIGKILL else ""
    return f"was killed by {name}{hint}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def installed_version(flavour: str, executable: str | None = None) -> str | None:
    package = _PACKAGES.get(flavour)
    if package is not None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(package)
    if executable and not executable.endswith(("python", "python3")) and Path(executable).name != "python":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [executable, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            match = re.search(r"\d+(?:\.\d+)*(?:\s*\([0-9a-f]+\))?", done.stdout + done.stderr)
            if match:
                return match.group()
    return None


def launch(
    config: ServeConfig,
    *,
    log_path: Path,
    container: bool = False,
    container_name: str | None = None,
    connect_host: str = "127.0.0.1",
) -> EngineProcess:
    """Start the engine (not yet waiting for health). Use the result as a context manager."""
    if container:
        name = container_name or f"advisor-bench-{config.engine}-{config.effective_port}"
        plan = container_launch_plan(config, name=name)
    else:
        if not Path(config.model_path).exists():
            raise InvalidSpec(f"model path {config.model_path} does not exist on this host")
        plan = bare_launch_plan(config)
    return EngineProcess(config, plan, log_path, connect_host=connect_host).start()
