"""Stage 2, screen: each candidate gets its calibrated efficiencies and error band, the model of its engine
step, and a memory check (weights, runtime and the longest request's KV cache must fit); what survives carries
its throughput ceiling, the rate above which no latency target can hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.planner.perf.calibration import Band, Calibration
from apps.planner.perf.corpus import THROUGHPUT
from apps.planner.perf.deployment import Deployment, UnsupportedCombination
from apps.planner.perf.efficiency import Efficiency, Levels
from apps.planner.perf.steady import offline_tokens_per_s
from apps.planner.perf.step import StepModel, build_step_model, levels_of
from apps.planner.pipeline.candidates import Candidate, Rejection
from apps.planner.pipeline.workload import WorkloadSpec


@dataclass(frozen=True)
class Screened:
    candidate: Candidate
    step: StepModel
    efficiency: Efficiency
    levels: Levels
    band: Band  # cross-validated error of throughput predictions in this deployment's group
    ceiling_rate_per_s: float  # requests/s one replica completes flat out at mean lengths

    @property
    def dep(self) -> Deployment:
        return self.candidate.dep


def screen(
    candidates: tuple[Candidate, ...], workload: WorkloadSpec, calibration: Calibration, context_tokens: int
) -> tuple[list[Screened], list[Rejection]]:
    survivors: list[Screened] = []
    rejected: list[Rejection] = []
    for candidate in candidates:
        dep = candidate.dep
        levels = levels_of(dep)
        efficiency = calibration.efficiency(levels)
        try:
            step = build_step_model(dep, efficiency, context_tokens=context_tokens)
        except UnsupportedCombination as exc:
            rejected.append(Rejection.of(dep, exc.reason, str(exc)))
            continue
        assert step.memory is not None
        if not step.memory.fits:
            rejected.append(Rejection.of(dep, "does_not_fit", step.memory.reason))
            continue
        output = workload.output_tokens.mean
        ceiling = offline_tokens_per_s(step, workload.prompt_tokens.mean, output) / output
        survivors.append(
            Screened(candidate, step, efficiency, levels, calibration.band(levels, THROUGHPUT), ceiling)
        )
    return survivors, rejected
