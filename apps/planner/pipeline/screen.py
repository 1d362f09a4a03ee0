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
from apps.planner.perf.steady import offline_tokens_per_s_each
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
    fitting: list[tuple[Candidate, StepModel, Efficiency, Levels]] = []
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
        fitting.append((candidate, step, efficiency, levels))
    output, prompt = workload.output_tokens.mean, workload.prompt_tokens.mean
    cached = float(workload.prefix.cached_tokens(prompt))
    ceilings = offline_tokens_per_s_each([step for _, step, _, _ in fitting], prompt, output, cached)
    survivors = [
        Screened(
            candidate, step, efficiency, levels, calibration.band(levels, THROUGHPUT), tokens_per_s / output
        )
        for (candidate, step, efficiency, levels), tokens_per_s in zip(fitting, ceilings, strict=True)
    ]
    return survivors, rejected
