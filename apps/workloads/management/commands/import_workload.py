import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework import serializers

from advisor.api import flatten_errors
from apps.accounts.models import Team
from apps.workloads.logs import LogFormat
from apps.workloads.models import Workload
from apps.workloads.services import workload_create, workload_import_log, workload_update

# Flags passed on to the service's options (LogImportIn) when given.
LOG_OPTIONS = (
    "name",
    "model",
    "ttft_p95_ms",
    "itl_p95_ms",
    "allowed_quantizations",
    "shared_prefix_tokens",
    "multi_turn_reuse_fraction",
)


class Command(BaseCommand):
    help = (
        "Create or update a workload from a workload JSON file (the REST API's body format), or create one from "
        "a request log (--log), printing the new workload's id."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--workload-file", type=Path)
        source.add_argument(
            "--log", type=Path, help="request log, CSV or JSON Lines (read as a stream, any size)"
        )
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--user", required=True, help="username acting (must be owner or member)")
        log = parser.add_argument_group("with --log")
        log.add_argument(
            "--format",
            dest="log_format",
            choices=[f.value for f in LogFormat],
            help="the log's format; detected from the header or first record when left out",
        )
        log.add_argument("--name", help="the new workload's name")
        log.add_argument("--model", help="model slug (requests longer than its context are skipped)")
        log.add_argument("--ttft-p95-ms", type=float, help="p95 time-to-first-token target (default 800)")
        log.add_argument("--itl-p95-ms", type=float, help="p95 inter-token latency target (default 60)")
        log.add_argument(
            "--allowed-quantizations", help="comma-separated quantization slugs (default bf16,fp8,awq-int4)"
        )
        log.add_argument("--shared-prefix-tokens", type=int, help="tokens every prompt starts with")
        log.add_argument(
            "--multi-turn-reuse-fraction", type=float, help="share of the rest an earlier turn already sent"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            raise CommandError(f"unknown team {options['team']!r}")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"unknown user {options['user']!r}")
        try:
            if options["log"] is not None:
                self._import_log(team=team, user=user, options=options)
            else:
                self._import_document(team=team, user=user, path=options["workload_file"])
        except serializers.ValidationError as exc:
            raise CommandError(
                "; ".join(f"{e['field']}: {e['message']}" for e in flatten_errors(exc.detail))
            ) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc

    def _import_document(self, *, team: Team, user: Any, path: Path) -> None:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        existing = Workload.objects.filter(
            team=team, name=document.get("name") if isinstance(document, dict) else None
        ).first()
        if existing:
            workload = workload_update(workload=existing, document=document, user=user)
        else:
            workload = workload_create(team=team, document=document, user=user)
        self.stdout.write(f"workload {workload.name} saved (id {workload.pk})")

    def _import_log(self, *, team: Team, user: Any, options: dict[str, Any]) -> None:
        for required in ("name", "model"):
            if not options[required]:
                raise CommandError(f"--{required} is required with --log")
        log_options = {key: options[key] for key in (*LOG_OPTIONS, "log_format") if options[key] is not None}
        path: Path = options["log"]
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        with stream:
            workload = workload_import_log(
                team=team, source=stream, options=log_options, user=user, file_name=path.name
            )
        summary = workload.import_summary
        # The id alone on stdout, for scripts; what was read and skipped on stderr, for people.
        self.stdout.write(str(workload.pk))
        self.stderr.write(
            f"workload {workload.name}: {summary['rows_used']} of {summary['rows_read']} rows used "
            f"({summary['format']} format, {summary['first_request_at']} to {summary['last_request_at']})"
        )
        for reason, count in summary["skipped_by_reason"].items():
            self.stderr.write(f"  skipped {count}: {reason}")
        for example in summary["skipped_examples"]:
            self.stderr.write(f"  line {example['line']}: {example['detail']}")
        for note in summary["notes"]:
            self.stderr.write(f"  {note}")
