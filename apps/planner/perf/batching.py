"""Continuous batching under load: request lengths from a workload's distributions, arrivals at a rate, and an
event-driven simulation of an engine's scheduler (KV-limited admission, chunked prefill) that gives p95 TTFT and
ITL; plus a mean-field estimate of the same, used to screen deployments before simulating. Pure; no Django.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from apps.planner.perf.step import StepModel

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LengthStats:
    """A token-length distribution as a workload states it: four figures, and the full histogram when the
    workload was imported from a request log (bin i holds lengths in [edges[i], edges[i+1]))."""

    mean: float
    p50: float
    p95: float
    max: int
    histogram_edges: tuple[float, ...] = ()
    histogram_counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not (0 < self.p50 <= self.p95 <= self.max):
            raise ValueError(f"lengths must satisfy 0 < p50 <= p95 <= max, got {self}")
        if not 0 < self.mean <= self.max:
            raise ValueError(f"mean length must be within (0, max], got {self}")
        if self.histogram_counts and len(self.histogram_edges) != len(self.histogram_counts) + 1:
            raise ValueError("a histogram needs one more edge than counts")

    @property
    def has_histogram(self) -> bool:
        return bool(self.histogram_counts) and sum(self.histogram_counts) > 0


@dataclass(frozen=True)
class PrefixCache:
    """What an engine's prefix cache can reuse: tokens every prompt starts with, and the share of the rest an
    earlier turn of the same conversation already sent."""

    shared_prefix_tokens: int = 0
    multi_turn_reuse_fraction: float = 0.0

    def cached_tokens(self, prompt_tokens: Any) -> Any:
        """Prompt tokens found in the cache (floats or arrays)."""
        shared = np.minimum(prompt_tokens, self.shared_prefix_tokens)
        return shared + self.multi_turn_reuse_fraction * (prompt_tokens - shared)

    @property
    def active(self) -> bool:
        return self.shared_prefix_tokens > 0 or self.multi_turn_reuse_fraction > 0


NO_PREFIX = PrefixCache()


_Z95 = NormalDist().inv_cdf(0.95)


@lru_cache(maxsize=256)
def _quantile_grid(n: int) -> tuple[float, ...]:
    normal = NormalDist()
    return tuple(normal.inv_cdf((i + 0.5) / n) for i in range(n))


@lru_cache(maxsize=256)
def _lognormal_sigma(stats: LengthStats) -> float:
    """Lognormal through p50 with the sigma that best matches p95 and the clipped mean together.

    p50 fixes mu. p95 alone gives one sigma; the stated mean, after clipping at max, another. Taking the
    sigma that minimises the summed squared relative errors keeps both percentiles close and moves the mean
    toward the stated one where the two agree.
    """
    if stats.p95 <= stats.p50:
        return 0.0
    mu = math.log(stats.p50)
    z = np.asarray(_quantile_grid(400))
    sigma_p95 = (math.log(stats.p95) - mu) / _Z95
    candidates = np.linspace(0.5 * sigma_p95, 1.5 * sigma_p95, 41)
    best, best_err = sigma_p95, math.inf
    for sigma in candidates:
        values = np.minimum(np.exp(mu + sigma * z), stats.max)
        p95_err = (math.exp(mu + sigma * _Z95) - stats.p95) / stats.p95
        mean_err = (float(values.mean()) - stats.mean) / stats.mean
        err = p95_err**2 + mean_err**2
        if err < best_err:
            best, best_err = float(sigma), err
    return best


def quantiles(stats: LengthStats, probabilities: Any) -> FloatArray:
    """Lengths at these cumulative probabilities: from the histogram, interpolating inside a bin, when the
    workload has one; else from the lognormal fitted to the four figures. Clipped to [1, max]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-6, 1 - 1e-6)
    if stats.has_histogram:
        edges = np.asarray(stats.histogram_edges, dtype=np.float64)
        cumulative = np.concatenate(([0.0], np.cumsum(stats.histogram_counts, dtype=np.float64)))
        cumulative /= cumulative[-1]
        values = np.interp(p, cumulative, edges)
    else:
        sigma = _lognormal_sigma(stats)
        z = np.asarray([NormalDist().inv_cdf(float(x)) for x in p.ravel()]).reshape(p.shape)
        values = np.exp(math.log(stats.p50) + sigma * z)
    return np.clip(values, 1.0, float(stats.max))


@lru_cache(maxsize=256)
def _stratified(n: int) -> FloatArray:
    return (np.arange(n) + 0.5) / n


