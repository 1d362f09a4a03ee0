"""What a bundle is built from: one recommendation option, flattened into plain, checked values.

`apps.manifests.build` re-exports these; callers import them from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workers.engines import ENGINE_NAMES

HOURS_PER_DAY = 24
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


class ManifestError(ValueError):
    """The request cannot become a bundle someone could apply (unknown hardware, impossible numbers)."""


@dataclass(frozen=True)
class OverflowTarget:
    """The hosted API that takes what the self-hosted replicas cannot, through a LiteLLM router."""

    provider: str  # as the catalog names it ("OpenAI")
    model: str  # as the catalog names it ("GPT-4o-mini")
    litellm_model: str  # what LiteLLM calls: "openai/gpt-4o-mini"
    api_key_env: str  # the environment variable the router reads the provider key from
    api_base: str | None = None  # None: the provider's default endpoint


@dataclass(frozen=True)
class BundleRequest:
    """One deployable candidate plus the operator's choices. Lengths in tokens, sizes in the unit named."""

    workload_name: str  # raw user text: only ever an annotation or a value
    model_slug: str
    model_path: str  # what the engine loads: a Hugging Face repo id or a path inside the container
    served_name: str  # the model name clients send
    engine: str
    quant: str
    gpu: str  # catalog slug, or "cpu"
    tp: int
    replicas_by_hour: tuple[int, ...]  # 24 values, hour 0..23 UTC
    max_model_len: int  # longest prompt + longest output of the workload
    max_num_seqs: int
    weights_gb: float  # the checkpoint's size: download and load budgets come from it
    # The replica's other degrees, as the planner means them (apps/planner/perf/deployment.py Deployment):
    # pipeline stages, data-parallel attention groups of tp GPUs each, the expert-parallel degree of the MoE
    # layers (dividing tp x dp), and the hosts the replica spans (a LeaderWorkerSet when more than one).
    pp: int = 1
    dp: int = 1
    ep: int = 1
    nodes: int = 1
    # The checkpoint holds 16-bit weights the engine quantizes while loading (apps.catalog.checkpoints).
    quantize_on_load: bool = False
    checkpoint_source: str = ""  # where the checkpoint is published (README), "" when the operator chose
    checkpoint_file: str | None = None  # the one file to fetch from checkpoint_source (GGUF)
    min_replicas: int = (
        1  # 0 only for one deployment of a by-hour mixed fleet (its other GPU serves meanwhile)
    )
    max_replicas: int | None = None  # None: the planned peak plus a quarter for bursts
    namespace: str = "llm"
    gpu_memory_fraction: float = 0.90
    prefix_caching: bool = True
    use_keda: bool = True
    overflow: OverflowTarget | None = None
    storage_class: str | None = None  # None: the cluster's default class
    provider: str = ""
    instance_type: str = ""
    instance_vcpus: float | None = None  # of the whole instance the plan picked, to size the pod's share
    instance_memory_gib: float | None = None
    instance_gpu_count: int | None = None
    max_requests_per_s_per_replica: float | None = None
    drain_s: int = 120  # longest stream a replica must finish after SIGTERM
    first_token_timeout_s: int = 30  # the router gives up on the self-hosted engine after this long
    queue_threshold_per_replica: int = 5
    prescaled: bool = False  # replicas_by_hour already rises ahead of demand: no extra warm-up lead
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    prometheus_release_label: str = "kube-prometheus-stack"  # kube-prometheus-stack selects monitors by it
    hf_token_secret: str = "hf-token"
    image: str | None = None  # None: the engine's pinned image for this accelerator
    rank: int = 1
    monthly_cost_usd: float | None = None
    # One deployment of a mixed fleet: appended to the object names so both deployments share a namespace.
    name_suffix: str = ""

    @property
    def gpus(self) -> int:
        """GPUs of one replica, over all its hosts."""
        return self.tp * self.pp * self.dp

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes if self.nodes > 0 else self.gpus

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ManifestError("; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if self.engine not in ENGINE_NAMES:
            problems.append(f"unknown engine {self.engine!r}; known: {', '.join(ENGINE_NAMES)}")
        if len(self.replicas_by_hour) != HOURS_PER_DAY:
            problems.append(
                f"replicas_by_hour needs {HOURS_PER_DAY} values, got {len(self.replicas_by_hour)}"
            )
        if any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in self.replicas_by_hour):
            problems.append("replicas_by_hour must hold non-negative integers")
        if min(self.tp, self.pp, self.dp, self.ep, self.nodes) < 1:
            problems.append("tp, pp, dp, ep and nodes must be at least 1")
        else:
            problems += self._parallel_problems()
        if self.min_replicas < 0 or (
            self.min_replicas == 0 and not (self.use_keda and any(self.replicas_by_hour))
        ):
            # The queue metric only exists while a replica runs, so nothing but a schedule (KEDA cron) can bring
            # a replica back from zero; requests meanwhile need somewhere else to go (a mixed fleet's router
            # sends them to its other deployment).
            problems.append(
                "min_replicas must be at least 1, or 0 with KEDA and a schedule that has replicas"
            )
        if self.max_replicas is not None and self.max_replicas < max(self.min_replicas, 1):
            problems.append("max_replicas must be at least min_replicas")
        if self.max_model_len < 16 or self.max_num_seqs < 1:
            problems.append("max_model_len and max_num_seqs must be positive")
        if not 0.1 <= self.gpu_memory_fraction <= 0.99:
            problems.append("gpu_memory_fraction must lie in [0.1, 0.99]")
        if self.weights_gb <= 0:
            problems.append("weights_gb must be positive")
        if not self.model_path.strip() or not self.served_name.strip():
            problems.append("model_path and served_name must not be empty")
        # Operator-supplied names that become object fields (not just values) must already be well formed.
        if self.storage_class is not None and not _DNS_SUBDOMAIN.match(self.storage_class):
            problems.append(f"storage_class {self.storage_class!r} is not a valid StorageClass name")
        if self.name_suffix and not _DNS_LABEL.match(self.name_suffix):
            problems.append(f"name_suffix {self.name_suffix!r} is not a DNS label")
        if not _URL.match(self.prometheus_url):
            problems.append(f"prometheus_url {self.prometheus_url!r} is not a plain http(s) URL")
        if self.image is not None and not _IMAGE.match(self.image):
            problems.append(f"image {self.image!r} is not an image reference")
        if self.drain_s < 0 or self.first_token_timeout_s < 1 or self.queue_threshold_per_replica < 1:
            problems.append(
                "drain_s must be >= 0, first_token_timeout_s and queue_threshold_per_replica >= 1"
            )
        return problems

    def _parallel_problems(self) -> list[str]:
        problems = []
        if (self.tp * self.dp) % self.ep:
            problems.append(f"ep {self.ep} must divide tp x dp ({self.tp * self.dp})")
        if self.gpus % self.nodes:
            problems.append(
                f"the replica's {self.gpus} GPUs (tp x pp x dp) do not split evenly over {self.nodes} nodes"
            )
        if self.gpu == "cpu" and max(self.pp, self.dp, self.ep, self.nodes) > 1:
            problems.append("a cpu replica runs on one host, without pipeline, data or expert parallelism")
        return problems
