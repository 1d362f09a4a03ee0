"""The app served the way docker-compose.yml serves it, on loopback, for the scripts that fire requests at it
(fuzz_api.py, bench_api_load.py): a fresh PostgreSQL database, production settings (DEBUG off), gunicorn."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
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
def fresh_database(url: str, *, suffix: str) -> Iterator[None]:
    """Create the database named in `url` (dropping a leftover one), drop it afterwards. Its name must end in
    `suffix`, so a mistyped URL can never drop a real database."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.endswith(suffix):
        raise SystemExit(f"refusing to recreate {name!r}: the database's name must end in {suffix}")
    admin = urlunsplit(parts._replace(path="/postgres"))
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(drop)


def server_env(database_url: str, **overrides: str) -> dict[str, str]:
    """Production settings (DEBUG off) on loopback: plain HTTP, as a TLS proxy in front would forward it, and
    throttles raised, since one test client sends what many users would."""
    drop = {"REDIS_URL", "DEBUG", "SECRET_KEY", "DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return (
        env
        | {
            "DATABASE_URL": database_url,
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_HSTS_SECONDS": "0",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "THROTTLE_ANON": "1000000/min",
            "THROTTLE_USER": "1000000/min",
            "THROTTLE_AUTH": "1000000/min",
            "LOG_LEVEL": "WARNING",
        }
        | overrides
    )


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )


@contextmanager
def gunicorn(env: dict[str, str], port: int, *, workers: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn as the Dockerfile runs it (sync workers, 60 s timeout), answering on /healthz/ when yielded."""
    argv = [str(BIN / "gunicorn"), "advisor.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", str(workers), "--timeout", "60"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz/", server)
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def sign_in(base: str, username: str = "demo", password: str = DEMO_PASSWORD) -> str:
    import json

    request = urllib.request.Request(
        f"{base}/api/v1/auth/token/",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["token"])