def sample_lengths(stats: LengthStats, n: int, rng: np.random.Generator) -> IntArray:
    """n lengths stratified over quantiles (low variance), in random order."""
    values = np.rint(quantiles(stats, _stratified(n))).astype(np.int64)
    rng.shuffle(values)
    return values


def length_quantile(stats: LengthStats, q: float) -> float:
    return float(quantiles(stats, [q])[0])


# --------------------------------------------------------------------------------------------------------------
# Continuous-batching simulation


@dataclass(frozen=True)
class LoadSpec:
    """How requests arrive: Poisson at `rate_per_s`, a closed loop of `concurrency` clients, or all at once."""

    mode: Literal["poisson", "closed", "offline"]
    rate_per_s: float = 0.0
    concurrency: int = 0


@dataclass(frozen=True)
class SimResult:
    ttft_ms: dict[str, float]  # p50 p95 p99
    itl_ms: dict[str, float]  # pooled over every token gap
    tpot_ms: dict[str, float]  # per request mean gap
    output_tokens_per_s: float
    requests_per_s: float
    completed: int
    mean_batch: float
    peak_waiting: int


def unit_gaps(n: int, burstiness_cv: float, rng: np.random.Generator) -> FloatArray:
    """Inter-arrival gaps of mean 1 (divided by the rate later): gamma with the given coefficient of variation
    (shape 1/cv², so cv 1 is Poisson and cv above 1 bursty), evenly spaced at cv 0."""
    if burstiness_cv <= 0:
        return np.ones(n)
    shape = 1.0 / burstiness_cv**2
    return rng.gamma(shape, 1.0 / shape, n)


@dataclass
class RequestSet:
    """Fixed request samples shared by every deployment evaluated for one workload (common random numbers)."""

    isl: IntArray
    osl: IntArray
    unit_gaps: FloatArray  # mean-1 inter-arrival gaps; divided by the rate for open-loop arrivals
    cached: IntArray | None = None  # prompt tokens found in the prefix cache (not prefilled)
    shared_prefix_tokens: int = 0  # of those, the prefix every prompt shares (its KV is held once)

    @classmethod
    def draw(
        cls,
        prompt: LengthStats,
        output: LengthStats,
        n: int,
        seed: int = 0,
        *,
        burstiness_cv: float = 1.0,
        prefix: PrefixCache = NO_PREFIX,
    ) -> RequestSet:
        rng = np.random.default_rng(seed)
        isl = sample_lengths(prompt, n, rng)
        osl = sample_lengths(output, n, rng)
        cached = np.floor(prefix.cached_tokens(isl)).astype(np.int64) if prefix.active else None
        return cls(isl, osl, unit_gaps(n, burstiness_cv, rng), cached, prefix.shared_prefix_tokens)

    @classmethod
    def fixed(cls, isl: int, osl: int, n: int, seed: int = 0) -> RequestSet:
        rng = np.random.default_rng(seed)
        return cls(
            isl=np.full(n, isl, dtype=np.int64),
            osl=np.full(n, osl, dtype=np.int64),
            unit_gaps=rng.exponential(1.0, n),
        )

    def __len__(self) -> int:
        return len(self.isl)

    def head(self, n: int) -> RequestSet:
        cached = None if self.cached is None else self.cached[:n]
        return RequestSet(self.isl[:n], self.osl[:n], self.unit_gaps[:n], cached, self.shared_prefix_tokens)


def _weighted_percentiles(values: FloatArray, weights: FloatArray, qs: tuple[float, ...]) -> list[float]:
    if not values.size:
        return [0.0 for _ in qs]
    order = np.argsort(values)
    ordered = values[order]
    cum = np.cumsum(weights[order])
    at = np.minimum(np.searchsorted(cum, np.asarray(qs) * cum[-1]), values.size - 1)
    return [float(x) for x in ordered[at]]


