"""A mixed fleet chosen because it is cheaper than either GPU alone: short prompts to a cheap GPU, long ones to a
large one (Mélange's split by request length).

The workload is bimodal: 90% of prompts are 64-256 tokens (chat turns), 10% are 6,000-8,000 tokens (documents
pasted whole), 40 requests/s all day with a 2 s p95 TTFT. On a 48 GB RTX A6000 the short ones are cheap to serve and the long ones are slow to prefill; an
A100 80GB prefills the long ones three times faster but costs more per hour than their share of the traffic needs.
The team's platform already runs the cluster, so a second deployment costs two operator hours a month, not ten.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict

SHORT_SHARE, LONG_SHARE = 90, 10
BIMODAL_WORKLOAD: dict[str, Any] = {
    "name": "chat-and-documents",
    "model": "llama-3.1-8b",
    "traffic": {"hourly_requests_per_s": [40.0] * 24},
    "prompt_tokens": {
        # mean of the two uniform bins, weighted by their counts
        "mean": round((SHORT_SHARE * (64 + 256) / 2 + LONG_SHARE * (6000 + 8000) / 2) / 100),
        "p50": 200,
        "p95": 6100,
        "max": 7999,
        "histogram": {"edges": [64, 256, 6000, 8000], "counts": [SHORT_SHARE, 0, LONG_SHARE]},
    },
    "output_tokens": {"mean": 150, "p50": 120, "p95": 400, "max": 512},
    "slo": {"ttft_p95_ms": 2000, "itl_p95_ms": 80},
    "quality": {"allowed_quantizations": ["bf16", "fp8", "awq-int4"]},
    "constraints": {
        "gpus": ["rtx-a6000", "a100-80gb"],
        "providers": [],
        "max_gpus_per_replica": 8,
        "spot": False,
        "min_replicas": 1,
    },
    "ops_hours_per_month": 2.0,
}
CHEAP_GPU, LARGE_GPU = "rtx-a6000", "a100-80gb"


@pytest.fixture(scope="module")
def mixed_plan(catalog: CatalogSnapshot) -> dict[str, Any]:
    return plan(workload_spec_from_dict(copy.deepcopy(BIMODAL_WORKLOAD)), catalog)


def test_the_length_split_is_cheaper_than_either_gpu_alone(mixed_plan: dict[str, Any]) -> None:
    # given the cheapest option on each GPU
    single: dict[str, float] = {}
    for option in mixed_plan["options"]:
        single[option["gpu"]] = min(single.get(option["gpu"], float("inf")), option["monthly_cost_usd"])
    assert set(single) == {CHEAP_GPU, LARGE_GPU}

    # then the plan's best mix splits by length and costs less than each of them
    mix = mixed_plan["mixed_fleets"][0]
    assert mix["kind"] == "by_length"
    assert all(mix["monthly_cost_usd"] < cost for cost in single.values()), (mix["monthly_cost_usd"], single)
    assert mix["saving_vs_best_single"] > 0.05
    assert mixed_plan["recommended"] == {
        "kind": "mixed",
        "mixed_fleet": 0,
        "monthly_cost_usd": mix["monthly_cost_usd"],
    }


def test_short_prompts_go_to_the_cheap_gpu_and_the_rest_to_the_large_one(mixed_plan: dict[str, Any]) -> None:
    mix = mixed_plan["mixed_fleets"][0]
    short, long = mix["parts"]
    threshold = mix["threshold_prompt_tokens"]

    # the threshold falls among the short prompts (the median: SPLIT_QUANTILES' 0.5), below the long mode
    assert 64 <= threshold < 256
    assert (short["gpu"], short["prompt_tokens"]) == (CHEAP_GPU, {"from": 0, "to": threshold})
    assert (long["gpu"], long["prompt_tokens"]) == (LARGE_GPU, {"from": threshold + 1, "to": 7999})
    assert short["share_of_requests"] + long["share_of_requests"] == pytest.approx(1.0)
    # each part is sized for its own share of the traffic
    assert min(short["replicas_by_hour"]) >= 1
    assert min(long["replicas_by_hour"]) >= 1
