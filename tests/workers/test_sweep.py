"""The SLO search, driven by a queueing formula instead of an engine so the answer is known exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from workers.loadgen import Slo
from workers.sweep import SweepPolicy, level_verdict, sweep

CAPACITY_PER_S = 10.0
BASE_TTFT_MS = 20.0
SLO = Slo(ttft_ms=90.0)  # holds while 20 / (1 - rate/10) <= 90
LIMIT_PER_S = CAPACITY_PER_S * (1 - BASE_TTFT_MS / 90.0)  # 7.78/s


def _percentiles(value: float) -> dict[str, float]:
    return {"p50": value, "p90": value, "p95": value, "p99": value}


async def queue_level(rate: float) -> dict[str, Any]:
    """M/M/1-like: waiting grows as 1/(1 - utilisation); above capacity the queue never drains."""
    utilisation = rate / CAPACITY_PER_S
    ttft_ms = BASE_TTFT_MS / (1 - utilisation) if utilisation < 1 else 1e6
    return {
        "rate": rate,
        "ttft_ms": _percentiles(ttft_ms),
        "itl_ms": _percentiles(5.0),
        "e2e_ms": _percentiles(ttft_ms + 100),
        "requests_per_s": min(rate, CAPACITY_PER_S),
        "requests_ok": 100,
        "requests_failed": 0,
        "client": {"fell_behind": False},
    }


@pytest.mark.parametrize("start", [1.0, 50.0, 0.3])
def test_sweep_finds_the_highest_rate_holding_the_slo(start: float) -> None:
    policy = SweepPolicy(start_rate_per_s=start, tolerance=0.05)

    outcome = asyncio.run(sweep(queue_level, SLO, policy))

    assert LIMIT_PER_S / 1.05 <= outcome["max_rate_holding_slo"] <= LIMIT_PER_S
    assert outcome["first_failing_rate"] > outcome["max_rate_holding_slo"]
    assert outcome["first_failing_rate"] / outcome["max_rate_holding_slo"] - 1 <= 0.05
    assert all(level["slo_holds"] == (level["rate"] <= LIMIT_PER_S) for level in outcome["levels"])


def test_sweep_respects_the_time_budget() -> None:
    policy = SweepPolicy(start_rate_per_s=1.0, time_budget_s=60.0)

    outcome = asyncio.run(sweep(queue_level, SLO, policy, estimate_s=lambda rate: 100 / rate))

    # the first level alone (1/s for 100 requests) would overrun the budget, so none starts
    assert outcome["levels"] == []
    assert outcome["max_rate_holding_slo"] is None
    assert "budget" in outcome["stopped_because"]


def test_sweep_stops_at_the_level_cap() -> None:
    outcome = asyncio.run(sweep(queue_level, SLO, SweepPolicy(start_rate_per_s=0.1, max_levels=3)))

    assert len(outcome["levels"]) == 3
    assert outcome["max_rate_holding_slo"] == pytest.approx(0.4)


def test_verdict_fails_on_errors_saturation_and_a_lagging_client() -> None:
    policy = SweepPolicy()
    good = asyncio.run(queue_level(2.0))

    assert level_verdict(good, SLO, policy) == (True, "holds")
    assert not level_verdict(good | {"requests_failed": 5}, SLO, policy)[0]
    assert "saturated" in level_verdict(good | {"requests_per_s": 1.0}, SLO, policy)[1]
    assert "client" in level_verdict(good | {"client": {"fell_behind": True}}, SLO, policy)[1]
    assert "itl" in level_verdict(good, Slo(itl_ms=1.0), policy)[1]
