"""Import a 1 GB request log with `manage.py import_workload --log` and report its time and peak memory.

    .venv/bin/python scripts/bench_log_import.py [--size-mb 1024] [--database-url postgres://…]

Writes an Azure-format trace (TIMESTAMP,ContextTokens,GeneratedTokens, 2024 style timestamps) of the given size
to a temporary directory: a week of traffic, busy on weekday afternoons UTC, a few rows broken on purpose. Then
runs the command twice in a child process, once on a 1 KB log (Django, the catalog, the command: the fixed
cost) and once on the big one, and reads each child's peak resident memory from the kernel (wait4 ru_maxrss).
Without --database-url it uses a fresh SQLite file (the embedded default), so it needs no services.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEEK_START = datetime(2024, 5, 6, tzinfo=UTC).timestamp()  # a Monday


def hourly_rate(hour_of_week: int, peak_per_s: float) -> float:
    """Busy 13:00-21:00 UTC on weekdays, a quarter of that at night and on weekends."""
    day, hour = divmod(hour_of_week, 24)
    shape = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 9) / 16)) if 9 <= hour < 25 else 0.25
    return peak_per_s * shape * (1.0 if day < 5 else 0.35)


def write_azure_log(path: Path, size_bytes: int, *, seed: int = 0, broken_every: int = 1_000_000) -> int:
    """Write at least size_bytes of Azure trace, looping over the week as needed; returns the rows written."""
    rng = random.Random(seed)
    prompts = [max(1, round(rng.lognormvariate(math.log(1000), 1.1))) for _ in range(4096)]
    outputs = [max(1, round(rng.lognormvariate(math.log(120), 0.9))) for _ in range(4096)]
    rows = written = 0
    with path.open("w", buffering=1 << 20) as out:
        out.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        week = 0
        while written < size_bytes:
            for hour_of_week in range(7 * 24):
                rate = hourly_rate(hour_of_week, peak_per_s=60.0)
                start = WEEK_START + week * 7 * 86_400 + hour_of_week * 3600
                stamp = datetime.fromtimestamp(start, tz=UTC).strftime("%Y-%m-%d %H:")
                lines = []
                offset = rng.expovariate(rate)
                while offset < 3600:
                    minute, second = divmod(offset, 60)
                    rows += 1
                    if rows % broken_every == 0:
                        lines.append(
                            f"{stamp}{int(minute):02d}:{second:09.6f}+00:00,-1,{outputs[rows & 4095]}\n"
                        )
                    else:
                        lines.append(
                            f"{stamp}{int(minute):02d}:{second:09.6f}+00:00,{prompts[rows & 4095]},{outputs[(rows * 7) & 4095]}\n"
                        )
                    offset += rng.expovariate(rate)
                chunk = "".join(lines)
                out.write(chunk)
                written += len(chunk)
                if written >= size_bytes:
                    break
            week += 1
    return rows


def run_import(log: Path, env: dict[str, str], name: str) -> tuple[float, float, str, str]:
    """(wall seconds, peak RSS MiB, stdout, stderr) of one import in a child process, the peak from wait4 on
    that child alone."""
    command = [
        sys.executable, "manage.py", "import_workload", "--log", str(log), "--name", name,
        "--model", "llama-3.1-70b", "--team", "demo", "--user", "demo",
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().strip(), err.read().strip()
    if child.returncode:
        raise SystemExit(f"import failed ({child.returncode}):\n{stderr}")
    return wall, usage.ru_maxrss / 1024, stdout, stderr  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated log (MiB)")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL; default a temporary SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-log-import-"))
    env = {**os.environ, "DEBUG": "true", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(work / "bench.sqlite3")
    for step in (["migrate", "--noinput"], ["load_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True, capture_output=True
        )

    small, big = work / "small.csv", work / "big.csv"
    write_azure_log(small, 1024)
    started = time.perf_counter()
    rows = write_azure_log(big, args.size_mb << 20)
    print(
        f"generated {big.stat().st_size / 2**20:,.0f} MiB, {rows:,} rows, in {time.perf_counter() - started:.0f} s"
    )

    small_wall, small_peak, _, _ = run_import(small, env, f"bench-small-{os.getpid()}")
    wall, peak, workload_id, report = run_import(big, env, f"bench-big-{os.getpid()}")
    size_mib = big.stat().st_size / 2**20
    print(report)
    print(f"workload id {workload_id}")
    print(f"1 KB log:  {small_wall:5.1f} s, peak RSS {small_peak:6.1f} MiB (Python, Django, the command)")
    print(
        f"{size_mib:,.0f} MiB log: {wall:5.1f} s ({size_mib / wall:.1f} MiB/s, {rows / wall:,.0f} rows/s), "
        f"peak RSS {peak:6.1f} MiB: {peak - small_peak:+.1f} MiB for reading the whole file"
    )
    if not args.keep:
        for path in work.iterdir():
            path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
