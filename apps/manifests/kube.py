"""Kubernetes documents for one engine deployment, as plain dicts.

Choices and their sources are in /work/shared/research/manifests.md's checklist (production-stack, vLLM's
chart, llm-d, KServe); the comments here say why where a choice is not obvious from the field name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from apps.manifests import naming, sizing
from apps.manifests.layout import (
    ANNOTATION_PREFIX,
    LWS_LEADER_ADDRESS,
    LWS_WORKER_INDEX,
    ROUTER_PORT,
    SERVICE_PORT,
    Layout,
)
from apps.manifests.schedule import SCHEDULE_TIMEZONE

Doc = dict[str, Any]

ENGINE_COMPONENT = "engine"
ROUTER_COMPONENT = "router"
CACHE_VOLUME = "model-cache"
SHM_VOLUME = "dshm"
ENGINE_CONFIG_VOLUME = "engine-config"
QUEUE_TRIGGER = "queue-depth"
HF_TOKEN_KEY = "token"
ROUTER_MASTER_KEY = "master-key"
ROUTER_PROVIDER_KEY = "provider-api-key"
ROUTER_CONFIG_KEY = "config.yaml"
ROUTER_CONFIG_DIR = "/etc/litellm"


def kube_escape(value: str) -> str:
    """Kubelet expands $(VAR) in command, args and env values; $$ is its escape for a literal $."""
    return value.replace("$", "$$")


# The only arguments left for the kubelet to expand: LeaderWorkerSet's variables after the flags that take them.
_REFERENCE_FLAGS = frozenset({"--node-rank", "--master-addr", "--dist-init-addr"})
_REFERENCES = (LWS_LEADER_ADDRESS, LWS_WORKER_INDEX)


def _is_reference(arg: str, previous: str | None) -> bool:
    if previous not in _REFERENCE_FLAGS:
        return False
    head, _, port = arg.partition(":")
    return head in _REFERENCES and (not port or port.isdigit())


def kube_args(args: Sequence[str]) -> list[str]:
    """Arguments as the kubelet must see them: every $ escaped except the LWS references the layout placed."""
    return [
        arg if _is_reference(arg, args[i - 1] if i else None) else kube_escape(arg)
        for i, arg in enumerate(args)
    ]


def _metadata(
    layout: Layout, name: str, component: str, *, extra_labels: dict[str, str] | None = None
) -> Doc:
    return {
        "name": name,
        "namespace": layout.names.namespace,
        "labels": {**layout.labels(component), **(extra_labels or {})},
        "annotations": layout.annotations(),
    }


def namespace(layout: Layout) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": layout.names.namespace,
            "labels": {"app.kubernetes.io/managed-by": "llm-deployment-advisor"},
        },
    }


def cache_pvc(layout: Layout) -> Doc:
    spec: Doc = {
        # A ReadWriteOnce volume attaches to one node; once replicas can run on several nodes the cache must be
        # shared, which needs a ReadWriteMany class (EFS, Filestore, Azure Files, CephFS, NFS).
        "accessModes": ["ReadWriteMany" if layout.shared_cache else "ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{layout.cache_size_gi}Gi"}},
    }
    if layout.request.storage_class:
        spec["storageClassName"] = layout.request.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(layout, layout.names.cache_pvc, ENGINE_COMPONENT),
        "spec": spec,
    }


def _http_probe(path: str, *, period_s: int, failures: int, timeout_s: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s,
        "failureThreshold": failures,
        "timeoutSeconds": timeout_s,
    }


def _secret_env(name: str, secret: str, key: str) -> Doc:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": False}}}


def _engine_resources(layout: Layout) -> Doc:
    res = layout.resources
    memory = f"{res.memory_limit_gi}Gi"
    requests: Doc = {"cpu": str(res.cpu), "memory": memory}
    limits: Doc = {"memory": memory}
    accel = layout.accelerator
    if accel.resource:
        # Extended resources cannot be overcommitted: requests and limits must be equal.
        requests[accel.resource] = str(accel.count)
        limits[accel.resource] = str(accel.count)
    return {"requests": requests, "limits": limits}


def _engine_container(layout: Layout, *, worker: bool = False) -> Doc:
    """The engine's container: the leader's (or the only) one, or with worker=True a LeaderWorkerSet worker's."""
    health = layout.definition.health_path
    container: Doc = {"name": layout.names.container, "image": layout.image}
    if layout.command:
        container["command"] = [kube_escape(part) for part in layout.command]
    args = layout.worker_args if worker and layout.worker_args is not None else layout.args
    container |= {
        "args": kube_args(args),
        "ports": [{"name": "http", "containerPort": layout.port, "protocol": "TCP"}],
        "env": [
            # Only a hub download needs the token; a model already on the volume needs no Secret at all.
            *([_secret_env("HF_TOKEN", layout.hf_secret, HF_TOKEN_KEY)] if layout.downloads else []),
            *({"name": name, "value": kube_escape(value)} for name, value in layout.env),
        ],
        "resources": _engine_resources(layout),
        "volumeMounts": [
            {"name": CACHE_VOLUME, "mountPath": layout.cache_mount},
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            *(
                [{"name": ENGINE_CONFIG_VOLUME, "mountPath": layout.config_dir, "readOnly": True}]
                if layout.files
                else []
            ),
        ],
        "startupProbe": _http_probe(
            health,
            period_s=sizing.STARTUP_PERIOD_S,
            failures=layout.budget.startup_failure_threshold,
            timeout_s=5,
        ),
        "readinessProbe": _http_probe(health, period_s=5, failures=3, timeout_s=3),
        # Generous: a replica busy with long prefills can answer /health slowly, and a restart costs a reload.
        "livenessProbe": _http_probe(health, period_s=15, failures=4, timeout_s=10),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(sizing.PRESTOP_SLEEP_S)]}}},
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if worker and not layout.worker_serves_http:
        # A headless vLLM host serves nothing: it is a rank in the leader's process group, and the group is
        # recreated when any of its pods fails (restartPolicy RecreateGroupOnPodRestart).
        for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
            del container[key]
    return container


