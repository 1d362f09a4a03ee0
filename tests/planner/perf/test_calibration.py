"""Calibration: the published corpus, the factored fit, leave-one-source-out error bands, and measurements
(this project's own) entering the fit and beating the model where they match exactly."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.perf.calibration import (
    MEASURED_BAND,
    Band,
    Calibration,
    band_for,
    build_bands,
    calibrate,
    load_fit,
    resolve_all,
)
from apps.planner.perf.corpus import THROUGHPUT, MeasuredPoint, read_corpus
from apps.planner.perf.deployment import Deployment
from apps.planner.perf.efficiency import EfficiencyModel, Levels
from apps.planner.perf.predict import predict, predict_point
from apps.planner.perf.step import levels_of

HELD_BACK = re.compile(
    r"dev-docker|dstack|pull/4766|TensorRT-LLM/(blob|tree)/v0\.([0-9]|1[0-9]|20)\.|sglang.*v0\.3",
    re.IGNORECASE,
)


def test_corpus_has_broad_published_coverage_with_sources() -> None:
    rows = read_corpus()

    assert len(rows) >= 250
    assert {r.engine for r in rows} >= {"vllm", "sglang", "trtllm", "tgi", "llamacpp"}
    assert {r.load for r in rows} >= {"offline", "concurrency", "single"}
    assert {r.metric for r in rows} >= {"output_tokens_per_s", "ttft_ms", "tpot_ms"}
    precisions = {r.weight_precision for r in rows}
    assert precisions >= {"bf16", "fp16", "fp8", "nvfp4", "mxfp4", "gguf-q4_k_m"}
    assert precisions & {"awq-int4", "gptq-int4", "w4a16"}
    assert {r.tp for r in rows} >= {1, 2, 4, 8}
    assert {r.gpu_slug for r in rows} >= {
        "a100-80gb",
        "l40s",
        "rtx-4090",
        "h100-sxm",
        "h200",
        "b200",
        "mi300x",
        "mi325x",
    }
    for row in rows:
        assert row.source_url.startswith("http"), row.id
        assert row.source_ref, row.id
        assert row.read_how, row.id
        assert not HELD_BACK.search(row.source_url), row.id


def test_every_row_either_resolves_or_says_why(catalog: CatalogSnapshot) -> None:
    resolved, skipped, why = resolve_all(read_corpus(), catalog)

    assert len(resolved) >= 250
    assert sum(skipped.values()) == len(why)
    assert all(reason for _, reason in why)
    kinds = Counter(r.target.kind for r in resolved)
    assert kinds[THROUGHPUT] >= 200
    assert kinds["ttft_ms"] >= 20
    assert kinds["tpot_ms"] >= 20


def test_shipped_fit_is_the_fit_of_this_corpus_and_catalog(catalog: CatalogSnapshot) -> None:
    """`manage.py calibration_report --write` refreshes it; a stale file would silently be refitted."""
    shipped = load_fit(catalog)

    assert shipped is not None
    assert shipped.model.basis == "fitted"
    assert shipped.cv[THROUGHPUT]["rows"] >= 200


def test_fitted_efficiencies_are_physical(catalog: CatalogSnapshot, calibration: Calibration) -> None:
    for engine, gpu, quant in [
        ("trtllm", "h100-sxm", "fp8"),
        ("vllm", "h100-sxm", "bf16"),
        ("sglang", "mi300x", "fp8"),
        ("vllm", "a100-80gb", "bf16"),
        ("llamacpp", "rtx-4090", "gguf-q4_k_m"),
    ]:
        dep = Deployment(catalog.model("llama-3.1-8b"), catalog.gpu(gpu), catalog.quantization(quant), engine)
        eff = calibration.efficiency(levels_of(dep))
        assert 0.05 < eff.mbu < 0.98, (engine, gpu)
        assert 0.02 < eff.mfu < 0.95, (engine, gpu)
        assert 0.0 < eff.step_overhead_ms < 100.0, (engine, gpu)


def test_an_unseen_combination_gets_its_engine_part_plus_its_hardware_part(catalog: CatalogSnapshot) -> None:
    """No transfer of one engine's fit to another: effects add up, and an unseen level contributes nothing."""
    model = EfficiencyModel(
        intercepts={**EfficiencyModel.prior().intercepts},
        effects={
            **{k: {} for k in EfficiencyModel.prior().effects},
            "mbu": {"engine=vllm": 0.3, "architecture=blackwell": -0.2, "engine=trtllm": 0.9},
        },
        slopes={k: {} for k in EfficiencyModel.prior().slopes},
        evidence={"engine=vllm": 40},
        basis="fitted",
    )
    levels = Levels("vllm", "blackwell", "b200", "fp8", moe=False, tp=1, link="")
    prior = EfficiencyModel.prior().efficiency(levels)

    eff = model.efficiency(levels)

    expected_eta = model.intercepts["mbu"] + 0.3 - 0.2
    assert eff.mbu == pytest.approx(0.98 / (1 + math.exp(-expected_eta)))
    assert eff.mbu != prior.mbu
    assert eff.evidence["engine"] == 40
    assert eff.evidence["engine x architecture"] == 0


