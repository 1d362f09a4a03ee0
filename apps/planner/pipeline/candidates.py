"""Stage 1, candidates: every (engine, quantization, GPU, parallelism) the workload allows, with the priced
offers that can host one replica, and a rejection for everything the workload or the catalog rules out.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from apps.catalog.checkpoints import Checkpoint, Refusal, checkpoint_for
from apps.catalog.specs import CatalogSnapshot, GpuSpec, ModelSpec, OfferSpec, QuantSpec
from apps.planner.perf.deployment import (
    TP_DEGREES,
    Deployment,
    UnsupportedCombination,
    accelerator_kind,
    check_supported,
)
from apps.planner.pipeline.workload import Constraints, WorkloadError, WorkloadSpec
from workers.engines import ENGINES, can_split


@dataclass(frozen=True)
class Rejection:
    """Why a family (engine, quantization, GPU, parallelism) or a whole GPU or quantization was left out."""

    reason_code: str
    reason: str
    engine: str | None = None
    quant: str | None = None
    gpu: str | None = None
    tp: int | None = None
    parallelism: str | None = None

    @classmethod
    def of(cls, dep: Deployment, code: str, reason: str) -> Rejection:
        return cls(code, reason, dep.engine, dep.quant.slug, dep.gpu.slug, dep.tp, dep.parallelism)

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "quant": self.quant,
            "gpu": self.gpu,
            "tp": self.tp,
            "parallelism": self.parallelism,
            "reason_code": self.reason_code,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PricedOffer:
    offer: OfferSpec
    usd_per_hour: float  # per instance, as the plan prices it
    pricing: str  # "spot" or "on-demand", or "median market (...)"
    listed_usd_per_hour: float | None = None  # the listing's own price when the plan prices it otherwise

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.offer.gpu_count

    @property
    def listing_gap_usd_per_gpu_hour(self) -> float:
        """How far the listing's own price is from the price planned with: 0 unless priced at the market
        median, where it picks, among equally priced fleets, the listing nearest the median to name."""
        if self.listed_usd_per_hour is None:
            return 0.0
        return abs(self.listed_usd_per_hour - self.usd_per_hour) / self.offer.gpu_count


@dataclass(frozen=True)
class Candidate:
    """One replica layout with the offers whose instances hold at least one replica, and the checkpoint the
    engine loads for it (its `runs_as` is the precision `dep.quant` models)."""

    dep: Deployment
    offers: tuple[PricedOffer, ...]
    checkpoint: Checkpoint | None = None

    @cached_property
    def offers_by_packing(self) -> dict[tuple[int, int], tuple[PricedOffer, ...]]:
        """The offers grouped by how replicas pack into their instances: (replicas one instance holds,
        instances one replica spans). Offers that pack alike need the same instance-hours for any fleet, so
        costing a fleet counts its instances once per packing, not once per offer."""
        groups: dict[tuple[int, int], list[PricedOffer]] = {}
        for priced in self.offers:
            spans = instances_per_replica(self.dep, priced.offer)
            per_instance = max(1, priced.offer.gpu_count // self.dep.gpus) if spans == 1 else 1
            groups.setdefault((per_instance, spans), []).append(priced)
        return {key: tuple(offers) for key, offers in groups.items()}


@dataclass(frozen=True)
class Candidates:
    model: ModelSpec
    context_tokens: int  # longest request: the context every replica must hold
    candidates: tuple[Candidate, ...]
    rejected: tuple[Rejection, ...]
    notes: tuple[str, ...]


def listed_price(offer: OfferSpec, *, spot: bool) -> float | None:
    """The listing's price per instance-hour at the kind the workload pays (spot or on-demand), or None."""
    price = offer.spot_usd_per_hour if spot else offer.ondemand_usd_per_hour
    if price is None or price <= 0 or offer.gpu_count < 1:
        return None
    return price


