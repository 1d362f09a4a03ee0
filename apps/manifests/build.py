"""Build the deployment bundle (Compose, Kubernetes, router, README) for one recommendation option.

    request = request_from_plan(option, workload, plan, overflow=True)
    files = build_bundle(request)            # {"compose.yaml": "...", "k8s/20-deployment.yaml": "...", ...}
    problems = validate.validate_bundle(files)  # offer the bundle only when this is empty

Pure: no Django, no I/O. Every document is a Python structure serialised by yamlio, never YAML text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from apps.catalog.checkpoints import Checkpoint, Refusal, checkpoint_for
from apps.catalog.specs import CatalogSnapshot, load_snapshot
from apps.manifests import compose, kube, readme, router, yamlio
from apps.manifests.layout import Layout, layout_for
from apps.manifests.request import BundleRequest, ManifestError, OverflowTarget

__all__ = [
    "BUNDLE_TARGETS",
    "BundleRequest",
    "BundleTarget",
    "ManifestError",
    "OverflowTarget",
    "build_bundle",
    "request_from_plan",
]

Overflow = OverflowTarget | Mapping[str, Any] | bool | None
BundleTarget = Literal["all", "compose", "kubernetes"]
BUNDLE_TARGETS: tuple[BundleTarget, ...] = ("all", "compose", "kubernetes")

# File names sort into apply order for `kubectl apply -f k8s/`.
K8S_FILES = {
    "Namespace": "k8s/00-namespace.yaml",
    "PersistentVolumeClaim": "k8s/10-pvc.yaml",
    "ConfigMap": "k8s/15-engine-config.yaml",
    "Deployment": "k8s/20-deployment.yaml",
    "LeaderWorkerSet": "k8s/20-leaderworkerset.yaml",
    "Service": "k8s/30-service.yaml",
    "PodDisruptionBudget": "k8s/40-pdb.yaml",
    "PodMonitor": "k8s/50-podmonitor.yaml",
    "ScaledObject": "k8s/60-scaledobject.yaml",
    "HorizontalPodAutoscaler": "k8s/60-hpa.yaml",
}
ROUTER_FILES = {
    "ConfigMap": "k8s/70-router-configmap.yaml",
    "Deployment": "k8s/71-router-deployment.yaml",
    "Service": "k8s/72-router-service.yaml",
}
ADAPTER_VALUES_FILE = "extras/prometheus-adapter-values.yaml"

LLAMACPP_MODELS_DIR = "/models"


# --- building a request from the planner's dicts ------------------------------------------------------


def _default_model_path(checkpoint: Checkpoint) -> str:
    if checkpoint.file is not None:
        # llama.cpp loads one GGUF file by path; the README says where it comes from and where to put it.
        return f"{LLAMACPP_MODELS_DIR}/{checkpoint.file}"
    return checkpoint.repo


def resolve_checkpoint(model: str, quant: str, engine: str) -> Checkpoint:
    """The checkpoint the bundle deploys, or ManifestError with the reason no engine could load the option."""
    found = checkpoint_for(model, quant, engine)
    if isinstance(found, Refusal):
        raise ManifestError(f"{engine} cannot serve {model} at {quant}: {found.reason}")
    return found


def _weights_gb(option: Mapping[str, Any], snapshot: CatalogSnapshot) -> float:
    if option.get("weights_gb"):
        return float(option["weights_gb"])
    model = snapshot.model(option["model"])
    quant = snapshot.quantization(option["quant"])
    return model.params_total_b * quant.weight_bytes_per_param


def _serve_settings(option: Mapping[str, Any], context_tokens: int) -> dict[str, Any]:
    """Engine limits the planner modelled (option["serve"]), else the workload's own bounds."""
    serve = option.get("serve") or {}
    memory = option.get("memory") or {}
    predicted = option.get("predicted") or {}
    max_num_seqs = (
        serve.get("max_num_seqs")
        or option.get("max_concurrent_sequences")
        or memory.get("max_concurrent_sequences")
        or predicted.get("max_concurrent_sequences")
        or 256
    )
    settings: dict[str, Any] = {
        "max_model_len": int(serve.get("max_model_len") or context_tokens),
        "max_num_seqs": int(max_num_seqs),
    }
    if serve.get("gpu_memory_fraction"):
        settings["gpu_memory_fraction"] = float(serve["gpu_memory_fraction"])
    if "prefix_caching" in serve:
        # The planner credits the prefix cache only for workloads that share prefixes (and models the KV it
        # pins); the engine runs as modelled. Options planned before this key keep the engines' cache on.
        settings["prefix_caching"] = bool(serve["prefix_caching"])
    return settings


