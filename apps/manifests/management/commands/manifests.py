"""python manage.py manifests --workload-file F.json [--option K | --mixed N] --out DIR

Plans the workload exactly as `manage.py plan` does, builds the bundle for option K (default: rank 1),
validates it, and only then writes it. Any failure is one line on stderr and a non-zero exit.
"""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.manifests.build import ManifestError, build_bundle, request_from_plan
from apps.manifests.bundle import write_bundle
from apps.manifests.mixed import build_mixed_bundle
from apps.manifests.validate import validate_bundle
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import WorkloadError, workload_spec_from_dict
from apps.planner.selectors import planner_catalog, planner_measured_points


class Command(BaseCommand):
    help = "Write Compose and Kubernetes files for one ranked option of a workload's plan."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workload-file", required=True, type=Path)
        parser.add_argument(
            "--option", type=int, default=1, metavar="K", help="rank of the option (default 1)"
        )
        parser.add_argument(
            "--mixed",
            type=int,
            metavar="N",
            help="the plan's mixed fleet N (0 the cheapest) instead of an option: both deployments and the router",
        )
        parser.add_argument("--out", required=True, type=Path, metavar="DIR")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["workload_file"]
        try:
            workload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        catalog = planner_catalog()
        try:
            result = plan(workload_spec_from_dict(workload), catalog, planner_measured_points())
        except WorkloadError as exc:
            raise CommandError(f"invalid workload: {exc}") from exc
        if options["mixed"] is not None:
            try:
                files = build_mixed_bundle(result, workload, options["mixed"], snapshot=catalog)
            except ManifestError as exc:
                raise CommandError(f"mixed fleet {options['mixed']} cannot be deployed: {exc}") from exc
            mix = result["mixed_fleets"][options["mixed"]]
            what = f"mixed fleet {options['mixed']} ({mix['kind']}: {' + '.join(p['gpu'] for p in mix['parts'])})"
        else:
            option = _option(result, options["option"])
            try:
                files = build_bundle(request_from_plan(option, workload, result, snapshot=catalog))
            except ManifestError as exc:
                raise CommandError(f"option {option['rank']} cannot be deployed: {exc}") from exc
            what = (
                f"option {option['rank']}: {option['engine']} {option['quant']} on "
                f"{option['gpus_per_replica']}x {option['gpu']} ({option.get('parallelism') or 'TP' + str(option['tp'])})"
            )
        problems = validate_bundle(files)
        if problems:
            raise CommandError(f"bundle failed validation ({len(problems)} problems), first: {problems[0]}")
        written = write_bundle(files, options["out"])
        self.stdout.write(f"{what}; wrote {len(written)} files to {options['out']}")


def _option(result: dict[str, Any], rank: int) -> dict[str, Any]:
    ranked = result.get("options") or []
    if not ranked:
        raise CommandError(f"no deployment holds the SLO; rejected: {result.get('rejected_summary')}")
    for option in ranked:
        if option.get("rank") == rank:
            return dict(option)
    raise CommandError(f"no option {rank}; the plan has options 1 to {len(ranked)}")
