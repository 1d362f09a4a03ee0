import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import WorkloadError, workload_spec_from_dict
from apps.planner.selectors import planner_catalog, planner_measured_points


class Command(BaseCommand):
    help = "Rank self-hosted deployments for a workload file and compare them with hosted APIs."
    # A one-shot calculation: the URL and model checks would double its start-up for nothing.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workload-file", required=True, type=Path)
        parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["workload_file"]
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        try:
            workload = workload_spec_from_dict(document)
            result = plan(workload, planner_catalog(), planner_measured_points())
        except WorkloadError as exc:
            raise CommandError(f"invalid workload: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(result, allow_nan=False))
            return
        out = self.stdout.write
        if not result["options"]:
            out(f"no deployment holds the SLO; rejected: {result['rejected_summary']}")
        for option in result["options"]:
            out(
                f"{option['rank']:>2}. ${option['monthly_cost_usd']:>10,.0f}/month  {option['engine']:<12} "
                f"{option['quant']:<9} {option['tp']}x {option['gpu']:<13} {option['provider']} "
                f"{option['instance_type']}  peak {max(option['replicas_by_hour'])} replicas  "
                f"({option['source']}, ±{option['error_band_rel'] * 100:.0f}%)"
            )
        be = result["break_even"]
        if be.get("reference_api"):
            api = be["reference_api"]
            out(
                f"API: {api['provider']} {api['model']} ${api['monthly_cost_usd']:,.0f}/month; break-even "
                f"{be['break_even_million_tokens_per_month']:,.0f} M tokens/month; cheaper now: "
                f"{be['cheaper_at_this_volume']}"
            )
