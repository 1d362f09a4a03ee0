"""Time and size budgets derived from the model: probe budgets, cache volume, host CPU/memory, /dev/shm.

Probe budgets must cover the slowest honest start: a first start downloads the weights, later starts only
read them from the cache volume. Too small a startup budget gets the pod killed mid-load ("KeyboardInterrupt:
terminated" in vLLM's own troubleshooting notes), so the budget is the cold start plus a margin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Conservative sustained rates. The hub rate bounds first starts; 0.2 GB/s is the baseline of common network
# block volumes (gp3 starts at 125 MiB/s, pd-balanced ~240 MB/s), which bounds every later start.
HUB_DOWNLOAD_GB_PER_S = 0.1
VOLUME_READ_GB_PER_S = 0.2
# Engine start-up after the weights are in memory: CUDA graph capture, torch.compile, TensorRT warm-up.
_ENGINE_INIT_S = {"vllm": 180, "sglang": 180, "trtllm": 300, "tgi": 120, "llamacpp": 30, "transformers": 60}
BUDGET_MARGIN = 1.5
STARTUP_PERIOD_S = 10
PRESTOP_SLEEP_S = 10  # lets endpoint removal reach every proxy before the engine gets SIGTERM

GIB_PER_GB = 1e9 / 2**30
# The kubelet, system daemons and DaemonSets take part of every node; a pod asks for at most this share.
ALLOCATABLE_FRACTION = 0.85


@dataclass(frozen=True)
class StartBudget:
    cold_s: int  # download + read + engine init
    warm_s: int  # read from the cache volume + engine init

    @property
    def startup_budget_s(self) -> int:
        return math.ceil(self.cold_s * BUDGET_MARGIN)

    @property
    def startup_failure_threshold(self) -> int:
        return math.ceil(self.startup_budget_s / STARTUP_PERIOD_S)

    @property
    def warmup_lead_min(self) -> int:
        """Minutes a scheduled scale-up starts early so replicas are ready on the hour (5-minute steps)."""
        return 5 * math.ceil(self.warm_s * BUDGET_MARGIN / 300)


def is_hub_reference(model_path: str) -> bool:
    # A repo id ("org/name") is downloaded; an absolute path is expected on a volume already.
    return not model_path.startswith("/")


def start_budget(*, weights_gb: float, engine: str, downloads: bool) -> StartBudget:
    init_s = _ENGINE_INIT_S.get(engine, 180)
    read_s = weights_gb / VOLUME_READ_GB_PER_S
    download_s = weights_gb / HUB_DOWNLOAD_GB_PER_S if downloads else 0.0
    return StartBudget(cold_s=math.ceil(download_s + read_s + init_s), warm_s=math.ceil(read_s + init_s))


def cache_size_gi(weights_gb: float) -> int:
    # Headroom for tokenizer files, a second revision during an upgrade and engine compile caches.
    return 10 * math.ceil((weights_gb * GIB_PER_GB * 1.3 + 20) / 10)


def shm_size_gi(tp: int) -> int:
    # NCCL and the engines' worker message queues live in /dev/shm once tensor parallelism spans processes;
    # single-GPU replicas only need the PyTorch default headroom. Sizes as vLLM (2Gi) and production-stack /
    # llm-d (20Gi at high TP) ship them.
    return 2 if tp <= 1 else min(20, 2 + 4 * (tp - 1))


@dataclass(frozen=True)
class HostResources:
    cpu: int  # cores requested (no CPU limit: throttling a serving loop only adds latency)
    memory_gi: int  # for the engine process, excluding /dev/shm
    shm_gi: int

    @property
    def memory_limit_gi(self) -> int:
        # A Memory-medium emptyDir is charged to the container's memory cgroup, so the limit must hold both.
        return self.memory_gi + self.shm_gi


def host_resources(
    *,
    gpus: int,
    tp: int,
    weights_gb: float,
    instance_vcpus: float | None,
    instance_memory_gib: float | None,
    instance_gpu_count: int | None,
) -> HostResources:
    """What the engine needs, capped at the replica's share of the instance the plan priced when known.

    Asking for more than needed only risks an unschedulable pod when the operator's nodes differ slightly
    from the priced instance; asking for more than the share can never fit.
    """
    shm_gi = shm_size_gi(tp)
    weights_gi = weights_gb * GIB_PER_GB
    if gpus == 0:
        # CPU serving keeps the weights and the KV cache in host memory.
        cpu, memory_gi = 16, math.ceil(weights_gi * 1.5 + 8)
    else:
        cpu, memory_gi = 4 * gpus, 16 + 16 * gpus
    if instance_vcpus and instance_memory_gib:
        share = (gpus / instance_gpu_count) if gpus and instance_gpu_count else 1.0
        share_cpu = max(1, math.floor(instance_vcpus * share * ALLOCATABLE_FRACTION))
        share_memory_gi = max(4, math.floor(instance_memory_gib * share * ALLOCATABLE_FRACTION) - shm_gi)
        if gpus == 0:
            # A CPU replica is the whole priced instance: its KV cache and threads scale with what it gets.
            return HostResources(cpu=share_cpu, memory_gi=share_memory_gi, shm_gi=shm_gi)
        cpu, memory_gi = min(cpu, share_cpu), min(memory_gi, share_memory_gi)
    return HostResources(cpu=cpu, memory_gi=memory_gi, shm_gi=shm_gi)


def termination_grace_s(drain_s: int) -> int:
    return PRESTOP_SLEEP_S + max(30, drain_s)
