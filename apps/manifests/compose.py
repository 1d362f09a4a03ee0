"""Docker Compose for one replica on one host, plus an optional `monitoring` profile and the overflow router.

Compose interpolates `${…}` in every value, so user-derived text is escaped (`$$`) and only the secrets this
module means to read from the shell use `${NAME:?message}`, which refuses to start when they are unset.
"""

from __future__ import annotations

from typing import Any

from apps.manifests import naming, sizing
from apps.manifests.layout import ANNOTATION_PREFIX, ROUTER_PORT, Layout
from apps.manifests.request import ManifestError, OverflowTarget

Doc = dict[str, Any]

PROMETHEUS_IMAGE = "prom/prometheus:v3.5.0"
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
ENGINE_CONFIG_DIR = "engine-config"
LITELLM_CONFIG = "litellm/config.yaml"
CACHE_VOLUME = "model-cache"
LLAMACPP_MODELS_DIR = (
    "./models"  # a GGUF file is loaded by path; a bind mount is the easy way to put it there
)
# llama.cpp's server image has curl but no Python; every other engine image ships Python.
_ENGINES_WITHOUT_PYTHON = frozenset({"llamacpp"})


def compose_escape(value: str) -> str:
    return value.replace("$", "$$")


def required_env(name: str, why: str) -> str:
    return f"${{{name}:?{why}}}"


def host_port(container_port: int) -> int:
    # Privileged host ports (TGI listens on 80) would clash with anything else on the host.
    return container_port if container_port >= 1024 else 8080


def _healthcheck(layout: Layout) -> Doc:
    url = f"http://127.0.0.1:{layout.port}{layout.definition.health_path}"
    if layout.request.engine in _ENGINES_WITHOUT_PYTHON:
        test = ["CMD", "curl", "-fsS", "-o", "/dev/null", url]
    else:
        # urlopen raises on any non-2xx answer, so "loading" (503) counts as unhealthy.
        test = ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen('{url}', timeout=5)"]
    return {
        "test": test,
        "interval": "30s",
        "timeout": "10s",
        "retries": 3,
        # Failures inside start_period do not count, so it must cover a cold start (download + load).
        "start_period": f"{layout.budget.startup_budget_s}s",
        "start_interval": "10s",
    }


def _devices(layout: Layout) -> Doc:
    accel = layout.accelerator
    if accel.kind == "nvidia":
        devices = [{"driver": "nvidia", "count": accel.count, "capabilities": ["gpu"]}]
        return {"deploy": {"resources": {"reservations": {"devices": devices}}}}
    if accel.kind == "amd":
        # ROCm containers reach the GPUs through the kernel driver's device nodes (AMD's documented run flags).
        return {
            "devices": ["/dev/kfd", "/dev/dri"],
            "group_add": ["video"],
            "security_opt": ["seccomp=unconfined"],
        }
    return {}


def engine_config_files(layout: Layout) -> dict[str, str]:
    """Bundle path -> text of the files the engine's arguments name, bind-mounted at their paths."""
    return {f"{ENGINE_CONFIG_DIR}/{path.rsplit('/', 1)[-1]}": text for path, text in layout.files}


def _engine_config_mounts(layout: Layout) -> list[Doc]:
    return [
        {"type": "bind", "source": f"./{bundle_path}", "target": path, "read_only": True}
        for bundle_path, (path, _text) in zip(engine_config_files(layout), layout.files, strict=True)
    ]


def _cache_volume(layout: Layout) -> Doc:
    if layout.request.engine == "llamacpp":
        return {
            "type": "bind",
            "source": LLAMACPP_MODELS_DIR,
            "target": layout.cache_mount,
            "read_only": True,
        }
    return {"type": "volume", "source": CACHE_VOLUME, "target": layout.cache_mount}


