"""How instance-hours are priced: the cheapest listing (as before), the market's median, or named providers;
and each option's GPU market beside its price."""

from __future__ import annotations

import copy
import statistics
from typing import Any

import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import Calibration
from apps.planner.perf.deployment import Deployment
from apps.planner.perf.memory import memory_fit
from apps.planner.pipeline.candidates import market_summary
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import WorkloadError, workload_spec_from_dict

CHAT: dict[str, Any] = {
    "name": "chat",
    "model": "llama-3.1-8b",
    "traffic": {"hourly_requests_per_s": [1.0] * 8 + [5.0] * 10 + [2.0] * 6},
    "prompt_tokens": {"mean": 800, "p50": 600, "p95": 2400, "max": 8000},
    "output_tokens": {"mean": 200, "p50": 150, "p95": 600, "max": 1024},
    "slo": {"ttft_p95_ms": 800, "itl_p95_ms": 60},
    "quality": {"allowed_quantizations": ["bf16", "fp8"]},
    "constraints": {"gpus": ["h100-sxm"]},
}


def _plan(catalog: CatalogSnapshot, calibration: Calibration, **changes: Any) -> dict[str, Any]:
    document = {**copy.deepcopy(CHAT), **changes}
    return plan(workload_spec_from_dict(document), catalog, calibration=calibration, max_options=3)


def test_median_market_pricing_costs_the_median_per_gpu_hour_not_the_cheapest_listing(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    cheapest = _plan(catalog, calibration)
    median = _plan(catalog, calibration, offer_pricing="median_market")

    listed = [
        o.ondemand_usd_per_hour / o.gpu_count
        for o in catalog.offers
        if o.gpu_slug == "h100-sxm" and o.ondemand_usd_per_hour
    ]
    best = median["options"][0]
    assert best["instance_usd_per_hour"] / best["gpus_per_instance"] == pytest.approx(
        statistics.median(listed), rel=1e-3
    )
    assert best["pricing"] == "median market (on-demand)"
    assert best["monthly_cost_usd"] > cheapest["options"][0]["monthly_cost_usd"]
    assert any("median" in note for note in median["notes"])


def test_existing_workloads_keep_the_cheapest_listing(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    result = _plan(catalog, calibration)
    best = result["options"][0]
    market = best["market"]
    assert market["planned_usd_per_gpu_hour"] == pytest.approx(market["cheapest_usd_per_gpu_hour"], rel=1e-3)
    assert market["median_usd_per_gpu_hour"] > market["cheapest_usd_per_gpu_hour"]
    assert market["listings"] >= market["providers"] > 1
    assert result["workload"]["offer_pricing"] == "cheapest_listing"


def test_a_marketplace_listing_says_its_availability_is_unknown(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    market = _plan(catalog, calibration, constraints={"gpus": ["h100-sxm"], "providers": ["hyperbolic"]})[
        "options"
    ][0]["market"]
    assert market["marketplace"]["kind"] == "marketplace"
    assert "does not record" in market["marketplace"]["availability"]
    assert market["marketplace"]["source"].startswith("https://")


def test_named_providers_needs_providers(catalog: CatalogSnapshot, calibration: Calibration) -> None:
    with pytest.raises(WorkloadError, match=r"constraints\.providers"):
        _plan(catalog, calibration, offer_pricing="named_providers")
    named = _plan(
        catalog,
        calibration,
        offer_pricing="named_providers",
        constraints={"gpus": ["h100-sxm"], "providers": ["lambda"]},
    )
    assert {o["provider"] for o in named["options"]} == {"lambda"}


def test_market_summary_counts_every_provider(catalog: CatalogSnapshot) -> None:
    summary = market_summary(catalog, "h100-sxm", spot=False)
    providers = {o.provider for o in catalog.offers if o.gpu_slug == "h100-sxm" and o.ondemand_usd_per_hour}
    assert summary["providers"] == len(providers)


def test_memory_that_does_not_fit_never_reads_as_memory_the_gpu_has(catalog: CatalogSnapshot) -> None:
    # TensorRT-LLM's memory fraction applies to what is free after weights: 70B at bf16 on one 40 GB A100
    dep = Deployment(
        catalog.model("llama-3.1-70b"), catalog.gpu("a100-40gb"), catalog.quantization("bf16"), "trtllm", 1
    )
    fit = memory_fit(dep, 4096)
    assert not fit.fits
    assert fit.have_gb <= 40 * 1.0001
    assert f"leaves {fit.have_gb:.1f} GB" in fit.reason
    assert fit.need_gb > fit.have_gb