def engine_config_map(layout: Layout) -> Doc | None:
    """The files the engine's arguments name (trtllm-serve's --extra_llm_api_options), mounted read-only."""
    if not layout.files:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(layout, layout.names.engine_config, ENGINE_COMPONENT),
        "data": {path.rsplit("/", 1)[-1]: text for path, text in layout.files},
    }


def _gpu_placement(layout: Layout) -> Doc:
    accel = layout.accelerator
    if not accel.is_gpu or accel.node_label is None or accel.resource is None:
        return {}
    placement: Doc = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": accel.node_label, "operator": "In", "values": list(accel.node_values)}
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [{"key": accel.resource, "operator": "Exists", "effect": "NoSchedule"}],
    }
    if accel.runtime_class:
        placement = {"runtimeClassName": accel.runtime_class, **placement}
    return placement


def _strategy(layout: Layout) -> Doc:
    if layout.shared_cache:
        # Surge one replica so capacity never drops during a rollout; that needs one spare replica's GPUs.
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # One replica on a ReadWriteOnce cache: a surged pod on another node could never attach the volume.
    return {"type": "Recreate"}


def _engine_pod_spec(layout: Layout, *, worker: bool = False) -> Doc:
    return {
        **_gpu_placement(layout),
        # Service links would inject e.g. VLLM_PORT=tcp://… for a Service named vllm, which vLLM
        # reads as its own setting and refuses to start.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": sizing.termination_grace_s(layout.request.drain_s),
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_engine_container(layout, worker=worker)],
        "volumes": [
            {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": layout.names.cache_pvc}},
            {
                "name": SHM_VOLUME,
                "emptyDir": {"medium": "Memory", "sizeLimit": f"{layout.resources.shm_gi}Gi"},
            },
            *(
                [{"name": ENGINE_CONFIG_VOLUME, "configMap": {"name": layout.names.engine_config}}]
                if layout.files
                else []
            ),
        ],
    }


def deployment(layout: Layout) -> Doc:
    selector = layout.selector(ENGINE_COMPONENT)
    spec: Doc = {}
    if layout.autoscaler == "none":
        spec["replicas"] = layout.peak  # nothing follows the schedule, so hold the planned peak
    # else: the autoscaler owns .spec.replicas; setting it here would fight it on every apply.
    spec |= {
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": max(1200, layout.budget.startup_budget_s + 300),
        "strategy": _strategy(layout),
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {"labels": layout.labels(ENGINE_COMPONENT), "annotations": layout.annotations()},
            "spec": _engine_pod_spec(layout),
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(layout, layout.names.deployment, ENGINE_COMPONENT),
        "spec": spec,
    }


LWS_API_VERSION = "leaderworkerset.x-k8s.io/v1"
ROLE_LABEL = f"{ANNOTATION_PREFIX}/role"


def leader_selector(layout: Layout) -> dict[str, str]:
    """The pods that serve the API: every engine pod, or a LeaderWorkerSet's leaders only."""
    selector = layout.selector(ENGINE_COMPONENT)
    return {**selector, ROLE_LABEL: "leader"} if layout.multi_node else selector


