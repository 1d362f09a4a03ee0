"""Ranking under uncertainty: evidence never decides a rank by itself, and ties are shown as ties."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import Band, Calibration
from apps.planner.perf.efficiency import EfficiencyModel
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from tests.planner.pipeline.test_plan import offer, workload

THROUGHPUT_GROUP = "{engine} / hopper / 16-bit / output_tokens_per_s"


def _calibration(bands: dict[str, tuple[float, float, int]]) -> Calibration:
    """Equal physics for every engine (the pooled prior efficiencies), and the given error bands."""
    table = {
        THROUGHPUT_GROUP.format(engine=engine): Band(
            median, p90, rows, THROUGHPUT_GROUP.format(engine=engine)
        )
        for engine, (median, p90, rows) in bands.items()
    }
    return Calibration(model=EfficiencyModel.prior(), bands=table, corpus_rows=0, measured_rows=0)


@pytest.fixture(scope="module")
def h100_only(catalog: CatalogSnapshot) -> CatalogSnapshot:
    return replace(
        catalog,
        gpus=(catalog.gpu("h100-sxm"),),
        models=(catalog.model("llama-3.1-8b"),),
        offers=(offer("alpha", "h100-sxm", 1, 2.50),),
    )


def _plan(catalog: CatalogSnapshot, calibration: Calibration) -> list[dict[str, Any]]:
    document = workload(
        traffic={"hourly_requests_per_s": [30.0] * 24},
        quality={"allowed_quantizations": ["bf16"]},
        constraints={"engines": ["vllm", "sglang"], "max_gpus_per_replica": 1},
    )
    options: list[dict[str, Any]] = plan(workload_spec_from_dict(document), catalog, calibration=calibration)[
        "options"
    ]
    return options


def test_equal_physics_with_unequal_evidence_share_a_standing(h100_only: CatalogSnapshot) -> None:
    # given: vLLM and SGLang with the same efficiencies on the same GPU, one well evidenced, one barely
    well, thin = (0.05, 0.10, 400), (0.40, 0.90, 6)

    # when: planned with the evidence one way round, then the other
    first = _plan(h100_only, _calibration({"vllm": well, "sglang": thin}))
    swapped = _plan(h100_only, _calibration({"vllm": thin, "sglang": well}))

    # then: the two share the top standing either way, and evidence does not decide their order
    for options in (first, swapped):
        assert [o["engine"] for o in options] == [o["engine"] for o in first]
        assert {o["standing"] for o in options} == {1}
        assert options[0]["tied_with"] == [2]
        assert options[1]["tied_with"] == [1]
        assert "cost ranges overlap" in options[0]["why"]
    by_engine = {o["engine"]: o for o in first}
    assert by_engine["vllm"]["max_requests_per_s_per_replica"] == pytest.approx(
        by_engine["sglang"]["max_requests_per_s_per_replica"]
    )
    # The thinly evidenced option is planned more conservatively, and says so.
    assert (
        by_engine["sglang"]["planned_requests_per_s_per_replica"]
        < by_engine["vllm"]["planned_requests_per_s_per_replica"]
    )
    assert "400 rows left out" in by_engine["vllm"]["why"]
    assert "6 rows left out" in by_engine["sglang"]["why"]


def test_a_clearly_cheaper_option_is_not_tied(h100_only: CatalogSnapshot, catalog: CatalogSnapshot) -> None:
    cheap_and_dear = replace(
        h100_only,
        gpus=(catalog.gpu("h100-sxm"), catalog.gpu("l4")),
        offers=(offer("alpha", "h100-sxm", 1, 2.50), offer("beta", "l4", 1, 40.0)),
    )
    calibration = _calibration({"vllm": (0.05, 0.10, 400)})
    document = workload(
        traffic={"hourly_requests_per_s": [5.0] * 24},
        quality={"allowed_quantizations": ["bf16"]},
        constraints={"engines": ["vllm"], "max_gpus_per_replica": 1},
    )

    options = plan(workload_spec_from_dict(document), cheap_and_dear, calibration=calibration)["options"]

    assert [o["gpu"] for o in options] == ["h100-sxm", "l4"]
    assert [o["standing"] for o in options] == [1, 2]
    assert options[0]["tied_with"] == []
