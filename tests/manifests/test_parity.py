"""What the workers launch is what the manifests deploy: same argv, same engine environment."""

from __future__ import annotations

import pytest

from tests.manifests.helpers import ALL_ENGINES, bundle, compose_engine, engine_container, make_request
from workers.engines import ENGINES, ServeConfig, bare_command, container_args, serve_args, serve_env


def _worker_config(engine: str, **changes: object) -> ServeConfig:
    """The candidate exactly as a benchmark worker would be given it (built here, not by the manifests)."""
    request = make_request(engine, **changes)
    return ServeConfig(
        engine=engine,
        model_path=request.model_path,
        served_name=request.served_name,
        quantization=request.quant,
        tensor_parallel=request.tp,
        max_model_len=request.max_model_len,
        max_num_seqs=request.max_num_seqs,
        gpu_memory_fraction=request.gpu_memory_fraction,
        prefix_caching=request.prefix_caching,
        device="cpu" if request.gpu == "cpu" else "cuda",
    )


def _kubelet_unescape(value: str) -> str:
    return value.replace("$$", "$")


def _compose_unescape(value: str) -> str:
    return value.replace("$$", "$")


CASES = [
    *((engine, {}) for engine in ALL_ENGINES),
    ("vllm", {"tp": 8, "prefix_caching": False, "quant": "awq-int4"}),
    ("sglang", {"tp": 4, "quant": "bf16"}),
    ("tgi", {"prefix_caching": False}),
    ("llamacpp", {"gpu": "cpu", "tp": 1}),
    ("transformers", {"gpu": "cpu", "tp": 1}),
    # A `$` in a path must survive kubelet's $(VAR) and Compose's ${VAR} expansion unchanged.
    ("vllm", {"model_path": "/models/$(HF_TOKEN)/${HF_TOKEN}/$HOME"}),
]


@pytest.mark.parametrize(("engine", "changes"), CASES)
def test_deployment_and_compose_run_the_workers_argv(engine: str, changes: dict[str, object]) -> None:
    config = _worker_config(engine, **changes)
    worker_args = serve_args(config)
    worker_command, _ = container_args(config)
    files = bundle(engine, **changes)
    container = engine_container(files)
    service = compose_engine(files, engine)

    assert [_kubelet_unescape(a) for a in container["args"]] == worker_args
    assert [_compose_unescape(a) for a in service["command"]] == worker_args
    # A bare worker process runs the executable followed by the same arguments.
    assert bare_command(config)[len(ENGINES[engine].bare_command) :] == worker_args
    assert container.get("command") == worker_command
    assert service.get("entrypoint") == worker_command


@pytest.mark.parametrize(("engine", "changes"), CASES)
def test_deployment_and_compose_set_the_workers_engine_environment(
    engine: str, changes: dict[str, object]
) -> None:
    config = _worker_config(engine, **changes)
    files = bundle(engine, **changes)
    k8s_env = {e["name"]: e["value"] for e in engine_container(files)["env"] if "valueFrom" not in e}
    compose_env = compose_engine(files, engine)["environment"]

    assert k8s_env == serve_env(config)
    assert {k: v for k, v in compose_env.items() if k != "HF_TOKEN"} == serve_env(config)


def test_escaping_is_visible_in_the_raw_manifest() -> None:
    files = bundle("vllm", model_path="/models/$(HF_TOKEN)")
    assert "/models/$$(HF_TOKEN)" in engine_container(files)["args"]
    assert "/models/$$(HF_TOKEN)" in compose_engine(files, "vllm")["command"]