def _instance(option: Mapping[str, Any], snapshot: CatalogSnapshot) -> dict[str, Any]:
    for offer in snapshot.offers:
        if offer.provider == option.get("provider") and offer.instance_type == option.get("instance_type"):
            return {
                "instance_vcpus": offer.vcpus,
                "instance_memory_gib": offer.memory_gib,
                "instance_gpu_count": offer.gpu_count or option.get("gpus_per_instance") or None,
            }
    return {"instance_gpu_count": option.get("gpus_per_instance") or None}


def _resolve_overflow(overflow: Overflow, plan: Mapping[str, Any]) -> OverflowTarget | None:
    if overflow is None or overflow is False:
        return None
    if isinstance(overflow, OverflowTarget):
        return overflow
    if overflow is True:
        return router.cheapest_overflow(plan.get("api_alternatives") or [])
    return router.overflow_target(overflow)


def _workload_timing(workload: Mapping[str, Any]) -> tuple[int, int]:
    """(drain seconds, first-token timeout seconds) from the workload's lengths and SLOs."""
    output_max = int((workload.get("output_tokens") or {}).get("max") or 1024)
    slo = workload.get("slo") or {}
    itl_ms = float(slo.get("itl_p95_ms") or 60)
    ttft_ms = float(slo.get("ttft_p95_ms") or 2000)
    # The longest answer at the slowest allowed pace, plus a margin, bounds how long a drain can take.
    drain_s = min(600, math.ceil(output_max * itl_ms / 1000 * 1.5))
    return drain_s, max(10, math.ceil(ttft_ms * 5 / 1000))


