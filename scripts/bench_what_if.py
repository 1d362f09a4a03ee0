"""How fast the what-if panel answers: the planner run synchronously on a changed workload, through the page.

    .venv/bin/python scripts/bench_what_if.py [--runs 10]

On a throwaway SQLite database (embedded default) with the shipped catalog, it plans two workloads (support
chat on Llama 3.1 8B, a RAG assistant on Llama 3.1 70B), then asks the what-if endpoint for each with traffic,
GPU prices and latency targets changed on every request, and prints the wall time per answer (median, p95,
max) and the planner's own share. Target: well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="bench-what-if-")
    os.environ.update(DEBUG="true", SQLITE_PATH=f"{scratch}/bench.sqlite3", PLAN_EXECUTOR="thread")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from apps.accounts.models import Role
    from apps.accounts.services import membership_set, team_create
    from apps.planner.models import Recommendation
    from apps.planner.services import recommendation_compute
    from apps.workloads.services import workload_create

    setup_test_environment()  # responses carry their template context (the planner's own timing)
    call_command("migrate", verbosity=0)
    call_command("load_catalog", verbosity=0)
    user = User.objects.create_user("bench", password="bench-password-2026")
    team = team_create(name="Bench")
    membership_set(team=team, user=user, role=Role.OWNER)
    chat = json.loads((ROOT / "apps/workloads/fixtures/demo_workload.json").read_text())
    rag = json.loads((ROOT / "scripts/workloads/support_chat_70b.json").read_text())
    client = Client()
    client.force_login(user)
    print(f"what-if answers over {args.runs} requests each (wall time of the whole request, DEBUG settings)")
    for document in (chat, rag):
        workload = workload_create(team=team, document=document, user=user)
        plan = Recommendation.objects.create(
            workload=workload, requested_by=user, inputs=workload.to_document()
        )
        recommendation_compute(recommendation_id=plan.pk)
        client.get(f"/plans/{plan.pk}/what-if/")  # warm: the calibration fit and the templates
        walls, planner = [], []
        for run in range(args.runs):
            query = {
                "traffic_scale": 0.5 + 0.25 * (run % 8),
                "price_scale": 0.7 + 0.1 * (run % 6),
                "ttft_p95_ms": document["slo"]["ttft_p95_ms"] * (1 + 0.1 * (run % 3)),
                "itl_p95_ms": document["slo"]["itl_p95_ms"],
            }
            started = time.perf_counter()
            response = client.get(f"/plans/{plan.pk}/what-if/", query)
            walls.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content[:300]
            planner.append(response.context["outcome"].result["method"]["timing_s"]["total"])
        walls.sort()
        p95 = walls[min(len(walls) - 1, round(0.95 * (len(walls) - 1)))]
        print(
            f"  {document['name']} ({document['model']}): median {statistics.median(walls) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {walls[-1] * 1000:.0f} ms; planner alone median "
            f"{statistics.median(planner) * 1000:.0f} ms"
        )
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
