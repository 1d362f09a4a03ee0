"""README.md of a bundle: what to edit, the apply order, and why the numbers are what they are.

User text appears only through naming.one_line (one line, no backticks) and never inside a shell command:
operators paste those.
"""

from __future__ import annotations

from apps.manifests import compose, naming, sizing
from apps.manifests.layout import Layout, parallelism_label
from apps.manifests.validate import KUBERNETES_LATEST, KUBERNETES_VERSION
from workers.releases import all_facts

VALIDATED_AGAINST = (
    "Kubernetes {k8s} and {latest} JSON schemas (strict, kubernetes-validate), the KEDA ScaledObject, prometheus-operator "
    "PodMonitor and LeaderWorkerSet CRD schemas, and the Compose specification schema (see "
    "apps/manifests/schemas/README.md)"
)
_FORMAT_NAMES = {"awq-int4": "AWQ", "gptq-int4": "GPTQ", "nvfp4": "NVFP4 (ModelOpt)", "int8": "INT8 W8A8"}


def workload_file(layout: Layout) -> str:
    return "k8s/20-leaderworkerset.yaml" if layout.multi_node else "k8s/20-deployment.yaml"


def _model_section(layout: Layout, files: list[str]) -> list[str]:
    r = layout.request
    where = [f for f in (workload_file(layout), "compose.yaml") if f in files]
    where_text = " and ".join(f"`{f}`" for f in where)
    together = "; change them together" if len(where) > 1 else ""
    if layout.multi_node:
        where_text += ", leader and worker"
        together = "; change every occurrence"
    lines = [
        f"1. **Model path.** The engine loads `{naming.one_line(r.model_path)}` (the `{_model_flag(layout)}` "
        f"argument in {where_text}{together})."
    ]
    if r.checkpoint_source:
        how = (
            f"16-bit weights that {layout.definition.display_name} quantizes to {r.quant} while loading"
            if r.quantize_on_load
            else f"a checkpoint published in {_FORMAT_NAMES.get(r.quant, r.quant)}"
        )
        lines.append(f"   It is {how}: {naming.one_line(r.checkpoint_source)}.")
    elif r.quant not in ("bf16", "fp16"):
        lines.append(
            f"   It must be a checkpoint already in {_FORMAT_NAMES.get(r.quant, r.quant)} whose own config names "
            "the format (the engines read it from there; 16-bit weights would be served unquantized or fail)."
        )
    if r.engine == "llamacpp":
        fetch = (
            f"`{naming.one_line(r.checkpoint_file)}` from {naming.one_line(r.checkpoint_source)}"
            if r.checkpoint_file and r.checkpoint_source
            else "the GGUF file"
        )
        lines.append(
            f"   llama.cpp loads one GGUF file by path: put {fetch} in `./models/` for Compose, or on the "
            "`model-cache` volume (mounted at `/models`) for Kubernetes, before starting."
        )
    elif not layout.downloads:
        lines.append(f"   A local path is read from the cache volume (mounted at `{layout.cache_mount}`).")
    return lines


def _model_flag(layout: Layout) -> str:
    flags = [a for a in layout.args if a in {"--model", "--model-path", "--model-id"}]
    return flags[0] if flags else "first positional"


def _edit_section(layout: Layout, files: list[str]) -> list[str]:
    r, names = layout.request, layout.names
    mode = "ReadWriteMany" if layout.shared_cache else "ReadWriteOnce"
    storage = (
        f"storage class `{r.storage_class}`" if r.storage_class else "the cluster's default storage class"
    )
    lines = ["## Before you apply: the few things to edit", "", *_model_section(layout, files)]
    if layout.downloads:
        compose_too = (
            "; Compose reads `HF_TOKEN` from your shell and refuses to start without it"
            if "compose.yaml" in files
            else ""
        )
        lines.append(
            f"2. **Hugging Face token.** Kubernetes reads Secret `{layout.hf_secret}` (key `token`) in namespace "
            f"`{names.namespace}`{compose_too}. "
            "Gated models (Llama, Gemma) need a token whose account accepted the licence."
        )
    else:
        lines.append(
            "2. **Hugging Face token.** Not needed: the model is read from the volume, nothing is downloaded."
        )
    lines.append(
        f"3. **Storage class.** `k8s/10-pvc.yaml` asks {storage} for {layout.cache_size_gi}Gi {mode}."
    )
    if layout.shared_cache:
        who = (
            f"Every replica's {layout.nodes} pods run on {layout.nodes} different nodes"
            if layout.multi_node
            else "Replicas may run on several nodes"
        )
        lines.append(
            f"   {who} and share the cache, so the class must support ReadWriteMany "
            "(EFS, Filestore, Azure Files, CephFS, NFS): set `storageClassName` if the default does not."
        )
    if layout.autoscaler == "keda" and layout.definition.queue_metric:
        lines.append(
            f"4. **Prometheus address.** KEDA queries `{r.prometheus_url}` (kube-prometheus-stack's default); "
            "change `serverAddress` in `k8s/60-scaledobject.yaml` if yours differs."
        )
    if r.overflow is not None:
        lines.append(
            f"5. **Router keys.** Secret `{names.router_secret}` holds `master-key` (what clients send to the "
            f"router) and `provider-api-key` ({naming.one_line(r.overflow.provider)} key)."
        )
    return [*lines, ""]