def test_bands_come_from_the_most_specific_group_with_enough_rows() -> None:
    groups = [("vllm", "hopper", "fp8", THROUGHPUT)] * 6 + [("tgi", "ada", "16-bit", THROUGHPUT)] * 2
    apes = [0.1, 0.2, 0.1, 0.3, 0.05, 0.1, 0.9, 0.8]

    bands = build_bands(groups, apes)

    specific = band_for(bands, Levels("vllm", "hopper", "h100-sxm", "fp8", False, 1, ""), THROUGHPUT)
    thin = band_for(bands, Levels("tgi", "ada", "l40s", "16-bit", False, 1, ""), THROUGHPUT)
    assert specific.group == "vllm / hopper / fp8 / output_tokens_per_s"
    assert specific.rows == 6
    assert specific.median_ape == pytest.approx(float(np.median(apes[:6])))
    assert thin.group == THROUGHPUT  # two rows are too few for its own band: the metric's pool stands in
    assert thin.rows == 8


def _synthetic(catalog: CatalogSnapshot, calibration: Calibration, scale: float) -> list[MeasuredPoint]:
    """What a benchmark of vLLM BF16 on an L4 would measure if it ran `scale` times the model's prediction."""
    points = []
    for isl, osl, concurrency in [(128, 1024, None), (2000, 200, None), (1000, 1000, 32), (500, 500, 1)]:
        dep = Deployment(
            catalog.model("llama-3.1-8b"), catalog.gpu("l4"), catalog.quantization("bf16"), "vllm"
        )
        base = predict(
            dep, calibration.efficiency(levels_of(dep)), {}, isl=isl, osl=osl, concurrency=concurrency
        )
        points.append(
            MeasuredPoint(
                "llama-3.1-8b",
                "l4",
                "vllm",
                "bf16",
                1,
                isl,
                osl,
                concurrency,
                base.output_tokens_per_s * scale,
                None,
                None,
                f"synthetic {isl}/{osl}",
            )
        )
    return points


