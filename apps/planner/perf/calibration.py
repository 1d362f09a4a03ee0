"""Calibration: fit the factored efficiencies (efficiency.py) to the corpus, measure the model's error by
leave-one-source-out cross-validation, and hand out efficiencies with their measured error band.

Fit. Every resolvable corpus row becomes a deployment with fixed geometry; the efficiencies are transformed
linear predictors over the row's factor levels (engine, architecture, GPU, precision, their interactions, MoE,
TP). The coefficients minimise

    sum_rows w_row * (log predicted - log published)^2 / sd_kind^2  +  sum_coefficients (coef / width)^2

by damped Gauss-Newton: the second term is the shrinkage towards pooled values that keeps thinly evidenced
levels near the average. w_row = 1 / sqrt(rows of that source) stops one large table from drowning the others.

Error. Each source (one publication) is left out in turn, the model is refitted without it, and its rows are
predicted. The absolute percentage errors of those out-of-source predictions, grouped by engine x GPU
architecture x precision x metric (with coarser fall-backs where a group is thin), are the error bands every
prediction carries, with the number of rows behind them.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from apps.catalog.specs import DATA_DIR, CatalogSnapshot, load_snapshot
from apps.planner.perf.corpus import (
    DECODE_RATE,
    E2E,
    KINDS,
    PREFILL_RATE,
    THROUGHPUT,
    TPOT,
    TTFT,
    CorpusRow,
    MeasuredPoint,
    Target,
    corpus_digest,
    measured_rows,
    published_points,
    read_corpus,
)
from apps.planner.perf.deployment import Deployment, UnsupportedCombination
from apps.planner.perf.efficiency import (
    EVIDENCE_FACTORS,
    FACTOR_WIDTH,
    INTERCEPT_WIDTH,
    PARAMETER_NAMES,
    PARAMETERS,
    SLOPE_WIDTH,
    Efficiency,
    EfficiencyModel,
    Levels,
)
from apps.planner.perf.steady import fixed_lengths, single_sequence, stacked_fields
from apps.planner.perf.step import StepModel, build_step_model, levels_of

FloatArray = npt.NDArray[np.float64]
FIT_PATH = DATA_DIR / "calibration_fit.json"
MODEL_VERSION = "factored-4"

# How far a published figure may sit from the truth of its stated conditions (run-to-run spread, unstated
# settings), per kind, in log terms: TPOT averages thousands of steps and is as steady as throughput; TTFT
# carries queueing and the client's own timing, and is noisier.
KIND_SD = {THROUGHPUT: 0.10, TTFT: 0.15, TPOT: 0.10, E2E: 0.15, PREFILL_RATE: 0.12, DECODE_RATE: 0.10}
MEASURED_WEIGHT = 4.0  # this project's own runs, on the team's own hardware, count four times a published row
MIN_GROUP_ROWS = 5  # an error band needs at least this many out-of-source rows behind it
MEASURED_BAND = 0.05  # run-to-run spread of a repeated benchmark: the band of a measured figure


@dataclass(frozen=True)
class ResolvedRow:
    row: CorpusRow
    target: Target
    deployment: Deployment
    geometry: StepModel  # built with prior efficiencies; the fit replaces them
    levels: Levels
    replicas: int
    concurrency_per_replica: float  # inf: offline

    @property
    def group(self) -> tuple[str, str, str, str]:
        return (self.levels.engine, self.levels.architecture, self.levels.precision, self.target.kind)


def resolve(row: CorpusRow, catalog: CatalogSnapshot) -> ResolvedRow | str:
    """The row as a deployment the model can evaluate, or why it cannot be."""
    target = row.target()
    if isinstance(target, str):
        return target
    try:
        model = catalog.model(row.model)
        gpu = catalog.gpu(row.gpu_slug)
        quant = catalog.quantization(row.quant)
    except KeyError as exc:
        return f"not in the catalog: {exc.args[0].split(';')[0]}"
    tp, dp, pp, ep, replicas = row.parallelism(moe=bool(model.num_experts))
    dep = Deployment(
        model=model,
        gpu=gpu,
        quant=quant,
        engine=row.engine,
        tp=tp,
        pp=pp,
        dp=dp,
        ep=ep,
        kv_bytes_per_element=row.kv_bytes_per_element,
        max_num_seqs=row.max_num_seqs,
    )
    isl, osl = max(1, round(row.isl or 1)), max(1, round(row.osl or 1))  # target() checked both are stated
    seqs = row.max_num_seqs or dep.profile.offline_max_num_seqs
    if row.load == "concurrency" and row.concurrency:
        seqs = max(seqs, math.ceil(row.concurrency / replicas))
    levels = levels_of(dep, precision=row.weight_precision, engine_version=row.engine_version)
    prior = EfficiencyModel.prior().efficiency(levels)
    try:
        geometry = build_step_model(dep, prior, context_tokens=isl + osl, max_num_seqs=seqs)
    except UnsupportedCombination as exc:
        return f"unsupported: {exc}"
    assert geometry.memory is not None
    if not geometry.memory.fits:
        return f"model says it does not fit: {geometry.memory.reason}"
    concurrency = math.inf
    if row.load == "concurrency" and row.concurrency:
        concurrency = math.ceil(row.concurrency / replicas)
    elif row.load == "single":
        concurrency = 1.0
    return ResolvedRow(row, target, dep, geometry, levels, replicas, concurrency)


# --------------------------------------------------------------------------------------------------------------
# Vectorised evaluation of every row at once


_GEOMETRY_FIELDS = tuple(
    f.name
    for f in fields(StepModel)
    if f.name not in {"deployment", "memory", "efficiency", *PARAMETER_NAMES}
    and f.name not in {"overhead_s", "seq_overhead_s", "link_latency_s", "request_overhead_s", "expert_mbu"}
)


@dataclass(frozen=True)
class Design:
    """The rows as arrays: stacked geometry, one design matrix per efficiency parameter, and the targets."""

    rows: tuple[ResolvedRow, ...]
    geometry: dict[str, FloatArray]
    columns: dict[str, tuple[str, ...]]  # per parameter: effect columns then slope names
    matrices: dict[str, FloatArray]
    kinds: npt.NDArray[np.str_]
    measured: FloatArray
    isl: FloatArray
    osl: FloatArray
    concurrency: FloatArray
    replicas: FloatArray
    weights: FloatArray  # per row, before the kind's sd

    @property
    def n_coefficients(self) -> int:
        return sum(1 + len(self.columns[p]) for p in PARAMETER_NAMES)


def build_design(rows: Sequence[ResolvedRow], columns: dict[str, tuple[str, ...]] | None = None) -> Design:
    geometry = stacked_fields([r.geometry for r in rows], _GEOMETRY_FIELDS)
    if columns is None:
        columns = {}
        for p in PARAMETERS:
            effect_columns = sorted({c for r in rows for c in r.levels.columns(p.factors)})
            columns[p.name] = (*effect_columns, *p.slopes)
    matrices = {}
    for p in PARAMETERS:
        index = {c: i for i, c in enumerate(columns[p.name])}
        matrix = np.zeros((len(rows), len(columns[p.name])))
        for i, r in enumerate(rows):
            for c in r.levels.columns(p.factors):
                if c in index:
                    matrix[i, index[c]] = 1.0
            for name, x in r.levels.slope_values(p.slopes).items():
                matrix[i, index[name]] = x
        matrices[p.name] = matrix
    per_source = Counter(r.row.source_id for r in rows)
    weights = np.asarray(
        [
            (MEASURED_WEIGHT if r.row.origin == "measured" else 1.0) / math.sqrt(per_source[r.row.source_id])
            for r in rows
        ]
    )
    return Design(
        rows=tuple(rows),
        geometry=geometry,
        columns=columns,
        matrices=matrices,
        kinds=np.asarray([r.target.kind for r in rows]),
        measured=np.asarray([r.target.value for r in rows]),
        isl=np.asarray([max(1.0, round(r.row.isl or 1)) for r in rows], dtype=np.float64),
        osl=np.asarray([max(1.0, round(r.row.osl or 1)) for r in rows], dtype=np.float64),
        concurrency=np.asarray([r.concurrency_per_replica for r in rows], dtype=np.float64),
        replicas=np.asarray([r.replicas for r in rows], dtype=np.float64),
        weights=weights,
    )


def _split(theta: FloatArray, design: Design) -> dict[str, tuple[float, FloatArray]]:
    """theta -> per parameter (intercept, coefficients of its columns)."""
    out, at = {}, 0
    for name in PARAMETER_NAMES:
        n = len(design.columns[name])
        out[name] = (float(theta[at]), theta[at + 1 : at + 1 + n])
        at += 1 + n
    return out


def _etas(theta: FloatArray, design: Design) -> dict[str, FloatArray]:
    return {name: icpt + design.matrices[name] @ coef for name, (icpt, coef) in _split(theta, design).items()}


def evaluate(design: Design, etas: dict[str, FloatArray]) -> FloatArray:
    """Every row's prediction, in its target's units."""
    values = {p.name: p.value(etas[p.name]) for p in PARAMETERS}
    step = StepModel(
        **design.geometry,  # type: ignore[arg-type]
        mbu=values["mbu"],
        expert_mbu=values["mbu"] * values["expert_mbu_ratio"],
        mfu=values["mfu"],
        attention_mbu=values["attention_mbu"],
        overhead_s=values["step_overhead_ms"] / 1e3,
        seq_overhead_s=values["seq_overhead_us"] / 1e6,
        link_latency_s=values["link_latency_us"] / 1e6,
        link_efficiency=values["link_efficiency"],
        request_overhead_s=values["request_overhead_ms"] / 1e3,
    )
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        state = fixed_lengths(step, design.isl, design.osl, design.concurrency)
        prefill_rate, decode_rate = single_sequence(step, design.isl, design.osl)
    kinds = design.kinds
    return np.select(
        [
            kinds == THROUGHPUT,
            kinds == TTFT,
            kinds == TPOT,
            kinds == E2E,
            kinds == PREFILL_RATE,
            kinds == DECODE_RATE,
        ],
        [
            state.output_tokens_per_s * design.replicas,
            state.ttft_s * 1e3,
            state.tpot_s * 1e3,
            (state.ttft_s + (design.osl - 1.0) * state.tpot_s) * 1e3,
            prefill_rate,
            decode_rate,
        ],
        default=np.nan,
    )


# --------------------------------------------------------------------------------------------------------------
# Fit


def _prior_vectors(design: Design) -> tuple[FloatArray, FloatArray]:
    """(prior mean, prior width) of every coefficient: intercepts at the physical priors, effects at zero."""
    means, widths = [], []
    for p in PARAMETERS:
        means.append(p.eta(p.prior))
        widths.append(INTERCEPT_WIDTH)
        for column in design.columns[p.name]:
            means.append(0.0)
            factor = column.split("=", 1)[0]
            widths.append(FACTOR_WIDTH.get(factor, SLOPE_WIDTH.get(column, 0.3)))
    return np.asarray(means), np.asarray(widths)


def _residuals(design: Design, predicted: FloatArray, mask: FloatArray) -> FloatArray:
    sd = np.asarray([KIND_SD[k] for k in design.kinds])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(np.maximum(predicted, 1e-12) / design.measured) / sd * np.sqrt(design.weights)
    out: FloatArray = np.where(mask & np.isfinite(r), r, 0.0)
    return out


def fit(
    design: Design,
    *,
    mask: FloatArray | None = None,
    start: FloatArray | None = None,
    max_iterations: int = 200,
    tolerance: float = 1e-10,
) -> FloatArray:
    """Damped Gauss-Newton (Levenberg-Marquardt) on the rows where mask is true; returns theta.

    Stops when a step lowers the cost by less than `tolerance` of it. The tolerance is tight on purpose: near
    the optimum the damped steps are short, and a loose one stops a fold of the cross-validation close to its
    warm start, the full fit, which has seen the held-out source (the cross-validated error then leaks)."""
    row_mask = np.ones(len(design.rows), dtype=bool) if mask is None else mask
    prior_mean, prior_width = _prior_vectors(design)
    theta = prior_mean.copy() if start is None else start.copy()
    h = 1e-4

    def objective(t: FloatArray) -> tuple[FloatArray, FloatArray, dict[str, FloatArray]]:
        etas = _etas(t, design)
        r = _residuals(design, evaluate(design, etas), row_mask)
        return r, (t - prior_mean) / prior_width, etas

    r, pr, etas = objective(theta)
    cost = float(r @ r + pr @ pr)
    damping = 1e-3
    for _ in range(max_iterations):
        # Jacobian by the chain rule: d r / d theta = sum_p diag(d r / d eta_p) X_p, with d r / d eta_p from one
        # perturbed evaluation per parameter (every row at once).
        blocks = []
        for name in PARAMETER_NAMES:
            shifted = dict(etas)
            shifted[name] = etas[name] + h
            dr = (_residuals(design, evaluate(design, shifted), row_mask) - r) / h
            blocks.append(dr[:, None])
            blocks.append(dr[:, None] * design.matrices[name])
        jac = np.hstack(blocks)
        jtj = jac.T @ jac + np.diag(1.0 / prior_width**2)
        grad = jac.T @ r + pr / prior_width
        improved = False
        for _attempt in range(8):
            step = np.linalg.solve(jtj + damping * np.diag(np.diag(jtj)), -grad)
            candidate = theta + step
            r_new, pr_new, etas_new = objective(candidate)
            new_cost = float(r_new @ r_new + pr_new @ pr_new)
            if new_cost < cost:
                improved = cost - new_cost > tolerance * max(cost, 1.0)
                theta, r, pr, etas, cost = candidate, r_new, pr_new, etas_new, new_cost
                damping = max(damping / 4.0, 1e-7)
                break
            damping *= 8.0
        if not improved:
            break
    return theta


def model_from_theta(theta: FloatArray, design: Design) -> EfficiencyModel:
    parts = _split(theta, design)
    effects: dict[str, dict[str, float]] = {}
    slopes: dict[str, dict[str, float]] = {}
    intercepts: dict[str, float] = {}
    for p in PARAMETERS:
        icpt, coef = parts[p.name]
        intercepts[p.name] = icpt
        effects[p.name] = {}
        slopes[p.name] = {}
        for column, value in zip(design.columns[p.name], coef, strict=True):
            if column in p.slopes:
                slopes[p.name][column] = float(value)
            elif abs(value) > 1e-9:
                effects[p.name][column] = float(value)
    evidence: Counter[str] = Counter()
    for r in design.rows:
        for column in r.levels.columns(EVIDENCE_FACTORS):
            evidence[column] += 1
    return EfficiencyModel(intercepts, effects, slopes, dict(evidence), "fitted")


# --------------------------------------------------------------------------------------------------------------
# Cross-validation and error bands


@dataclass(frozen=True)
class Band:
    """Cross-validated error of the group a prediction falls in: |predicted - published| / published."""

    median_ape: float
    p90_ape: float
    rows: int  # out-of-source predictions behind the figures
    group: str  # which group the band comes from, e.g. "vllm / hopper / fp8 / output_tokens_per_s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ape": round(self.median_ape, 4),
            "p90_ape": round(self.p90_ape, 4),
            "rows": self.rows,
            "group": self.group,
        }


def _summary(apes: Sequence[float]) -> tuple[float, float]:
    values = np.asarray([a for a in apes if math.isfinite(a)])
    if not values.size:
        return math.nan, math.nan
    return float(np.median(values)), float(np.percentile(values, 90))


# Coarser and coarser groups: (engine, architecture, precision, kind) -> (engine, architecture, kind) ->
# (engine, kind) -> (kind).
_LEVELS_OF_DETAIL = ((0, 1, 2, 3), (0, 1, 3), (0, 3), (3,))


def build_bands(groups: Sequence[tuple[str, str, str, str]], apes: Sequence[float]) -> dict[str, Band]:
    table: dict[str, Band] = {}
    for detail in _LEVELS_OF_DETAIL:
        pooled: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for group, ape in zip(groups, apes, strict=True):
            if math.isfinite(ape):
                pooled[tuple(group[i] for i in detail)].append(ape)
        for key, values in pooled.items():
            if len(values) >= MIN_GROUP_ROWS or detail == (3,):
                median, p90 = _summary(values)
                label = " / ".join(key)
                table[label] = Band(median, p90, len(values), label)
    return table


def band_for(bands: dict[str, Band], levels: Levels, kind: str) -> Band:
    """The band of the most specific group with enough out-of-source rows."""
    group = (levels.engine, levels.architecture, levels.precision, kind)
    for detail in _LEVELS_OF_DETAIL:
        label = " / ".join(group[i] for i in detail)
        if label in bands:
            return bands[label]
    return Band(0.5, 1.0, 0, "no cross-validated rows")


@dataclass
class Calibration:
    """The fitted efficiency model, the rows it was fitted on, and the cross-validated error bands."""

    model: EfficiencyModel
    bands: dict[str, Band]
    corpus_rows: int  # published rows resolved
    measured_rows: int  # this project's measurements used
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    cv: dict[str, Any] = field(default_factory=dict)  # summary of the cross-validation
    points: tuple[MeasuredPoint, ...] = ()  # this project's measurements (the team's and shared ones)
    fingerprint: str = ""
    _efficiencies: dict[Levels, Efficiency] = field(default_factory=dict, repr=False, compare=False)

    def efficiency(self, levels: Levels) -> Efficiency:
        cached = self._efficiencies.get(levels)
        if cached is None:
            cached = self._efficiencies[levels] = self.model.efficiency(levels)
        return cached

    def band(self, levels: Levels, kind: str = THROUGHPUT) -> Band:
        return band_for(self.bands, levels, kind)

    def measured_match(
        self,
        *,
        model: str,
        gpu: str,
        engine: str,
        quant: str,
        tp: int,
        isl: int,
        osl: int,
        concurrency: int | None,
        gpu_count: int,
    ) -> MeasuredPoint | None:
        """A measurement of exactly this configuration (lengths within 2%): this project's own first, newest
        first, then a published figure."""
        for point in (*reversed(self.points), *_published_points()):
            if (
                (point.model_slug, point.gpu_slug, point.engine, point.quant, point.tp)
                == (model, gpu, engine, quant, tp)
                and (point.gpu_count or point.tp) == gpu_count
                and point.concurrency == concurrency
                and abs(point.isl - isl) <= 0.02 * isl
                and abs(point.osl - osl) <= 0.02 * osl
            ):
                return point
        return None


def resolve_all(
    rows: Iterable[CorpusRow], catalog: CatalogSnapshot
) -> tuple[list[ResolvedRow], dict[str, int], list[tuple[CorpusRow, str]]]:
    resolved: list[ResolvedRow] = []
    skipped: Counter[str] = Counter()
    why: list[tuple[CorpusRow, str]] = []
    for row in rows:
        result = resolve(row, catalog)
        if isinstance(result, str):
            reason = result.split(":")[0]
            skipped[reason] += 1
            why.append((row, result))
        else:
            resolved.append(result)
    return resolved, dict(skipped), why


def cross_validate(design: Design, theta: FloatArray) -> FloatArray:
    """Leave-one-source-out predictions of every row (warm-started from the full fit)."""
    sources = np.asarray([r.row.source_id for r in design.rows])
    out = np.full(len(design.rows), np.nan)
    for source in np.unique(sources):
        held = sources == source
        held_theta = fit(design, mask=~held, start=theta)
        predicted = evaluate(design, _etas(held_theta, design))
        out[held] = predicted[held]
    return out


def _fingerprint(catalog: CatalogSnapshot) -> str:
    import hashlib

    # By slug, so the same catalog read from the files or from the database (ordered differently) matches.
    text = repr(
        [
            sorted(catalog.gpus, key=lambda g: g.slug),
            sorted(catalog.models, key=lambda m: m.slug),
            sorted(catalog.quantizations, key=lambda q: q.slug),
        ]
    )
    return f"{MODEL_VERSION}:{corpus_digest()}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def calibrate_published(
    catalog: CatalogSnapshot, *, cross_validation: bool = True
) -> tuple[Calibration, Design, FloatArray, FloatArray]:
    """Fit on the published corpus; with cross_validation, also the leave-one-source-out predictions."""
    resolved, skipped, _ = resolve_all(read_corpus(), catalog)
    design = build_design(resolved)
    theta = fit(design)
    loso = cross_validate(design, theta) if cross_validation else np.full(len(resolved), np.nan)
    apes = np.abs(loso / design.measured - 1.0)
    bands = build_bands([r.group for r in resolved], apes.tolist())
    summary = {}
    for kind in KINDS:
        selected = apes[(design.kinds == kind) & np.isfinite(apes)]
        if selected.size:
            summary[kind] = {
                "rows": int(selected.size),
                "median_ape": float(np.median(selected)),
                "p90_ape": float(np.percentile(selected, 90)),
            }
    calibration = Calibration(
        model=model_from_theta(theta, design),
        bands=bands,
        corpus_rows=len(resolved),
        measured_rows=0,
        skipped=skipped,
        cv=summary,
        fingerprint=_fingerprint(catalog),
    )
    return calibration, design, theta, loso


def save_fit(calibration: Calibration, path: Path = FIT_PATH) -> None:
    payload = {
        "fingerprint": calibration.fingerprint,
        "model": calibration.model.to_dict(),
        "bands": {k: v.to_dict() for k, v in sorted(calibration.bands.items())},
        "corpus_rows": calibration.corpus_rows,
        "skipped": calibration.skipped,
        "cv": calibration.cv,
    }
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def load_fit(catalog: CatalogSnapshot, path: Path = FIT_PATH) -> Calibration | None:
    """The shipped fit, if it was made from this corpus, catalog and model version."""
    if not path.exists():
        return None
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("fingerprint") != _fingerprint(catalog):
        return None
    return Calibration(
        model=EfficiencyModel.from_dict(payload["model"]),
        bands={
            k: Band(v["median_ape"], v["p90_ape"], v["rows"], v["group"]) for k, v in payload["bands"].items()
        },
        corpus_rows=int(payload["corpus_rows"]),
        measured_rows=0,
        skipped=dict(payload["skipped"]),
        cv=dict(payload["cv"]),
        fingerprint=str(payload["fingerprint"]),
    )


@lru_cache(maxsize=2)
def _published_cached(digest: str) -> tuple[MeasuredPoint, ...]:
    return tuple(published_points(read_corpus()))


def _published_points() -> tuple[MeasuredPoint, ...]:
    return _published_cached(corpus_digest())


def theta_from_model(model: EfficiencyModel, design: Design) -> FloatArray:
    """The coefficient vector of `design`'s layout holding `model`'s values (unseen columns at zero)."""
    values: list[float] = []
    for p in PARAMETERS:
        values.append(model.intercepts[p.name])
        for column in design.columns[p.name]:
            source = model.slopes[p.name] if column in p.slopes else model.effects[p.name]
            values.append(source.get(column, 0.0))
    return np.asarray(values)


@lru_cache(maxsize=4)
def published_calibration(catalog: CatalogSnapshot) -> Calibration:
    """The shipped fit when it matches this corpus and catalog, else a fresh fit (seconds) with its
    cross-validation (a minute): `manage.py calibration_report --write` refreshes the shipped file."""
    shipped = load_fit(catalog)
    if shipped is not None:
        return shipped
    calibration, _, _, _ = calibrate_published(catalog)
    return calibration


def calibrate(catalog: CatalogSnapshot | None = None, measured: Iterable[MeasuredPoint] = ()) -> Calibration:
    """Efficiencies and error bands for planning: the published fit, refitted with this project's own
    measurements when there are any (they count MEASURED_WEIGHT times a published row)."""
    snapshot = catalog or load_snapshot()
    return _with_measurements(snapshot, tuple(measured))


@lru_cache(maxsize=16)
def _with_measurements(catalog: CatalogSnapshot, points: tuple[MeasuredPoint, ...]) -> Calibration:
    base = published_calibration(catalog)
    if not points:
        return base
    own, _, _ = resolve_all(measured_rows(points), catalog)
    if not own:
        return replace(base, points=points, _efficiencies={})
    published, _, _ = resolve_all(read_corpus(), catalog)
    design = build_design([*published, *own])
    theta = fit(design, start=theta_from_model(base.model, design), max_iterations=6)
    return Calibration(
        model=model_from_theta(theta, design),
        bands=base.bands,
        corpus_rows=base.corpus_rows,
        measured_rows=len(own),
        skipped=base.skipped,
        cv=base.cv,
        points=points,
        fingerprint=base.fingerprint,
    )


# --------------------------------------------------------------------------------------------------------------
# Report


def _group_summary(groups: dict[tuple[str, ...], list[float]]) -> list[dict[str, Any]]:
    out = []
    for key, values in sorted(groups.items()):
        median, p90 = _summary(values)
        out.append({"group": " / ".join(key), "rows": len(values), "median_ape": median, "p90_ape": p90})
    return out


def calibration_report(catalog: CatalogSnapshot | None = None, *, worst: int = 15) -> dict[str, Any]:
    """Fit, leave-one-source-out cross-validation, and the figures: overall and per group (engine x GPU
    architecture x precision x metric), per source, and the worst rows."""
    snapshot = catalog or load_snapshot()
    calibration, design, theta, loso = calibrate_published(snapshot)
    in_sample = evaluate(design, _etas(theta, design))
    apes = np.abs(loso / design.measured - 1.0)
    by_group: dict[tuple[str, ...], list[float]] = defaultdict(list)
    by_source: dict[tuple[str, ...], list[float]] = defaultdict(list)
    by_engine: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for r, ape in zip(design.rows, apes, strict=True):
        if math.isfinite(ape):
            by_group[r.group].append(float(ape))
            by_source[(r.row.source_id, r.target.kind)].append(float(ape))
            by_engine[(r.levels.engine, r.target.kind)].append(float(ape))
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(design.rows):
        rows.append(
            {
                "id": r.row.id,
                "source_id": r.row.source_id,
                "engine": r.row.engine,
                "model": r.row.model_slug,
                "gpu": r.row.gpu_slug,
                "gpus": r.row.gpu_count,
                "parallelism": r.deployment.parallelism,
                "precision": r.row.weight_precision,
                "isl": r.row.isl,
                "osl": r.row.osl,
                "load": r.row.load,
                "concurrency": r.row.concurrency,
                "metric": r.target.kind,
                "published": r.target.value,
                "fitted": float(in_sample[i]),
                "cross_validated": float(loso[i]),
                "ape": float(apes[i]),
            }
        )
    ranked = sorted(
        (row for row in rows if math.isfinite(float(row["ape"]))), key=lambda row: -float(row["ape"])
    )
    return {
        "fingerprint": calibration.fingerprint,
        "method": "leave-one-source-out: each publication's rows predicted by a fit without that publication; "
        "APE = |predicted - published| / published",
        "overall": calibration.cv,
        "rows_used": len(design.rows),
        "rows_skipped": calibration.skipped,
        "by_group": _group_summary(by_group),
        "by_engine": _group_summary(by_engine),
        "by_source": _group_summary(by_source),
        "worst_rows": ranked[:worst],
        "rows": rows,
        "calibration": calibration,
    }


def cross_validated_predictions(catalog: CatalogSnapshot | None = None) -> dict[str, float]:
    """Corpus row id -> our leave-one-source-out prediction of that row's figure, in the row's own metric and
    statistic (for comparing with other predictors row by row)."""
    snapshot = catalog or load_snapshot()
    _, design, _, loso = calibrate_published(snapshot)
    out = {}
    for r, predicted in zip(design.rows, loso, strict=True):
        if not math.isfinite(predicted) or predicted <= 0:
            continue
        row, target = r.row, r.target
        if row.statistic == "per_user":  # the target is TPOT; the figure is tokens/s per user
            out[row.id] = 1000.0 / predicted
        else:
            out[row.id] = row.value * predicted / target.value
    return out
