"""Calibration: the fit to published benchmarks, leave-one-out, priors, and measured data winning."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from apps.catalog.specs import CatalogSnapshot
from apps.planner.calc import Deployment, Efficiency, build_perf_model, steady_state
from apps.planner.calibration import (
    ENGINE_PRIORS,
    MEASURED_BAND,
    Calibration,
    MeasuredPoint,
    calibrate,
    calibration_report,
    load_published_points,
    predict_point,
)


def test_shipped_set_fits_within_15_percent_median_ape_in_sample(calibration: Calibration) -> None:
    key = calibration.keys["trtllm/hopper/fp8"]

    assert key.fit.n_points == 16
    assert key.in_sample["median_ape"] <= 0.15
    # Leave-one-out refits without each row; it is reported beside the in-sample figure and cannot be better
    # than it by construction of least squares on these rows (allowing for the prior's pull).
    assert key.leave_one_out["median_ape"] >= key.in_sample["median_ape"] * 0.9
    assert math.isfinite(key.leave_one_out["p90_ape"])


def test_fitted_efficiencies_are_physical(calibration: Calibration) -> None:
    fit = calibration.keys["trtllm/hopper/fp8"].fit

    assert 0.4 < fit.mbu < 0.9
    assert 0.3 < fit.mfu < 0.8
    assert 0.0 <= fit.step_overhead_ms < 10.0
    assert fit.mbu <= fit.attention_mbu < 0.96


def test_report_lists_every_row_with_predicted_and_measured(calibration: Calibration) -> None:
    report = calibration_report(calibration)

    (key,) = report["keys"]
    assert len(key["rows"]) == len(load_published_points())
    for row in key["rows"]:
        assert row["ape"] == pytest.approx(
            abs(row["predicted_tokens_per_s"] - row["measured_tokens_per_s"]) / row["measured_tokens_per_s"],
            abs=1e-3,
        )
        assert row["loo_predicted_tokens_per_s"] is not None


def test_keys_without_data_fall_back_to_priors_with_a_wider_band(
    catalog: CatalogSnapshot, calibration: Calibration
) -> None:
    fitted = calibration.efficiency("trtllm", catalog.gpu("h100-sxm"), catalog.quantization("fp8"))
    transferred = calibration.efficiency("trtllm", catalog.gpu("h100-sxm"), catalog.quantization("bf16"))
    prior = calibration.efficiency("vllm", catalog.gpu("a100-80gb"), catalog.quantization("bf16"))
    llamacpp = calibration.efficiency("llamacpp", catalog.gpu("cpu"), catalog.quantization("gguf-q4_k_m"))

    assert fitted.basis == "fitted"
    assert transferred.basis.startswith("transferred from trtllm/hopper/fp8")
    assert prior.basis == "prior"
    assert prior.mbu == ENGINE_PRIORS["vllm"].mbu
    assert fitted.error_band_rel < transferred.error_band_rel < prior.error_band_rel < llamacpp.error_band_rel
    assert prior.calibration_key == "vllm/ampere/bf16"


def _synthetic_points(catalog: CatalogSnapshot, truth: Efficiency) -> list[MeasuredPoint]:
    """What a benchmark of vLLM BF16 on A100 would measure if its efficiencies were `truth`."""
    points = []
    for model, tp, isl, osl, concurrency in [
        ("llama-3.1-8b", 1, 128, 1024, None),
        ("llama-3.1-8b", 1, 2000, 200, None),
        ("llama-3.1-8b", 1, 1000, 1000, 32),
        ("llama-3.1-8b", 1, 500, 500, 1),
        ("qwen2.5-7b", 1, 4000, 400, 8),
        ("llama-3.1-70b", 4, 1000, 1000, None),
        ("llama-3.1-70b", 4, 2000, 500, 16),
    ]:
        dep = Deployment(
            catalog.model(model), catalog.gpu("a100-80gb"), catalog.quantization("bf16"), "vllm", tp
        )
        seqs = None if concurrency else dep.profile.offline_max_num_seqs
        perf = build_perf_model(dep, truth, context_tokens=isl + osl, max_num_seqs=seqs)
        state = steady_state(perf, isl, osl, concurrency)
        points.append(
            MeasuredPoint(
                model,
                "a100-80gb",
                "vllm",
                "bf16",
                tp,
                isl,
                osl,
                concurrency,
                state.output_tokens_per_s,
                state.ttft_ms,
                state.tpot_ms,
                "synthetic",
            )
        )
    return points


def test_measured_points_are_fitted_and_recover_the_efficiencies_behind_them(
    catalog: CatalogSnapshot,
) -> None:
    truth = Efficiency(0.55, 0.45, 3.0, 0.75, "truth", "truth", 0.0)
    points = _synthetic_points(catalog, truth)

    fitted = calibrate(catalog, points, include_published=False)

    key = fitted.keys["vllm/ampere/bf16"]
    assert key.in_sample["median_ape"] < 0.02
    assert key.fit.mbu == pytest.approx(truth.mbu, rel=0.1)
    assert key.fit.mfu == pytest.approx(truth.mfu, rel=0.1)
    eff = fitted.efficiency("vllm", catalog.gpu("a100-80gb"), catalog.quantization("bf16"))
    assert eff.basis == "fitted"
    assert eff.n_points == len(points)


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


def test_published_rows_load_with_their_conditions() -> None:
    points = {p.point_id: p for p in load_published_points()}

    assert len(points) == 16
    assert points["31"].concurrency == 250
    assert points["1"].concurrency is None
    assert points["22"].tp == 8
    assert points["22"].gpu_count == 8
    assert points["26"].ttft_p50_ms == pytest.approx(406.77)
