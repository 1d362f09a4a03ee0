"""A bundle for a plan's mixed fleet: one deployment per GPU type behind one LiteLLM router that routes as the
plan says (apps/planner/pipeline/mixed.py).

- by_length: prompts up to the plan's threshold go to one deployment, longer ones to the other. LiteLLM 1.83.14
  does it with its own pre-call checks (litellm/router.py `_pre_call_checks`): with `enable_pre_call_checks` it
  drops every deployment whose `model_info.max_input_tokens` is below the prompt's token count, then keeps the
  deployments of the lowest `order` among those left (`litellm.utils._get_order_filtered_deployments`). The
  short-prompt deployment is order 1 with max_input_tokens = the threshold; the other is order 2 with its whole
  context, so a short prompt goes to order 1 and a longer one can only go to order 2. If order 1 fails or is at
  its rpm cap, LiteLLM's order fallback sends the request to order 2. The router counts tokens with tiktoken's
  cl100k_base (token_counter without a model, bundled in the package), not the model's tokenizer, so the boundary
  moves by the ratio of the two tokenizers.
- by_hour: both deployments follow their own KEDA schedule, each scaled to zero in the hours the other serves.
  The router sends requests only to deployments its background health checks found healthy
  (`enable_health_check_routing`, litellm/proxy/proxy_server.py), so the hand-over follows the replicas.

Pure: no Django, no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from apps.catalog.specs import CatalogSnapshot, load_snapshot
from apps.manifests import kube, naming, readme, router, yamlio
from apps.manifests.build import ROUTER_FILES, BundleTarget, kubernetes_documents, request_from_plan
from apps.manifests.layout import Layout, layout_for
from apps.manifests.request import BundleRequest, ManifestError
from apps.manifests.validate import KUBERNETES_LATEST, KUBERNETES_VERSION

# Labels a mixed fleet's part carries (apps/planner/pipeline/mixed.py `_label`); the option they match holds the
# rest of the deployment (model, degrees, serve settings).
_PART_KEYS = ("engine", "quant", "gpu", "parallelism")
SHORT_ORDER, LONG_ORDER = 1, 2
HEALTH_CHECK_INTERVAL_S = 30


@dataclass(frozen=True)
class MixedPart:
    tag: str  # the GPU slug: object-name suffix and environment-variable suffix
    plan_part: Mapping[str, Any]
    layout: Layout

    @property
    def base_env(self) -> str:
        return f"{router.SELF_HOSTED_BASE_ENV}_{self.tag.upper().replace('-', '_')}"


def mixed_fleet(plan: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    fleets = plan.get("mixed_fleets") or []
    if not 0 <= index < len(fleets):
        raise ManifestError(f"the plan has no mixed fleet {index}; it has {len(fleets)}")
    fleet: Mapping[str, Any] = fleets[index]
    return fleet


def _option_for(plan: Mapping[str, Any], part: Mapping[str, Any]) -> dict[str, Any]:
    for option in plan.get("options") or []:
        if all(option.get(key) == part.get(key) for key in _PART_KEYS):
            return copy.deepcopy(dict(option))
    wanted = ", ".join(f"{key} {part.get(key)}" for key in _PART_KEYS)
    raise ManifestError(f"no option of the plan matches the mixed fleet's part ({wanted})")


def mixed_requests(
    plan: Mapping[str, Any],
    workload: Mapping[str, Any],
    index: int = 0,
    *,
    snapshot: CatalogSnapshot | None = None,
    namespace: str = "llm",
    use_keda: bool = True,
    storage_class: str | None = None,
) -> list[BundleRequest]:
    """One BundleRequest per part, from the option of the same family with the part's schedule and offer."""
    fleet = mixed_fleet(plan, index)
    snapshot = snapshot or load_snapshot()
    requests = []
    tags = [str(part.get("gpu")) for part in fleet["parts"]]
    if len(set(tags)) != len(tags):
        raise ManifestError("a mixed fleet's parts must run on different GPUs")
    for part in fleet["parts"]:
        option = _option_for(plan, part)
        option["replicas_by_hour"] = list(part["replicas_by_hour"])
        option["provider"], option["instance_type"] = part.get("provider"), part.get("instance_type")
        option["monthly_cost_usd"] = part.get("monthly_cost_usd")
        if part.get("planned_requests_per_s_per_replica"):
            # by_length: each part is sized on its own bucket's capacity; the router caps it there
            option["max_requests_per_s_per_replica"] = part["planned_requests_per_s_per_replica"]
        request = request_from_plan(
            option,
            workload,
            plan,
            snapshot=snapshot,
            namespace=namespace,
            use_keda=use_keda,
            storage_class=storage_class,
        )
        changes: dict[str, Any] = {"name_suffix": naming.k8s_name(str(part["gpu"]), max_len=22)}
        if min(request.replicas_by_hour) == 0:
            if not use_keda:
                raise ManifestError(
                    f"the {part['gpu']} deployment is scheduled down to zero in some hours, which needs KEDA "
                    "(an HPA cannot scale to zero): choose the KEDA autoscaler"
                )
            changes["min_replicas"] = 0
        requests.append(replace(request, **changes))
    return requests