def leader_worker_set(layout: Layout) -> Doc:
    """One replica = one group of `nodes` pods, one per host: the leader runs the engine's head and serves the
    API, the workers join it (the pattern of vLLM's LWS guide and llm-d). Pod names are <name>-<group> for
    leaders and <name>-<group>-<index> for workers."""
    spec: Doc = {}
    if layout.autoscaler == "none":
        spec["replicas"] = layout.peak
    # else: the autoscaler owns .spec.replicas through the scale subresource.
    template_meta = {"annotations": layout.annotations()}
    spec |= {
        # Workers start with the leader, not after it is ready: the leader is ready only once they joined.
        "startupPolicy": "LeaderCreated",
        # A new group comes up before an old one goes: capacity never drops, at the price of one group's hosts.
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "leaderWorkerTemplate": {
            "size": layout.nodes,
            # The group is one process group: a pod restarting alone could never rejoin it.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": {
                "metadata": {
                    "labels": {**layout.labels(ENGINE_COMPONENT), ROLE_LABEL: "leader"},
                    **template_meta,
                },
                "spec": _engine_pod_spec(layout),
            },
            "workerTemplate": {
                "metadata": {
                    "labels": {**layout.labels(ENGINE_COMPONENT), ROLE_LABEL: "worker"},
                    **template_meta,
                },
                "spec": _engine_pod_spec(layout, worker=True),
            },
        },
    }
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": _metadata(layout, layout.names.deployment, ENGINE_COMPONENT),
        "spec": spec,
    }


def service(layout: Layout) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(layout, layout.names.service, ENGINE_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": leader_selector(layout),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(layout: Layout) -> Doc:
    # maxUnavailable rather than minAvailable: with one replica, minAvailable: 1 would block every node drain.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(layout, layout.names.base, ENGINE_COMPONENT),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": layout.selector(ENGINE_COMPONENT)}},
    }


def pod_monitor(layout: Layout) -> Doc | None:
    metrics_path = layout.definition.metrics_path
    if metrics_path is None:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": _metadata(
            layout,
            layout.names.base,
            ENGINE_COMPONENT,
            extra_labels={"release": naming.label_value(layout.request.prometheus_release_label)},
        ),
        "spec": {
            # The leader exports the replica's queue; workers have no engine metrics of their own.
            "selector": {"matchLabels": leader_selector(layout)},
            "podMetricsEndpoints": [{"port": "http", "path": metrics_path, "interval": "30s"}],
        },
    }


def queue_query(layout: Layout) -> str:
    """One series (KEDA rejects a vector of several) summing the waiting requests of this Deployment's pods."""
    metric = layout.definition.queue_metric
    # Deployment pods are <name>-<replicaset hash>-<suffix>; LeaderWorkerSet leaders are <name>-<group>.
    pods = (
        f"{layout.names.deployment}-[0-9]+"
        if layout.multi_node
        else f"{layout.names.deployment}-[a-z0-9]+-[a-z0-9]+"
    )
    return f'sum({metric}{{namespace="{layout.names.namespace}",pod=~"{pods}"}})'


def _behavior() -> Doc:
    return {
        # Up fast (schedule windows and queue spikes), down slowly: a replica costs minutes of load to regain.
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 60},
                {"type": "Percent", "value": 100, "periodSeconds": 60},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 600,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
        },
    }


def _target_ref(layout: Layout) -> Doc:
    # A LeaderWorkerSet scales through its scale subresource (.spec.replicas groups; the HPA selector is the
    # leaders', .status.hpaPodSelector), as a Deployment does.
    if layout.multi_node:
        return {"apiVersion": LWS_API_VERSION, "kind": "LeaderWorkerSet", "name": layout.names.deployment}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": layout.names.deployment}


def _cron_triggers(layout: Layout) -> list[Doc]:
    lead = 0 if layout.request.prescaled else layout.budget.warmup_lead_min
    return [
        {
            "type": "cron",
            "name": f"hours-{w.start_hour:02d}-{w.end_hour:02d}",
            "metadata": {
                "timezone": SCHEDULE_TIMEZONE,
                "start": w.cron_start(lead),
                "end": w.cron_end(),
                "desiredReplicas": str(w.replicas),  # KEDA trigger metadata values must be strings
            },
        }
        for w in layout.windows
    ]


