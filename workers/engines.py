"""One definition of each serving engine: image, port, endpoints, metrics, and how a candidate becomes arguments.

The benchmark workers launch engines from these definitions and the manifests emit the same arguments, so what
was measured is what gets deployed (tests/manifests check the parity).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.errors import InvalidSpec

ENGINE_NAMES = ("vllm", "sglang", "trtllm", "tgi", "llamacpp", "transformers")
QUANTIZATIONS = (
    "bf16", "fp16", "fp8", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4", "fp8-block", "gguf-q4_k_m", "gguf-q8_0",
)  # fmt: skip


@dataclass(frozen=True)
class EngineDefinition:
    name: str
    display_name: str
    image: str  # pinned tag; manifests use it verbatim
    port: int
    health_path: str
    metrics_path: str | None
    queue_metric: str | None  # Prometheus gauge of requests waiting for admission: the autoscaling signal
    running_metric: str | None
    quantizations: tuple[str, ...]
    accelerators: tuple[str, ...]  # "cuda", "rocm", "cpu"
    # How the server starts: `container_command` is what goes after the image (None: the image's entrypoint
    # is the server and takes flags only); `bare_command` is the executable on a host without containers.
    container_command: tuple[str, ...] | None
    bare_command: tuple[str, ...]
    supports_dummy_weights: bool
    docs_url: str


@dataclass(frozen=True)
class ServeConfig:
    """A candidate as an engine needs it. Units in names; lengths in tokens."""

    engine: str
    model_path: str
    served_name: str
    quantization: str = "bf16"
    tensor_parallel: int = 1
    max_model_len: int = 8192
    max_num_seqs: int = 256
    gpu_memory_fraction: float = 0.90
    prefix_caching: bool = True
    # Engines without a dummy load format get a random-weight model directory built on disk instead.
    dummy_weights: bool = False
    device: str = "cuda"  # "cuda" or "cpu"
    host: str = "0.0.0.0"
    port: int | None = None  # None: the engine's default port
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def definition(self) -> EngineDefinition:
        return ENGINES[self.engine]

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.definition.port


ENGINES: dict[str, EngineDefinition] = {
    "vllm": EngineDefinition(
        name="vllm",
        display_name="vLLM",
        image="vllm/vllm-openai:v0.11.0",
        port=8000,
        health_path="/health",
        metrics_path="/metrics",
        queue_metric="vllm:num_requests_waiting",
        running_metric="vllm:num_requests_running",
        quantizations=("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4"),
        accelerators=("cuda", "rocm"),
        container_command=None,
        bare_command=("python3", "-m", "vllm.entrypoints.openai.api_server"),
        supports_dummy_weights=True,
        docs_url="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    "sglang": EngineDefinition(
        name="sglang",
        display_name="SGLang",
        image="lmsysorg/sglang:v0.5.3-cu129",
        port=30000,
        health_path="/health",
        metrics_path="/metrics",
        queue_metric="sglang:num_queue_reqs",
        running_metric="sglang:num_running_reqs",
        quantizations=("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "gptq-int4", "nvfp4", "mxfp4"),
        accelerators=("cuda", "rocm"),
        container_command=("python3", "-m", "sglang.launch_server"),
        bare_command=("python3", "-m", "sglang.launch_server"),
        supports_dummy_weights=True,
        docs_url="https://docs.sglang.ai/backend/server_arguments.html",
    ),
    "trtllm": EngineDefinition(
        name="trtllm",
        display_name="TensorRT-LLM (trtllm-serve)",
        image="nvcr.io/nvidia/tensorrt-llm/release:1.0.0",
        port=8000,
        health_path="/health",
        metrics_path="/prometheus/metrics",
        queue_metric="trtllm_num_requests_waiting",
        running_metric="trtllm_num_requests_running",
        quantizations=("bf16", "fp16", "fp8", "fp8-block", "int8", "awq-int4", "nvfp4", "mxfp4"),
        accelerators=("cuda",),
        container_command=("trtllm-serve",),
        bare_command=("trtllm-serve",),
        supports_dummy_weights=False,
        docs_url="https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve.html",
    ),
    "tgi": EngineDefinition(
        name="tgi",
        display_name="Text Generation Inference",
        image="ghcr.io/huggingface/text-generation-inference:3.3.5",
        port=80,
        health_path="/health",
        metrics_path="/metrics",
        queue_metric="tgi_queue_size",
        running_metric="tgi_batch_current_size",
        quantizations=("bf16", "fp16", "fp8", "awq-int4", "gptq-int4"),
        accelerators=("cuda", "rocm"),
        container_command=None,
        bare_command=("text-generation-launcher",),
        supports_dummy_weights=False,
        docs_url="https://huggingface.co/docs/text-generation-inference/reference/launcher",
    ),
    # Manifests run this image's llama-server. Bare benchmark hosts without that binary fall back to
    # llama-cpp-python's server with equivalent settings (workers/launch.py); results record which ran.
    "llamacpp": EngineDefinition(
        name="llamacpp",
        display_name="llama.cpp server",
        image="ghcr.io/ggml-org/llama.cpp:server-cuda-b6715",
        port=8080,
        health_path="/health",
        metrics_path="/metrics",
        queue_metric="llamacpp:requests_deferred",
        running_metric="llamacpp:requests_processing",
        quantizations=("gguf-q4_k_m", "gguf-q8_0", "bf16", "fp16", "mxfp4"),
        accelerators=("cuda", "rocm", "cpu"),
        container_command=None,
        bare_command=("llama-server",),
        supports_dummy_weights=False,
        docs_url="https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
    ),
    "transformers": EngineDefinition(
        name="transformers",
        display_name="Transformers (transformers serve)",
        image="huggingface/transformers-pytorch-gpu:5.23.0",
        port=8000,
        health_path="/health",
        metrics_path=None,
        queue_metric=None,
        running_metric=None,
        quantizations=("bf16", "fp16"),
        accelerators=("cuda", "cpu"),
        container_command=("transformers", "serve"),
        bare_command=("transformers", "serve"),
        supports_dummy_weights=False,
        docs_url="https://huggingface.co/docs/transformers/main/en/serving",
    ),
}


class UnsupportedCandidate(InvalidSpec):
    """The engine cannot run this candidate (quantization, accelerator or option it does not have).

    Still a ValueError (through InvalidSpec), as before, so existing callers that catch ValueError keep working.
    """


def check_supported(config: ServeConfig) -> None:
    if config.engine not in ENGINES:
        raise UnsupportedCandidate(f"unknown engine {config.engine!r}; known: {', '.join(ENGINE_NAMES)}")
    definition = config.definition
    if config.quantization not in definition.quantizations:
        raise UnsupportedCandidate(
            f"{definition.display_name} does not serve {config.quantization}; "
            f"it serves {', '.join(definition.quantizations)}"
        )
    accelerator = "cpu" if config.device == "cpu" else "cuda"
    if accelerator not in definition.accelerators:
        raise UnsupportedCandidate(f"{definition.display_name} does not run on {config.device}")
    if config.tensor_parallel < 1:
        raise UnsupportedCandidate("tensor_parallel must be at least 1")
    if config.max_model_len < 1 or config.max_num_seqs < 1:
        raise UnsupportedCandidate("max_model_len and max_num_seqs must be at least 1")
    if not 0.0 < config.gpu_memory_fraction <= 1.0:
        raise UnsupportedCandidate(f"gpu_memory_fraction {config.gpu_memory_fraction} is not in (0, 1]")


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
        # TGI 3 turns prefix caching on by default and has no flag for it, only this variable.
        env["PREFIX_CACHING"] = "0"
    return env


_VLLM_QUANT = {"fp8": "fp8", "awq-int4": "awq_marlin", "gptq-int4": "gptq_marlin", "nvfp4": "modelopt_fp4"}
_SGLANG_QUANT = {
    "fp8": "fp8",
    "int8": "w8a8_int8",
    "awq-int4": "awq_marlin",
    "gptq-int4": "gptq_marlin",
    "nvfp4": "modelopt_fp4",
}
_TGI_QUANT = {"fp8": "fp8", "awq-int4": "awq", "gptq-int4": "gptq"}
_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def _vllm_args(c: ServeConfig) -> list[str]:
    args = [
        "--model", c.model_path,
        "--served-model-name", c.served_name,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--tensor-parallel-size", str(c.tensor_parallel),
        "--max-model-len", str(c.max_model_len),
        "--max-num-seqs", str(c.max_num_seqs),
        "--gpu-memory-utilization", f"{c.gpu_memory_fraction:.2f}",
    ]  # fmt: skip
    if c.quantization in _DTYPE:
        args += ["--dtype", _DTYPE[c.quantization]]
    if c.quantization in _VLLM_QUANT:
        args += ["--quantization", _VLLM_QUANT[c.quantization]]
    args.append("--enable-prefix-caching" if c.prefix_caching else "--no-enable-prefix-caching")
    if c.dummy_weights:
        args += ["--load-format", "dummy"]
    return args


def _sglang_args(c: ServeConfig) -> list[str]:
    args = [
        "--model-path", c.model_path,
        "--served-model-name", c.served_name,
        "--host", c.host,
        "--port", str(c.effective_port),
        "--tp-size", str(c.tensor_parallel),
        "--context-length", str(c.max_model_len),
        "--max-running-requests", str(c.max_num_seqs),
        "--mem-fraction-static", f"{c.gpu_memory_fraction:.2f}",
        "--enable-metrics",
    ]  # fmt: skip
    if c.quantization in _DTYPE:
        args += ["--dtype", _DTYPE[c.quantization]]
    if c.quantization in _SGLANG_QUANT:
        args += ["--quantization", _SGLANG_QUANT[c.quantization]]
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
        "--tp_size", str(c.tensor_parallel),
        "--max_seq_len", str(c.max_model_len),
        "--max_batch_size", str(c.max_num_seqs),
        "--kv_cache_free_gpu_memory_fraction", f"{c.gpu_memory_fraction:.2f}",
    ]  # fmt: skip


# TGI answers 429 to requests beyond --max-concurrent-requests instead of queueing them like vLLM and SGLang
# do; the batch limit is --max-batch-size, and the admission limit stays well above it so a benchmark measures
# queueing inside the engine rather than rejections.
_TGI_ADMISSION_PER_BATCH_SLOT = 8


def _tgi_args(c: ServeConfig) -> list[str]:
    args = [
        "--model-id", c.model_path,
        "--served-model-name", c.served_name,
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
    if c.quantization in _TGI_QUANT:
        args += ["--quantize", _TGI_QUANT[c.quantization]]
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