def _router_layout(parts: list[MixedPart], workload_name: str) -> Layout:
    """The router's names and labels: the workload's own, on no GPU of either part."""
    first = parts[0].layout
    request = replace(first.request, name_suffix="", gpu="mixed", workload_name=workload_name)
    names = replace(first.names, base=naming.k8s_name(workload_name), container="litellm")
    return replace(first, request=request, names=names)


def litellm_mixed_config(fleet: Mapping[str, Any], parts: list[MixedPart]) -> dict[str, Any]:
    by_length = fleet.get("kind") == "by_length"
    threshold = fleet.get("threshold_prompt_tokens")
    served = parts[0].layout.request.served_name
    model_list = []
    for part in parts:
        params = router.self_hosted_params(part.layout, base_env=part.base_env)
        model_info: dict[str, Any] = {"id": part.layout.names.deployment}
        if by_length:
            short = (part.plan_part.get("prompt_tokens") or {}).get("from") == 0
            params["order"] = SHORT_ORDER if short else LONG_ORDER
            # Every deployment states its own limit: LiteLLM registers the info of deployments that share a
            # model name under that name, so one without a limit would inherit the other's.
            if threshold is None:
                raise ManifestError("a by_length mixed fleet needs its threshold_prompt_tokens")
            model_info["max_input_tokens"] = int(threshold) if short else part.layout.request.max_model_len
        model_list.append({"model_name": served, "litellm_params": params, "model_info": model_info})
    general: dict[str, Any] = {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    if not by_length:
        general |= {
            "background_health_checks": True,
            "health_check_interval": HEALTH_CHECK_INTERVAL_S,
            "enable_health_check_routing": True,
        }
    return {
        "model_list": model_list,
        # by_length: the pre-call length check is the routing rule; by_hour: it keeps the rpm caps honest
        "router_settings": router.router_settings(),
        "litellm_settings": {"drop_params": True},
        "general_settings": general,
    }


def _tagged(path: str, tag: str) -> str:
    stem, dot, suffix = path.rpartition(".")
    return f"{stem}-{tag}{dot}{suffix}"


def _readme(fleet: Mapping[str, Any], parts: list[MixedPart], router_layout: Layout, files: list[str]) -> str:
    ns = router_layout.names.namespace
    by_length = fleet.get("kind") == "by_length"
    lines = [
        f"# Mixed-GPU fleet: {naming.one_line(router_layout.request.workload_name)}",
        "",
        f"The plan's mixed fleet ({fleet.get('kind')}): about ${float(fleet['monthly_cost_usd']):,.0f}/month, "
        f"{float(fleet.get('saving_vs_best_single') or 0) * 100:.1f}% below the best single GPU. Two "
        "deployments, one per GPU type, behind one LiteLLM router (`litellm/config.yaml`):",
        "",
    ]
    for position, part in enumerate(parts):
        request = part.layout.request
        plan_part = part.plan_part
        if by_length:
            span = plan_part.get("prompt_tokens") or {}
            what = f"prompts of {span.get('from')} to {span.get('to')} tokens ({float(plan_part.get('share_of_requests') or 0) * 100:.0f}% of requests)"
        else:
            hours = plan_part.get("hours") or []
            what = f"the hours (UTC) {', '.join(f'{h:02d}' for h in hours)}"
        lines.append(
            f"{position + 1}. `{part.layout.names.deployment}`: {part.layout.definition.display_name} on "
            f"{request.gpu} x{request.gpus} ({naming.one_line(f'{request.provider} {request.instance_type}')}) "
            f"serves {what}; details in `README-{part.tag}.md`."
        )
    lines.append("")
    if by_length:
        lines += [
            f"Routing: the router counts each prompt's tokens and sends those of at most "
            f"{fleet.get('threshold_prompt_tokens')} tokens to deployment 1 (LiteLLM `order: 1` with "
            "`model_info.max_input_tokens`, checked before the call with `enable_pre_call_checks`), the rest to "
            "deployment 2 (`order: 2`); when deployment 1 fails or is at its request cap, LiteLLM falls back to "
            "order 2. LiteLLM counts tokens with tiktoken's cl100k_base, not the model's tokenizer: the boundary "
            "moves by the ratio of the two tokenizers.",
            "",
        ]
    else:
        lines += [
            "Routing: both deployments are one model group; each follows its own KEDA schedule and is scaled to "
            "zero in the hours the other serves (its queue trigger then reads no series, which is no error: "
            '`ignoreNullValues: "true"`, no fallback). The router checks every deployment every '
            f"{HEALTH_CHECK_INTERVAL_S}s and routes only to the healthy ones (`enable_health_check_routing`), so "
            "the hand-over follows the replicas; each window starts early by the warm start time.",
            "",
        ]
    commands = [
        "```sh",
        *(["kubectl apply -f k8s/00-namespace.yaml"] if "k8s/00-namespace.yaml" in files else []),
    ]
    if any(part.layout.downloads for part in parts):
        secret = parts[0].layout.hf_secret
        commands.append(f'kubectl -n {ns} create secret generic {secret} --from-literal=token="$HF_TOKEN"')
    commands += [
        f"kubectl -n {ns} create secret generic {router_layout.names.router_secret} "
        '--from-literal=master-key="$LITELLM_MASTER_KEY"',
        "kubectl apply -f k8s/",
        "```",
        "",
        f"Clients call the router at `http://{router_layout.names.router}.{ns}.svc.cluster.local/v1` with the "
        f"model name `{naming.one_line(router_layout.request.served_name)}`.",
        "",
        "No `compose.yaml`: the two deployments run on different GPU types, so on different hosts; Compose "
        "starts containers on one. On hosts without Kubernetes, use each option's own bundle on its host and "
        "run LiteLLM with `litellm/config.yaml`, setting "
        + ", ".join(f"`{part.base_env}`" for part in parts)
        + " to the engines' `/v1` addresses.",
        "",
        "## Files",
        "",
        *[f"- `{path}`" for path in [*files, "README.md"]],
        "",
        "Validated before download against "
        + readme.VALIDATED_AGAINST.format(k8s=KUBERNETES_VERSION, latest=KUBERNETES_LATEST)
        + ".",
        "",
    ]
    lines += ["## Kubernetes", "", *commands]
    return "\n".join(lines)


def build_mixed_bundle(
    plan: Mapping[str, Any],
    workload: Mapping[str, Any],
    index: int = 0,
    *,
    target: BundleTarget = "all",
    **choices: Any,
) -> dict[str, str]:
    """File path -> text: both deployments' Kubernetes documents, the router and its config, READMEs."""
    if target == "compose":
        raise ManifestError(
            "a mixed fleet runs on two GPU types, so on different hosts, and Docker Compose starts containers on "
            "one host: use the Kubernetes bundle"
        )
    fleet = mixed_fleet(plan, index)
    requests = mixed_requests(plan, workload, index, **choices)
    parts = [
        MixedPart(tag=request.name_suffix, plan_part=part, layout=layout_for(request))
        for request, part in zip(requests, fleet["parts"], strict=True)
    ]
    router_layout = _router_layout(parts, str(workload.get("name") or requests[0].model_slug))
    files: dict[str, str] = {}
    for part in parts:
        part_files: dict[str, str] = {}
        for path, doc in kubernetes_documents(part.layout).items():
            shared = path == "k8s/00-namespace.yaml"
            part_files[path if shared else _tagged(path, part.tag)] = yamlio.dump_all([doc])
        files |= part_files
        files[f"README-{part.tag}.md"] = readme.render(part.layout, files=sorted(part_files))
    config_text = yamlio.dump(litellm_mixed_config(fleet, parts))
    files["litellm/config.yaml"] = config_text
    env = {part.base_env: f"http://{part.layout.names.service_host}/v1" for part in parts} | {
        router.SELF_HOSTED_KEY_ENV: router.SELF_HOSTED_KEY_DEFAULT
    }
    files[ROUTER_FILES["ConfigMap"]] = yamlio.dump_all([kube.router_config_map(router_layout, config_text)])
    files[ROUTER_FILES["Deployment"]] = yamlio.dump_all(
        [
            kube.router_deployment(
                router_layout, image=router.LITELLM_IMAGE, env=env, api_key_env=None, config_text=config_text
            )
        ]
    )
    files[ROUTER_FILES["Service"]] = yamlio.dump_all([kube.router_service(router_layout)])
    files["README.md"] = _readme(fleet, parts, router_layout, sorted(files))
    return dict(sorted(files.items()))