def test_measurements_enter_the_fit_and_move_its_predictions_towards_them(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    points = _synthetic(catalog, calibration, scale=1.5)
    dep = Deployment(catalog.model("llama-3.1-8b"), catalog.gpu("l4"), catalog.quantization("bf16"), "vllm")

    with_points = calibrate(catalog, points)

    before = predict(dep, calibration.efficiency(levels_of(dep)), {}, isl=1000, osl=500, concurrency=16)
    after = predict(dep, with_points.efficiency(levels_of(dep)), {}, isl=1000, osl=500, concurrency=16)
    assert with_points.measured_rows == len(points)
    assert after.output_tokens_per_s > before.output_tokens_per_s * 1.2
    # Only their own levels move much: another engine on another GPU stays where it was.
    other = Deployment(
        catalog.model("llama-3.1-8b"), catalog.gpu("h100-sxm"), catalog.quantization("fp8"), "trtllm"
    )
    a = predict(other, calibration.efficiency(levels_of(other)), {}, isl=1000, osl=500, concurrency=16)
    b = predict(other, with_points.efficiency(levels_of(other)), {}, isl=1000, osl=500, concurrency=16)
    assert b.output_tokens_per_s == pytest.approx(a.output_tokens_per_s, rel=0.05)


def test_a_lone_measurement_of_an_unpublished_family_keeps_every_number_finite(
    catalog: CatalogSnapshot,
) -> None:
    """Issue #15's first defect: two levels of a family with no published rows once made the error NaN."""
    points = [
        MeasuredPoint(
            "llama-3.1-8b", "t4", "vllm", "fp16", 1, 512, 128, c, 400.0 * c**0.5, 90.0, 25.0, "run 7"
        )
        for c in (1, 8)
    ]

    fitted = calibrate(catalog, points)

    levels = Levels("vllm", "turing", "t4", "16-bit", False, 1, "")
    eff = fitted.efficiency(levels)
    assert all(math.isfinite(v) for v in (eff.mbu, eff.mfu, eff.step_overhead_ms, eff.seq_overhead_us))
    band = fitted.band(levels, THROUGHPUT)
    assert math.isfinite(band.median_ape)
    assert math.isfinite(band.p90_ape)


def test_measurement_of_the_same_configuration_wins_and_is_labelled_measured(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    dep = Deployment(
        catalog.model("llama-3.1-8b"), catalog.gpu("l40s"), catalog.quantization("fp8"), "vllm", 1
    )
    point = MeasuredPoint("llama-3.1-8b", "l40s", "vllm", "fp8", 1, 1000, 200, 16, 1234.5, 88.0, 21.0,
                          "benchmark run 42 on l40s-host")  # fmt: skip
    with_point = replace(calibration, points=(*calibration.points, point))

    measured = predict_point(with_point, dep, isl=1000, osl=200, concurrency=16)
    other_lengths = predict_point(with_point, dep, isl=4000, osl=200, concurrency=16)
    model_only = predict_point(calibration, dep, isl=1000, osl=200, concurrency=16)

    assert (measured.source, measured.output_tokens_per_s, measured.ttft_ms) == ("measured", 1234.5, 88.0)
    assert measured.error_band_rel == MEASURED_BAND
    assert "benchmark run 42" in measured.basis
    assert other_lengths.source == "predicted"
    assert model_only.source == "predicted"
    assert model_only.output_tokens_per_s != 1234.5
    assert isinstance(model_only.bands[THROUGHPUT], Band)
    assert model_only.bands[THROUGHPUT].rows > 0


def test_leave_one_source_out_error_holds_its_reported_figures(catalog: CatalogSnapshot) -> None:
    """The cross-validation behind every band: rerun from the corpus, it reproduces the shipped figures, and
    they stay at or below the levels reached (issue #10's targets are 12%/35% for throughput and 20%/50% for
    TTFT and TPOT; the closing note says which are met)."""
    from apps.planner.perf.calibration import calibrate_published

    fresh, _, _, _ = calibrate_published(catalog)
    shipped = load_fit(catalog)

    assert shipped is not None
    for kind, figures in fresh.cv.items():
        assert figures["median_ape"] == pytest.approx(shipped.cv[kind]["median_ape"], rel=1e-6), kind
    cv = fresh.cv
    assert cv[THROUGHPUT]["rows"] >= 600
    assert cv[THROUGHPUT]["median_ape"] <= 0.13
    assert cv[THROUGHPUT]["p90_ape"] <= 0.44
    assert cv["tpot_ms"]["rows"] >= 150
    assert cv["tpot_ms"]["median_ape"] <= 0.18
    assert cv["tpot_ms"]["p90_ape"] <= 0.60
    assert cv["ttft_ms"]["rows"] >= 100
    assert cv["ttft_ms"]["median_ape"] <= 0.26
    assert cv["ttft_ms"]["p90_ape"] <= 0.70
