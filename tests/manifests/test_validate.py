"""Every bundle we can emit validates, and the validators reject real mistakes (so they do validate)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from apps.manifests import yamlio
from apps.manifests.build import build_bundle
from apps.manifests.validate import (
    KUBERNETES_LATEST,
    KUBERNETES_VERSION,
    Problem,
    crd_schema,
    validate_bundle,
)
from tests.manifests.helpers import ALL_ENGINES, OVERFLOW, make_request

Files = dict[str, str]


@pytest.mark.parametrize(
    ("engine", "use_keda", "overflow"),
    list(itertools.product(ALL_ENGINES, [True, False], [True, False])),
)
def test_every_emitted_bundle_validates(engine: str, use_keda: bool, overflow: bool) -> None:
    files = build_bundle(make_request(engine, use_keda=use_keda, overflow=OVERFLOW if overflow else None))
    assert validate_bundle(files) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"gpu": "cpu", "tp": 1, "engine": "llamacpp", "quant": "gguf-q8_0"},
        {"gpu": "mi300x", "image": "rocm/vllm:rocm6.4.1_vllm_0.10.1"},
        {"gpu": "l4", "tp": 1, "replicas_by_hour": (1,) * 24, "max_replicas": 1},
        {"gpu": "a100-80gb", "tp": 8, "weights_gb": 405.0, "namespace": "default"},
        {"storage_class": "efs-sc", "min_replicas": 3},
    ],
)
def test_hardware_and_option_variants_validate(changes: dict[str, Any]) -> None:
    engine = changes.pop("engine", "vllm")
    assert validate_bundle(build_bundle(make_request(engine, **changes))) == []


# --- mutations: each breaks one thing a schema or rule must catch -------------------------------------


def _edit(path: str, change: Callable[[Any], None]) -> Callable[[Files], Files]:
    def mutate(files: Files) -> Files:
        docs = yamlio.load_all(files[path]) if path.startswith("k8s/") else [yamlio.load(files[path])]
        change(docs[0])
        text = yamlio.dump_all(docs) if path.startswith("k8s/") else yamlio.dump(docs[0])
        return {**files, path: text}

    return mutate


def _container(doc: Any) -> Any:
    return doc["spec"]["template"]["spec"]["containers"][0]


def _queue_trigger(doc: Any) -> Any:
    return doc["spec"]["triggers"][0]


def _cron_trigger(doc: Any) -> Any:
    return next(t for t in doc["spec"]["triggers"] if t["type"] == "cron")


DEPLOYMENT, SCALED, MONITOR, SERVICE = (
    "k8s/20-deployment.yaml",
    "k8s/60-scaledobject.yaml",
    "k8s/50-podmonitor.yaml",
    "k8s/30-service.yaml",
)

MUTATIONS: dict[str, tuple[Callable[[Files], Files], str, str]] = {
    # name: (mutation, file the problem must name, text the message must contain)
    "unknown container field (strict schema)": (
        _edit(DEPLOYMENT, lambda d: _container(d).update(gpus=1)),
        DEPLOYMENT,
        "Additional properties",
    ),
    "wrong type in a built-in kind": (
        _edit(DEPLOYMENT, lambda d: d["spec"].update(revisionHistoryLimit="three")),
        DEPLOYMENT,
        "is not of type",
    ),
    "probe on a port that does not exist": (
        _edit(DEPLOYMENT, lambda d: _container(d)["startupProbe"]["httpGet"].update(port="metrics")),
        DEPLOYMENT,
        "no container port named 'metrics'",
    ),
    "gpu requests differ from limits": (
        _edit(DEPLOYMENT, lambda d: _container(d)["resources"]["requests"].update({"nvidia.com/gpu": "1"})),
        DEPLOYMENT,
        "requests and limits must be equal",
    ),
    "literal secret in the pod": (
        _edit(
            DEPLOYMENT, lambda d: _container(d)["env"].__setitem__(0, {"name": "HF_TOKEN", "value": "hf_x"})
        ),
        DEPLOYMENT,
        "must come from a Secret",
    ),
    "optional secret reference": (
        _edit(
            DEPLOYMENT, lambda d: _container(d)["env"][0]["valueFrom"]["secretKeyRef"].update(optional=True)
        ),
        DEPLOYMENT,
        "must not be optional",
    ),
    "selector that no longer matches the template": (
        _edit(
            DEPLOYMENT, lambda d: d["spec"]["selector"]["matchLabels"].update({"app.kubernetes.io/name": "x"})
        ),
        DEPLOYMENT,
        "does not match the pod template",
    ),
    "invalid label value": (
        _edit(DEPLOYMENT, lambda d: d["metadata"]["labels"].update({"bad": "has spaces"})),
        DEPLOYMENT,
        "invalid label value",
    ),
    "service selecting nothing": (
        _edit(SERVICE, lambda d: d["spec"]["selector"].update({"app.kubernetes.io/component": "nope"})),
        SERVICE,
        "selects no pods of the bundle's workloads",
    ),
    "unknown field in a KEDA trigger (CRD schema)": (
        _edit(SCALED, lambda d: _queue_trigger(d).update(metricName="x")),
        SCALED,
        "Additional properties",
    ),
    "non-string KEDA metadata (CRD schema)": (
        _edit(SCALED, lambda d: _queue_trigger(d)["metadata"].update(threshold=5)),
        SCALED,
        "is not of type 'string'",
    ),
    "deprecated metricName in trigger metadata": (
        _edit(SCALED, lambda d: _queue_trigger(d)["metadata"].update(metricName="queue")),
        SCALED,
        "metricName is deprecated",
    ),
    "min replicas above max (KEDA CEL rule)": (
        _edit(SCALED, lambda d: d["spec"].update(minReplicaCount=50)),
        SCALED,
        "minReplicaCount must be less than or equal to maxReplicaCount",
    ),
    "cron window with equal start and end": (
        _edit(SCALED, lambda d: _cron_trigger(d)["metadata"].update(start="0 17 * * *", end="0 17 * * *")),
        SCALED,
        "same time",
    ),
    "autoscaler target that does not exist": (
        _edit(SCALED, lambda d: d["spec"]["scaleTargetRef"].update(name="elsewhere")),
        SCALED,
        "no Deployment or LeaderWorkerSet 'elsewhere'",
    ),
    "deployment replicas fighting the autoscaler": (
        _edit(DEPLOYMENT, lambda d: d["spec"].update(replicas=3)),
        SCALED,
        "sets replicas the autoscaler owns",
    ),
    "queue metric the pinned engine does not export": (
        _edit(
            SCALED, lambda d: _queue_trigger(d)["metadata"].update(query="sum(vllm:num_requests_queued{})")
        ),
        SCALED,
        "'vllm:num_requests_queued' is not a metric vLLM 0.33.0 exports",
    ),
    "a missing queue metric read as zero": (
        _edit(SCALED, lambda d: _queue_trigger(d)["metadata"].update(ignoreNullValues="true")),
        SCALED,
        "must be an error, not a silent 0",
    ),
    "typo in a PodMonitor endpoint (CRD schema)": (
        _edit(MONITOR, lambda d: d["spec"]["podMetricsEndpoints"][0].update(intervall="30s")),
        MONITOR,
        "Additional properties",
    ),
    "unknown compose service key (compose schema)": (
        _edit("compose.yaml", lambda d: d["services"]["vllm"].update(gpu_count=1)),
        "compose.yaml",
        "gpu_count",
    ),
    "literal token in compose": (
        _edit("compose.yaml", lambda d: d["services"]["vllm"]["environment"].update(HF_TOKEN="hf_abc")),
        "compose.yaml",
        "secrets must come from",
    ),
    "port published on every interface": (
        _edit("compose.yaml", lambda d: d["services"]["vllm"].update(ports=["8000:8000"])),
        "compose.yaml",
        "not bound to 127.0.0.1",
    ),
    "literal provider key in the router": (
        _edit("litellm/config.yaml", lambda d: d["model_list"][1]["litellm_params"].update(api_key="sk-abc")),
        "litellm/config.yaml",
        "os.environ/NAME",
    ),
    "not YAML at all": (lambda f: {**f, SERVICE: "kind: [unclosed"}, SERVICE, "not valid YAML"),
    "duplicate keys": (lambda f: {**f, SERVICE: f[SERVICE] + "kind: Secret\n"}, SERVICE, "duplicate key"),
    "unknown kind": (
        lambda f: {**f, "k8s/90-extra.yaml": "apiVersion: v1\nkind: Sekret\nmetadata: {name: x}\n"},
        "k8s/90-extra.yaml",
        "no schema",
    ),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_validators_catch_broken_documents(name: str) -> None:
    mutate, where, text = MUTATIONS[name]
    files = build_bundle(make_request("vllm", overflow=OVERFLOW))
    assert validate_bundle(files) == []

    problems = validate_bundle(mutate(files))

    assert any(p.document.startswith(where) and text in p.message for p in problems), problems


@pytest.mark.parametrize(
    ("engine", "switch"),
    [("trtllm", "--extra_llm_api_options"), ("sglang", "--enable-metrics"), ("llamacpp", "--metrics")],
)
def test_a_queue_trigger_needs_the_engine_to_export_its_metric(engine: str, switch: str) -> None:
    # given a bundle whose engine exports the queue gauge only when told to
    files = build_bundle(make_request(engine))
    assert validate_bundle(files) == []

    # when the switch is dropped from the engine's arguments
    def drop(doc: Any) -> None:
        args = _container(doc)["args"]
        at = args.index(switch)
        del args[at : at + (2 if switch.startswith("--extra") else 1)]

    problems = validate_bundle(_edit(DEPLOYMENT, drop)(files))

    # then the autoscaler is flagged: KEDA would find no series
    assert any(p.document.startswith(SCALED) and f"only with {switch}" in p.message for p in problems), (
        problems
    )


def test_problems_name_the_document_path_and_version() -> None:
    files = _edit(DEPLOYMENT, lambda d: _container(d).update(gpus=1))(build_bundle(make_request("vllm")))
    problems = [p for p in validate_bundle(files) if "Additional properties" in p.message]
    assert {p.document for p in problems} == {"k8s/20-deployment.yaml#0 Deployment/support-chat"}
    assert {p.path for p in problems} == {"spec.template.spec.containers.0"}
    assert {KUBERNETES_VERSION, KUBERNETES_LATEST} == {
        v for p in problems for v in (KUBERNETES_VERSION, KUBERNETES_LATEST) if v in p.message
    }
    assert str(problems[0]).startswith("k8s/20-deployment.yaml#0 Deployment/support-chat at spec.template")


def test_crd_schemas_come_from_the_vendored_crds() -> None:
    scaled = crd_schema("keda.sh/v1alpha1", "ScaledObject")
    trigger = scaled["properties"]["spec"]["properties"]["triggers"]["items"]
    assert trigger["properties"]["metadata"]["additionalProperties"] == {"type": "string"}
    assert trigger["additionalProperties"] is False
    monitor = crd_schema("monitoring.coreos.com/v1", "PodMonitor")
    assert monitor["properties"]["spec"]["required"] == ["selector"]


def test_problem_reads_as_one_line() -> None:
    assert str(Problem("compose.yaml", "services.vllm", "bad")) == "compose.yaml at services.vllm: bad"
