from typing import Any

from django.core.management.base import BaseCommand

from apps.catalog.services import catalog_load


class Command(BaseCommand):
    help = "Load the shipped catalog (GPUs, models, engines, quantizations, offers, API prices). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = catalog_load()
        self.stdout.write(
            f"catalog loaded: {counts.gpus} GPU types, {counts.models} models, {counts.engines} engines, "
            f"{counts.quantizations} quantizations, {counts.offers} offers, {counts.api_prices} API prices"
        )