def _percentiles(values: FloatArray) -> dict[str, float]:
    if values.size == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def simulate(
    step: StepModel, requests: RequestSet, load: LoadSpec, *, warmup_fraction: float = 0.1
) -> SimResult:
    """Continuous batching with KV-limited admission and chunked prefill, advanced event by event.

    Each step runs every admitted decode plus prompt chunks (FIFO) up to the token budget. Runs of decode-only
    steps between events (arrival, completion) are advanced in one go, so the cost is O(requests) rather than
    O(steps). Admission is by KV occupancy (see `need`); there is no preemption.
    """
    n = len(requests)
    isl = requests.isl.tolist()
    osl = requests.osl.tolist()
    # Paged engines hold a sequence's current length, so admission goes by mean occupancy (the prompt plus half
    # the output), as in the closed forms; engines that reserve KV up front hold the whole length.
    output_share = 0.5 if step.paged else 1.0
    cached = [0] * n if requests.cached is None else requests.cached.tolist()
    # The shared prefix is held once in the cache (its blocks are referenced by every sequence).
    shared = min(requests.shared_prefix_tokens, *isl) if n else 0
    need = [a - shared + output_share * b for a, b in zip(isl, osl, strict=True)]
    kv_cap = step.kv_capacity_tokens - shared
    max_seqs = step.max_num_seqs
    budget = step.token_budget
    step_time = step.scalar

    if load.mode == "poisson":
        if load.rate_per_s <= 0:
            raise ValueError("poisson load needs a positive rate")
        arrivals = np.cumsum(requests.unit_gaps / load.rate_per_s).tolist()
    else:
        arrivals = [0.0] * n
    t_arrival = list(arrivals)
    t_first = [math.nan] * n
    t_done = [math.nan] * n
    joined = [0] * n  # decode-step counter when each request started decoding

    waiting: deque[int] = deque()
    if load.mode == "closed":
        issued = min(load.concurrency, n)
        waiting.extend(range(issued))
        next_arrival = n  # no external arrivals: a completion issues the next request
    else:
        issued = n
        next_arrival = 0
    prefilling: deque[list[int]] = deque()  # [request, prompt tokens done]
    running: list[tuple[int, int]] = []  # heap of (decode step at which it finishes, request)
    n_run = 0
    ctx_base = 0.0  # context of decoding sequences = ctx_base + n_run * decode_steps
    decode_steps = 0
    kv_used = 0
    t = 0.0
    done = 0
    itl_values: list[float] = []
    itl_weights: list[float] = []
    itl_times: list[float] = []
    batch_time = 0.0
    busy_time = 0.0
    peak_waiting = 0

    def finish(request: int, now: float) -> None:
        nonlocal kv_used, done, issued
        t_done[request] = now
        kv_used -= need[request]
        done += 1
        if load.mode == "closed" and issued < n:
            t_arrival[issued] = now
            waiting.append(issued)
            issued += 1

    while done < n:
        while next_arrival < n and arrivals[next_arrival] <= t:
            waiting.append(next_arrival)
            next_arrival += 1
        if len(waiting) > peak_waiting:
            peak_waiting = len(waiting)
        while waiting and n_run + len(prefilling) < max_seqs and kv_used + need[waiting[0]] <= kv_cap:
            request = waiting.popleft()
            kv_used += need[request]
            prefilling.append([request, min(cached[request], isl[request] - 1)])

        if prefilling:
            room = max(budget - n_run, budget // 8)
            tokens = 0
            pairs = 0.0
            finished_prefill: list[int] = []
            for entry in prefilling:
                if tokens >= room:
                    break
                request, done_tokens = entry
                chunk = min(isl[request] - done_tokens, room - tokens)
                pairs += chunk * (done_tokens + chunk / 2.0)
                tokens += chunk
                entry[1] = done_tokens + chunk
                if entry[1] >= isl[request]:
                    finished_prefill.append(request)
            context = ctx_base + n_run * decode_steps
            dt = step_time(n_run, context, tokens, pairs)
            t += dt
            busy_time += dt
            batch_time += n_run * dt
            if n_run:
                decode_steps += 1
                itl_values.append(dt)
                itl_weights.append(float(n_run))
                itl_times.append(t)
            while running and running[0][0] <= decode_steps:
                _, request = heapq.heappop(running)
                n_run -= 1
                ctx_base -= isl[request] - joined[request]
                finish(request, t)
            for request in finished_prefill:
                prefilling.popleft()
                t_first[request] = t
                if osl[request] <= 1:
                    finish(request, t)
                    continue
                heapq.heappush(running, (decode_steps + osl[request] - 1, request))
                joined[request] = decode_steps
                n_run += 1
                ctx_base += isl[request] - decode_steps
            continue

        if n_run:
            steps_left = running[0][0] - decode_steps
            if next_arrival < n:
                dt0 = step_time(n_run, ctx_base + n_run * decode_steps, 0, 0.0)
                steps_left = min(steps_left, max(1, math.ceil((arrivals[next_arrival] - t) / dt0)))
            dt = step_time(n_run, ctx_base + n_run * (decode_steps + steps_left / 2.0), 0, 0.0)
            t += steps_left * dt
            busy_time += steps_left * dt
            batch_time += n_run * steps_left * dt
            decode_steps += steps_left
            itl_values.append(dt)
            itl_weights.append(float(n_run * steps_left))
            itl_times.append(t)
            while running and running[0][0] <= decode_steps:
                _, request = heapq.heappop(running)
                n_run -= 1
                ctx_base -= isl[request] - joined[request]
                finish(request, t)
            continue

        if next_arrival < n:
            t = max(t, arrivals[next_arrival])
            continue
        if waiting:  # nothing running and the head cannot be admitted: it needs more KV than the replica has
            request = waiting.popleft()
            t_first[request] = t_done[request] = math.inf
            done += 1
            continue
        break  # pragma: no cover - every request is accounted for above

    # Each request also spends the engine's per-request overhead (HTTP, tokenisation) before its first token.
    overhead_s = float(step.request_overhead_s)
    first = np.asarray(t_first) + overhead_s
    finished_at = np.asarray(t_done) + overhead_s
    arrived = np.asarray(t_arrival)
    outputs = np.asarray(osl, dtype=np.float64)
    skip = int(n * warmup_fraction) if load.mode == "poisson" else 0
    measured = np.arange(n) >= skip
    ttft = (first - arrived)[measured] * 1e3
    multi = measured & (outputs > 1) & np.isfinite(finished_at)
    tpot = ((finished_at - first)[multi] / (outputs[multi] - 1)) * 1e3

    # Steady-state window: between the 20th and 80th percentile of completion times (excludes ramp and drain).
    finite_done = np.sort(finished_at[np.isfinite(finished_at)])
    if finite_done.size >= 5:
        w0, w1 = finite_done[int(0.2 * finite_done.size)], finite_done[int(0.8 * finite_done.size)]
    else:
        w0, w1 = 0.0, float(finite_done[-1]) if finite_done.size else 0.0
    if w1 <= w0:
        w0, w1 = 0.0, max(t, 1e-9)
    in_window = (finished_at >= w0) & (finished_at <= w1)
    span = w1 - w0
    out_tokens = float(outputs[in_window].sum())
    itl_start = arrived[skip] if skip < n else 0.0
    itl_end = arrived[:issued].max() if load.mode == "poisson" else w1
    gap_times = np.asarray(itl_times)
    keep = (gap_times >= itl_start) & (gap_times <= max(itl_end, itl_start))
    if not keep.any():
        keep[:] = True
    p50, p95, p99 = _weighted_percentiles(
        np.asarray(itl_values)[keep] * 1e3, np.asarray(itl_weights)[keep], (0.5, 0.95, 0.99)
    )
    return SimResult(
        ttft_ms=_percentiles(ttft[np.isfinite(ttft)]) if np.isfinite(ttft).all() else _inf_percentiles(),
        itl_ms={"p50": p50, "p95": p95, "p99": p99},
        tpot_ms=_percentiles(tpot),
        output_tokens_per_s=out_tokens / span if span > 0 else 0.0,
        requests_per_s=float(in_window.sum()) / span if span > 0 else 0.0,
        completed=int(np.isfinite(finished_at).sum()),
        mean_batch=batch_time / busy_time if busy_time else 0.0,
        peak_waiting=peak_waiting,
    )


def _inf_percentiles() -> dict[str, float]:
    return {"p50": math.inf, "p95": math.inf, "p99": math.inf}


# --------------------------------------------------------------------------------------------------------------
# Capacity under an SLO


@dataclass(frozen=True)
class AnalyticLoad:
    ttft_p95_ms: float
    itl_p95_ms: float
    batch: float
    stable: bool


_PROMPT_GRID = 64


@dataclass(frozen=True)
class _PromptGrid:
    """Prompt lengths at evenly spaced quantiles of the distribution (what the sampler draws from), and what of
    each is prefilled once the prefix cache has served its part."""

    full: FloatArray
    fresh: FloatArray
    mean_full: float
    mean_fresh: float


@lru_cache(maxsize=256)
def _prompt_grid(stats: LengthStats, prefix: PrefixCache) -> _PromptGrid:
    full = quantiles(stats, _stratified(_PROMPT_GRID))
    fresh = np.maximum(full - prefix.cached_tokens(full), 1.0)
    return _PromptGrid(full, fresh, float(full.sum()) / full.size, float(fresh.sum()) / fresh.size)


def _chunk_sizes(prompts: FloatArray, room: float, merge_tokens: float) -> FloatArray:
    """Sizes of the prefill chunks prompts become: full steps of `room` tokens plus a remainder, which shares its
    step with the next waiting prompt (`merge_tokens` on average) when the prefill queue is busy."""
    full, partial = _chunks(prompts, room, merge_tokens)
    return np.concatenate((np.full(int(full), room), partial))


def _mean_chunk(prompts: FloatArray, room: float, merge_tokens: float) -> float:
    """The mean of _chunk_sizes, without building the list of chunks."""
    full, partial = _chunks(prompts, room, merge_tokens)
    return (full * room + float(partial.sum())) / (full + partial.size)


def _chunks(prompts: FloatArray, room: float, merge_tokens: float) -> tuple[float, FloatArray]:
    """(number of full chunks, sizes of the partial ones)."""
    full = prompts // room
    remainder = prompts - full * room
    return float(full.sum()), np.minimum(room, remainder[remainder > 0] + merge_tokens)


def analytic_poisson(
    step: StepModel,
    prompt: LengthStats,
    output: LengthStats,
    rate_per_s: float,
    *,
    prefix: PrefixCache = NO_PREFIX,
    burstiness_cv: float = 1.0,
) -> AnalyticLoad:
    """Mean-field estimate of p95 TTFT and ITL at a Poisson rate; used to screen deployments before simulating.

    Little's law gives the decoding batch (rate x time in system). Prompts turn into chunk-steps of at most the
    token budget left beside the decodes; their share of steps follows from the prefill tokens per step, and the
    p95 token gap is the chunk-step at the matching quantile of chunk sizes. TTFT adds an M/G/1 wait for the
    prefill queue, its p95 taken as 3x the mean (exponential tail), scaled for arrivals burstier than Poisson
    by Kingman's (ca² + cs²) / (1 + cs²). Prompt tokens found in the prefix cache are not prefilled.
    """
    step_s = step.scalar
    grid = _prompt_grid(prompt, prefix)
    prompts, isl, osl = grid.fresh, grid.mean_fresh, output.mean
    context = grid.mean_full + osl / 2.0
    tpot_s = step_s(1, context, 0, 0.0)
    batch = max(rate_per_s * osl * tpot_s, 1e-9)
    share, room = 0.0, float(max(step.token_budget - 1, 1))
    merge = chunk_s = service_s = 0.0
    for _ in range(10):
        previous = batch
        b = max(1, math.ceil(batch))
        room = float(max(step.token_budget - b, 1))
        merge = min(share, 1.0) * isl
        mean_chunk = _mean_chunk(prompts, room, merge)
        decode_s = step_s(b, b * context, 0, 0.0)
        chunk_s = step_s(b, b * context, round(mean_chunk), mean_chunk * isl / 2.0)
        share = rate_per_s * isl * tpot_s / mean_chunk  # prompt tokens per step / tokens per chunk-step
        tpot_s = (1.0 - min(share, 1.0)) * decode_s + min(share, 1.0) * chunk_s
        service_s = isl / mean_chunk * chunk_s
        batch = rate_per_s * (service_s + (osl - 1) * tpot_s)
        if abs(batch - previous) <= 3e-3 * max(batch, 1.0):
            break
    b = max(1, math.ceil(batch))
    cap = step.sequences_at(context if step.paged else context + osl / 2.0)
    rho = rate_per_s * service_s
    if not (share < 1.0 and b <= cap and rho < 1.0):
        return AnalyticLoad(math.inf, math.inf, batch, False)
    # Prefill service of each prompt on the grid: its chunk-steps, each carrying up to `room` tokens.
    steps = np.ceil(prompts / room)
    per_chunk = np.minimum(prompts, room)
    services = steps * step.step_s(b, b * context, per_chunk, per_chunk * prompts / 2.0)
    mean_service = float(services.sum()) / services.size
    mean_square = float(services @ services) / services.size
    wait_mean_s = rate_per_s * mean_square / (2.0 * (1.0 - rho))
    cs2 = max(mean_square / mean_service**2 - 1.0, 0.0) if mean_service > 0 else 0.0  # squared CV of service
    wait_mean_s *= (burstiness_cv**2 + cs2) / (1.0 + cs2)
    # The grid is sorted by length and service grows with length, so the 95th percentile is an index.
    ttft95_s = float(services[round(0.95 * (services.size - 1))]) + 3.0 * wait_mean_s
    ttft95_s += float(step.request_overhead_s)
    if share > 0.05:
        # The p95 token gap falls among chunk-steps once they are more than 5% of all steps.
        ordered = np.sort(_chunk_sizes(prompts, room, merge))
        chunk_q = float(ordered[round((1.0 - 0.05 / share) * (ordered.size - 1))])
        itl95_s = step_s(b, b * context, round(chunk_q), chunk_q * isl / 2.0)
    else:
        itl95_s = step_s(b, b * context, 0, 0.0)
    return AnalyticLoad(ttft95_s * 1e3, itl95_s * 1e3, batch, True)


CEILING_SLACK = 1.2  # the analytic search never reports more than this times the throughput ceiling
