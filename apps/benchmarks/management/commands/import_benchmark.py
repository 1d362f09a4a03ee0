"""`manage.py import_benchmark result.json [--workload ID]`: a standalone benchmark's result as measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework import exceptions

from advisor.api import flatten_errors
from apps.benchmarks.services import measurements_import
from apps.workloads.models import Workload


class Command(BaseCommand):
    help = (
        "Load a result.json written by `python -m workers bench` as Measurement rows, with the file named as their "
        "source. With --workload they belong to that workload's team; without, every team sees them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("result", type=Path, help="result.json from `python -m workers bench`")
        parser.add_argument("--workload", type=int, help="workload id the measurements belong to")
        parser.add_argument(
            "--accelerator", help="catalog accelerator slug (default: guessed from the probe)"
        )
        parser.add_argument("--model", help="catalog model slug (default: the result's model)")
        parser.add_argument("--json", action="store_true", help="print the new measurement ids as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["result"]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CommandError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(f"{path}: not UTF-8 text") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(
                f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from exc
        workload = None
        if options["workload"] is not None:
            workload = Workload.objects.filter(pk=options["workload"]).first()
            if workload is None:
                raise CommandError(f"--workload {options['workload']}: no such workload")
        try:
            rows = measurements_import(
                result=data,
                file_name=path.name,
                workload=workload,
                accelerator=options["accelerator"],
                model=options["model"],
            )
        except exceptions.ValidationError as exc:
            first = flatten_errors(exc.detail)[0]
            raise CommandError(f"{path}: {first['field']}: {first['message']}") from exc
        except exceptions.APIException as exc:
            raise CommandError(f"{path}: {exc.detail}") from exc
        ids = [row.pk for row in rows]
        if options["json"]:
            self.stdout.write(json.dumps({"measurements": ids}))
            return
        source = rows[0].source if rows else f"imported file {path.name}"
        self.stdout.write(f"Imported {len(rows)} measurement(s) from {path} ({source}): ids {ids}")
