"""Everything the document builders share, derived once from a BundleRequest.

The engine's command, arguments and environment come from workers.engines.container_args() and serve_env()
for the same ServeConfig the benchmark workers launch, so the deployed process is the measured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from apps.manifests import hardware, naming, schedule, sizing
from apps.manifests.request import BundleRequest, ManifestError
from workers.engines import (
    ENGINES,
    EngineDefinition,
    ServeConfig,
    UnsupportedCandidate,
    container_args,
    engine_files,
    serve_env,
)

AutoscalerKind = Literal["keda", "hpa", "none"]

MANAGED_BY = "llm-deployment-advisor"
ANNOTATION_PREFIX = "llm-deployment-advisor"
_ANNOTATION_MAX_CHARS = 512  # raw user text is informational; keep objects far from the 256 KiB limit
SERVICE_PORT = 80
ROUTER_PORT = 4000
# Cache mount per engine: where each image keeps downloaded weights. TGI's image sets its hub cache to /data;
# llama.cpp loads a GGUF file by path, so its volume holds the files themselves.
_CACHE_MOUNTS = {"tgi": "/data", "llamacpp": "/models"}
_DEFAULT_CACHE_MOUNT = "/root/.cache"
_CPU_RUNTIME_MARGIN_GI = 4  # activations, tokenizer, Python: what a CPU replica needs besides weights and KV  # covers huggingface/ and the engines' compile caches (vllm/, triton/)


@dataclass(frozen=True)
class Names:
    namespace: str
    base: str
    container: str

    @property
    def deployment(self) -> str:
        return self.base

    @property
    def service(self) -> str:
        return self.base

    @property
    def cache_pvc(self) -> str:
        return f"{self.base}-model-cache"

    @property
    def engine_config(self) -> str:
        return f"{self.base}-engine-config"

    @property
    def router(self) -> str:
        return f"{self.base}-router"

    @property
    def router_config(self) -> str:
        return f"{self.base}-router-config"

    @property
    def router_secret(self) -> str:
        return f"{self.base}-router-keys"

    @property
    def service_host(self) -> str:
        return f"{self.service}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class Layout:
    request: BundleRequest
    definition: EngineDefinition
    serve: ServeConfig
    names: Names
    hf_secret: str
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # settings some engines take only from the environment (serve_env)
    files: tuple[tuple[str, str], ...]  # (absolute path, text) of files the arguments name (engine_files)
    accelerator: hardware.Accelerator
    resources: sizing.HostResources
    budget: sizing.StartBudget
    cache_mount: str
    cache_size_gi: int
    floor: int
    peak: int
    max_replicas: int
    windows: tuple[schedule.ReplicaWindow, ...]
    autoscaler: AutoscalerKind
    # Hosts other than the leader (nodes > 1): their engine arguments, the same but for the node rank.
    worker_args: tuple[str, ...] | None = None

    @property
    def nodes(self) -> int:
        return self.request.nodes

    @property
    def multi_node(self) -> bool:
        """One replica spans hosts: a LeaderWorkerSet group of `nodes` pods instead of one Deployment pod."""
        return self.request.nodes > 1

    @property
    def worker_serves_http(self) -> bool:
        """SGLang's hosts other than 0 answer /health on the engine port (a stand-in server, sglang/srt/entrypoints/
        engine.py launch_dummy_health_check_server); vLLM's headless hosts serve nothing."""
        return self.request.engine == "sglang"

    @property
    def port(self) -> int:
        return self.serve.effective_port

    @property
    def downloads(self) -> bool:
        return sizing.is_hub_reference(self.request.model_path)

    @property
    def most_replicas(self) -> int:
        return self.max_replicas if self.autoscaler != "none" else self.peak

    @property
    def shared_cache(self) -> bool:
        """Several pods may mount the cache at once, possibly on different nodes."""
        return self.most_replicas > 1 or self.multi_node

    @property
    def served_model_id(self) -> str:
        # Engines without a served-name flag (TGI) answer under the path they loaded.
        return self.request.served_name if self.request.served_name in self.args else self.request.model_path

    @property
    def config_dir(self) -> str:
        return self.serve.config_dir

    def labels(self, component: str) -> dict[str, str]:
        return {
            **self.selector(component),
            "app.kubernetes.io/managed-by": MANAGED_BY,
            f"{ANNOTATION_PREFIX}/engine": self.request.engine,
            f"{ANNOTATION_PREFIX}/model": naming.label_value(self.request.model_slug),
            f"{ANNOTATION_PREFIX}/accelerator": naming.label_value(self.request.gpu),
        }

    def selector(self, component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": self.names.base, "app.kubernetes.io/component": component}

    def annotations(self) -> dict[str, str]:
        r = self.request
        return {
            f"{ANNOTATION_PREFIX}/workload": _clip(r.workload_name),
            f"{ANNOTATION_PREFIX}/model-path": _clip(r.model_path),
            f"{ANNOTATION_PREFIX}/option": _clip(
                f"rank {r.rank}: {r.engine} {r.quant} on {r.gpu} x{r.gpus} {parallelism_label(r)}"
                f"{f' over {r.nodes} nodes' if r.nodes > 1 else ''} ({r.provider} {r.instance_type})".strip()
            ),
        }


def parallelism_label(request: BundleRequest) -> str:
    """The planner's short label ("TP8", "DP8 EP8", "TP8 PP2"; apps/planner/perf/deployment.py)."""
    parts = [f"TP{request.tp}"] if request.tp > 1 or request.dp == 1 else []
    parts += [
        f"{name}{degree}"
        for name, degree in (("DP", request.dp), ("EP", request.ep), ("PP", request.pp))
        if degree > 1
    ]
    return " ".join(parts)


def _clip(raw: str) -> str:
    return raw if len(raw) <= _ANNOTATION_MAX_CHARS else raw[: _ANNOTATION_MAX_CHARS - 1] + "…"


def cpu_kv_cache_gib(request: BundleRequest, resources: sizing.HostResources) -> int:
    """KV cache for vLLM's CPU build (it reads the size from the environment): the replica's memory less the
    weights and a margin for the runtime."""
    weights_gi = math.ceil(request.weights_gb * sizing.GIB_PER_GB)
    return max(1, resources.memory_gi - weights_gi - _CPU_RUNTIME_MARGIN_GI)


# What LeaderWorkerSet puts in every pod's environment (api/leaderworkerset/v1/leaderworkerset_types.go and
# pkg/utils/pod/pod_utils.go AddLWSVariables at kubernetes-sigs/lws v0.10.0). The kubelet expands $(NAME) in
# container args from the pod's environment, so the engine sees the leader's DNS name and its own index.
LWS_LEADER_ADDRESS = "$(LWS_LEADER_ADDRESS)"
LWS_WORKER_INDEX = "$(LWS_WORKER_INDEX)"


def serve_config(request: BundleRequest, *, kv_cache_gib: int = 1, node_rank: str = "0") -> ServeConfig:
    return ServeConfig(
        engine=request.engine,
        model_path=request.model_path,
        served_name=request.served_name,
        quantization=request.quant,
        tensor_parallel=request.tp,
        pipeline_parallel=request.pp,
        data_parallel=request.dp,
        expert_parallel=request.ep,
        nnodes=request.nodes,
        node_rank=node_rank,
        leader_address=LWS_LEADER_ADDRESS if request.nodes > 1 else None,
        max_model_len=request.max_model_len,
        max_num_seqs=request.max_num_seqs,
        gpu_memory_fraction=request.gpu_memory_fraction,
        prefix_caching=request.prefix_caching,
        quantize_on_load=request.quantize_on_load,
        device="cpu" if request.gpu == "cpu" else "cuda",
        cpu_kv_cache_gib=kv_cache_gib,
    )


def _autoscaler(request: BundleRequest, definition: EngineDefinition, has_windows: bool) -> AutoscalerKind:
    if request.use_keda:
        return "keda" if definition.queue_metric or has_windows else "none"
    return "hpa" if definition.queue_metric else "none"


def _base_name(request: BundleRequest) -> str:
    if not request.name_suffix:
        return naming.k8s_name(request.workload_name)
    suffix = f"-{request.name_suffix}"
    return naming.k8s_name(request.workload_name, max_len=40 - len(suffix)) + suffix


def layout_for(request: BundleRequest) -> Layout:
    definition = ENGINES[request.engine]
    accelerator = hardware.accelerator_for(request.gpu, request.gpus_per_node)
    if accelerator.kind == "amd" and "rocm" not in definition.accelerators:
        raise ManifestError(f"{definition.display_name} does not run on ROCm (AMD GPUs)")
    resources = sizing.host_resources(
        gpus=accelerator.count,
        tp=request.gpus_per_node,  # engine processes sharing the pod's /dev/shm
        weights_gb=request.weights_gb,
        instance_vcpus=request.instance_vcpus,
        instance_memory_gib=request.instance_memory_gib,
        instance_gpu_count=request.instance_gpu_count,
    )
    serve = serve_config(request, kv_cache_gib=cpu_kv_cache_gib(request, resources))
    try:
        command, args = container_args(serve)
        env = serve_env(serve)
        files = engine_files(serve)
        worker_args = (
            tuple(container_args(replace(serve, node_rank=LWS_WORKER_INDEX))[1])
            if request.nodes > 1
            else None
        )
    except UnsupportedCandidate as exc:
        raise ManifestError(str(exc)) from exc
    floor = schedule.floor_replicas(request.replicas_by_hour, request.min_replicas)
    peak = schedule.peak_replicas(request.replicas_by_hour, request.min_replicas)
    windows = tuple(schedule.replica_windows(request.replicas_by_hour, floor))
    max_replicas = request.max_replicas or peak + max(1, math.ceil(peak * 0.25))
    names = Names(
        namespace=naming.k8s_name(request.namespace, max_len=63),
        base=_base_name(request),
        container=request.engine,
    )
    return Layout(
        request=request,
        definition=definition,
        serve=serve,
        names=names,
        hf_secret=naming.k8s_name(request.hf_token_secret, max_len=63),
        image=hardware.image_for(definition, accelerator.kind, request.image),
        command=tuple(command) if command else None,
        args=tuple(args),
        env=tuple(sorted(env.items())),
        files=tuple(sorted(files.items())),
        accelerator=accelerator,
        resources=resources,
        budget=sizing.start_budget(
            weights_gb=request.weights_gb,
            engine=request.engine,
            downloads=sizing.is_hub_reference(request.model_path),
        ),
        cache_mount=_CACHE_MOUNTS.get(request.engine, _DEFAULT_CACHE_MOUNT),
        cache_size_gi=sizing.cache_size_gi(request.weights_gb),
        floor=floor,
        peak=peak,
        max_replicas=max(max_replicas, peak),
        windows=windows,
        autoscaler=_autoscaler(request, definition, bool(windows)),
        worker_args=worker_args,
    )
