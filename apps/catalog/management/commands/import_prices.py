from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.services import PriceImportError, offers_import_skypilot


class Command(BaseCommand):
    help = "Refresh one provider's GPU offers from a SkyPilot catalog vms.csv."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skypilot", required=True, type=Path, metavar="FILE", help="SkyPilot vms.csv")
        parser.add_argument("--provider", required=True, metavar="NAME", help="provider name, e.g. lambda")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = offers_import_skypilot(path=options["skypilot"], provider=options["provider"])
        except PriceImportError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{result.provider}: {result.created} offers created, {result.updated} updated, "
            f"{result.removed} removed; {result.skipped_without_gpu} have accelerators outside the GPU catalog"
        )
