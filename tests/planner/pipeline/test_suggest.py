"""An infeasible plan says why and what would make it feasible; every suggestion, applied, plans an option."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.suggest import round_up, suggestions, why
from apps.planner.pipeline.workload import document_with, workload_spec_from_dict
from tests.planner.workloads import TIGHT


def _infeasible(document: dict[str, Any], catalog: CatalogSnapshot, calibration: Calibration) -> Any:
    spec = workload_spec_from_dict(document)
    result = plan(spec, catalog, calibration=calibration)
    assert result["options"] == []
    return spec, result


def _applied(document: dict[str, Any], suggestion: dict[str, Any]) -> dict[str, Any]:
    return document_with(document, {c["path"]: c["to"] for c in suggestion["changes"]})


def test_targets_no_deployment_meets_get_the_nearest_looser_targets_that_plan(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    # given a 70B voice agent whose targets no deployment holds even with one request at a time
    spec, result = _infeasible(TIGHT, catalog, calibration)

    # when the planner looks for what would work
    started = time.perf_counter()
    found = suggestions(spec, catalog, calibration, result)
    elapsed = time.perf_counter() - started

    # then it says why, suggests looser targets, and the changed workload has an option
    assert any("miss the latency targets" in line for line in found["why"])
    assert "latency targets" in found["why"][0]
    slo = next(s for s in found["suggestions"] if s["kind"] == "slo")
    changed = {c["path"]: c for c in slo["changes"]}
    assert changed["slo.itl_p95_ms"]["to"] > 8
    assert slo["option"]["monthly_cost_usd"] > 0
    assert plan(workload_spec_from_dict(_applied(TIGHT, slo)), catalog, calibration=calibration)["options"]
    assert any("traffic" in line.lower() for line in found["not_helping"])
    assert elapsed < 5  # a handful of narrowed plans, each a fraction of a full one


def test_a_gpu_list_with_no_fitting_gpu_gets_a_gpu_to_allow(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    document = {
        **copy.deepcopy(TIGHT),
        "slo": {"ttft_p95_ms": 2000, "itl_p95_ms": 60},
        "constraints": {"gpus": ["l4"], "max_gpus_per_replica": 2},
    }
    spec, result = _infeasible(document, catalog, calibration)

    found = suggestions(spec, catalog, calibration, result)

    gpus = next(s for s in found["suggestions"] if s["kind"] == "gpus")
    allowed = gpus["changes"][0]["to"]
    assert allowed[0] == "l4"
    assert len(allowed) == 2
    assert plan(workload_spec_from_dict(_applied(document, gpus)), catalog, calibration=calibration)[
        "options"
    ]


def test_spot_only_at_one_provider_suggests_the_smallest_lift(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    document = {
        **copy.deepcopy(TIGHT),
        "model": "llama-3.1-8b",
        "slo": {"ttft_p95_ms": 5000, "itl_p95_ms": 100},
        "quality": {"allowed_quantizations": ["bf16", "fp8"]},
        "constraints": {"providers": ["lambda"], "spot": True},
    }
    spec, result = _infeasible(document, catalog, calibration)

    found = suggestions(spec, catalog, calibration, result)

    offers = next(s for s in found["suggestions"] if s["kind"] == "offers")
    assert offers["changes"] == [{"path": "constraints.spot", "from": True, "to": False}]
    assert "on-demand" in offers["title"]


def test_why_puts_what_ruled_out_the_allowed_families_first() -> None:
    lines = why({"rejected_summary": {"excluded_by_constraints": 29, "slo_unreachable": 3}})
    assert lines[0].startswith("3 deployments fit in memory but miss the latency targets")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(435.2, 500.0), (60, 60.0), (61, 80.0), (25.0 * 1.3, 40.0), (0.31, 0.4), (1001, 1200.0)],
)
def test_targets_are_offered_as_round_numbers(value: float, expected: float) -> None:
    assert round_up(value) == expected
