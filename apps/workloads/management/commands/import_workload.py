import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework import serializers

from advisor.api import flatten_errors
from apps.accounts.models import Team
from apps.workloads.models import Workload
from apps.workloads.services import workload_create, workload_update


class Command(BaseCommand):
    help = "Create or update a workload from a workload JSON file (the REST API's body format)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workload-file", required=True, type=Path)
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--user", required=True, help="username acting (must be owner or member)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            document = json.loads(options["workload_file"].read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {options['workload_file']}: {exc}") from exc
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"unknown team {options['team']!r}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"unknown user {options['user']!r}")
        existing = Workload.objects.filter(
            team=team, name=document.get("name") if isinstance(document, dict) else None
        ).first()
        try:
            if existing:
                workload = workload_update(workload=existing, document=document, user=user)
            else:
                workload = workload_create(team=team, document=document, user=user)
        except serializers.ValidationError as exc:
            raise CommandError(
                "; ".join(f"{e['field']}: {e['message']}" for e in flatten_errors(exc.detail))
            ) from exc
        self.stdout.write(f"workload {workload.name} saved (id {workload.pk})")
