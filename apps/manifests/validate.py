"""Validate a bundle before anyone may download it: schemas first, then the rules schemas cannot express.

- Built-in Kubernetes kinds: kubernetes-validate in strict mode (unknown fields are errors) against the
  oldest and the newest Kubernetes version we promise (KUBERNETES_VERSION, KUBERNETES_LATEST).
- KEDA ScaledObject and prometheus-operator PodMonitor: the openAPIV3Schema of their CRDs, vendored verbatim in
  schemas/, converted to JSON Schema with unknown fields forbidden (as `kubectl apply --validate=strict`).
- compose.yaml: the Compose specification's JSON schema, vendored in schemas/.
- Then cross-document and semantic rules: selectors that select, references that resolve, KEDA's own
  admission rules (min <= max, cron windows, string metadata), and no literal secret anywhere.

A problem names the file and document, a dotted path inside it, and a message. An empty list means valid.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, VersionNotSupportedError

from apps.manifests import yamlio
from workers.releases import all_facts

KUBERNETES_VERSION = "1.31"  # the oldest version the bundle promises to apply on
KUBERNETES_LATEST = "1.37"  # the newest kubernetes-validate 1.37 ships schemas for
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
CRD_FILES = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset.x-k8s.io_leaderworkersets.yaml",
}
# Kinds that run the engine's pods, and where their pod templates are.
WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")
# What LeaderWorkerSet sets in each of its pods' environment (kubernetes-sigs/lws v0.10.0, AddLWSVariables).
LWS_VARIABLES = frozenset({"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX"})
_EXPANDED_REFERENCE = re.compile(r"(?<!\$)(?:\$\$)*\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
COMPOSE_SCHEMA_FILE = "compose-spec.json"

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SECRET_NAME = re.compile(r"(TOKEN|API_KEY|MASTER_KEY|SECRET|PASSWORD)$")
# The one literal a secret-named variable may hold: the router's key for the unauthenticated engine.
_SECRET_PLACEHOLDERS = frozenset({"unauthenticated"})
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")


@dataclass(frozen=True)
class Problem:
    document: str  # "k8s/20-deployment.yaml#0 Deployment/support-chat"
    path: str  # dotted path inside the document, "" for the whole document
    message: str

    def __str__(self) -> str:
        where = f"{self.document} at {self.path}" if self.path else self.document
        return f"{where}: {self.message}"


def _dotted(parts: Iterable[Any]) -> str:
    return ".".join(str(part) for part in parts)


# --- schemas ------------------------------------------------------------------------------------------


def _convert_openapi(node: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema, forbidding fields the schema does not declare."""
    if isinstance(node, list):
        return [_convert_openapi(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: (
            {name: _convert_openapi(sub) for name, sub in value.items()}
            if key == "properties"
            else _convert_openapi(value)
        )
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key != "nullable"
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    declares_fields = out.get("type") == "object" and "properties" in out
    if (
        declares_fields
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


_OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": _DNS_SUBDOMAIN, "maxLength": 253},
        "namespace": {"type": "string", "pattern": _DNS_LABEL, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """JSON Schema for one vendored CRD version, with apiVersion/kind pinned and metadata checked."""
    crd = yamlio.load((SCHEMA_DIR / CRD_FILES[(api_version, kind)]).read_text(encoding="utf-8"))
    version = api_version.split("/", 1)[1]
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = _convert_openapi(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = _OBJECT_META
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    schema["additionalProperties"] = False
    return schema


@functools.cache
def _compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / COMPOSE_SCHEMA_FILE).read_text(encoding="utf-8"))
    # It declares draft-07 as "https://json-schema.org/draft-07/schema" (no trailing #), which jsonschema does
    # not recognise and would silently read as the latest draft.
    return jsonschema.Draft7Validator(schema)


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft7Validator(crd_schema(api_version, kind))


def _schema_problems(validator: jsonschema.protocols.Validator, doc: Any, label: str) -> list[Problem]:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [Problem(label, _dotted(e.absolute_path), e.message) for e in errors]


def _kubernetes_schema_problems(doc: dict[str, Any], label: str) -> list[Problem]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_FILES:
        return _schema_problems(_crd_validator(*key), doc, label)
    problems = []
    for version in (KUBERNETES_VERSION, KUBERNETES_LATEST):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(Problem(label, _dotted(exc.path), f"{exc.message} (Kubernetes {version})"))
        except SchemaNotFoundError:
            return [Problem(label, "", f"no schema for {key[1]} {key[0]}: unknown kind or apiVersion")]
        except VersionNotSupportedError as exc:  # kubernetes-validate downgraded below our promise
            return [Problem(label, "", f"kubernetes-validate has no schemas for Kubernetes {exc.version}")]
    return problems


# --- Kubernetes rules beyond the schema -----------------------------------------------------------------


def _metadata_problems(doc: dict[str, Any], label: str) -> list[Problem]:
    meta = doc.get("metadata") or {}
    problems = []
    if not re.match(_DNS_SUBDOMAIN, str(meta.get("name", ""))) or len(str(meta.get("name", ""))) > 253:
        problems.append(Problem(label, "metadata.name", f"{meta.get('name')!r} is not a valid object name"))
    label_sets = [("metadata.labels", meta.get("labels") or {})]
    for where, template in _pod_templates(doc):
        label_sets.append((f"{where}.metadata.labels", (template.get("metadata") or {}).get("labels") or {}))
    for where, labels in label_sets:
        for key, value in labels.items():
            if not _valid_key(key):
                problems.append(Problem(label, f"{where}.{key}", "invalid label key"))
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                problems.append(Problem(label, f"{where}.{key}", f"invalid label value {value!r}"))
    for key in meta.get("annotations") or {}:
        if not _valid_key(key):
            problems.append(Problem(label, f"metadata.annotations.{key}", "invalid annotation key"))
    return problems


def _valid_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not re.match(_DNS_SUBDOMAIN, prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def _pod_templates(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, pod template) of a workload: a Deployment's one, a LeaderWorkerSet's leader and worker."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "LeaderWorkerSet":
        group = spec.get("leaderWorkerTemplate") or {}
        return [
            (f"spec.leaderWorkerTemplate.{key}", group[key])
            for key in ("leaderTemplate", "workerTemplate")
            if isinstance(group.get(key), dict)
        ]
    template = spec.get("template")
    return [("spec.template", template)] if isinstance(template, dict) else []


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec that serves: a Deployment's, or a LeaderWorkerSet's leader's."""
    templates = _pod_templates(doc)
    return (templates[0][1].get("spec") or {}) if templates else {}


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _workload_problems(doc: dict[str, Any], label: str, claims: set[Any]) -> list[Problem]:
    spec = doc.get("spec") or {}
    problems = []
    if doc.get("kind") == "Deployment":
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template_labels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
        if not _matches(selector, template_labels):
            problems.append(
                Problem(label, "spec.selector.matchLabels", "selector does not match the pod template")
            )
    else:
        problems += _leader_worker_set_problems(doc, label)
    allowed = LWS_VARIABLES if doc.get("kind") == "LeaderWorkerSet" else frozenset()
    for where, template in _pod_templates(doc):
        pod = template.get("spec") or {}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        for i, container in enumerate(pod.get("containers") or []):
            container_where = f"{where}.spec.containers.{i}"
            problems += _container_problems(container, container_where, label, volumes)
            problems += _reference_problems(container, container_where, label, allowed)
        for name, volume in volumes.items():
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim is not None and claim not in claims:
                problems.append(
                    Problem(label, f"{where}.spec.volumes.{name}", f"no PVC {claim!r} in the bundle")
                )
    return problems


def _leader_worker_set_problems(doc: dict[str, Any], label: str) -> list[Problem]:
    """What a group needs beyond its schema: more than one pod, and the same accelerators on every host."""
    group = (doc.get("spec") or {}).get("leaderWorkerTemplate") or {}
    problems = []
    if not isinstance(group.get("size"), int) or group["size"] < 2:
        problems.append(
            Problem(label, "spec.leaderWorkerTemplate.size", "a multi-node group needs size >= 2")
        )
    templates = dict(_pod_templates(doc))
    if len(templates) != 2:
        return [
            *problems,
            Problem(label, "spec.leaderWorkerTemplate", "needs a leaderTemplate and a workerTemplate"),
        ]
    limits = [
        sorted(
            (k, str(v))
            for c in (t.get("spec") or {}).get("containers") or []
            for k, v in ((c.get("resources") or {}).get("limits") or {}).items()
            if "/" in k
        )
        for t in templates.values()
    ]
    if limits[0] != limits[1]:
        problems.append(
            Problem(
                label,
                "spec.leaderWorkerTemplate",
                "leader and worker hosts must request the same accelerators",
            )
        )
    return problems


def _reference_problems(
    container: dict[str, Any], where: str, label: str, allowed: frozenset[str]
) -> list[Problem]:
    """$(NAME) left unescaped in command or args is expanded by the kubelet: only the variables the workload
    kind guarantees may appear (LeaderWorkerSet's); user text is always escaped."""
    problems = []
    for key in ("command", "args"):
        for i, arg in enumerate(container.get(key) or []):
            for name in _EXPANDED_REFERENCE.findall(str(arg)):
                if name not in allowed:
                    problems.append(
                        Problem(label, f"{where}.{key}.{i}", f"$({name}) would be expanded by the kubelet")
                    )
    return problems


def _container_problems(
    container: dict[str, Any], where: str, label: str, volumes: dict[str, Any]
) -> list[Problem]:
    problems = []
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    for resource in {*requests, *limits}:
        if "/" in resource and str(requests.get(resource)) != str(limits.get(resource)):
            problems.append(
                Problem(label, f"{where}.resources", f"{resource}: requests and limits must be equal")
            )
    for mount in container.get("volumeMounts") or []:
        if mount.get("name") not in volumes:
            problems.append(Problem(label, f"{where}.volumeMounts", f"no volume named {mount.get('name')!r}"))
    shm = [v for v in volumes.values() if (v.get("emptyDir") or {}).get("medium") == "Memory"]
    if shm and "memory" not in limits:
        problems.append(Problem(label, f"{where}.resources.limits", "a memory emptyDir needs a memory limit"))
    ports = {p.get("name") for p in container.get("ports") or []}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        port = ((container.get(probe) or {}).get("httpGet") or {}).get("port")
        if isinstance(port, str) and port not in ports:
            problems.append(Problem(label, f"{where}.{probe}", f"no container port named {port!r}"))
    for i, env in enumerate(container.get("env") or []):
        secret_named = _SECRET_NAME.search(str(env.get("name", "")))
        if secret_named and "value" in env and env["value"] not in _SECRET_PLACEHOLDERS:
            problems.append(Problem(label, f"{where}.env.{i}", f"{env.get('name')} must come from a Secret"))
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None and ref.get("optional") is not False:
            problems.append(Problem(label, f"{where}.env.{i}", "secret references must not be optional"))
    return problems


def _selects_a_pod(selector: Mapping[str, str], workloads: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first pod template the selector selects (a Deployment's or a LeaderWorkerSet's leader or worker)."""
    for workload in workloads:
        for _, template in _pod_templates(workload):
            if _matches(selector, (template.get("metadata") or {}).get("labels") or {}):
                return template
    return None


def _container_port_names(template: dict[str, Any]) -> set[str]:
    return {
        p.get("name")
        for c in (template.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
    }


def _keda_problems(doc: dict[str, Any], label: str) -> list[Problem]:
    spec = doc.get("spec") or {}
    problems = []
    low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if isinstance(low, int) and isinstance(high, int) and low > high:
        problems.append(
            Problem(label, "spec", "minReplicaCount must be less than or equal to maxReplicaCount")
        )
    triggers = spec.get("triggers") or []
    names = [t.get("name") for t in triggers if t.get("name")]
    if len(names) != len(set(names)):
        problems.append(Problem(label, "spec.triggers", "trigger names must be unique"))
    for i, trigger in enumerate(triggers):
        problems += _trigger_problems(trigger, f"spec.triggers.{i}", label)
    if spec.get("fallback") and not any(t.get("type") not in {"cpu", "memory"} for t in triggers):
        problems.append(Problem(label, "spec.fallback", "fallback needs a trigger other than cpu or memory"))
    return problems


def _trigger_problems(trigger: dict[str, Any], where: str, label: str) -> list[Problem]:
    metadata = trigger.get("metadata") or {}
    problems = []
    if "metricName" in metadata:
        problems.append(Problem(label, f"{where}.metadata", "metricName is deprecated since KEDA 2.10"))
    required = {
        "prometheus": ("serverAddress", "query", "threshold"),
        "cron": ("timezone", "start", "end", "desiredReplicas"),
    }
    for key in required.get(str(trigger.get("type")), ()):
        if not metadata.get(key):
            problems.append(Problem(label, f"{where}.metadata", f"{trigger.get('type')} trigger needs {key}"))
    if trigger.get("type") == "prometheus" and metadata.get("threshold"):
        try:
            float(metadata["threshold"])
        except ValueError:
            problems.append(Problem(label, f"{where}.metadata.threshold", "threshold must be a number"))
    if trigger.get("type") == "cron":
        problems += _cron_problems(metadata, f"{where}.metadata", label)
    return problems


def _cron_problems(metadata: Mapping[str, Any], where: str, label: str) -> list[Problem]:
    problems = []
    for key in ("start", "end"):
        fields = str(metadata.get(key, "")).split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            problems.append(
                Problem(label, f"{where}.{key}", f"{metadata.get(key)!r} is not a 5-field cron schedule")
            )
    if metadata.get("start") == metadata.get("end"):
        problems.append(Problem(label, where, "start and end can not have exactly same time input"))
    if not str(metadata.get("desiredReplicas", "")).isdigit() or int(metadata["desiredReplicas"]) < 1:
        problems.append(
            Problem(label, f"{where}.desiredReplicas", "desiredReplicas must be a positive integer")
        )
    return problems


def _bundle_rules(documents: list[tuple[str, dict[str, Any]]]) -> list[Problem]:
    """Rules across documents: references resolve, selectors select, one owner for replica counts."""
    deployments = [d for _, d in documents if d.get("kind") in WORKLOAD_KINDS]
    by_name = {(d.get("metadata") or {}).get("name"): d for d in deployments}
    claims = {
        (d.get("metadata") or {}).get("name")
        for _, d in documents
        if d.get("kind") == "PersistentVolumeClaim"
    }
    config_maps = {
        (d.get("metadata") or {}).get("name") for _, d in documents if d.get("kind") == "ConfigMap"
    }
    problems: list[Problem] = []
    for label, doc in documents:
        problems += _metadata_problems(doc, label)
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind in WORKLOAD_KINDS:
            problems += _workload_problems(doc, label, claims)
            for where, template in _pod_templates(doc):
                for volume in (template.get("spec") or {}).get("volumes") or []:
                    name = (volume.get("configMap") or {}).get("name")
                    if name is not None and name not in config_maps:
                        problems.append(
                            Problem(label, f"{where}.spec.volumes", f"no ConfigMap {name!r} in the bundle")
                        )
        elif kind == "Service":
            target = _selects_a_pod(spec.get("selector") or {}, deployments)
            if target is None:
                problems.append(Problem(label, "spec.selector", "selects no pods of the bundle's workloads"))
            else:
                for port in spec.get("ports") or []:
                    if isinstance(port.get("targetPort"), str) and port[
                        "targetPort"
                    ] not in _container_port_names(target):
                        problems.append(
                            Problem(label, "spec.ports", f"no container port {port['targetPort']!r}")
                        )
        elif kind in {"PodDisruptionBudget", "PodMonitor"}:
            target = _selects_a_pod((spec.get("selector") or {}).get("matchLabels") or {}, deployments)
            if target is None:
                problems.append(Problem(label, "spec.selector", "selects no pods of the bundle's workloads"))
            elif kind == "PodMonitor":
                for endpoint in spec.get("podMetricsEndpoints") or []:
                    if endpoint.get("port") not in _container_port_names(target):
                        problems.append(
                            Problem(label, "spec.podMetricsEndpoints", f"no port {endpoint.get('port')!r}")
                        )
        if kind in {"ScaledObject", "HorizontalPodAutoscaler"}:
            problems += _autoscaler_target_problems(spec, label, by_name)
        if kind == "ScaledObject":
            problems += _keda_problems(doc, label)
            problems += _queue_metric_problems(doc, label, by_name)
        if kind == "HorizontalPodAutoscaler" and spec.get("minReplicas", 1) > spec.get("maxReplicas", 1):
            problems.append(Problem(label, "spec", "minReplicas must not exceed maxReplicas"))
    return problems


_METRIC_IN_QUERY = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{")
ENGINE_LABEL = "llm-deployment-advisor/engine"


def _engine_args(deployment: dict[str, Any]) -> list[str]:
    return [str(a) for c in _pod_spec(deployment).get("containers") or [] for a in c.get("args") or []]


def _queue_metric_problems(doc: dict[str, Any], label: str, deployments: dict[Any, Any]) -> list[Problem]:
    """A queue trigger must query a gauge the pinned engine release exports, with its export switched on:
    anything else reads as no series, which KEDA reports as an error instead of scaling."""
    engine = ((doc.get("metadata") or {}).get("labels") or {}).get(ENGINE_LABEL)
    facts = all_facts().get(str(engine))
    if facts is None:
        return []
    spec = doc.get("spec") or {}
    target = deployments.get((spec.get("scaleTargetRef") or {}).get("name")) or {}
    args = _engine_args(target)
    problems = []
    for i, trigger in enumerate(spec.get("triggers") or []):
        if trigger.get("type") != "prometheus":
            continue
        where = f"spec.triggers.{i}.metadata"
        metadata = trigger.get("metadata") or {}
        match = _METRIC_IN_QUERY.search(str(metadata.get("query", "")))
        metric = match.group(1) if match else None
        if metric not in facts.exported_metrics:
            problems.append(
                Problem(
                    label,
                    f"{where}.query",
                    f"{metric!r} is not a metric {facts.display_name} {facts.current.version} exports "
                    f"({', '.join(sorted(facts.exported_metrics))}; {facts.metrics_source})",
                )
            )
        for switch in facts.metrics_enabled_by:
            flag = switch.split(":", 1)[0].strip()
            if flag not in args:
                problems.append(
                    Problem(label, where, f"the engine exports {metric} only with {switch}, which it lacks")
                )
        scheduled_to_zero = spec.get("minReplicaCount") == 0 and "fallback" not in spec
        if str(metadata.get("ignoreNullValues", "true")).lower() != "false" and not scheduled_to_zero:
            problems.append(
                Problem(
                    label, f"{where}.ignoreNullValues", "a missing metric must be an error, not a silent 0"
                )
            )
    return problems


def _autoscaler_target_problems(
    spec: dict[str, Any], label: str, deployments: dict[Any, Any]
) -> list[Problem]:
    ref = spec.get("scaleTargetRef") or {}
    name = ref.get("name")
    target = deployments.get(name)
    if target is None:
        return [
            Problem(
                label, "spec.scaleTargetRef.name", f"no Deployment or LeaderWorkerSet {name!r} in the bundle"
            )
        ]
    kind = target.get("kind")
    # KEDA defaults a missing kind to Deployment; an autoscaler aimed at the wrong kind scales nothing.
    if (ref.get("kind") or "Deployment") != kind or (ref.get("apiVersion") or "apps/v1") != target.get(
        "apiVersion"
    ):
        return [
            Problem(
                label,
                "spec.scaleTargetRef",
                f"{name!r} is a {target.get('apiVersion')} {kind}, not {ref.get('apiVersion')} {ref.get('kind')}",
            )
        ]
    if "replicas" in (target.get("spec") or {}):
        return [Problem(label, "spec.scaleTargetRef", f"{kind} {name!r} sets replicas the autoscaler owns")]
    return []


# --- files ----------------------------------------------------------------------------------------------


def _parse(path: str, text: str, *, many: bool = False) -> tuple[list[Any], list[Problem]]:
    try:
        docs = yamlio.load_all(text) if many else [yamlio.load(text)]
    except Exception as exc:  # any YAML error is a problem to report, not a crash
        return [], [Problem(path, "", f"not valid YAML: {exc}")]
    return docs, []


def _kubernetes_files(files: Mapping[str, str]) -> tuple[list[tuple[str, dict[str, Any]]], list[Problem]]:
    documents, problems = [], []
    for path, text in files.items():
        if not path.startswith("k8s/"):
            continue
        docs, parse_problems = _parse(path, text, many=True)
        problems += parse_problems
        for i, doc in enumerate(d for d in docs if d is not None):
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                problems.append(Problem(f"{path}#{i}", "", "not a Kubernetes object (apiVersion and kind)"))
                continue
            label = f"{path}#{i} {doc['kind']}/{(doc.get('metadata') or {}).get('name')}"
            problems += _kubernetes_schema_problems(doc, label)
            documents.append((label, doc))
    return documents, problems


def _literal_secret(name: str, value: Any) -> bool:
    if not _SECRET_NAME.search(name) or not isinstance(value, str):
        return False
    return not value.startswith("${") and value not in _SECRET_PLACEHOLDERS


def compose_problems(doc: Any, files: Mapping[str, str], label: str = "compose.yaml") -> list[Problem]:
    problems = _schema_problems(_compose_validator(), doc, label)
    if problems or not isinstance(doc, dict):
        return problems
    services = doc.get("services") or {}
    declared_volumes = set(doc.get("volumes") or {})
    for name, service in services.items():
        where = f"services.{name}"
        for key, value in _environment(service).items():
            if _literal_secret(str(key), value):
                problems.append(Problem(label, f"{where}.environment.{key}", "secrets must come from ${…}"))
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                problems.append(Problem(label, f"{where}.ports", f"{port!r} is not bound to 127.0.0.1"))
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(Problem(label, f"{where}.depends_on", f"no service {dependency!r}"))
        for volume in service.get("volumes") or []:
            problems += _compose_volume_problems(volume, f"{where}.volumes", label, declared_volumes, files)
    return problems


def _environment(service: Mapping[str, Any]) -> dict[str, Any]:
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return environment
    return dict([*str(item).split("=", 1), ""][:2] for item in environment)


def _compose_volume_problems(
    volume: Any, where: str, label: str, declared: set[str], files: Mapping[str, str]
) -> list[Problem]:
    if not isinstance(volume, dict):
        return [Problem(label, where, "use the long volume syntax")]
    source = str(volume.get("source", ""))
    if volume.get("type") == "volume" and source not in declared:
        return [Problem(label, where, f"volume {source!r} is not declared at the top level")]
    if volume.get("type") == "bind" and Path(source).suffix and source.removeprefix("./") not in files:
        return [Problem(label, where, f"bind source {source!r} is not in the bundle")]
    return []


def litellm_problems(doc: Any, label: str = "litellm/config.yaml") -> list[Problem]:
    if not isinstance(doc, dict) or not doc.get("model_list"):
        return [Problem(label, "model_list", "needs at least one model")]
    problems = []
    names = set()
    for i, entry in enumerate(doc["model_list"]):
        params = entry.get("litellm_params") or {}
        names.add(entry.get("model_name"))
        if not entry.get("model_name") or not params.get("model"):
            problems.append(Problem(label, f"model_list.{i}", "needs model_name and litellm_params.model"))
        key = params.get("api_key")
        if key is not None and not str(key).startswith("os.environ/"):
            problems.append(
                Problem(label, f"model_list.{i}.litellm_params.api_key", "keys must be os.environ/NAME")
            )
    problems += _ordered_group_problems(doc, label)
    master = (doc.get("general_settings") or {}).get("master_key")
    if master is not None and not str(master).startswith("os.environ/"):
        problems.append(Problem(label, "general_settings.master_key", "keys must be os.environ/NAME"))
    for i, fallback in enumerate((doc.get("router_settings") or {}).get("fallbacks") or []):
        for source, targets in fallback.items():
            if source not in names or any(t not in names for t in targets):
                problems.append(
                    Problem(label, f"router_settings.fallbacks.{i}", "names a model not in model_list")
                )
    return problems


def _ordered_group_problems(doc: dict[str, Any], label: str) -> list[Problem]:
    """A model group routed by `order` and input length (a mixed fleet by length) only routes so when LiteLLM
    checks lengths before the call and every deployment states its own limit: LiteLLM registers the model info
    of deployments sharing a model under that model's name, so one without a limit inherits another's."""
    ordered = [
        (i, entry)
        for i, entry in enumerate(doc["model_list"])
        if (entry.get("litellm_params") or {}).get("order") is not None
    ]
    if not ordered:
        return []
    problems = []
    if (doc.get("router_settings") or {}).get("enable_pre_call_checks") is not True:
        problems.append(
            Problem(
                label, "router_settings.enable_pre_call_checks", "ordered deployments need pre-call checks"
            )
        )
    for i, entry in ordered:
        limit = (entry.get("model_info") or {}).get("max_input_tokens")
        if not isinstance(limit, int) or limit < 1:
            problems.append(
                Problem(
                    label,
                    f"model_list.{i}.model_info",
                    "an ordered deployment needs its own max_input_tokens",
                )
            )
    return problems


def prometheus_problems(doc: Any, label: str = "prometheus/prometheus.yml") -> list[Problem]:
    configs = doc.get("scrape_configs") if isinstance(doc, dict) else None
    if not configs:
        return [Problem(label, "scrape_configs", "needs at least one scrape config")]
    return [
        Problem(label, f"scrape_configs.{i}", "needs job_name and static_configs targets")
        for i, config in enumerate(configs)
        if not config.get("job_name") or not any(s.get("targets") for s in config.get("static_configs") or [])
    ]


_SINGLE_FILE_RULES: dict[str, Callable[[Any], list[Problem]]] = {
    "litellm/config.yaml": litellm_problems,
    "prometheus/prometheus.yml": prometheus_problems,
}


def validate_bundle(files: Mapping[str, str]) -> list[Problem]:
    """Every problem in the bundle; a bundle is offered only when this returns []."""
    documents, problems = _kubernetes_files(files)
    problems += _bundle_rules(documents)
    for path, text in files.items():
        if path.startswith("k8s/") or path.endswith(".md"):
            continue
        docs, parse_problems = _parse(path, text)
        problems += parse_problems
        if parse_problems:
            continue
        if path == "compose.yaml":
            problems += compose_problems(docs[0], files)
        elif path in _SINGLE_FILE_RULES:
            problems += _SINGLE_FILE_RULES[path](docs[0])
        elif not path.startswith(("extras/", "engine-config/")):
            problems.append(Problem(path, "", "unexpected file in the bundle"))
    if "compose.yaml" not in files and not any(path.startswith("k8s/") for path in files):
        problems.append(
            Problem("compose.yaml", "", "missing, and no k8s/ either: the bundle deploys nothing")
        )
    return problems