def _summary(layout: Layout) -> list[str]:
    r = layout.request
    cost = f", about ${r.monthly_cost_usd:,.0f}/month" if r.monthly_cost_usd is not None else ""
    where = naming.one_line(f"{r.provider} {r.instance_type}".strip()) or "any matching node"
    label = parallelism_label(r)
    shape = f"{r.gpu} x{r.gpus}" + (f" ({label})" if label != f"TP{r.tp}" or r.ep > 1 else "")
    if layout.multi_node:
        shape += f" over {r.nodes} nodes of {r.gpus_per_node} GPUs"
    return [
        f"# Deployment bundle: {naming.one_line(r.workload_name)}",
        "",
        f"Recommendation option {r.rank}: {layout.definition.display_name} serving `{r.model_slug}` "
        f"({r.quant}) on {shape} per replica ({where}){cost}. Image `{layout.image}`.",
        "",
    ]


def _multi_node_section(layout: Layout) -> list[str]:
    if not layout.multi_node:
        return []
    joined = (
        "`--nnodes`, `--node-rank` and `--master-addr` (vLLM's native multi-node mode; hosts other than 0 run "
        "`--headless`)"
        if layout.request.engine == "vllm"
        else "`--nnodes`, `--node-rank` and `--dist-init-addr`"
    )
    return [
        "## One replica over several nodes",
        "",
        f"Each replica is a LeaderWorkerSet group of {layout.nodes} pods, one per node with "
        f"{layout.request.gpus_per_node} GPUs: the leader (`<name>-<group>`) runs the engine's head and serves the "
        f"API; the workers (`<name>-<group>-<index>`) join it through {joined}, reading the leader's address and "
        "their index from the variables LeaderWorkerSet sets in every pod (`LWS_LEADER_ADDRESS`, "
        "`LWS_WORKER_INDEX`). A pod that fails restarts its whole group. The nodes of a group talk NCCL over "
        "the cluster network: give them the fastest fabric you have (InfiniBand or EFA with its device plugin).",
        "",
        "There is no `compose.yaml`: " + compose.multi_node_refusal(layout) + ".",
        "",
    ]


def _compose_section(layout: Layout, files: list[str]) -> list[str]:
    if "compose.yaml" not in files:
        return []
    port = compose.host_port(layout.port)
    lines = ["## Docker Compose: one replica on one host", "", "```sh"]
    if layout.downloads:
        lines.append("export HF_TOKEN=...            # a Hugging Face read token")
    if layout.request.overflow is not None:
        lines += [
            "export LITELLM_MASTER_KEY=...  # what clients send to the router on 127.0.0.1:4000",
            f"export {layout.request.overflow.api_key_env}=...",
        ]
    lines += ["docker compose up -d"]
    if layout.definition.metrics_path:
        lines.append("docker compose --profile monitoring up -d   # Prometheus on 127.0.0.1:9090")
    lines += [f"curl -fsS http://127.0.0.1:{port}/v1/models", "```", ""]
    lines.append(
        f"Ports are bound to 127.0.0.1: the engine has no authentication. The health check allows "
        f"{layout.budget.startup_budget_s}s for the first start ({'download and ' if layout.downloads else ''}load). Compose runs a single "
        "replica; the hourly schedule needs the Kubernetes files."
    )
    return [*lines, ""]


