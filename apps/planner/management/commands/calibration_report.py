import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.planner.calibration import calibrate, calibration_report
from apps.planner.selectors import planner_catalog, planner_measured_points


class Command(BaseCommand):
    help = (
        "Each calibration row's predicted against measured throughput; median and p90 APE, in-sample and LOO."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        catalog = planner_catalog()
        report = calibration_report(calibrate(catalog, planner_measured_points()))
        if options["json"]:
            self.stdout.write(json.dumps(report, allow_nan=False, default=str))
            return
        out = self.stdout.write
        out(f"catalog {report['catalog_version']}; {report['metric']}")
        for key in report["keys"]:
            out("")
            out(
                f"{key['key']}: {key['n_points']} points; MBU {key['mbu']:.3f}, MFU {key['mfu']:.3f}, "
                f"step overhead {key['step_overhead_ms']:.2f} ms, attention MBU {key['attention_mbu']:.3f}"
            )
            out(
                f"{'id':>4} {'model':<16} {'tp':>2} {'isl':>6} {'osl':>5} {'conc':>5} "
                f"{'measured':>9} {'predicted':>9} {'APE':>6} {'LOO pred':>9} {'LOO APE':>7}"
            )
            for row in key["rows"]:
                loo = row["loo_predicted_tokens_per_s"]
                out(
                    f"{row['id']:>4} {row['model']:<16} {row['tp']:>2} {row['isl']:>6} {row['osl']:>5} "
                    f"{row['concurrency'] if row['concurrency'] is not None else 'off':>5} "
                    f"{row['measured_tokens_per_s']:>9.1f} {row['predicted_tokens_per_s']:>9.1f} "
                    f"{row['ape'] * 100:>5.1f}% "
                    f"{loo if loo is not None else float('nan'):>9.1f} "
                    f"{(row['loo_ape'] or float('nan')) * 100:>6.1f}%"
                )
            ins, loo_s = key["in_sample"], key["leave_one_out"]
            out(f"in-sample: median APE {ins['median_ape'] * 100:.1f}%, p90 {ins['p90_ape'] * 100:.1f}%")
            out(
                f"leave-one-out: median APE {loo_s['median_ape'] * 100:.1f}%, p90 {loo_s['p90_ape'] * 100:.1f}%"
            )
            out(f"error band used for this key: ±{key['error_band_rel'] * 100:.1f}%")
            for metric, summary in key["latency_in_sample"].items():
                if summary:
                    out(
                        f"{metric} (not fitted, concurrency rows): median APE {summary['median_ape'] * 100:.1f}%, "
                        f"p90 {summary['p90_ape'] * 100:.1f}%"
                    )
        for line in report["skipped"]:
            out(f"skipped: {line}")
