"""Schemathesis against the live API: gunicorn on a fresh PostgreSQL database, production settings, every check.

    python scripts/fuzz_api.py --database-url postgres://postgres@127.0.0.1:5432/advisor_fuzz

Creates (and afterwards drops) that database, migrates it, loads the catalog and the demo team, signs in as the
demo owner for a token, serves the app with gunicorn (as docker-compose.yml does, DEBUG off) on a free local port,
and runs `schemathesis run --checks all` over /api/schema/. Exits non-zero when schemathesis found any failure
(a 5xx, a response that breaks the schema, an undocumented status, ...) or sent fewer than --min-requests.
Prints the number of requests, the failures and the wall time. Planning runs in-process (no broker), so a plan
request from the fuzzer really plans.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEMO_PASSWORD = "demo-advisor-2026"  # apps/workloads/management/commands/load_demo.py


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def fresh_database(url: str) -> Iterator[None]:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.endswith("_fuzz"):
        raise SystemExit(f"refusing to recreate {name!r}: the fuzz database's name must end in _fuzz")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def server_env(database_url: str, port: int) -> dict[str, str]:
    drop = {"REDIS_URL", "DEBUG", "SECRET_KEY", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return env | {
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Plain HTTP on loopback: nothing in front terminates TLS here.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        # The fuzzer is one client sending thousands of requests; production rates would answer it 429.
        "THROTTLE_ANON": "100000/min",
        "THROTTLE_USER": "100000/min",
        "THROTTLE_AUTH": "100000/min",
        "LOG_LEVEL": "WARNING",
    }


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def sign_in(base: str) -> str:
    request = urllib.request.Request(
        f"{base}/api/v1/auth/token/",
        data=json.dumps({"username": "demo", "password": DEMO_PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["token"])


def count_requests(report: Path) -> int:
    """Requests schemathesis sent, from its VCR cassette (one `interactions` entry per request)."""
    text = report.read_text()
    return text.count("\n- id: ") + text.count("\n  - id: ")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", required=True, help="postgres://…/NAME_fuzz (recreated, then dropped)"
    )
    parser.add_argument("--max-examples", type=int, default=80, help="test cases per operation and phase")
    parser.add_argument("--min-requests", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (docker-compose runs 3)")
    args = parser.parse_args()

    started = time.monotonic()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(args.database_url, port)
    with fresh_database(args.database_url), tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        manage(env, "migrate", "--noinput")
        manage(env, "load_demo")
        log = Path(tmp) / "gunicorn.log"
        gunicorn = [str(BIN / "gunicorn"), "advisor.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        gunicorn += ["--workers", str(args.workers), "--timeout", "60"]
        with log.open("wb") as out:
            server = subprocess.Popen(
                gunicorn,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(f"{base}/healthz/", server)
            token = sign_in(base)
            cassette = Path(tmp) / "cassette.yaml"
            command = [
                str(BIN / "schemathesis"),
                "--config-file",
                str(ROOT / "schemathesis.toml"),
                "run",
                f"{base}/api/schema/",
                "--checks",
                "all",
                "--max-examples",
                str(args.max_examples),
                "--seed",
                str(args.seed),
                "--header",
                f"Authorization: Token {token}",
                "--report",
                "vcr",
                "--report-vcr-path",
                str(cassette),
                "--request-timeout",
                "60",
                "--no-shrink",
            ]
            fuzz = subprocess.run(command, cwd=ROOT, env=env, check=False)
            sent = count_requests(cassette) if cassette.exists() else 0
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        errors = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if " 500 " in line or "Traceback" in line
        ]
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {sent} requests, exit code {fuzz.returncode}, {elapsed:.0f} s wall time")
    if errors:
        print("server log shows errors:\n" + "\n".join(errors[:20]))
    if sent < args.min_requests:
        print(f"FAILED: fewer than {args.min_requests} requests; raise --max-examples")
        return 1
    return 1 if fuzz.returncode or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
