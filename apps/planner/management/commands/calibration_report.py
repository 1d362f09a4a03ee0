import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.planner.perf.calibration import FIT_PATH, calibration_report, save_fit
from apps.planner.selectors import planner_catalog


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}%"


class Command(BaseCommand):
    help = (
        "Fit the performance model to the published corpus and cross-validate it leaving one source out: median "
        "and p90 absolute percentage error overall, per group and per source, and the worst rows."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the whole report as one JSON object")
        parser.add_argument("--rows", action="store_true", help="also print every row")
        parser.add_argument(
            "--write", action="store_true", help=f"save the fit and its error bands to {FIT_PATH.name}"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = calibration_report(planner_catalog())
        calibration = report.pop("calibration")
        if options["write"]:
            save_fit(calibration)
        if options["json"]:
            self.stdout.write(json.dumps(report, default=str))
            return
        out = self.stdout.write
        out(f"{report['method']}")
        out(f"rows used: {report['rows_used']}; skipped: {report['rows_skipped']}")
        out("")
        out("overall (leave-one-source-out):")
        for metric, s in report["overall"].items():
            out(
                f"  {metric:<22} {s['rows']:>4} rows  median {_pct(s['median_ape'])}  p90 {_pct(s['p90_ape'])}"
            )
        for title, key in (
            ("per engine", "by_engine"),
            ("per group", "by_group"),
            ("per source", "by_source"),
        ):
            out("")
            out(f"{title}:")
            for g in report[key]:
                out(
                    f"  {g['group']:<62} {g['rows']:>4}  median {_pct(g['median_ape'])}  p90 {_pct(g['p90_ape'])}"
                )
        out("")
        out("worst rows:")
        for r in report["worst_rows"]:
            out(
                f"  {r['id']:<34} {r['engine']:<8} {r['model']:<18} {r['gpus']}x {r['gpu']:<12} {r['parallelism']:<9} "
                f"{r['precision']:<11} {r['isl']:>6.0f}/{r['osl']:<6.0f} {r['load']:<11} {r['metric']:<20} "
                f"published {r['published']:>10.1f}  predicted {r['cross_validated']:>10.1f}  ({_pct(r['ape'])})"
            )
        if options["rows"]:
            out("")
            for r in report["rows"]:
                out(json.dumps(r, default=str))
        if options["write"]:
            out(f"\nwrote {FIT_PATH}")
