"""Ways of paying: rent, reserve, buy, or a hosted API; the worked on-prem example of the README, by hand."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from apps.catalog.ownership import cost_defaults, server_for
from apps.catalog.specs import ApiPriceSpec, CatalogSnapshot
from apps.planner.perf.calibration import Calibration
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import DAYS_PER_MONTH, workload_spec_from_dict
from tests.planner.pipeline.test_plan import offer, workload

API = ApiPriceSpec("TestAPI", "Llama 3.1 8B", 0.10, 0.20, "2026-11-01", "test", "", model_slug="llama-3.1-8b")


@pytest.fixture(scope="module")
def h100(catalog: CatalogSnapshot) -> CatalogSnapshot:
    return replace(
        catalog,
        gpus=(catalog.gpu("h100-sxm"),),
        models=(catalog.model("llama-3.1-8b"),),
        offers=(offer("alpha", "h100-sxm", 1, 2.00),),
        api_prices=(API,),
    )


def _ways(catalog: CatalogSnapshot, calibration: Calibration) -> dict[str, dict[str, Any]]:
    document = workload(
        traffic={"hourly_requests_per_s": [0.5] * 24},
        quality={"allowed_quantizations": ["bf16"]},
        constraints={"engines": ["vllm"], "max_gpus_per_replica": 1},
        costing={
            "amortisation_years": 5,
            "pue": 1.5,
            "usd_per_kwh": 0.10,
            "colocation_usd_per_kw_month": 200,
        },
    )
    option = plan(workload_spec_from_dict(document), catalog, calibration=calibration)["options"][0]
    assert option["replicas_by_hour"] == [1] * 24
    return {way["way"]: way for way in option["payment"]["ways"]}


def test_the_worked_on_prem_example_of_the_readme(h100: CatalogSnapshot, calibration: Calibration) -> None:
    ways = _ways(h100, calibration)

    # One replica on one H100 all day: one 8-GPU DGX H100 (the catalog's list price, 10.2 kW maximum, 4.6 kW
    # besides its GPUs), its single busy GPU at its 700 W TDP.
    server = server_for("h100-sxm")
    assert server is not None
    assert (server.price_usd, server.server_power_w, server.non_gpu_power_w) == (375_000.0, 10_200.0, 4_600.0)
    buy = ways["buy"]
    hours = 24 * DAYS_PER_MONTH  # 730
    assert buy["servers"] == 1
    assert buy["amortisation_monthly_usd"] == pytest.approx(375_000 / 60)  # 6,250
    assert buy["energy_kwh_per_month"] == pytest.approx((4.6 + 0.7) * 1.5 * hours, abs=0.1)  # 5,803.5 kWh
    assert buy["energy_monthly_usd"] == pytest.approx(5.3 * 1.5 * hours * 0.10, abs=0.01)  # $580.35
    assert buy["colocation_monthly_usd"] == pytest.approx(10.2 * 200)  # $2,040
    assert buy["ops_monthly_usd"] == 1000.0
    assert buy["monthly_cost_usd"] == pytest.approx(6250 + 580.35 + 2040 + 1000, abs=0.01)  # $9,870.35
    rent = ways["rent on demand"]
    assert rent["monthly_cost_usd"] == pytest.approx(2.00 * hours + 1000, abs=0.01)  # $2,460
    # Running the server alone ($3,620.35 a month) costs more than renting: buying never breaks even.
    assert buy["break_even_months_vs_renting"] is None
    tokens = 0.5 * 3600 * 24 * DAYS_PER_MONTH * (1000 + 200)
    assert buy["tokens_per_kwh"] == pytest.approx(tokens / (5.3 * 1.5 * hours), rel=1e-3)
    assert ways["hosted API"]["monthly_cost_usd"] > 0


def test_buying_breaks_even_when_renting_costs_more_than_running(
    h100: CatalogSnapshot, calibration: Calibration
) -> None:
    dear = replace(h100, offers=(offer("alpha", "h100-sxm", 1, 40.00),))

    buy = _ways(dear, calibration)["buy"]

    running = buy["energy_monthly_usd"] + buy["colocation_monthly_usd"] + buy["ops_monthly_usd"]
    rent = 40.00 * 24 * DAYS_PER_MONTH + 1000
    assert buy["break_even_months_vs_renting"] == pytest.approx(375_000 / (rent - running), abs=0.1)


def test_defaults_carry_their_sources() -> None:
    defaults = cost_defaults()

    assert set(defaults) == {"amortisation_years", "pue", "usd_per_kwh", "colocation_usd_per_kw_month"}
    for default in defaults.values():
        assert default.source.startswith("http")
        assert default.value > 0