def scaled_object(layout: Layout) -> Doc:
    triggers: list[Doc] = []
    if layout.definition.queue_metric:
        triggers.append(
            {
                "type": "prometheus",
                "name": QUEUE_TRIGGER,
                # AverageValue: the threshold is per replica, so replicas = ceil(total waiting / threshold).
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": layout.request.prometheus_url,
                    "query": queue_query(layout),
                    "threshold": str(layout.request.queue_threshold_per_replica),
                    # A query that matches no series is an error (KEDA then holds `fallback.replicas`), never
                    # a silent 0: a metric the engine does not export must not look like an empty queue. A
                    # deployment scheduled down to zero has no series off its hours, which is no error.
                    "ignoreNullValues": "true" if layout.floor == 0 else "false",
                },
            }
        )
    triggers += _cron_triggers(layout)
    spec: Doc = {
        "scaleTargetRef": _target_ref(layout),
        "pollingInterval": 15,
        "cooldownPeriod": 360,
        "minReplicaCount": layout.floor,
        "maxReplicaCount": layout.max_replicas,
    }
    if layout.definition.queue_metric and layout.floor > 0:
        # If Prometheus stops answering, hold the planned peak rather than whatever the last reading implied.
        spec["fallback"] = {"failureThreshold": 3, "replicas": layout.peak}
    spec |= {"advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior()}}, "triggers": triggers}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(layout, layout.names.base, ENGINE_COMPONENT),
        "spec": spec,
    }


def adapter_metric_name(layout: Layout) -> str:
    # The custom metrics API cannot carry ':' in a metric name; prometheus-adapter renames it (rule emitted).
    return (layout.definition.queue_metric or "").replace(":", "_")


def horizontal_autoscaler(layout: Layout) -> Doc:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(layout, layout.names.base, ENGINE_COMPONENT),
        "spec": {
            "scaleTargetRef": _target_ref(layout),
            "minReplicas": layout.floor,
            "maxReplicas": layout.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": adapter_metric_name(layout)},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(layout.request.queue_threshold_per_replica),
                        },
                    },
                }
            ],
            "behavior": _behavior(),
        },
    }


def prometheus_adapter_values(layout: Layout) -> Doc:
    """Helm values for prometheus-community/prometheus-adapter exposing the queue gauge per pod."""
    metric = layout.definition.queue_metric
    url = urlsplit(layout.request.prometheus_url)
    default_port = 443 if url.scheme == "https" else 80
    return {
        "prometheus": {"url": f"{url.scheme}://{url.hostname}", "port": url.port or default_port},
        "rules": {
            "custom": [
                {
                    "seriesQuery": f'{metric}{{namespace!="",pod!=""}}',
                    "resources": {
                        "overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
                    },
                    "name": {"matches": f"^{metric}$", "as": adapter_metric_name(layout)},
                    "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
                }
            ]
        },
    }


# --- LiteLLM router (only with overflow) ---------------------------------------------------------------


def router_config_map(layout: Layout, config_text: str) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(layout, layout.names.router_config, ROUTER_COMPONENT),
        "data": {ROUTER_CONFIG_KEY: config_text},
    }


def router_deployment(
    layout: Layout, *, image: str, env: dict[str, str], api_key_env: str | None, config_text: str
) -> Doc:
    """The LiteLLM router; api_key_env names the hosted provider's key when it overflows to one."""
    names = layout.names
    container: Doc = {
        "name": "litellm",
        "image": image,
        "args": ["--config", f"{ROUTER_CONFIG_DIR}/{ROUTER_CONFIG_KEY}", "--port", str(ROUTER_PORT)],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT, "protocol": "TCP"}],
        "env": [
            *({"name": key, "value": kube_escape(value)} for key, value in env.items()),
            _secret_env("LITELLM_MASTER_KEY", names.router_secret, ROUTER_MASTER_KEY),
            *([_secret_env(api_key_env, names.router_secret, ROUTER_PROVIDER_KEY)] if api_key_env else []),
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [{"name": "config", "mountPath": ROUTER_CONFIG_DIR, "readOnly": True}],
        "readinessProbe": {
            "httpGet": {"path": "/health/readiness", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": "/health/liveliness", "port": "http"},
            "initialDelaySeconds": 30,
            "periodSeconds": 15,
            "failureThreshold": 4,
            "timeoutSeconds": 5,
        },
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    selector = layout.selector(ROUTER_COMPONENT)
    # A changed config must roll the router: LiteLLM reads its file once at start.
    template_annotations = {
        **layout.annotations(),
        f"{ANNOTATION_PREFIX}/config-sha256": hashlib.sha256(config_text.encode()).hexdigest(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(layout, names.router, ROUTER_COMPONENT),
        "spec": {
            # One router: its rpm and concurrency caps are counted in-process; more replicas need Redis.
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": layout.labels(ROUTER_COMPONENT), "annotations": template_annotations},
                "spec": {
                    "enableServiceLinks": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": names.router_config}}],
                },
            },
        },
    }


def router_service(layout: Layout) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(layout, layout.names.router, ROUTER_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": layout.selector(ROUTER_COMPONENT),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
