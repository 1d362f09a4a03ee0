"""Runs an engine so that it cannot outlive the benchmark worker that started it.

    python -m workers.guard PARENT_PID [--container NAME] -- ENGINE ARGV...

The engine is started in its own process group (workers.launch starts this guard as the group's leader), so a
clean stop signals the engine and every process it forked. A worker killed outright (SIGKILL, the OOM killer, a
lost host) never gets to stop it; without this guard the engine would hold its GPU memory and port until someone
noticed. The guard polls its parent: once it is gone (the guard was re-parented), it stops the container, if any,
and kills its whole process group, itself included.

Otherwise it is transparent: the engine inherits stdin/stdout/stderr, a SIGTERM to the group reaches the engine
(the guard ignores it and waits), and the guard ends the way the engine did: the same exit code, or the same
signal, so the worker's crash messages still name what killed the engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

POLL_INTERVAL_S = 0.5


def _orphaned(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


def _take_down(container: str | None) -> None:
    if container:
        # The docker client in the group dies below; the container itself only stops when told to.
        subprocess.run(["docker", "stop", "-t", "5", container], capture_output=True, timeout=30, check=False)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") < 1:
        print("usage: python -m workers.guard PARENT_PID [--container NAME] -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    parent_pid = int(options[0])
    container = options[options.index("--container") + 1] if "--container" in options else None
    if _orphaned(parent_pid):  # the worker died before the engine even started
        return 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group SIGTERM is for the engine; wait for it to end
    try:
        engine = subprocess.Popen(command, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
    except OSError as exc:
        print(f"could not run {command[0]}: {exc}", file=sys.stderr)
        return 127
    while True:
        try:
            code = engine.wait(timeout=POLL_INTERVAL_S)
        except subprocess.TimeoutExpired:
            if _orphaned(parent_pid):
                _take_down(container)
            continue
        if code < 0:  # killed by a signal: end the same way, so the worker reads the same status
            if code != -signal.SIGKILL:  # SIGKILL's disposition cannot be set, nor needs to be
                signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
