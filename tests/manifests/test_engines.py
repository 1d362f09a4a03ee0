"""What each engine's Deployment and Compose service must carry, read back from the emitted YAML."""

from __future__ import annotations

import math
import re

import pytest

from apps.manifests import yamlio
from apps.manifests.build import ManifestError, build_bundle
from apps.manifests.validate import validate_bundle
from tests.manifests.helpers import (
    ENGINES,
    bundle,
    compose,
    compose_engine,
    engine_container,
    flag_value,
    k8s,
    make_request,
)
from workers.engines import ENGINES as DEFINITIONS

# Per engine: the flag carrying each planned setting (None: the engine has no such flag).
FLAGS = {
    "vllm": ("--tensor-parallel-size", "--max-model-len", "--max-num-seqs", "--gpu-memory-utilization"),
    "sglang": ("--tp-size", "--context-length", "--max-running-requests", "--mem-fraction-static"),
    "tgi": ("--num-shard", "--max-total-tokens", "--max-batch-size", "--cuda-memory-fraction"),
    "trtllm": ("--tp_size", "--max_seq_len", "--max_batch_size", "--kv_cache_free_gpu_memory_fraction"),
}
QUANT_FLAGS = {
    "vllm": ("--quantization", "fp8"),
    "sglang": ("--quantization", "fp8"),
    "tgi": ("--quantize", "fp8"),
}


@pytest.mark.parametrize("engine", sorted(FLAGS))
def test_planned_limits_reach_the_engine_flags(engine: str) -> None:
    files = bundle(engine, tp=4, max_model_len=12000, max_num_seqs=96, gpu_memory_fraction=0.87)
    args = engine_container(files)["args"]
    tp_flag, len_flag, seqs_flag, memory_flag = FLAGS[engine]

    assert flag_value(args, tp_flag) == "4"
    assert flag_value(args, len_flag) == "12000"
    assert flag_value(args, seqs_flag) == "96"
    assert flag_value(args, memory_flag) == "0.87"
    assert compose_engine(files, engine)["command"] == args


@pytest.mark.parametrize("engine", sorted(QUANT_FLAGS))
def test_load_time_quantization_reaches_the_engine(engine: str) -> None:
    flag, value = QUANT_FLAGS[engine]
    on_load = engine_container(bundle(engine, quantize_on_load=True))["args"]
    prequantized = engine_container(bundle(engine, model_path="RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8"))[
        "args"
    ]

    assert flag_value(on_load, flag) == value
    assert flag not in prequantized  # the checkpoint's config names its format


def test_trtllm_serves_the_quantized_checkpoint_and_readme_says_so() -> None:
    # trtllm-serve reads the quantization from the checkpoint: the README must ask for an FP8 one.
    files = bundle("trtllm", quant="fp8")
    assert "--quantization" not in engine_container(files)["args"]
    assert "a checkpoint already in fp8 whose own config names the format" in files["README.md"]


def test_tgi_prefix_caching_is_set_through_the_environment() -> None:
    # TGI has no flag for it; workers.engines.serve_env carries it and both targets must set it.
    off = bundle("tgi", prefix_caching=False)
    assert {"name": "PREFIX_CACHING", "value": "0"} in engine_container(off)["env"]
    assert compose_engine(off, "tgi")["environment"]["PREFIX_CACHING"] == "0"
    assert all(e["name"] != "PREFIX_CACHING" for e in engine_container(bundle("tgi"))["env"])


@pytest.mark.parametrize(
    ("engine", "on_flag", "off_flag"),
    [
        ("vllm", "--enable-prefix-caching", "--disable-prefix-caching"),
        ("sglang", None, "--disable-radix-cache"),
        ("llamacpp", None, "--no-cache-prompt"),
    ],
)
def test_prefix_caching_is_explicit(engine: str, on_flag: str | None, off_flag: str) -> None:
    on = engine_container(bundle(engine, prefix_caching=True))["args"]
    off = engine_container(bundle(engine, prefix_caching=False))["args"]

    assert off_flag in off
    assert off_flag not in on
    if on_flag:
        assert on_flag in on
        assert on_flag not in off


def test_llamacpp_splits_context_across_slots_and_offloads_every_layer() -> None:
    files = bundle("llamacpp", tp=2, max_model_len=8192, max_num_seqs=4)
    args = engine_container(files)["args"]

    assert flag_value(args, "--ctx-size") == str(8192 * 4)
    assert flag_value(args, "--parallel") == "4"
    assert flag_value(args, "--n-gpu-layers") == "999"
    assert flag_value(args, "--split-mode") == "row"
    assert flag_value(args, "--model").endswith(".gguf")
    assert compose_engine(files, "llamacpp")["volumes"][0]["source"] == "./models"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("tp", [1, 2, 8])
