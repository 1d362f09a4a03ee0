"""Upload 50 MB and 500 MB CSVs to a gunicorn worker on PostgreSQL and report the worker's memory and the
latency of the requests after them.

    .venv/bin/python scripts/bench_upload.py [--database-url postgres://postgres@127.0.0.1:5432/advisor_bench_upload]
                                             [--sizes-mb 50,500] [--cap-mb 600]

Starts one gunicorn sync worker (as docker-compose.yml runs the web app, with DEBUG off) on the given database
(created if missing, migrated, with the demo team), then for each size uploads a traffic CSV of request
timestamps (multipart, to /api/v1/workloads/ID/traffic/) and a request log in the Azure format (the raw body,
to /api/v1/workloads/import-log/), streamed from disk. Before each upload the worker's peak-RSS mark is reset
(/proc/PID/clear_refs), after it the new peak (VmHWM) is read: the target is under 100 MB above the idle
worker. A workload's detail endpoint is timed before the uploads and after them (100 requests each). Finally an upload over the
default cap (100 MiB) is sent with no body to show it is refused before it is read.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_log_import import write_azure_log

ROOT = Path(__file__).resolve().parents[1]
BOUNDARY = "----advisor-bench"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_timestamps(path: Path, size_bytes: int) -> int:
    """Request timestamps, one per line, a week of them repeated until the file has size_bytes."""
    rows = written = 0
    with path.open("w", buffering=1 << 20) as out:
        out.write("timestamp\n")
        second = 0
        while written < size_bytes:
            day, rest = divmod(second % (7 * 86_400), 86_400)
            stamp = f"2024-05-{6 + day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
            chunk = "".join(f"{stamp}.{n * 37:06d}Z\n" for n in range(20))
            out.write(chunk)
            written += len(chunk)
            rows += 20
            second += 1
    return rows


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def worker_pid(master: int) -> int:
    for _ in range(100):
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("gunicorn started no worker")


class Server:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
        try:
            connection.request(
                method, path, body=body, headers={"Authorization": f"Token {self.token}", **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def latency_ms(self, path: str, count: int = 100) -> tuple[float, float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            status, _ = self.request("GET", path)
            samples.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
        samples.sort()
        return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            yield chunk


def multipart(path: Path) -> tuple[Iterator[bytes], int, str]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from file_chunks(path)
        yield tail

    return body(), len(head) + path.stat().st_size + len(tail), f"multipart/form-data; boundary={BOUNDARY}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/advisor_bench_upload")
    parser.add_argument("--sizes-mb", default="50,500")
    parser.add_argument("--cap-mb", type=int, default=600, help="UPLOAD_MAX_BYTES for the run, in MiB")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes_mb.split(",")]

    import psycopg

    base, _, name = args.database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ, "DATABASE_URL": args.database_url, "DEBUG": "false", "SECRET_KEY": "bench-upload-only",
        "ALLOWED_HOSTS": "127.0.0.1", "LOG_LEVEL": "WARNING", "UPLOAD_MAX_BYTES": str(args.cap_mb << 20),
    }  # fmt: skip
    env.pop("REDIS_URL", None)
    for step in (["migrate", "--noinput"], ["load_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True, capture_output=True
        )
    token_out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from rest_framework.authtoken.models import Token; from django.contrib.auth.models import User; "
         "from apps.workloads.models import Workload; "
         "print(Token.objects.get_or_create(user=User.objects.get(username='demo'))[0].key, "
         "Workload.objects.get(team__slug='demo', name='support-chat').pk)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1].split()  # fmt: skip
    token, workload_id = token_out[0], int(token_out[1])

    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    files = []
    for size in sizes:
        traffic, log = work / f"traffic-{size}mb.csv", work / f"log-{size}mb.csv"
        write_timestamps(traffic, size << 20)
        write_azure_log(log, size << 20)
        files.append((size, traffic, log))

    port = free_port()
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "advisor.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "900"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        server = Server(port, token)
        for _ in range(100):
            try:
                server.request("GET", "/api/v1/workloads/")
                break
            except OSError:
                time.sleep(0.2)
        worker = worker_pid(gunicorn.pid)
        probe = (
            f"/api/v1/workloads/{workload_id}/"  # the same answer before and after (its curve is re-imported)
        )
        before = server.latency_ms(probe)  # also warms the worker up
        idle_kib = memory_kib(worker)["VmRSS"]
        print(
            f"gunicorn worker {worker} idle: {idle_kib / 1024:.1f} MiB RSS; UPLOAD_MAX_BYTES {args.cap_mb} MiB"
        )
        print(f"GET {probe} before the uploads: p50 {before[0]:.1f} ms, p95 {before[1]:.1f} ms")
        for size, traffic, log in files:
            body, length, content_type = multipart(traffic)
            uploads = [
                (f"traffic CSV {size} MB (multipart)", f"/api/v1/workloads/{workload_id}/traffic/", body, length, content_type, 200),
                (f"request log {size} MB (raw body)", f"/api/v1/workloads/import-log/?name=bench-{size}-{os.getpid()}&model=llama-3.1-70b",
                 file_chunks(log), log.stat().st_size, "text/csv", 201),
            ]  # fmt: skip
            for label, path, payload, size_bytes, kind, expected in uploads:
                reset_peak(worker)
                started = time.perf_counter()
                status, answer = server.request(
                    "POST",
                    path,
                    body=payload,
                    headers={"Content-Type": kind, "Content-Length": str(size_bytes)},
                )
                wall = time.perf_counter() - started
                if status != expected:
                    raise SystemExit(f"{label}: {status} {answer[:300]!r}")
                peak_kib = memory_kib(worker)["VmHWM"]
                print(
                    f"{label}: {status} in {wall:5.1f} s; worker peak {peak_kib / 1024:6.1f} MiB, "
                    f"{(peak_kib - idle_kib) / 1024:+.1f} MiB above idle"
                )
                if expected == 201:
                    skipped = json.loads(answer)["import_summary"]["rows_skipped"]
                    print(
                        f"    {json.loads(answer)['import_summary']['rows_used']:,} rows used, {skipped} skipped"
                    )
        after = server.latency_ms(probe)
        rss_after = memory_kib(worker)["VmRSS"]
        print(f"GET {probe} after the uploads:  p50 {after[0]:.1f} ms, p95 {after[1]:.1f} ms")
        print(
            f"worker RSS after the uploads: {rss_after / 1024:.1f} MiB ({(rss_after - idle_kib) / 1024:+.1f} MiB)"
        )

        over = (args.cap_mb + 1) << 20
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        started = time.perf_counter()
        connection.putrequest("POST", "/api/v1/workloads/import-log/?name=too-big&model=llama-3.1-70b")
        for header, value in {
            "Authorization": f"Token {token}",
            "Content-Type": "text/csv",
            "Content-Length": str(over),
        }.items():
            connection.putheader(header, value)
        connection.endheaders()  # and no body at all
        response = connection.getresponse()
        message = json.loads(response.read())["errors"][0]["message"]
        print(
            f"{over >> 20} MiB announced, none sent: {response.status} in {(time.perf_counter() - started) * 1000:.0f} ms: {message}"
        )
        connection.close()
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=30)
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
