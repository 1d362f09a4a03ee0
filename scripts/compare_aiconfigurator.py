"""Side by side: NVIDIA AIConfigurator (AIC) and our model against the published calibration corpus.

    .venv/bin/python scripts/compare_aiconfigurator.py [--corpus PATH] [--out var/aic_predictions.csv]

AIC runs in its own virtualenv (scripts/aic/setup.sh builds it once; --aic-python names another interpreter), where
scripts/aic/runner.py answers every corpus row it can and says why it skips the others. Over the rows AIC answers,
this prints AIC's and our median and p90 absolute percentage error per metric and per engine x GPU x precision
group; ours are the leave-one-source-out predictions of apps.planner.perf.calibration.cross_validated_predictions.
Every row's AIC answer or skip reason goes to --out as CSV.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CORPUS = ROOT / "apps" / "catalog" / "data" / "calibration_corpus.csv"
SETUP = ROOT / "scripts" / "aic" / "setup.sh"
RUNNER = ROOT / "scripts" / "aic" / "runner.py"

# Families the issue sets targets for: output throughput, TTFT, TPOT (ITL is the same inter-token gap).
METRIC_FAMILIES = {"ttft_ms": "ttft", "tpot_ms": "tpot", "itl_ms": "tpot", "e2e_ms": "e2e"}

# The per-row CSV: the corpus row's identity, then the runner's record, then ours.
ROW_COLUMNS = [
    "id",
    "source_id",
    "engine",
    "engine_version",
    "gpu_slug",
    "weight_precision",
    "model_slug",
    "load",
    "metric",
    "statistic",
]
RECORD_COLUMNS = [
    "aic_value",
    "aic_version",
    "db_version",
    "version_mapping",
    "system",
    "backend",
    "model_path",
    "mode",
    "instance_gpus",
    "replicas",
    "batch_per_rank",
    "batch_capped",
    "kv_cache_warning",
]
CSV_COLUMNS = [
    *ROW_COLUMNS,
    "published_value",
    "status",
    *RECORD_COLUMNS,
    "aic_ape_pct",
    "skip_category",
    "skip_reason",
    "ours_value",
    "ours_ape_pct",
]


@dataclasses.dataclass(frozen=True)
class Scored:
    """One corpus row AIC answered, with both models' absolute percentage errors (ours None if we cannot answer)."""

    row: dict[str, str]
    aic_ape_pct: float
    ours_ape_pct: float | None

    @property
    def family(self) -> str:
        return metric_family(self.row["metric"])

    @property
    def group(self) -> str:
        return f"{self.row['engine']} x {self.row['gpu_slug']} x {self.row['weight_precision']}"


def metric_family(metric: str) -> str:
    return METRIC_FAMILIES.get(metric, "throughput")


def ape_pct(predicted: float, published: float) -> float:
    return abs(predicted - published) / abs(published) * 100.0


def median_p90(values: Iterable[float]) -> tuple[float, float] | None:
    array = np.asarray(list(values), dtype=float)
    if array.size == 0:
        return None
    return float(np.median(array)), float(np.percentile(array, 90))