def engine_service(layout: Layout) -> Doc:
    service: Doc = {"image": layout.image}
    if layout.command:
        # Compose's entrypoint/command pair maps to Kubernetes' command/args.
        service["entrypoint"] = [compose_escape(part) for part in layout.command]
    service |= {
        "command": [compose_escape(arg) for arg in layout.args],
        "environment": {
            **(
                {"HF_TOKEN": required_env("HF_TOKEN", "set HF_TOKEN to a Hugging Face read token")}
                if layout.downloads
                else {}
            ),
            **{name: compose_escape(value) for name, value in layout.env},
        },
        "ports": [f"127.0.0.1:{host_port(layout.port)}:{layout.port}"],
        "volumes": [_cache_volume(layout), *_engine_config_mounts(layout)],
        "shm_size": f"{layout.resources.shm_gi}gb",
        **_devices(layout),
        "healthcheck": _healthcheck(layout),
        "restart": "unless-stopped",
        "stop_grace_period": f"{sizing.termination_grace_s(layout.request.drain_s)}s",
        "labels": {
            f"{ANNOTATION_PREFIX}/workload": compose_escape(naming.one_line(layout.request.workload_name)),
            f"{ANNOTATION_PREFIX}/model-path": compose_escape(naming.one_line(layout.request.model_path)),
        },
    }
    if layout.request.engine == "sglang":
        # SGLang's own compose file: unlimited locked memory for pinned buffers, a larger stack for its workers.
        service["ulimits"] = {"memlock": -1, "stack": 67108864}
    return service


def prometheus_service(layout: Layout) -> Doc:
    return {
        "image": PROMETHEUS_IMAGE,
        "profiles": ["monitoring"],
        "command": ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.retention.time=15d"],
        "volumes": [
            {
                "type": "bind",
                "source": f"./{PROMETHEUS_CONFIG}",
                "target": "/etc/prometheus/prometheus.yml",
                "read_only": True,
            },
            {"type": "volume", "source": "prometheus-data", "target": "/prometheus"},
        ],
        "ports": ["127.0.0.1:9090:9090"],
        "depends_on": {layout.names.container: {"condition": "service_started"}},
        "restart": "unless-stopped",
    }


def prometheus_config(layout: Layout) -> Doc:
    return {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": layout.request.engine,
                "metrics_path": layout.definition.metrics_path,
                "static_configs": [{"targets": [f"{layout.names.container}:{layout.port}"]}],
            }
        ],
    }


def router_service(layout: Layout, overflow: OverflowTarget, *, image: str, env: dict[str, str]) -> Doc:
    health = f"http://127.0.0.1:{ROUTER_PORT}/health/liveliness"
    return {
        "image": image,
        "command": ["--config", "/app/config.yaml", "--port", str(ROUTER_PORT)],
        "environment": {
            **{key: compose_escape(value) for key, value in env.items()},
            "LITELLM_MASTER_KEY": required_env(
                "LITELLM_MASTER_KEY", "set the key clients use for the router"
            ),
            # The message stays fixed text: provider names are data, and a "}" would end the expression early.
            overflow.api_key_env: required_env(overflow.api_key_env, "set the hosted API key for overflow"),
        },
        "ports": [f"127.0.0.1:{ROUTER_PORT}:{ROUTER_PORT}"],
        "volumes": [
            {"type": "bind", "source": f"./{LITELLM_CONFIG}", "target": "/app/config.yaml", "read_only": True}
        ],
        "depends_on": {layout.names.container: {"condition": "service_healthy"}},
        "healthcheck": {
            "test": [
                "CMD",
                "python3",
                "-c",
                f"import urllib.request; urllib.request.urlopen('{health}', timeout=5)",
            ],
            "interval": "30s",
            "timeout": "10s",
            "retries": 3,
            "start_period": "60s",
        },
        "restart": "unless-stopped",
    }


def multi_node_refusal(layout: Layout) -> str:
    return (
        f"option {layout.request.rank} runs one replica over {layout.nodes} nodes "
        f"({layout.request.gpus_per_node} GPUs each); Docker Compose starts containers on one host and cannot "
        "span nodes: use the Kubernetes bundle (k8s/, a LeaderWorkerSet per replica)"
    )


def compose_file(layout: Layout, *, router: Doc | None) -> Doc:
    if layout.multi_node:
        raise ManifestError(multi_node_refusal(layout))
    services: Doc = {layout.names.container: engine_service(layout)}
    volumes: Doc = {}
    if layout.request.engine != "llamacpp":
        volumes[CACHE_VOLUME] = {}
    if layout.definition.metrics_path:
        services["prometheus"] = prometheus_service(layout)
        volumes["prometheus-data"] = {}
    if router is not None:
        services["router"] = router
    document: Doc = {"name": naming.compose_project_name(layout.request.workload_name), "services": services}
    if volumes:
        document["volumes"] = volumes
    return document
