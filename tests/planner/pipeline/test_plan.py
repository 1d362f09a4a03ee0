"""The planner: ranking, constraints, fleets, costs, API comparison and the reasons for every rejection."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.catalog.specs import ApiPriceSpec, CatalogSnapshot, OfferSpec
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.cost import api_matches, hourly_replicas, replicas_needed
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import DAYS_PER_MONTH, WorkloadError, workload_spec_from_dict

CURVE = [0.5] * 7 + [1, 2, 3, 4, 4, 4, 4, 4, 3, 2, 1] + [0.5] * 6


def workload(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "support-chat",
        "model": "llama-3.1-8b",
        "traffic": {"hourly_requests_per_s": list(CURVE)},
        "prompt_tokens": {"mean": 1000, "p50": 800, "p95": 2500, "max": 4000},
        "output_tokens": {"mean": 200, "p50": 150, "p95": 500, "max": 1000},
        "slo": {"ttft_p95_ms": 2000, "itl_p95_ms": 100},
        "quality": {"allowed_quantizations": ["bf16", "fp8"]},
        "constraints": {
            "gpus": [],
            "providers": [],
            "max_gpus_per_replica": 8,
            "spot": False,
            "min_replicas": 1,
        },
    }
    for key, value in overrides.items():
        if key in document and isinstance(document[key], dict) and isinstance(value, dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    return document


def offer(
    provider: str, gpu: str, count: int, ondemand: float | None, spot: float | None = None
) -> OfferSpec:
    return OfferSpec(provider, f"{provider}-{count}x{gpu}", gpu, gpu, count, 80, 32, 256, "us-east-1",
                     ondemand, spot, "test")  # fmt: skip


API = ApiPriceSpec("TestAPI", "Llama 3.1 8B Instruct", 1.0, 2.0, "2026-01-01", "test", "")


@pytest.fixture(scope="module")
def tiny(catalog: CatalogSnapshot) -> CatalogSnapshot:
    """One model, two GPU types, offers that differ only where a test needs them to."""
    return replace(
        catalog,
        version="tiny",
        gpus=(catalog.gpu("h100-sxm"), catalog.gpu("l40s")),
        models=(catalog.model("llama-3.1-8b"),),
        offers=(
            offer("alpha", "h100-sxm", 1, 2.00),
            offer("beta", "h100-sxm", 1, 3.00),
            offer("gamma", "h100-sxm", 1, 4.00, spot=1.25),
            offer("delta", "h100-sxm", 2, 3.50),
            offer("epsilon", "l40s", 1, 1.10),
        ),
        api_prices=(API, ApiPriceSpec("Other", "GPT-4o", 2.5, 10.0, "2026", "test", "")),
    )


def run(catalog: CatalogSnapshot, calibration: Calibration, document: dict[str, Any]) -> dict[str, Any]:
    return plan(workload_spec_from_dict(document), catalog, calibration=calibration)


def single_family(**constraints: Any) -> dict[str, Any]:
    base = {"gpus": ["h100-sxm"], "engines": ["vllm"], "max_gpus_per_replica": 1}
    return workload(constraints={**base, **constraints}, quality={"allowed_quantizations": ["bf16"]})


# --- ranking and cost ---------------------------------------------------------------------------------------


def test_chooses_the_cheaper_of_two_otherwise_equal_offers(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    result = run(tiny, calibration, single_family(providers=["alpha", "beta"]))

    (option,) = result["options"]
    assert option["provider"] == "alpha"
    replica_hours = sum(option["replicas_by_hour"])
    ops = 10 * 100
    assert option["monthly_cost_usd"] == pytest.approx(replica_hours * 2.00 * DAYS_PER_MONTH + ops, abs=0.01)
    (beta,) = option["other_offers"]
    assert beta["provider"] == "beta"
    assert beta["monthly_cost_usd"] == pytest.approx(replica_hours * 3.00 * DAYS_PER_MONTH + ops, abs=0.01)


def test_replicas_follow_the_rate_with_headroom(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    result = run(tiny, calibration, single_family(providers=["alpha"]))

    option = result["options"][0]
    capacity = option["planned_requests_per_s_per_replica"]
    assert (
        capacity < option["max_requests_per_s_per_replica"]
    )  # sized on the prediction less its typical error
    expected = [max(1, math.ceil(rate * 1.2 / capacity - 1e-9)) for rate in CURVE]
    if not option["prescale_one_hour_early"]:
        assert option["replicas_by_hour"] == expected
    assert option["predicted"]["ttft_p95_ms"] <= 2000
    assert option["predicted"]["itl_p95_ms"] <= 100
    assert option["source"] == "predicted"
    assert option["cost_per_million_tokens_usd"] > 0


def test_multi_gpu_instances_pack_replicas(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    result = run(tiny, calibration, single_family(providers=["delta"]))

    option = result["options"][0]
    assert option["replicas_per_instance"] == 2
    instance_hours = sum(math.ceil(r / 2) for r in option["replicas_by_hour"])
    assert option["monthly_cost_usd"] == pytest.approx(
        instance_hours * 3.50 * DAYS_PER_MONTH + 1000, abs=0.01
    )


def test_fixed_fleet_holds_the_peak_all_day_and_costs_at_least_the_scheduled_one(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    scheduled = run(tiny, calibration, single_family(providers=["alpha"]))["options"][0]
    fixed = run(tiny, calibration, {**single_family(providers=["alpha"]), "scheduled_scaling": False})[
        "options"
    ][0]

    assert fixed["replicas_by_hour"] == [max(scheduled["replicas_by_hour"])] * 24
    assert fixed["monthly_cost_usd"] == fixed["fixed_fleet_monthly_usd"] >= scheduled["monthly_cost_usd"]
    assert scheduled["fixed_fleet_monthly_usd"] == fixed["monthly_cost_usd"]


def test_slow_cold_start_scales_up_an_hour_early(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    fast = run(tiny, calibration, {**single_family(providers=["alpha"]), "cold_start_s": 0})["options"][0]
    slow = run(tiny, calibration, {**single_family(providers=["alpha"]), "cold_start_s": 900})["options"][0]

    need = fast["replicas_by_hour"]
    assert not fast["prescale_one_hour_early"]
    assert slow["prescale_one_hour_early"]
    assert slow["replicas_by_hour"] == [max(need[h], need[(h + 1) % 24]) for h in range(24)]


# --- quality bar and constraints ----------------------------------------------------------------------------


def test_honours_the_quality_bar(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    result = run(tiny, calibration, workload(quality={"allowed_quantizations": ["fp8"]}))

    assert result["options"]
    assert {o["quant"] for o in result["options"]} == {"fp8"}
    barred = {r["quant"] for r in result["rejected"] if r["reason_code"] == "quality_bar"}
    assert "bf16" in barred
    assert "fp8" not in barred


def test_honours_gpu_provider_and_replica_size_constraints(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    by_gpu = run(tiny, calibration, workload(constraints={"gpus": ["l40s"]}))
    by_provider = run(tiny, calibration, workload(constraints={"providers": ["beta"]}))
    small = run(tiny, calibration, workload(constraints={"max_gpus_per_replica": 1}))

    assert by_gpu["options"]
    assert {o["gpu"] for o in by_gpu["options"]} == {"l40s"}
    assert any(
        r["reason_code"] == "excluded_by_constraints" and r["gpu"] == "h100-sxm" for r in by_gpu["rejected"]
    )
    assert by_provider["options"]
    assert {o["provider"] for o in by_provider["options"]} == {"beta"}
    assert small["options"]
    assert {o["tp"] for o in small["options"]} == {1}
    assert all((r["tp"] or 1) <= 1 for r in small["rejected"])


def test_spot_uses_only_spot_offers_at_spot_prices(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    result = run(tiny, calibration, workload(constraints={"spot": True}))

    assert result["options"]
    for option in result["options"]:
        assert (option["provider"], option["pricing"], option["instance_usd_per_hour"]) == (
            "gamma",
            "spot",
            1.25,
        )
    assert any(r["reason_code"] == "no_offer" and r["gpu"] == "l40s" for r in result["rejected"])


def test_min_replicas_is_kept_as_warm_standby(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    quiet = workload(
        traffic={"hourly_requests_per_s": [0.0] * 12 + [1.0] * 12}, constraints={"min_replicas": 2}
    )

    result = run(tiny, calibration, quiet)

    assert result["options"]
    assert all(min(o["replicas_by_hour"]) >= 2 for o in result["options"])


# --- APIs and break-even ------------------------------------------------------------------------------------


def test_break_even_arithmetic(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    document = single_family(providers=["alpha"])
    document["traffic"] = {"hourly_requests_per_s": [0.5] * 24}

    result = run(tiny, calibration, document)

    # 0.5 req/s all day for 365/12 days: 1,314,000 requests; 1,314 M input and 262.8 M output tokens.
    api = next(a for a in result["api_alternatives"] if a["provider"] == "TestAPI")
    assert api["monthly_cost_usd"] == pytest.approx(1314.0 * 1.0 + 262.8 * 2.0)
    assert api["blended_usd_per_mtok"] == pytest.approx(1839.6 / 1576.8, abs=1e-4)
    assert api["same_model_family"]
    assert api["same_model_size"]
    be = result["break_even"]
    assert be["monthly_tokens"]["total_million_per_month"] == pytest.approx(1576.8)
    assert be["reference_api"]["provider"] == "TestAPI"
    self_hosted = result["options"][0]["monthly_cost_usd"]
    assert be["break_even_million_tokens_per_month"] == pytest.approx(
        self_hosted / (1839.6 / 1576.8), rel=1e-3
    )
    floor = 1 * 2.00 * 24 * DAYS_PER_MONTH + 1000  # one always-on replica on the 1-GPU alpha instance + ops
    assert be["self_hosted_floor_monthly_cost_usd"] == pytest.approx(floor, abs=0.01)
    assert be["cheaper_at_this_volume"] == ("self-hosted" if self_hosted < 1839.6 else "api")


def test_api_rows_are_flagged_by_model_family(catalog: CatalogSnapshot) -> None:
    seventy = catalog.model("llama-3.1-70b")
    rows = {api.model: api_matches(api, seventy) for api in catalog.api_prices}

    assert rows["Llama 3.3 70B Instruct Turbo"] == (True, True)
    assert rows["Meta-Llama-3.1-8B-Instruct"] == (True, False)
    assert rows["GPT-4o"] == (False, False)


# --- explanations -------------------------------------------------------------------------------------------


def test_explains_rejected_families(catalog: CatalogSnapshot, calibration: Calibration) -> None:
    document = workload(
        model="llama-3.1-405b", quality={"allowed_quantizations": ["bf16", "fp8", "gguf-q4_k_m"]}
    )

    result = run(catalog, calibration, document)

    by_code: dict[str, list[dict[str, Any]]] = {}
    for entry in result["rejected"]:
        by_code.setdefault(entry["reason_code"], []).append(entry)
    l4 = next(e for e in by_code["does_not_fit"] if e["gpu"] == "l4" and e["tp"] == 8)
    assert "weights need 811.7 GB" in l4["reason"]
    assert "leaves 172.8 GB" in l4["reason"]
    assert any(e["gpu"] == "a100-80gb" and e["quant"] == "fp8" for e in by_code["precision_unsupported"])
    assert any(
        e["engine"] == "vllm" and e["quant"] == "gguf-q4_k_m" for e in by_code["engine_cannot_serve_quant"]
    )
    assert any(e["gpu"] == "mi300x" for e in by_code["no_offer"])
    assert any(e["quant"] == "awq-int4" for e in by_code["quality_bar"])
    assert result["rejected_summary"] == {code: len(entries) for code, entries in by_code.items()}


def test_unreachable_slo_leaves_no_option_and_says_why(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    result = run(tiny, calibration, workload(slo={"ttft_p95_ms": 5, "itl_p95_ms": 100}))

    assert result["options"] == []
    unreachable = [r for r in result["rejected"] if r["reason_code"] == "slo_unreachable"]
    assert unreachable
    assert all("target 5" in r["reason"] for r in unreachable)
    assert result["break_even"]["reference_api"] is None


# --- output format ------------------------------------------------------------------------------------------


def test_output_matches_the_design_format_and_is_json(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    result = run(tiny, calibration, workload())

    json.dumps(result, allow_nan=False)
    assert {"workload", "options", "api_alternatives", "break_even"} <= result.keys()
    mandatory = {
        "rank", "model", "engine", "quant", "gpu", "gpus_per_replica", "tp", "provider", "instance_type",
        "replicas_by_hour", "monthly_cost_usd", "cost_per_million_tokens_usd", "max_requests_per_s_per_replica",
        "predicted", "source", "why",
    }  # fmt: skip
    for rank, option in enumerate(result["options"], start=1):
        assert mandatory <= option.keys()
        assert option["rank"] == rank
        assert len(option["replicas_by_hour"]) == 24
        assert all(isinstance(r, int) for r in option["replicas_by_hour"])
        assert {"ttft_p95_ms", "itl_p95_ms"} <= option["predicted"].keys()
        assert option["why"].endswith(".")
        assert f"at {option['quant']}" in option["why"]
        assert "calibration rows" in option["why"]
    # Ranked by cost at the planned capacity; options tied within their error bands share a standing.
    standings = [o["standing"] for o in result["options"]]
    assert standings == sorted(standings)
    for o in result["options"]:
        tied = [p for p in result["options"] if p["standing"] == o["standing"] and p is not o]
        assert sorted(p["rank"] for p in tied) == sorted(o["tied_with"])
        low, high = o["monthly_cost_range_usd"]
        assert low <= o["monthly_cost_usd"] <= high
    assert {"provider", "model", "monthly_cost_usd"} <= result["api_alternatives"][0].keys()
    assert result["workload"]["traffic"]["hourly_requests_per_s"] == CURVE


def test_pareto_frontier_has_no_dominated_option(tiny: CatalogSnapshot, calibration: Calibration) -> None:
    options = run(tiny, calibration, workload())["options"]

    frontier = [o for o in options if o["pareto_optimal"]]
    assert frontier
    assert frontier[0]["standing"] == 1
    for o in frontier:
        assert not any(
            p["standing"] != o["standing"]
            and p["monthly_cost_usd"] <= o["monthly_cost_usd"]
            and p["latency_margin"] >= o["latency_margin"]
            and (p["monthly_cost_usd"], p["latency_margin"]) != (o["monthly_cost_usd"], o["latency_margin"])
            for p in options
        )


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["traffic"]["hourly_requests_per_s"].pop(), "24 rates"),
        (lambda d: d.pop("slo"), "slo is required"),
        (lambda d: d["prompt_tokens"].update(p95=10), "p50 <= p95"),
        (lambda d: d["constraints"].update(engines=["vllm", "magic"]), "unknown magic"),
        (lambda d: d["quality"].update(allowed_quantizations=[]), "at least one"),
    ],
)
def test_invalid_workloads_name_the_field(mutate: Any, message: str) -> None:
    document = copy.deepcopy(workload())
    mutate(document)

    with pytest.raises(WorkloadError, match=message):
        workload_spec_from_dict(document)


def test_optional_planning_keys_have_defaults() -> None:
    spec = workload_spec_from_dict(workload())

    assert (spec.headroom, spec.ops_hours_per_month, spec.ops_hourly_usd) == (0.2, 10.0, 100.0)
    assert spec.scheduled_scaling
    assert spec.cold_start_s is None
    assert spec.constraints.engines == ("vllm", "sglang", "trtllm", "tgi", "llamacpp", "transformers")


# --- monotonicity -------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rates=st.lists(st.floats(0.0, 500.0), min_size=24, max_size=24),
    capacity=st.floats(0.01, 50.0),
    headroom=st.floats(0.0, 1.0),
    min_replicas=st.integers(0, 3),
    prescale=st.booleans(),
)
def test_doubling_the_rate_never_lowers_the_replica_count(
    rates: list[float], capacity: float, headroom: float, min_replicas: int, prescale: bool
) -> None:
    base = hourly_replicas(rates, capacity, headroom, min_replicas, prescale=prescale)
    doubled = hourly_replicas([2 * r for r in rates], capacity, headroom, min_replicas, prescale=prescale)

    assert all(d >= b for d, b in zip(doubled, base, strict=True))
    assert all(b >= min_replicas for b in base)
    assert all(b * capacity >= r * (1 + headroom) * (1 - 1e-9) for b, r in zip(base, rates, strict=True))


def test_doubling_the_traffic_never_lowers_a_planned_fleet(
    tiny: CatalogSnapshot, calibration: Calibration
) -> None:
    document = single_family(providers=["alpha"])
    document["traffic"]["hourly_requests_per_s"] = [10 * r for r in CURVE]
    doubled = copy.deepcopy(document)
    doubled["traffic"]["hourly_requests_per_s"] = [20 * r for r in CURVE]

    base = run(tiny, calibration, document)["options"][0]["replicas_by_hour"]
    more = run(tiny, calibration, doubled)["options"][0]["replicas_by_hour"]

    assert all(m >= b for m, b in zip(more, base, strict=True))
    assert sum(more) > sum(base)


def test_replicas_needed_edge_cases() -> None:
    assert replicas_needed(0.0, 1.0, 0.2, 1) == 1
    assert replicas_needed(2.0, 1.0, 0.0, 1) == 2  # an exact multiple does not round up
    assert replicas_needed(2.0, 1.0, 0.2, 0) == 3
    with pytest.raises(ValueError, match="no capacity"):
        replicas_needed(1.0, 0.0, 0.2, 1)