def request_from_plan(
    option: Mapping[str, Any],
    workload: Mapping[str, Any],
    plan: Mapping[str, Any] | None = None,
    *,
    snapshot: CatalogSnapshot | None = None,
    namespace: str = "llm",
    model_path: str | None = None,
    use_keda: bool = True,
    overflow: Overflow = None,
    storage_class: str | None = None,
    image: str | None = None,
) -> BundleRequest:
    """A BundleRequest from a plan option (DESIGN.md's plan output), its workload dict and the plan.

    `overflow`: None/False for none, True for the cheapest mappable entry of plan["api_alternatives"], or
    {provider, model[, litellm_model, api_key_env, api_base]}.
    """
    snapshot = snapshot or load_snapshot()
    plan = plan or {}
    try:
        model = snapshot.model(option["model"])
        prompt_max = int(workload["prompt_tokens"]["max"])
        output_max = int(workload["output_tokens"]["max"])
        replicas = tuple(int(r) for r in option["replicas_by_hour"])
        engine, quant, gpu, tp = option["engine"], option["quant"], option["gpu"], int(option["tp"])
        # Options planned before pipeline, data and expert parallelism carry tp alone.
        pp, dp, ep, nodes = (int(option.get(key) or 1) for key in ("pp", "dp", "ep", "nodes"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"option or workload is missing a field the bundle needs: {exc}") from exc
    if int(option.get("gpus_per_replica") or tp * pp * dp) != tp * pp * dp and gpu != "cpu":
        raise ManifestError(
            "gpus_per_replica differs from tp x pp x dp: the engine would leave the extra GPUs idle"
        )
    context_tokens = prompt_max + output_max
    if context_tokens > model.max_context:
        raise ManifestError(
            f"the workload needs {context_tokens} tokens of context; the model has {model.max_context}"
        )
    constraints = workload.get("constraints") or {}
    drain_s, first_token_timeout_s = _workload_timing(workload)
    checkpoint = resolve_checkpoint(model.slug, quant, engine)
    request = BundleRequest(
        workload_name=str(workload.get("name") or option["model"]),
        model_slug=model.slug,
        model_path=model_path or _default_model_path(checkpoint),
        served_name=model.slug,
        engine=engine,
        quant=quant,
        quantize_on_load=checkpoint.quantize_on_load,
        checkpoint_source="" if model_path else checkpoint.source_url,
        checkpoint_file=None if model_path else checkpoint.file,
        gpu=gpu,
        tp=tp,
        pp=pp,
        dp=dp,
        ep=ep,
        nodes=nodes,
        replicas_by_hour=replicas,
        **_serve_settings(option, context_tokens),
        weights_gb=_weights_gb(option, snapshot),
        min_replicas=int(constraints.get("min_replicas") or 1),
        namespace=namespace,
        use_keda=use_keda,
        overflow=_resolve_overflow(overflow, plan),
        storage_class=storage_class,
        provider=str(option.get("provider") or ""),
        instance_type=str(option.get("instance_type") or ""),
        **_instance(option, snapshot),
        max_requests_per_s_per_replica=option.get("max_requests_per_s_per_replica"),
        image=image,
        # The planner already starts each busier hour an hour early when loads are slow.
        prescaled=bool(option.get("prescale_one_hour_early")),
        rank=int(option.get("rank") or 1),
        monthly_cost_usd=option.get("monthly_cost_usd"),
        drain_s=drain_s,
        first_token_timeout_s=first_token_timeout_s,
    )
    # Fail here rather than in build_bundle: unknown GPU labels, engines that cannot run the candidate, a
    # missing ROCm image are all properties of the request.
    layout_for(request)
    return request


# --- the bundle ---------------------------------------------------------------------------------------


def _autoscaler_docs(layout: Layout) -> dict[str, Any]:
    if layout.autoscaler == "keda":
        return {K8S_FILES["ScaledObject"]: kube.scaled_object(layout)}
    if layout.autoscaler == "hpa":
        return {K8S_FILES["HorizontalPodAutoscaler"]: kube.horizontal_autoscaler(layout)}
    return {}


def kubernetes_documents(layout: Layout) -> dict[str, Any]:
    docs: dict[str, Any] = {}
    if layout.names.namespace != "default":
        docs[K8S_FILES["Namespace"]] = kube.namespace(layout)
    docs[K8S_FILES["PersistentVolumeClaim"]] = kube.cache_pvc(layout)
    engine_config = kube.engine_config_map(layout)
    if engine_config is not None:
        docs[K8S_FILES["ConfigMap"]] = engine_config
    if layout.multi_node:
        docs[K8S_FILES["LeaderWorkerSet"]] = kube.leader_worker_set(layout)
    else:
        docs[K8S_FILES["Deployment"]] = kube.deployment(layout)
    docs[K8S_FILES["Service"]] = kube.service(layout)
    docs[K8S_FILES["PodDisruptionBudget"]] = kube.disruption_budget(layout)
    monitor = kube.pod_monitor(layout)
    if monitor is not None:
        docs[K8S_FILES["PodMonitor"]] = monitor
    docs |= _autoscaler_docs(layout)
    return docs


def router_documents(layout: Layout, overflow: OverflowTarget, config_text: str) -> dict[str, Any]:
    env = router.router_environment(f"http://{layout.names.service_host}/v1")
    return {
        ROUTER_FILES["ConfigMap"]: kube.router_config_map(layout, config_text),
        ROUTER_FILES["Deployment"]: kube.router_deployment(
            layout,
            image=router.LITELLM_IMAGE,
            env=env,
            api_key_env=overflow.api_key_env,
            config_text=config_text,
        ),
        ROUTER_FILES["Service"]: kube.router_service(layout),
    }


def build_bundle(request: BundleRequest, *, target: BundleTarget = "all") -> dict[str, str]:
    """File path -> text for the whole bundle, or only its Compose or Kubernetes part. Raises ManifestError
    when the request cannot be deployed that way (a replica over several nodes has no Compose form)."""
    layout = layout_for(request)
    if target == "compose" and layout.multi_node:
        raise ManifestError(compose.multi_node_refusal(layout))
    with_compose = target != "kubernetes" and not layout.multi_node
    with_kubernetes = target != "compose"
    files: dict[str, str] = {}
    docs = kubernetes_documents(layout)
    compose_router: dict[str, Any] | None = None
    if request.overflow is not None:
        config_text = yamlio.dump(router.litellm_config(layout, request.overflow))
        files[compose.LITELLM_CONFIG] = config_text
        docs |= router_documents(layout, request.overflow, config_text)
        env = router.router_environment(f"http://{layout.names.container}:{layout.port}/v1")
        if with_compose:
            compose_router = compose.router_service(
                layout, request.overflow, image=router.LITELLM_IMAGE, env=env
            )
    if with_compose:
        files["compose.yaml"] = yamlio.dump(compose.compose_file(layout, router=compose_router))
        files |= compose.engine_config_files(layout)
        if layout.definition.metrics_path:
            files[compose.PROMETHEUS_CONFIG] = yamlio.dump(compose.prometheus_config(layout))
    if with_kubernetes:
        for path, doc in docs.items():
            files[path] = yamlio.dump_all([doc])
        if layout.autoscaler == "hpa":
            files[ADAPTER_VALUES_FILE] = yamlio.dump(kube.prometheus_adapter_values(layout))
    files["README.md"] = readme.render(layout, files=sorted(files))
    return dict(sorted(files.items()))
