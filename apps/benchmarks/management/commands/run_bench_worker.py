"""`manage.py run_bench_worker --accelerator SLUG`: start the Celery worker for one accelerator's benchmark queue.

It checks the slug against the catalog, then replaces itself with

    celery -A advisor worker -Q bench.<slug> --concurrency 1 -n bench-<slug>@<host> --loglevel INFO

One benchmark at a time per host: two engines sharing GPUs would measure each other. The worker registers
itself when ready (apps/benchmarks/worker.py) and beats every 30 s.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.benchmarks.services import benchmark_queue
from apps.catalog.models import GpuType


class Command(BaseCommand):
    help = (
        "Run the Celery worker that consumes bench.<accelerator> (probes, registers, heartbeats, benchmarks)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--accelerator", required=True, help="catalog slug: cpu, h100-sxm, a100-80gb, …")
        parser.add_argument("--name", help="Celery node name (default: bench-<slug>@<hostname>)")
        parser.add_argument("--pool", default="prefork", help="prefork enforces time limits; solo does not")
        parser.add_argument("--loglevel", default="INFO")
        parser.add_argument("--print", action="store_true", help="print the command instead of running it")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["accelerator"]
        if not GpuType.objects.filter(slug=slug).exists():
            known = ", ".join(GpuType.objects.order_by("slug").values_list("slug", flat=True))
            raise CommandError(f"--accelerator {slug!r} is not in the catalog; known: {known}")
        celery = shutil.which("celery") or str(Path(sys.executable).parent / "celery")
        argv = [
            celery, "-A", "advisor", "worker",
            "-Q", benchmark_queue(slug),
            "--concurrency", "1",
            "--pool", options["pool"],
            "-n", options["name"] or f"bench-{slug}@{socket.gethostname()}",
            "--loglevel", options["loglevel"],
        ]  # fmt: skip
        if options["print"]:
            self.stdout.write(" ".join(argv))
            return
        os.execv(argv[0], argv)
