"""Wall time of one `manage.py predict` and one `manage.py plan` process, start-up included.

    .venv/bin/python scripts/bench_cli.py [--runs 5]

Target: under 1 s per process on this machine. Each command runs `--runs` times as a fresh process; the
script prints every wall time, the median and the best, and the user + system CPU time (which, unlike wall
time, does not count waiting for the neighbours on a shared machine). The project's modules are byte-compiled
first, as `make` installs them (where PYTHONDONTWRITEBYTECODE is set, nothing else would write the compiled
files and every process would compile the sources again).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PREDICT = ["predict", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4", "--engine", "vllm",
           "--quant", "fp8", "--isl", "1000", "--osl", "1000", "--concurrency", "64", "--json"]  # fmt: skip


def _run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, check=True, capture_output=True, env=os.environ
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workload = ROOT / "scripts" / "workloads" / "support_chat_70b.json"
    commands = {"predict": PREDICT, "plan": ["plan", "--workload-file", str(workload), "--json"]}
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "advisor", "apps", "workers"], cwd=ROOT, check=True
    )
    _run(commands["predict"])  # warm the file cache
    for name, command in commands.items():
        results = [_run(command) for _ in range(args.runs)]
        walls = [w for w, _ in results]
        cpus = [c for _, c in results]
        print(
            f"{name:8} wall median {statistics.median(walls):.3f} s, best {min(walls):.3f} s; "
            f"CPU median {statistics.median(cpus):.3f} s  [target < 1 s]   runs: "
            + ", ".join(f"{w:.2f}" for w in walls)
        )


if __name__ == "__main__":
    main()