def priced_offers(
    catalog: CatalogSnapshot, constraints: Constraints, offer_pricing: str = "cheapest_listing"
) -> tuple[dict[str, list[PricedOffer]], int]:
    """Offers by GPU slug at the price the workload pays (spot or on-demand; each listing's own price, or with
    offer_pricing "median_market" the median per-GPU-hour price of that GPU's listings times the instance's
    GPUs); and how many offers name accelerators outside the GPU catalog."""
    by_gpu: dict[str, list[PricedOffer]] = {}
    unmodelled = 0
    providers = {p.lower() for p in constraints.providers}
    kind = "spot" if constraints.spot else "on-demand"
    for offer in catalog.offers:
        if providers and offer.provider.lower() not in providers:
            continue
        price = listed_price(offer, spot=constraints.spot)
        if price is None:
            continue
        if offer.gpu_slug is None:
            unmodelled += 1
            continue
        by_gpu.setdefault(offer.gpu_slug, []).append(PricedOffer(offer, price, kind))
    if offer_pricing == "median_market":
        for slug, listed in by_gpu.items():
            median = statistics.median(o.usd_per_gpu_hour for o in listed)
            by_gpu[slug] = [
                PricedOffer(o.offer, median * o.offer.gpu_count, f"median market ({kind})", o.usd_per_hour)
                for o in listed
            ]
    return by_gpu, unmodelled


def market_summary(catalog: CatalogSnapshot, gpu_slug: str, *, spot: bool) -> dict[str, Any]:
    """What the whole market (every provider in the catalog) lists for one GPU, per GPU-hour: how many
    listings and providers, the cheapest and the median, so a plan can show its price beside the market's."""
    prices: list[tuple[float, str]] = []
    for offer in catalog.offers:
        price = listed_price(offer, spot=spot) if offer.gpu_slug == gpu_slug else None
        if price is not None:
            prices.append((price / offer.gpu_count, offer.provider))
    if not prices:
        return {"listings": 0, "providers": 0}
    per_gpu = sorted(p for p, _ in prices)
    return {
        "listings": len(prices),
        "providers": len({provider for _, provider in prices}),
        "cheapest_usd_per_gpu_hour": round(per_gpu[0], 4),
        "median_usd_per_gpu_hour": round(statistics.median(per_gpu), 4),
        "pricing": "spot" if spot else "on-demand",
    }


NODE_GPUS = 8  # GPUs of one HGX/OAM node: a replica larger than this spans nodes


def parallel_layouts(
    model: ModelSpec, gpu: GpuSpec, engine: str, quant: QuantSpec, max_gpus: int
) -> Iterator[Deployment]:
    """Replica layouts to try: tensor parallelism over 1, 2, 4 and 8 GPUs; for a mixture of experts also expert
    parallelism beside tensor-parallel or data-parallel attention; and, where the constraints allow more than a
    node's GPUs, two-node layouts (pipeline stages across the nodes, or wide expert parallelism). Only layouts
    the engine's pinned release can deploy (workers.engines.can_split), so every option has a bundle."""
    if gpu.is_cpu:
        yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine)
        return
    moe = bool(model.num_experts) and can_split(engine, "expert")
    attention_dp = moe and can_split(engine, "data")
    for tp in TP_DEGREES:
        if tp > max_gpus:
            return
        yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=tp)
        if moe and tp > 1:
            yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=tp, ep=tp)
            if attention_dp:
                yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=1, dp=tp, ep=tp)
    if (
        max_gpus < 2 * NODE_GPUS
        or gpu.scale_up_domain_gpus >= 2 * NODE_GPUS
        or not can_split(engine, "nodes")
    ):
        return
    if can_split(engine, "pipeline"):
        yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=NODE_GPUS, pp=2, nodes=2)
    if attention_dp:
        gpus = 2 * NODE_GPUS
        yield Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=1, dp=gpus, ep=gpus, nodes=2)


def instances_per_replica(dep: Deployment, offer: OfferSpec) -> int:
    """Whole instances one replica takes: 1 when the replica fits an instance; a multi-node replica takes one
    instance per node, each with the node's share of its GPUs (0: this offer cannot host it)."""
    if dep.nodes == 1:
        return 1 if offer.gpu_count >= dep.gpus else 0
    per_node = dep.gpus // dep.nodes
    return dep.nodes if offer.gpu_count == per_node else 0


