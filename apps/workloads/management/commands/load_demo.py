import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from apps.accounts.models import Role, Team
from apps.accounts.services import membership_set, staff_permissions_grant, team_create, user_ensure
from apps.catalog.services import catalog_load
from apps.workloads.models import Workload
from apps.workloads.services import workload_create

DEMO_WORKLOAD = Path(__file__).resolve().parents[2] / "fixtures" / "demo_workload.json"
DEMO_PASSWORD = "demo-advisor-2026"


class Command(BaseCommand):
    help = "Create the demo team, users (owner, viewer, staff) and the support-chat workload. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        catalog_load()
        team = Team.objects.filter(slug="demo").first() or team_create(name="Demo")
        demo = user_ensure(username="demo", password=DEMO_PASSWORD, email="demo@example.com", is_staff=True)
        viewer = user_ensure(username="viewer", password=DEMO_PASSWORD, email="viewer@example.com")
        # Staff, so the Admin link is shown: it can read everything there and keep the catalog.
        staff_permissions_grant(
            user=demo, view=("accounts", "catalog", "workloads", "benchmarks", "planner"), change=("catalog",)
        )
        membership_set(team=team, user=demo, role=Role.OWNER)
        membership_set(team=team, user=viewer, role=Role.VIEWER)
        document = json.loads(DEMO_WORKLOAD.read_text())
        if not Workload.objects.filter(team=team, name=document["name"]).exists():
            workload_create(team=team, document=document, user=demo)
        self.stdout.write(
            f"demo data ready: sign in as demo / {DEMO_PASSWORD} (owner, staff) "
            f"or viewer / {DEMO_PASSWORD} (read only)"
        )