def _kubernetes_section(layout: Layout, files: list[str]) -> list[str]:
    if not any(f.startswith("k8s/") for f in files):
        return []
    names = layout.names
    ns = names.namespace
    prerequisites = [
        "- NVIDIA GPU Operator (device plugin, GPU Feature Discovery labels, the `nvidia` RuntimeClass)"
        if layout.accelerator.kind == "nvidia"
        else "- AMD GPU Operator (device plugin and node labeller)"
        if layout.accelerator.kind == "amd"
        else "- nodes with enough CPU and memory (no GPU requested)",
    ]
    if layout.multi_node:
        prerequisites.append(
            "- the LeaderWorkerSet controller (kubernetes-sigs/lws; the bundle is validated against v0.10.0's CRD)"
        )
    if any(f.endswith("podmonitor.yaml") for f in files):
        prerequisites.append("- prometheus-operator CRDs (kube-prometheus-stack) for the PodMonitor")
    if layout.autoscaler == "keda":
        prerequisites.append("- KEDA 2.10 or newer for the ScaledObject (triggers carry no metricName)")
    if layout.autoscaler == "hpa":
        prerequisites.append(
            "- prometheus-adapter with the rule in `extras/prometheus-adapter-values.yaml` for the HPA metric"
        )
    timeout = max(1200, layout.budget.startup_budget_s + 300)
    commands = ["```sh"]
    if "k8s/00-namespace.yaml" in files:
        commands.append("kubectl apply -f k8s/00-namespace.yaml")
    if layout.downloads:
        commands.append(
            f'kubectl -n {ns} create secret generic {layout.hf_secret} --from-literal=token="$HF_TOKEN"'
        )
    if layout.request.overflow is not None:
        commands.append(
            f"kubectl -n {ns} create secret generic {names.router_secret} "
            f'--from-literal=master-key="$LITELLM_MASTER_KEY" '
            f'--from-literal=provider-api-key="${layout.request.overflow.api_key_env}"'
        )
    commands += [
        "kubectl apply -f k8s/",
        (
            f"kubectl -n {ns} wait --for=condition=Available leaderworkerset/{names.deployment} "
            f"--timeout={timeout}s"
            if layout.multi_node
            else f"kubectl -n {ns} rollout status deployment/{names.deployment} --timeout={timeout}s"
        ),
        "```",
    ]
    return [
        "## Kubernetes",
        "",
        "Prerequisites:",
        *prerequisites,
        "",
        "Apply in this order (file names sort the same way):",
        "",
        *commands,
        "",
        f"Clients inside the cluster call `http://{names.service_host}/v1`"
        + (
            f", or the overflow router at `http://{names.router}.{ns}.svc.cluster.local/v1`."
            if layout.request.overflow
            else "."
        ),
        "",
    ]


def _queue_metric_lines(layout: Layout) -> list[str]:
    """What the queue trigger reads, and what happens when it reads nothing."""
    queue = layout.definition.queue_metric
    if layout.autoscaler != "keda":
        return []
    if not queue:
        return [
            "",
            f"**Error: {layout.definition.display_name} exports no queue metric**, so nothing here sees "
            "the queue: only the schedule scales it.",
        ]
    facts = all_facts().get(layout.request.engine)
    enabled = (
        f" The engine exports it only with {'; '.join(facts.metrics_enabled_by)}, which the arguments set."
        if facts and facts.metrics_enabled_by
        else ""
    )
    source = (
        f"The queue trigger reads `{queue}` from `{layout.definition.metrics_path}` "
        f"({facts.metrics_source if facts else 'the engine'}).{enabled} "
    )
    if layout.floor == 0:
        return [
            "",
            source + "Off its scheduled hours this deployment has no replica and so no series, which is no "
            'error (`ignoreNullValues: "true"`, no fallback that would wake it): only the schedule brings it '
            "back, and the router sends requests to the other deployment meanwhile.",
        ]
    return [
        "",
        source
        + "If Prometheus has no series for it (the metric is missing, or scraping fails), KEDA reports the "
        f'trigger as failing (`ignoreNullValues: "false"`) and holds the fallback of {layout.peak} '
        "replica(s) after three failed polls: check `kubectl describe scaledobject` for that error.",
    ]