def enumerate_candidates(workload: WorkloadSpec, catalog: CatalogSnapshot) -> Candidates:
    c = workload.constraints
    rejected: list[Rejection] = []
    notes: list[str] = []
    try:
        model = catalog.model(workload.model)
    except KeyError as exc:
        raise WorkloadError(str(exc.args[0])) from exc
    context_tokens = workload.prompt_tokens.max + workload.output_tokens.max
    if context_tokens > model.max_context:
        notes.append(
            f"longest request ({workload.prompt_tokens.max} + {workload.output_tokens.max} tokens) exceeds "
            f"{model.slug}'s context window ({model.max_context}); no deployment can serve it"
        )
        rejected.append(Rejection("context_exceeds_model", notes[-1]))

    quants: list[QuantSpec] = []
    known_quants = {q.slug for q in catalog.quantizations}
    for q in catalog.quantizations:
        if q.slug in workload.allowed_quantizations:
            quants.append(q)
        else:
            rejected.append(
                Rejection(
                    "quality_bar",
                    f"{q.slug} is not allowed by the quality bar (typical loss {q.typical_quality_loss_pct:g}%)",
                    quant=q.slug,
                )
            )
    for slug in workload.allowed_quantizations:
        if slug not in known_quants:
            notes.append(f"quantization {slug!r} is not in the catalog; ignored")

    offers_by_gpu, unmodelled = priced_offers(catalog, c, workload.offer_pricing)
    if unmodelled:
        notes.append(f"{unmodelled} offers name accelerators outside the GPU catalog and were not modelled")
    gpus: list[GpuSpec] = []
    wanted = set(c.gpus)
    for gpu in catalog.gpus:
        if wanted and gpu.slug not in wanted:
            rejected.append(
                Rejection("excluded_by_constraints", f"{gpu.slug} is not in constraints.gpus", gpu=gpu.slug)
            )
        elif gpu.slug not in offers_by_gpu:
            pricing = "spot" if c.spot else "on-demand"
            where = f" from {', '.join(c.providers)}" if c.providers else ""
            rejected.append(Rejection("no_offer", f"no {pricing} offer for {gpu.slug}{where}", gpu=gpu.slug))
        else:
            gpus.append(gpu)

    candidates: list[Candidate] = []
    if context_tokens <= model.max_context:
        for engine in c.engines:
            for quant in quants:
                for gpu in gpus:
                    candidates.extend(
                        _layouts(model, gpu, engine, quant, offers_by_gpu[gpu.slug], c, rejected, catalog)
                    )
    return Candidates(model, context_tokens, tuple(candidates), tuple(rejected), tuple(notes))


def _layouts(
    model: ModelSpec,
    gpu: GpuSpec,
    engine: str,
    quant: QuantSpec,
    offers: list[PricedOffer],
    constraints: Constraints,
    rejected: list[Rejection],
    catalog: CatalogSnapshot,
) -> Iterator[Candidate]:
    base = Deployment(model=model, gpu=gpu, quant=quant, engine=engine)
    try:
        check_supported(base)
    except UnsupportedCombination as exc:
        if exc.reason != "invalid_parallelism":  # tp 1 may be the only layout that is invalid
            rejected.append(Rejection(exc.reason, str(exc), engine, quant.slug, gpu.slug))
            return
    definition = ENGINES[engine]
    kind = accelerator_kind(gpu)
    if kind not in definition.images:
        reason = f"{definition.display_name} {definition.version} publishes no {kind} image to deploy on {gpu.slug}"
        rejected.append(Rejection("no_image", reason, engine, quant.slug, gpu.slug))
        return
    checkpoint = checkpoint_for(model.slug, quant.slug, engine)
    if isinstance(checkpoint, Refusal):
        rejected.append(Rejection("no_checkpoint", checkpoint.reason, engine, quant.slug, gpu.slug))
        return
    # Memory and speed follow the precision the engine really runs (DeepSeek's FP8 is block-scaled FP8).
    runs_as = quant if checkpoint.runs_as == quant.slug else catalog.quantization(checkpoint.runs_as)
    largest = max(o.offer.gpu_count for o in offers)
    for dep in parallel_layouts(model, gpu, engine, runs_as, constraints.max_gpus_per_replica):
        hosting = tuple(o for o in offers if instances_per_replica(dep, o.offer))
        if not hosting:
            where = f"{dep.gpus // dep.nodes} GPUs per node" if dep.nodes > 1 else f"{dep.gpus}x {gpu.slug}"
            rejected.append(
                Rejection.of(dep, "no_offer", f"no offer has {where} in one instance (largest: {largest})")
            )
            continue
        try:
            check_supported(dep)
        except UnsupportedCombination as exc:
            rejected.append(Rejection.of(dep, exc.reason, str(exc)))
            continue
        yield Candidate(dep, hosting, checkpoint)
