"""Workloads as they arrive: bursty arrivals, prompts that share a prefix, lengths from a log's histogram and
weekdays that differ from weekends."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.batching import LengthStats, RequestSet
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import DAYS_PER_MONTH, workload_spec_from_dict
from tests.planner.pipeline.test_plan import offer, workload


@pytest.fixture(scope="module")
def one_family(catalog: CatalogSnapshot) -> CatalogSnapshot:
    return replace(
        catalog,
        gpus=(catalog.gpu("l40s"),),
        models=(catalog.model("llama-3.1-8b"),),
        offers=(offer("alpha", "l40s", 1, 1.00),),
    )


def _best(catalog: CatalogSnapshot, calibration: Calibration, **overrides: Any) -> dict[str, Any]:
    document = workload(
        quality={"allowed_quantizations": ["fp8"]},
        constraints={"engines": ["vllm"], "max_gpus_per_replica": 1, "min_replicas": 0},
        slo={"ttft_p95_ms": 1500, "itl_p95_ms": 80},
        **overrides,
    )
    option: dict[str, Any] = plan(workload_spec_from_dict(document), catalog, calibration=calibration)[
        "options"
    ][0]
    return option


def test_bursty_arrivals_need_more_replicas_than_poisson_at_the_same_mean(
    one_family: CatalogSnapshot, calibration: Calibration
) -> None:
    rates = [4.0] * 24

    poisson = _best(one_family, calibration, traffic={"hourly_requests_per_s": rates, "burstiness_cv": 1.0})
    bursty = _best(one_family, calibration, traffic={"hourly_requests_per_s": rates, "burstiness_cv": 4.0})

    assert bursty["max_requests_per_s_per_replica"] < poisson["max_requests_per_s_per_replica"]
    assert sum(bursty["replicas_by_hour"]) > sum(poisson["replicas_by_hour"])
    assert bursty["monthly_cost_usd"] > poisson["monthly_cost_usd"]
    assert bursty["burstiness_cv"] == 4.0


def test_a_shared_prefix_lowers_ttft_and_cost(one_family: CatalogSnapshot, calibration: Calibration) -> None:
    prompts = {"mean": 2000, "p50": 2000, "p95": 2600, "max": 3000}
    traffic = {"hourly_requests_per_s": [6.0] * 24}

    plain = _best(one_family, calibration, prompt_tokens=prompts, traffic=traffic)
    cached = _best(
        one_family, calibration, prompt_tokens=prompts, traffic=traffic, prefix={"shared_prefix_tokens": 1800}
    )

    assert plain["prefix_cache"] is None
    saving = cached["prefix_cache"]
    assert saving["cached_share_of_prompt_tokens"] == pytest.approx(0.9)
    assert saving["capacity_with_cache_requests_per_s"] > saving["capacity_without_cache_requests_per_s"]
    assert cached["serve"]["prefix_caching"] is True
    assert cached["max_requests_per_s_per_replica"] > plain["max_requests_per_s_per_replica"]
    assert cached["predicted"]["ttft_p95_ms"] < plain["predicted"]["ttft_p95_ms"]
    assert cached["monthly_cost_usd"] < plain["monthly_cost_usd"]


def test_lengths_come_from_the_logs_histogram() -> None:
    # Every prompt is 100-200 tokens or 3000-4000: the four figures alone would draw a smooth lognormal.
    stats = LengthStats(
        mean=1200, p50=180, p95=3900, max=4000,
        histogram_edges=(100.0, 200.0, 3000.0, 4000.0), histogram_counts=(70, 0, 30),
    )  # fmt: skip

    draws = RequestSet.draw(stats, LengthStats(100, 100, 100, 100), 1000).isl

    assert np.mean((draws >= 100) & (draws <= 200)) == pytest.approx(0.7, abs=0.01)
    assert np.mean((draws > 200) & (draws < 3000)) == 0
    assert draws.max() <= 4000


def test_weekends_follow_their_own_curve(one_family: CatalogSnapshot, calibration: Calibration) -> None:
    weekday, weekend = [8.0] * 24, [0.5] * 24
    traffic = {
        "hourly_requests_per_s": [(5 * a + 2 * b) / 7 for a, b in zip(weekday, weekend, strict=True)],
        "weekday_hourly_requests_per_s": weekday,
        "weekend_hourly_requests_per_s": weekend,
    }

    option = _best(one_family, calibration, traffic=traffic)

    assert option["replicas_by_hour_weekend"] is not None
    assert sum(option["replicas_by_hour_weekend"]) < sum(option["replicas_by_hour"])
    replica_days = (5 * sum(option["replicas_by_hour"]) + 2 * sum(option["replicas_by_hour_weekend"])) / 7
    assert option["monthly_cost_usd"] == pytest.approx(replica_days * 1.00 * DAYS_PER_MONTH + 1000, abs=0.01)
