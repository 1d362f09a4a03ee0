"""Which engine x quantization x accelerator x TP combinations a workload could use, and which of them an
attached worker can measure. Pure: catalog specs and host capabilities in, verdicts out.

The combination rules are the planner's own (`apps.planner.perf.deployment.check_supported`, `apps.planner.perf.memory.memory_fit`), so what the
picker offers and what the model predicts never disagree about what is possible. A candidate that is possible
but that no live worker can run is "left to the model": the planner predicts it instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from apps.catalog.specs import GpuSpec, ModelSpec, QuantSpec
from apps.planner.perf.deployment import Deployment, UnsupportedCombination, check_supported
from apps.planner.perf.memory import memory_fit
from workers.engines import ENGINE_NAMES, ENGINES

TP_DEGREES = (1, 2, 4, 8)


@dataclass(frozen=True, order=True)
class Candidate:
    accelerator: str
    engine: str
    quant: str
    tp: int = 1

    @property
    def label(self) -> str:
        return f"{self.engine} {self.quant} on {self.tp}x {self.accelerator}"

    @property
    def key(self) -> str:
        """A form value: engine|quant|accelerator|tp."""
        return f"{self.engine}|{self.quant}|{self.accelerator}|{self.tp}"

    @classmethod
    def from_key(cls, key: str) -> Candidate:
        engine, quant, accelerator, tp = key.split("|")
        return cls(accelerator=accelerator, engine=engine, quant=quant, tp=int(tp))

    def to_dict(self) -> dict[str, object]:
        return {"engine": self.engine, "quant": self.quant, "accelerator": self.accelerator, "tp": self.tp}


@dataclass(frozen=True)
class HostCapability:
    """What one live worker host offers: its accelerator slug, usable devices and installed engines."""

    name: str
    accelerator: str
    device_count: int
    engines: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate
    runnable: bool
    reason: str  # why a live worker cannot run it (empty when runnable)
    hosts: tuple[str, ...] = ()  # live hosts that can run it

    def to_dict(self) -> dict[str, object]:
        out = self.candidate.to_dict()
        if self.runnable:
            return out | {"hosts": list(self.hosts)}
        return out | {"reason": self.reason}


def unsupported_reason(
    *,
    model: ModelSpec,
    gpu: GpuSpec,
    quant: QuantSpec,
    engine: str,
    tp: int,
    context_tokens: int,
    shrink: bool,
) -> str:
    """Why the combination cannot run at all (empty: it can). A shrunk model fits anywhere."""
    deployment = Deployment(model=model, gpu=gpu, quant=quant, engine=engine, tp=tp)
    try:
        check_supported(deployment)
    except UnsupportedCombination as exc:
        return str(exc)
    if shrink:
        return ""
    fit = memory_fit(deployment, context_tokens)
    return "" if fit.fits else fit.reason


def smallest_fitting_tp(
    *,
    model: ModelSpec,
    gpu: GpuSpec,
    quant: QuantSpec,
    engine: str,
    context_tokens: int,
    max_tp: int,
    shrink: bool,
) -> int | None:
    """The smallest TP that holds the weights and one full-length sequence: add replicas, not TP, after that."""
    for tp in TP_DEGREES:
        if tp > max_tp or (gpu.is_cpu and tp > 1):
            break
        reason = unsupported_reason(
            model=model,
            gpu=gpu,
            quant=quant,
            engine=engine,
            tp=tp,
            context_tokens=context_tokens,
            shrink=shrink,
        )
        if not reason:
            return tp
    return None


def candidate_space(
    *,
    model: ModelSpec,
    gpus: Sequence[GpuSpec],
    quants: Sequence[QuantSpec],
    engines: Sequence[str] = ENGINE_NAMES,
    context_tokens: int,
    max_tp: int,
    shrink_on_cpu: bool,
) -> list[Candidate]:
    """Every combination the workload allows that can run at all, each at its smallest fitting TP."""
    out: list[Candidate] = []
    for gpu in gpus:
        for engine in engines:
            if engine not in ENGINES:
                continue
            for quant in quants:
                tp = smallest_fitting_tp(
                    model=model,
                    gpu=gpu,
                    quant=quant,
                    engine=engine,
                    context_tokens=context_tokens,
                    max_tp=max_tp,
                    shrink=shrink_on_cpu and gpu.is_cpu,
                )
                if tp is not None:
                    out.append(Candidate(accelerator=gpu.slug, engine=engine, quant=quant.slug, tp=tp))
    return sorted(out)


def verdict(candidate: Candidate, *, hosts: Iterable[HostCapability]) -> Verdict:
    """Runnable when a live host has the accelerator, enough devices, and the engine installed.

    Whether the engine runs on that accelerator at all is `unsupported_reason`'s question, asked first.
    """
    on_accelerator = [h for h in hosts if h.accelerator == candidate.accelerator]
    if not on_accelerator:
        return Verdict(candidate, False, f"no live worker with {candidate.accelerator}")
    with_engine = [h for h in on_accelerator if candidate.engine in h.engines]
    if not with_engine:
        return Verdict(
            candidate, False, f"no live {candidate.accelerator} worker has {candidate.engine} installed"
        )
    big_enough = tuple(h.name for h in with_engine if h.device_count >= candidate.tp)
    if not big_enough:
        most = max(h.device_count for h in with_engine)
        return Verdict(
            candidate,
            False,
            f"tp {candidate.tp} needs {candidate.tp} GPUs; the largest live worker has {most}",
        )
    return Verdict(candidate, True, "", big_enough)