def _scaling_section(layout: Layout) -> list[str]:
    lines = ["## Scaling", ""]
    queue = layout.definition.queue_metric
    if layout.autoscaler == "keda":
        lines.append(
            f"KEDA keeps at least {layout.floor} replica(s) warm and at most {layout.max_replicas}. "
            + (
                f"It adds replicas when `{queue}` exceeds {layout.request.queue_threshold_per_replica} waiting "
                "requests per replica, "
                if queue
                else f"{layout.definition.display_name} exports no queue metric, so only the schedule scales it, "
            )
            + "and follows the planned schedule below (UTC)"
            + (
                ", which already rises an hour ahead of demand because loads are slow."
                if layout.request.prescaled
                else f", starting each window {layout.budget.warmup_lead_min} minutes early so replicas are "
                "loaded on the hour."
            )
        )
    elif layout.autoscaler == "hpa":
        lines.append(
            f"An HPA scales between {layout.floor} and {layout.max_replicas} replicas on `{queue}` "
            f"(via prometheus-adapter). An HPA cannot follow a schedule: quiet-hour capacity arrives only after "
            f"a queue builds and a replica loads (up to {layout.budget.warm_s}s). Use KEDA to pre-scale."
        )
    else:
        lines.append(
            f"No autoscaler: {layout.definition.display_name} exports no queue metric "
            + ("and the plan is flat, " if layout.request.use_keda else "and an HPA has nothing to follow, ")
            + f"so the {'LeaderWorkerSet' if layout.multi_node else 'Deployment'} holds the planned peak of "
            f"{layout.peak} replica(s)."
        )
    lines += _queue_metric_lines(layout)
    if layout.windows:
        enforced = layout.autoscaler == "keda"
        lines += [
            "",
            "The planned schedule" + (":" if enforced else " (for reference: nothing here enforces it):"),
            "",
            "| Window (UTC) | Replicas |",
            "|---|---|",
        ]
        lines += [f"| {w.start_hour:02d}:00-{w.end_hour:02d}:00 | {w.replicas} |" for w in layout.windows]
        lines.append(f"| other hours | {layout.floor} |")
    return [*lines, ""]


def _budget_section(layout: Layout) -> list[str]:
    budget = layout.budget
    source = "download from the Hugging Face Hub" if layout.downloads else "read from the volume"
    return [
        "## Start-up and shutdown budgets",
        "",
        f"- First start: {budget.cold_s}s estimated ({layout.request.weights_gb:.0f} GB of weights to {source} "
        f"at {sizing.HUB_DOWNLOAD_GB_PER_S} GB/s, read at {sizing.VOLUME_READ_GB_PER_S} GB/s, plus engine "
        f"start-up); the startup probe allows {budget.startup_budget_s}s "
        f"({budget.startup_failure_threshold} x {sizing.STARTUP_PERIOD_S}s).",
        f"- Later starts read the cache volume: about {budget.warm_s}s.",
        f"- Shutdown: {sizing.termination_grace_s(layout.request.drain_s)}s grace so streams in flight can "
        "finish after the pod leaves the Service.",
        f"- /dev/shm: {layout.resources.shm_gi}Gi in memory, counted in the {layout.resources.memory_limit_gi}Gi "
        "memory limit.",
        "",
    ]


def verification_lines() -> list[str]:
    """Per engine, the pinned release and how this project checked what the bundle relies on."""
    lines = ["## What was verified, per engine", ""]
    for engine, facts in all_facts().items():
        flags = facts.current.flag_list
        lines.append(
            f"- **{facts.display_name} {facts.current.version}** ({', '.join(sorted(facts.current.images))} "
            f"images): {facts.current.verified}. Flag list: `workers/release_data/flags/{engine}-"
            f"{flags.version}.json` ({flags.method}). Queue metric `{facts.queue_metric}`: {facts.metrics_source}."
        )
        for version, older in facts.releases.items():
            if version != facts.current.version:
                lines.append(f"  - {version} (previous): {older.verified}.")
    return [*lines, ""]


def _overflow_section(layout: Layout) -> list[str]:
    overflow = layout.request.overflow
    if overflow is None:
        return []
    return [
        "## Overflow to a hosted API",
        "",
        f"`litellm/config.yaml` sends requests for `{naming.one_line(layout.request.served_name)}` to the "
        f"self-hosted engine up to its planned peak capacity and falls back to "
        f"`{naming.one_line(overflow.litellm_model)}` ({naming.one_line(overflow.provider)}) when the engine is "
        "at its cap, fails, or has not produced a first token in time. Keys come from the environment only.",
        "",
    ]


def render(layout: Layout, *, files: list[str]) -> str:
    lines = [
        *_summary(layout),
        *_edit_section(layout, files),
        *_multi_node_section(layout),
        *_compose_section(layout, files),
        *_kubernetes_section(layout, files),
        *_scaling_section(layout),
        *_budget_section(layout),
        *_overflow_section(layout),
        *verification_lines(),
        "## Files",
        "",
        *[f"- `{path}`" for path in [*files, "README.md"]],
        "",
        "Validated before download against "
        + VALIDATED_AGAINST.format(k8s=KUBERNETES_VERSION, latest=KUBERNETES_LATEST)
        + ".",
        "",
    ]
    return "\n".join(lines)
