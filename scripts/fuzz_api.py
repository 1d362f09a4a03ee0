"""Schemathesis against the live API: gunicorn on a fresh PostgreSQL database, production settings, every check.

    python scripts/fuzz_api.py --database-url postgres://postgres@127.0.0.1:5432/advisor_fuzz

Creates (and afterwards drops) that database, migrates it, loads the catalog and the demo team, signs in as the
demo owner for a token, serves the app with gunicorn (as docker-compose.yml does, DEBUG off) on a free local port,
and runs `schemathesis run --checks all` over /api/schema/ (settings in schemathesis.toml). Exits non-zero when
schemathesis found any failure (a 5xx, a response that breaks the schema, an undocumented status, ...), when the
server logged an error, or when fewer than --min-requests were sent. Prints the number of requests and the wall
time. Planning runs in-process (no broker), so a plan request from the fuzzer really plans.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from livestack import BIN, ROOT, free_port, fresh_database, gunicorn, manage, server_env, sign_in


def count_requests(cassette: Path) -> int:
    """Requests schemathesis sent: one `- id:` entry per interaction in its VCR cassette."""
    return sum(1 for line in cassette.read_text().splitlines() if line.lstrip().startswith("- id: "))


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
    env = server_env(args.database_url)
    with (
        fresh_database(args.database_url, suffix="_fuzz"),
        tempfile.TemporaryDirectory(prefix="fuzz-") as tmp,
    ):
        manage(env, "migrate", "--noinput")
        manage(env, "load_demo")
        log = Path(tmp) / "gunicorn.log"
        cassette = Path(tmp) / "cassette.yaml"
        with gunicorn(env, port, workers=args.workers, log=log):
            command = [str(BIN / "schemathesis"), "--config-file", str(ROOT / "schemathesis.toml"), "run"]
            command += [f"{base}/api/schema/", "--checks", "all", "--max-examples", str(args.max_examples)]
            command += ["--seed", str(args.seed), "--header", f"Authorization: Token {sign_in(base)}"]
            command += ["--report", "vcr", "--report-vcr-path", str(cassette), "--request-timeout", "60"]
            command += ["--no-shrink"]
            fuzz = subprocess.run(command, cwd=ROOT, env=env, check=False)
        sent = count_requests(cassette) if cassette.exists() else 0
        server_errors = [
            line
            for line in log.read_text(errors="replace").splitlines()
            if "Traceback" in line or "Internal Server Error" in line
        ]
    print(
        f"\nschemathesis: {sent} requests, exit code {fuzz.returncode}, {time.monotonic() - started:.0f} s wall time"
    )
    if server_errors:
        print("the server logged errors:\n" + "\n".join(server_errors[:20]))
    if sent < args.min_requests:
        print(f"FAILED: fewer than {args.min_requests} requests; raise --max-examples")
        return 1
    return 1 if fuzz.returncode or server_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