def test_gpu_requests_equal_limits_equal_tp(engine: str, tp: int) -> None:
    files = bundle(engine, tp=tp)
    pod = k8s(files, "deployment")["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]

    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == str(tp)
    assert pod["runtimeClassName"] == "nvidia"
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
    ]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    [device] = compose_engine(files, engine)["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": tp, "capabilities": ["gpu"]}


@pytest.mark.parametrize(
    ("engine", "image"),
    [
        ("vllm", "vllm/vllm-openai-rocm:v0.33.0"),
        ("tgi", "ghcr.io/huggingface/text-generation-inference:3.3.7-rocm"),
        ("llamacpp", "ghcr.io/ggml-org/llama.cpp:server-rocm-b11312"),
    ],
)
def test_amd_bundles_run_the_pinned_rocm_image_on_the_amd_device_plugin(engine: str, image: str) -> None:
    files = bundle(engine, gpu="mi300x")
    pod = k8s(files, "deployment")["spec"]["template"]["spec"]

    assert pod["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    assert pod["containers"][0]["resources"]["requests"]["amd.com/gpu"] == "2"
    assert "runtimeClassName" not in pod
    assert pod["containers"][0]["image"] == image
    [term] = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0]["key"] == "amd.com/gpu.product-name"
    service = compose_engine(files, engine)
    assert service["image"] == image
    assert service["devices"] == ["/dev/kfd", "/dev/dri"]
    assert service["group_add"] == ["video"]
    assert validate_bundle(files) == []


def test_amd_bundles_without_a_pinned_rocm_build_need_an_explicit_image() -> None:
    # SGLang runs on MI300X but publishes only date-stamped ROCm builds, none of the pinned release.
    with pytest.raises(ManifestError, match="publishes no ROCM image"):
        bundle("sglang", gpu="mi300x")
    files = bundle("sglang", gpu="mi300x", image="lmsysorg/sglang-rocm:v0.5.20-rocm720-mi30x-20260920")
    assert engine_container(files)["image"] == "lmsysorg/sglang-rocm:v0.5.20-rocm720-mi30x-20260920"
    # TensorRT-LLM has no ROCm build at all: no image makes it run there.
    with pytest.raises(ManifestError, match="does not run on ROCm"):
        bundle("trtllm", gpu="mi300x", image="some/image:tag")


