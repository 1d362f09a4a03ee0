"""Closed forms for fixed request lengths: offline maximum throughput (every request queued), a closed loop of
N requests in flight, and single-sequence microbenchmarks (llama-bench's prompt and generation tests).

Written on NumPy arrays, so the calibration evaluates every corpus row in one pass; a single deployment is an
array of one. Every time comes from StepModel.step_s, so calibrated efficiencies mean the same thing here and
in the batching simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from apps.planner.perf.step import StepModel

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class FixedLengths:
    """Per replica; arrays over the evaluated rows."""

    output_tokens_per_s: FloatArray
    ttft_s: FloatArray  # closed loop: from the request's send, queueing included; offline: from admission
    tpot_s: FloatArray  # mean time per output token after the first
    batch: FloatArray  # sequences decoding together
    capacity: FloatArray  # sequences the KV cache and batch limit admit
    bound: npt.NDArray[np.str_]  # what limits the batch: kv_cache, max_num_seqs, token_budget, concurrency


def _arr(x: Any) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def fixed_lengths(
    step: StepModel, isl: Any, osl: Any, concurrency: Any = np.inf, cached: Any = 0.0
) -> FixedLengths:
    """Throughput and latency with fixed lengths: closed loop at `concurrency` (per replica), or offline where
    concurrency is inf. Prefill is chunked: prompts share each step's token budget with the decodes."""
    isl, osl, conc = _arr(isl), np.maximum(_arr(osl), 1.0), _arr(concurrency)
    # Prompt tokens found in the prefix cache are not prefilled (`cached`); the rest are, attending to all.
    fresh = np.maximum(isl - _arr(cached), 1.0)
    budget = _arr(step.token_budget)
    max_seqs = _arr(step.max_num_seqs)
    # Paged engines hold a sequence's current length (on average the prompt plus half the output); engines
    # that reserve up front hold the whole length from admission.
    occupancy = np.where(np.asarray(step.paged, dtype=bool), isl + osl / 2.0, isl + osl)
    kv_seqs = np.floor(_arr(step.kv_capacity_tokens) / np.maximum(occupancy, 1.0))
    capacity = np.minimum(max_seqs, kv_seqs)
    # Decodes plus the prompt tokens that keep them fed must fit the step's token budget on average.
    budget_seqs = np.maximum(1.0, np.floor(budget * osl / (fresh + osl)))
    batch = np.maximum(1.0, np.minimum(np.minimum(capacity, budget_seqs), conc))
    bound = np.where(
        batch >= conc,
        "concurrency",
        np.where(
            budget_seqs < capacity, "token_budget", np.where(kv_seqs < max_seqs, "kv_cache", "max_num_seqs")
        ),
    )

    context = isl + osl / 2.0
    others = batch - 1.0
    decode_s = step.step_s(batch, batch * context, 0.0, 0.0)
    room = np.maximum(budget - batch, 1.0)
    # The others' prompts arrive at one per osl steps each: others * isl / osl prompt tokens per step, carried
    # by chunk-steps of up to `room` tokens.
    prefill_per_step = others * fresh / osl
    chunk = np.minimum(room, np.maximum(fresh, prefill_per_step))
    share = np.minimum(1.0, prefill_per_step / chunk)
    chunk_s = step.step_s(batch, batch * context, chunk, chunk * (isl - fresh / 2.0))
    tpot_s = (1.0 - share) * decode_s + share * chunk_s

    # Its own prompt: full chunks of `room` tokens and a last, shorter one; each prompt token attends to the
    # cached prefix and, on average, half of the fresh part.
    own_chunk = np.minimum(room, fresh)
    full_steps = np.floor(fresh / np.maximum(own_chunk, 1.0))
    last_chunk = fresh - full_steps * own_chunk
    pairs_per_token = isl - fresh / 2.0
    own_chunk_s = step.step_s(batch, batch * context, own_chunk, own_chunk * pairs_per_token)
    last_chunk_s = step.step_s(batch, batch * context, last_chunk, last_chunk * pairs_per_token)
    service_s = full_steps * own_chunk_s + np.where(last_chunk > 0.5, last_chunk_s, 0.0)
    # A new prompt waits behind the others' prompts still being prefilled: an M/D/1 queue whose arrival rate is
    # the batch's completion rate (batch / e2e in steady state), solved by a few fixed-point passes.
    decode_phase_s = (osl - 1.0) * tpot_s
    # It also arrives in the middle of a step of the others' decodes: it starts at the next step, on average
    # half a step later.
    overhead_s = _arr(step.request_overhead_s) + np.where(others > 0, 0.5 * tpot_s, 0.0)
    ttft_s = service_s + overhead_s
    for _ in range(3):
        load = np.minimum(np.where(others > 0, others / (ttft_s + decode_phase_s) * service_s, 0.0), 0.95)
        ttft_s = overhead_s + service_s + load * service_s / (2.0 * (1.0 - load))
    e2e_s = ttft_s + decode_phase_s
    tokens_per_s = batch * osl / e2e_s
    closed = np.isfinite(conc)
    # Closed loop beyond capacity: the extra requests queue for a free slot (Little's law).
    excess = np.where(closed, np.maximum(conc - batch, 0.0), 0.0)
    ttft_s = ttft_s + excess * e2e_s / batch
    return FixedLengths(tokens_per_s, ttft_s, tpot_s, batch, capacity, bound)


def single_sequence(step: StepModel, isl: Any, osl: Any) -> tuple[FloatArray, FloatArray]:
    """(prompt tokens/s of one isl-token prompt in one pass, generation tokens/s of one sequence producing osl
    tokens from an empty context): llama-bench's ppN and tgN tests."""
    isl, osl = _arr(isl), _arr(osl)
    prefill_s = step.step_s(0.0, 0.0, isl, isl * isl / 2.0)
    decode_s = step.step_s(1.0, osl / 2.0, 0.0, 0.0)
    return isl / np.maximum(prefill_s, 1e-12), 1.0 / np.maximum(decode_s, 1e-12)


def offline_tokens_per_s(step: StepModel, isl: float, osl: float, cached: float = 0.0) -> float:
    """Output tokens/s of one replica flat out at these (mean) lengths."""
    return offline_tokens_per_s_each([step], isl, osl, cached)[0]


def offline_tokens_per_s_each(
    steps: Sequence[StepModel], isl: float, osl: float, cached: float = 0.0
) -> list[float]:
    """offline_tokens_per_s of many deployments at the same lengths, evaluated together."""
    if not steps:
        return []
    state = fixed_lengths(_stacked(steps), max(1, round(isl)), max(1, round(osl)), cached=cached)
    return [float(x) for x in state.output_tokens_per_s]


_STEP_ARRAYS = tuple(
    f.name for f in fields(StepModel) if f.name not in ("deployment", "memory", "efficiency")
)


def stacked_fields(steps: Sequence[StepModel], names: Sequence[str]) -> dict[str, FloatArray]:
    """These fields of many deployments' step models, each as one array (an element per deployment)."""
    return {name: np.asarray([getattr(s, name) for s in steps], dtype=np.float64) for name in names}


def _stacked(steps: Sequence[StepModel]) -> StepModel:
    """Many deployments' step models as one whose fields are arrays (one element per deployment)."""
    arrays: dict[str, Any] = stacked_fields(steps, _STEP_ARRAYS)
    return StepModel(**arrays)