def parse_runner_output(lines: Iterable[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The runner's meta record and its per-row records by corpus id."""
    meta: dict[str, Any] = {}
    records: dict[str, dict[str, Any]] = {}
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("kind") == "meta":
            meta = record
        elif record.get("kind") == "row":
            records[record["id"]] = record
    if not meta:
        raise RuntimeError("the AIC runner printed no meta record; see its stderr above")
    return meta, records


def score(
    rows: Iterable[dict[str, str]],
    records: Mapping[str, dict[str, Any]],
    ours: Mapping[str, float | None] | None,
) -> list[Scored]:
    scored = []
    for row in rows:
        record = records.get(row["id"])
        if record is None or record.get("status") != "answered":
            continue
        published = float(row["value"])
        our_value = None if ours is None else ours.get(row["id"])
        scored.append(
            Scored(
                row=row,
                aic_ape_pct=ape_pct(float(record["aic_value"]), published),
                ours_ape_pct=None if our_value is None else ape_pct(float(our_value), published),
            )
        )
    return scored


def _cell(stats: tuple[float, float] | None) -> str:
    return "     -      -" if stats is None else f"{stats[0]:6.1f} {stats[1]:6.1f}"


def error_table(scored: list[Scored], key: Callable[[Scored], str], title: str) -> list[str]:
    """Rows of 'key | n | AIC median p90 | ours n, median p90' over the rows AIC answered."""
    buckets: dict[str, list[Scored]] = defaultdict(list)
    for item in scored:
        buckets[key(item)].append(item)
    width = max([len(title), *(len(name) for name in buckets)])
    lines = [
        f"{title:<{width}}  {'n':>4}  {'AIC med    p90':>13}  {'ours n':>6}  {'ours med   p90':>13}",
    ]
    for name in sorted(buckets):
        items = buckets[name]
        ours = [item.ours_ape_pct for item in items if item.ours_ape_pct is not None]
        lines.append(
            f"{name:<{width}}  {len(items):>4}  {_cell(median_p90(i.aic_ape_pct for i in items))}  "
            f"{len(ours):>6}  {_cell(median_p90(ours))}"
        )
    return lines


def head_to_head(scored: list[Scored]) -> list[str]:
    """Per metric family, both medians over the rows both models answer: the figure the issue's target is about."""
    lines = []
    for family in sorted({item.family for item in scored}):
        both = [item for item in scored if item.family == family and item.ours_ape_pct is not None]
        if not both:
            lines.append(
                f"{family}: ours unavailable on the {sum(i.family == family for i in scored)} rows AIC answers"
            )
            continue
        aic = np.percentile([item.aic_ape_pct for item in both], [50, 90])
        ours = np.percentile([item.ours_ape_pct for item in both if item.ours_ape_pct is not None], [50, 90])
        verdict = "ours lower" if ours[0] < aic[0] else "AIC lower or equal"
        lines.append(
            f"{family}: {len(both)} rows both answer; median APE AIC {aic[0]:.1f}% vs ours {ours[0]:.1f}% "
            f"(p90 {aic[1]:.1f}% vs {ours[1]:.1f}%): {verdict}"
        )
    return lines


def coverage_lines(rows: list[dict[str, str]], records: Mapping[str, dict[str, Any]]) -> list[str]:
    answered = [row for row in rows if records.get(row["id"], {}).get("status") == "answered"]
    lines = [f"AIC answers {len(answered)} of {len(rows)} corpus rows."]
    by_config = Counter(
        (row["engine"], row["gpu_slug"], row["weight_precision"], row["metric"]) for row in answered
    )
    lines.append("answered rows by engine / GPU / precision / metric:")
    lines += [f"  {n:>4}  {' / '.join(key)}" for key, n in sorted(by_config.items())]
    skipped = [records[row["id"]] for row in rows if records.get(row["id"], {}).get("status") == "skipped"]
    lines.append("skipped rows by reason category (most frequent reason):")
    for category, n in Counter(record["category"] for record in skipped).most_common():
        reasons = Counter(record["reason"] for record in skipped if record["category"] == category)
        reason, count = reasons.most_common(1)[0]
        lines.append(f"  {n:>4}  {category}: e.g. {reason} ({count}x)")
    return lines


def version_lines(rows: list[dict[str, str]], records: Mapping[str, dict[str, Any]]) -> list[str]:
    mappings = Counter(
        (row["engine"], records[row["id"]]["system"], records[row["id"]]["version_mapping"])
        for row in rows
        if records.get(row["id"], {}).get("status") == "answered"
    )
    return [
        f"  {n:>4}  {engine} on {system}: {mapping}"
        for (engine, system, mapping), n in sorted(mappings.items())
    ]


def write_csv(
    path: Path,
    rows: list[dict[str, str]],
    records: Mapping[str, dict[str, Any]],
    ours: Mapping[str, float | None] | None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            record = records.get(row["id"], {})
            published = float(row["value"])
            our_value = None if ours is None else ours.get(row["id"])
            out: dict[str, Any] = {key: row.get(key, "") for key in ROW_COLUMNS}
            out["published_value"] = row["value"]
            out["status"] = record.get("status", "missing")
            out["skip_category"] = record.get("category", "")
            out["skip_reason"] = record.get("reason", "")
            out |= {key: record[key] for key in RECORD_COLUMNS if record.get(key) is not None}
            if record.get("status") == "answered":
                out["aic_ape_pct"] = round(ape_pct(float(record["aic_value"]), published), 2)
            if our_value is not None:
                out["ours_value"] = our_value
                out["ours_ape_pct"] = round(ape_pct(float(our_value), published), 2)
            writer.writerow(out)


def aic_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    built = subprocess.run(["bash", str(SETUP)], check=True, stdout=subprocess.PIPE, text=True)
    return built.stdout.strip().splitlines()[-1]


def run_aic(
    python: str, rows: list[dict[str, str]], *, database_mode: str, offline_max_batch: int | None
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    payload = "".join(json.dumps(row) + "\n" for row in rows)
    command = [python, str(RUNNER), "--database-mode", database_mode]
    if offline_max_batch is not None:
        command += ["--offline-max-batch", str(offline_max_batch)]
    # stderr is left on the terminal: the runner reports progress there.
    done = subprocess.run(
        command,
        input=payload,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the AIC runner exited with status {done.returncode}")
    return parse_runner_output(done.stdout.splitlines())


def our_predictions() -> tuple[dict[str, float | None] | None, str]:
    try:
        from apps.planner.perf.calibration import cross_validated_predictions
    except ImportError as exc:
        return None, f"our model: unavailable ({exc})"
    return dict(cross_validated_predictions()), "our model: leave-one-source-out predictions"


def load_corpus(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    repeated = sorted(key for key, n in Counter(row["id"] for row in rows).items() if n > 1)
    if repeated:  # answers and our predictions are matched by id
        raise SystemExit(f"{path}: {len(repeated)} ids occur more than once, e.g. {', '.join(repeated[:3])}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="calibration corpus CSV")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "aic_predictions.csv", help="per-row CSV")
    parser.add_argument(
        "--aic-python", help="interpreter of an AIConfigurator venv (default: scripts/aic/setup.sh)"
    )
    parser.add_argument(
        "--database-mode", default="SILICON", choices=["SILICON", "HYBRID", "EMPIRICAL", "SOL"]
    )
    parser.add_argument(
        "--offline-max-batch", type=int, help="passed to the runner (default: AIC's own sweep cap, 512)"
    )
    args = parser.parse_args()

    rows = load_corpus(args.corpus)
    started = time.monotonic()
    meta, records = run_aic(
        aic_python(args.aic_python),
        rows,
        database_mode=args.database_mode,
        offline_max_batch=args.offline_max_batch,
    )
    aic_seconds = time.monotonic() - started
    ours, ours_note = our_predictions()
    scored = score(rows, records, ours)
    write_csv(args.out, rows, records, ours)

    print(
        f"AIConfigurator {meta['aic_version']} (core {meta['aic_core_version']}), database mode "
        f"{meta['database_mode']}, offline = best batch up to {meta['offline_max_batch']} that fits; "
        f"{len(rows)} rows from {args.corpus} in {aic_seconds:.0f} s"
    )
    print(ours_note)
    print()
    print("\n".join(coverage_lines(rows, records)))
    print()
    print("AIC database version used per engine version (answered rows):")
    print("\n".join(version_lines(rows, records)))
    print()
    print("absolute percentage error per metric, rows AIC answers (%):")
    print("\n".join(error_table(scored, lambda item: item.row["metric"], "metric")))
    print()
    print("absolute percentage error per metric family, rows AIC answers (%):")
    print("\n".join(error_table(scored, lambda item: item.family, "family")))
    print()
    print("absolute percentage error per engine x GPU x precision and metric family (%):")
    print("\n".join(error_table(scored, lambda item: f"{item.group} | {item.family}", "group | family")))
    print()
    print("\n".join(head_to_head(scored)))
    print(f"\nper-row CSV: {args.out}")


if __name__ == "__main__":
    main()
