"""Load benchmark of the REST API as docker-compose.yml serves it: gunicorn (3 sync workers, DEBUG off) on
PostgreSQL with Redis, hammered by wrk at 20 concurrent connections.

    python scripts/bench_api_load.py --database-url postgres://postgres@127.0.0.1:5432/advisor_load \\
        --redis-url redis://127.0.0.1:6379/14

Seeds a fresh database (dropped afterwards): the catalog, the demo team, 50 workloads, 200 stored plans (copies
of one real plan, ~170 KB of JSON each, as the issue measured), then for each group of endpoints runs wrk for
--duration seconds and prints requests/s, p50 and p95 (ms) and non-2xx answers:

- lists: workloads, plans (recommendations), benchmark runs, measurements, catalog models (page of 50)
- details: a workload, a plan (with its full result), a catalog model
- plan: POST a workload's plan request (queued on Redis for the planning worker; nothing consumes it here)

Target: p95 under 200 ms for lists and details. Requests carry X-Forwarded-Proto: https, as the TLS proxy in
front of the web container sends; throttles are raised (one benchmark client stands for many users). wrk comes
from Debian (`apt-get install wrk`; installed when absent).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from livestack import ROOT, free_port, fresh_database, gunicorn, manage, server_env, sign_in

CONNECTIONS = 20
PLANS = 200
WORKLOADS = 50

# wrk runs this per thread: requests rotate over the group's paths; done() prints the percentiles as JSON.
WRK_SCRIPT = """
local paths = {%(paths)s}
local method = "%(method)s"
local i = 0
wrk.headers["Authorization"] = "Token %(token)s"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i + 1
  return wrk.format(method, paths[(i %% #paths) + 1], nil, method == "POST" and "" or nil)
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "errors": %%d, ' ..
    '"p50_ms": %%.1f, "p95_ms": %%.1f, "p99_ms": %%.1f, "max_ms": %%.1f}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def seed() -> None:
    """Runs in a child process with the server's environment (see main)."""
    import django

    django.setup()
    from apps.accounts.models import Team
    from apps.planner.models import Recommendation
    from apps.planner.services import recommendation_compute
    from apps.workloads.models import Workload
    from apps.workloads.services import workload_create

    team = Team.objects.get(slug="demo")
    demo = Workload.objects.get(team=team)
    owner = team.memberships.get(role="owner").user
    document = demo.to_document()
    for index in range(WORKLOADS - 1):
        workload_create(team=team, document=document | {"name": f"load-{index:03d}"}, user=owner)
    # One real plan, stored 200 times: the list must not slow down with the size of what it lists.
    first = Recommendation.objects.create(workload=demo, requested_by=owner, inputs=document)
    recommendation_compute(recommendation_id=first.pk)
    first.refresh_from_db()
    assert first.status == "succeeded", first.error
    copies = [
        Recommendation(
            workload=demo,
            requested_by=owner,
            inputs=first.inputs,
            status=first.status,
            result=first.result,
            best_option=first.best_option,
            catalog_version=first.catalog_version,
            started_at=first.started_at,
            finished_at=first.finished_at,
        )
        for _ in range(PLANS - 1)
    ]
    Recommendation.objects.bulk_create(copies, batch_size=20)
    size_kb = len(json.dumps(first.result)) / 1024
    print(f"seeded {WORKLOADS} workloads and {PLANS} plans of {size_kb:.0f} KB each", flush=True)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "wrk"],
        check=True,
        env=os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("wrk") or "wrk"


def run_wrk(
    wrk: str, base: str, token: str, paths: list[str], method: str, duration_s: int, tmp: Path
) -> dict[str, float]:
    script = tmp / f"wrk-{method}-{len(paths)}.lua"
    quoted = ", ".join(json.dumps(p) for p in paths)
    script.write_text(WRK_SCRIPT % {"paths": quoted, "method": method, "token": token})
    argv = [wrk, "--threads", "2", "--connections", str(CONNECTIONS), "--duration", f"{duration_s}s"]
    argv += ["--timeout", "30s", "--script", str(script), base]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    stats: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    stats["requests_per_s"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", required=True, help="postgres://…/NAME_load (recreated, then dropped)"
    )
    parser.add_argument("--redis-url", required=True, help="a Redis database for the broker and cache")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per group")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the Dockerfile runs 3)")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        seed()
        return 0

    wrk = ensure_wrk()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        args.database_url, REDIS_URL=args.redis_url, SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto:https"
    )
    with (
        fresh_database(args.database_url, suffix="_load"),
        tempfile.TemporaryDirectory(prefix="load-") as tmp_dir,
    ):
        tmp = Path(tmp_dir)
        manage(env, "migrate", "--noinput")
        manage(env, "load_demo")
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--database-url",
                args.database_url,
                "--redis-url",
                args.redis_url,
                "--seed-only",
            ],
            cwd=ROOT,
            env=env | {"DJANGO_SETTINGS_MODULE": "advisor.settings", "PYTHONPATH": str(ROOT)},
            check=True,
        )
        with gunicorn(env, port, workers=args.workers, log=tmp / "gunicorn.log"):
            token = sign_in(base)
            ids = _ids(base, token)
            groups = {
                "lists": (
                    [
                        "/api/v1/workloads/",
                        "/api/v1/recommendations/",
                        "/api/v1/benchmark-runs/",
                        "/api/v1/measurements/",
                        "/api/v1/catalog/models/",
                    ],
                    "GET",
                ),
                "details": (
                    [
                        f"/api/v1/workloads/{ids['workload']}/",
                        f"/api/v1/recommendations/{ids['recommendation']}/",
                        "/api/v1/catalog/models/llama-3.1-8b/",
                    ],
                    "GET",
                ),
                "plan": ([f"/api/v1/workloads/{ids['workload']}/recommendations/"], "POST"),
            }
            print(
                f"\n{CONNECTIONS} connections, {args.duration} s per group, gunicorn {args.workers} workers"
            )
            # The figures depend on what else the machine runs: say how busy it was.
            print(f"load average before (1/5/15 min): {_load()} on {os.cpu_count()} CPUs")
            print(
                f"{'group':<8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'non-2xx':>8} {'errors':>7}"
            )
            for name, (paths, method) in groups.items():
                stats = run_wrk(wrk, base, token, paths, method, args.duration, tmp)
                print(
                    f"{name:<8} {stats['requests_per_s']:>7.1f} {stats['p50_ms']:>7.1f} {stats['p95_ms']:>7.1f} "
                    f"{stats['p99_ms']:>7.1f} {int(stats['non_2xx']):>8} {int(stats['errors']):>7}",
                    flush=True,
                )
            print(f"load average after: {_load()}")
        _purge_planning_queue(args.redis_url)
    return 0


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def _ids(base: str, token: str) -> dict[str, int]:
    import urllib.request

    def first(path: str) -> int:
        request = urllib.request.Request(
            base + path, headers={"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(json.load(response)["results"][0]["id"])

    return {
        "workload": first("/api/v1/workloads/?name=support-chat"),
        "recommendation": first("/api/v1/recommendations/"),
    }


def _purge_planning_queue(redis_url: str) -> None:
    """The plan requests queued during the run: nothing here consumes them."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.delete("default")


if __name__ == "__main__":
    raise SystemExit(main())