def test_cpu_serving_requests_no_gpu() -> None:
    files = bundle("llamacpp", gpu="cpu", tp=1)
    pod = k8s(files, "deployment")["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]

    assert not any("gpu" in key for key in (*resources["requests"], *resources["limits"]))
    assert "runtimeClassName" not in pod
    assert "affinity" not in pod
    assert flag_value(pod["containers"][0]["args"], "--n-gpu-layers") == "0"
    assert pod["containers"][0]["image"] == "ghcr.io/ggml-org/llama.cpp:server-b11312"
    assert "deploy" not in compose_engine(files, "llamacpp")


def _cold_start_floor_s(weights_gb: float, *, downloads: bool = True) -> float:
    """An independent lower bound: downloading at 100 MB/s (hub models only) and reading at 200 MB/s."""
    return (weights_gb / 0.1 if downloads else 0.0) + weights_gb / 0.2


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("weights_gb", [16.0, 141.0, 405.0])
def test_probes_cover_the_load_time(engine: str, weights_gb: float) -> None:
    files = bundle(engine, weights_gb=weights_gb)
    container = engine_container(files)
    health = DEFINITIONS[engine].health_path
    startup = container["startupProbe"]
    floor_s = _cold_start_floor_s(weights_gb, downloads=engine != "llamacpp")  # llama.cpp reads a local GGUF

    assert startup["httpGet"] == {"path": health, "port": "http"}
    assert startup["failureThreshold"] * startup["periodSeconds"] >= floor_s
    assert container["readinessProbe"]["httpGet"]["path"] == health
    assert container["livenessProbe"]["httpGet"]["path"] == health
    deployment = k8s(files, "deployment")
    assert (
        deployment["spec"]["progressDeadlineSeconds"]
        >= startup["failureThreshold"] * startup["periodSeconds"]
    )
    healthcheck = compose_engine(files, engine)["healthcheck"]
    assert _seconds(healthcheck["start_period"]) >= floor_s
    assert health in " ".join(healthcheck["test"])


def test_a_local_model_path_needs_no_download_budget_and_no_token() -> None:
    hub = engine_container(bundle("vllm", weights_gb=141.0))["startupProbe"]["failureThreshold"]
    files = bundle("vllm", weights_gb=141.0, model_path="/root/.cache/llama-70b")
    local = engine_container(files)
    assert local["startupProbe"]["failureThreshold"] < hub
    assert all(e["name"] != "HF_TOKEN" for e in local["env"])
    assert "create secret generic hf-token" not in files["README.md"]


@pytest.mark.parametrize("engine", ENGINES)
def test_volumes_shm_in_memory_and_cache_on_the_pvc(engine: str) -> None:
    files = bundle(engine, tp=4)
    pod = k8s(files, "deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    pvc = k8s(files, "pvc")

    shm = volumes[mounts["/dev/shm"]]["emptyDir"]
    assert shm["medium"] == "Memory"
    shm_gi = int(shm["sizeLimit"].removesuffix("Gi"))
    memory_limit_gi = int(pod["containers"][0]["resources"]["limits"]["memory"].removesuffix("Gi"))
    assert memory_limit_gi >= shm_gi + 4  # the memory-backed emptyDir is counted in the limit
    cache_mounts = [path for path, name in mounts.items() if name == "model-cache"]
    assert cache_mounts == [{"tgi": "/data", "llamacpp": "/models"}.get(engine, "/root/.cache")]
    assert volumes["model-cache"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    storage_gi = int(pvc["spec"]["resources"]["requests"]["storage"].removesuffix("Gi"))
    assert storage_gi * 2**30 >= 16.06e9 * 1.3
    assert compose_engine(files, engine)["shm_size"] == f"{shm_gi}gb"


def test_a_single_replica_uses_a_node_local_cache_and_recreates() -> None:
    files = bundle("vllm", replicas_by_hour=(1,) * 24, max_replicas=1)
    assert k8s(files, "pvc")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert k8s(files, "deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_several_replicas_share_the_cache_and_surge() -> None:
    files = bundle("vllm")
    assert k8s(files, "pvc")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert k8s(files, "deployment")["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 1,
        "maxUnavailable": 0,
    }


@pytest.mark.parametrize("engine", ENGINES)
def test_secrets_are_referenced_never_written(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_thisMustNeverAppearAnywhere123")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-thisMustNeverAppearEither456")
    from tests.manifests.helpers import OVERFLOW

    files = build_bundle(make_request(engine, overflow=OVERFLOW))

    hf_refs = [e for e in engine_container(files)["env"] if e["name"] == "HF_TOKEN"]
    compose_env = compose_engine(files, engine)["environment"]
    if engine == "llamacpp":  # a GGUF file on the volume: nothing to download, no token asked for
        assert hf_refs == []
        assert "HF_TOKEN" not in compose_env
    else:
        assert hf_refs == [
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": False}},
            }
        ]
        assert compose_env["HF_TOKEN"].startswith("${HF_TOKEN:?")
    router_env = compose(files)["services"]["router"]["environment"]
    assert router_env["OPENAI_API_KEY"].startswith("${OPENAI_API_KEY:?")
    router = k8s(files, "router-deployment")["spec"]["template"]["spec"]["containers"][0]
    secret_refs = [e for e in router["env"] if "valueFrom" in e]
    assert {e["name"] for e in secret_refs} == {"LITELLM_MASTER_KEY", "OPENAI_API_KEY"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] is False for e in secret_refs)
    config = yamlio.load(files["litellm/config.yaml"])
    assert all(m["litellm_params"]["api_key"].startswith("os.environ/") for m in config["model_list"])
    text = "\n".join(files.values())
    assert "MustNeverAppear" not in text
    assert not re.search(r"\bhf_[A-Za-z0-9]{20,}|\bsk-[A-Za-z0-9]{16,}", text)


@pytest.mark.parametrize("engine", ENGINES)
def test_ports_are_private_and_restart_is_set(engine: str) -> None:
    service = compose_engine(bundle(engine), engine)
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert service["restart"] == "unless-stopped"
    assert service["image"] == DEFINITIONS[engine].image


def test_service_and_monitor_target_the_engine_port() -> None:
    files = bundle("sglang")
    assert k8s(files, "service")["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert engine_container(files)["ports"] == [{"name": "http", "containerPort": 30000, "protocol": "TCP"}]
    monitor = k8s(files, "podmonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    prometheus = yamlio.load(files["prometheus/prometheus.yml"])
    assert prometheus["scrape_configs"][0]["static_configs"][0]["targets"] == ["sglang:30000"]
    assert compose(files)["services"]["prometheus"]["profiles"] == ["monitoring"]


def test_termination_grace_covers_the_longest_stream() -> None:
    pod = k8s(bundle("vllm", drain_s=240), "deployment")["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pod["terminationGracePeriodSeconds"] >= 240 + int(pre_stop[-1])
    assert pod["enableServiceLinks"] is False


def test_host_resources_fit_the_share_of_the_priced_instance() -> None:
    # p5.48xlarge: 192 vCPUs, 2048 GiB, 8 GPUs; a TP-2 replica may use at most a quarter of it.
    resources = engine_container(bundle("vllm", tp=2))["resources"]
    assert int(resources["requests"]["cpu"]) <= math.floor(192 / 4)
    assert int(resources["limits"]["memory"].removesuffix("Gi")) <= 2048 / 4
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
