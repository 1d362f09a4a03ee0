"""serve_args per engine: the flags a candidate becomes, shared by bare processes, containers and manifests."""

from __future__ import annotations

import re

import pytest

from workers.engines import (
    ServeConfig,
    UnsupportedCandidate,
    bare_command,
    container_args,
    serve_args,
    serve_env,
)
from workers.errors import InvalidSpec


def _config(engine: str, **overrides: object) -> ServeConfig:
    fields: dict[str, object] = {
        "engine": engine,
        "model_path": "/models/m",
        "served_name": "m",
        "tensor_parallel": 2,
        "max_model_len": 4096,
        "max_num_seqs": 64,
        "gpu_memory_fraction": 0.85,
        "port": 9000,
    }
    fields.update(overrides)
    return ServeConfig(**fields)  # type: ignore[arg-type]


def _value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def test_vllm_flags() -> None:
    args = serve_args(_config("vllm", quantization="awq-int4", prefix_caching=False, dummy_weights=True))

    assert _value(args, "--model") == "/models/m"
    assert _value(args, "--served-model-name") == "m"
    assert _value(args, "--tensor-parallel-size") == "2"
    assert _value(args, "--max-model-len") == "4096"
    assert _value(args, "--max-num-seqs") == "64"
    assert _value(args, "--gpu-memory-utilization") == "0.85"
    # the AWQ checkpoint names its format itself: no method flag that a 16-bit checkpoint would choke on
    assert "--quantization" not in args
    assert _value(args, "--load-format") == "dummy"
    assert "--disable-prefix-caching" in args  # vLLM 0.33's spelling
    assert _value(args, "--port") == "9000"


def test_vllm_quantizes_fp8_while_loading_and_drops_gpu_flags_on_cpu() -> None:
    on_load = serve_args(_config("vllm", quantization="fp8", quantize_on_load=True))
    cpu = _config("vllm", device="cpu", tensor_parallel=1, cpu_kv_cache_gib=3)

    assert _value(on_load, "--quantization") == "fp8"
    assert "--gpu-memory-utilization" not in serve_args(cpu)
    assert serve_env(cpu) == {"VLLM_CPU_KVCACHE_SPACE": "3"}


def test_vllm_bf16_sets_dtype_and_prefix_caching() -> None:
    args = serve_args(_config("vllm"))

    assert _value(args, "--dtype") == "bfloat16"
    assert "--quantization" not in args
    assert "--enable-prefix-caching" in args
    assert "--load-format" not in args


def test_sglang_flags() -> None:
    args = serve_args(_config("sglang", quantization="int8", prefix_caching=False, dummy_weights=True))

    assert _value(args, "--model-path") == "/models/m"
    assert _value(args, "--tp-size") == "2"
    assert _value(args, "--context-length") == "4096"
    assert _value(args, "--max-running-requests") == "64"
    assert _value(args, "--mem-fraction-static") == "0.85"
    assert "--quantization" not in args  # a W8A8 checkpoint says so in its config
    assert "--enable-metrics" in args
    assert "--disable-radix-cache" in args
    assert _value(args, "--load-format") == "dummy"


def test_trtllm_flags() -> None:
    args = serve_args(_config("trtllm"))

    assert args[0] == "/models/m"
    assert _value(args, "--tp_size") == "2"
    assert _value(args, "--max_seq_len") == "4096"
    assert _value(args, "--max_batch_size") == "64"
    assert _value(args, "--kv_cache_free_gpu_memory_fraction") == "0.85"
    assert _value(args, "--extra_llm_api_options") == "/etc/llm-engine/trtllm-extra-llm-api-options.yaml"


def test_tgi_batches_max_num_seqs_and_queues_above_it() -> None:
    config = _config("tgi", quantization="gptq-int4", prefix_caching=False)
    args = serve_args(config)

    assert _value(args, "--model-id") == "/models/m"
    assert _value(args, "--num-shard") == "2"
    assert _value(args, "--max-total-tokens") == "4096"
    assert _value(args, "--max-input-tokens") == "4095"
    assert _value(args, "--max-batch-size") == "64"
    # admission well above the batch so TGI queues like the others instead of answering 429
    assert int(_value(args, "--max-concurrent-requests")) > 64
    assert "--quantize" not in args  # GPTQ is read from the checkpoint's configuration
    assert "--served-model-name" not in args  # no TGI release has it
    assert _value(args, "--cuda-memory-fraction") == "0.85"
    assert serve_env(config) == {"PREFIX_CACHING": "0"}
    assert serve_env(_config("tgi")) == {}


def test_llamacpp_context_covers_every_slot_and_offloads_on_gpu() -> None:
    gpu = serve_args(
        _config("llamacpp", quantization="gguf-q4_k_m", model_path="/m.gguf", prefix_caching=False)
    )
    cpu = serve_args(_config("llamacpp", quantization="gguf-q8_0", device="cpu", tensor_parallel=1))

    assert _value(gpu, "--ctx-size") == str(4096 * 64)
    assert _value(gpu, "--parallel") == "64"
    assert _value(gpu, "--n-gpu-layers") == "999"
    assert _value(gpu, "--split-mode") == "row"
    assert "--no-cache-prompt" in gpu
    assert _value(cpu, "--n-gpu-layers") == "0"
    assert "--split-mode" not in cpu
    assert "--metrics" in cpu


def test_transformers_sizes_its_kv_cache_on_cpu_and_uses_memory_fraction_on_gpu() -> None:
    cpu = serve_args(_config("transformers", device="cpu", tensor_parallel=1, quantization="fp16"))
    gpu = serve_args(_config("transformers", tensor_parallel=1))

    assert cpu[0] == "/models/m"
    assert _value(cpu, "--device") == "cpu"
    assert _value(cpu, "--dtype") == "float16"
    assert "--continuous-batching" in cpu
    assert _value(cpu, "--cb-num-blocks") == str(4096 * 64 // 256)
    assert _value(gpu, "--cb-max-memory-percent") == "0.85"
    assert "--cb-num-blocks" not in gpu


def test_extra_args_pass_through_and_commands_wrap_the_same_args() -> None:
    config = _config("sglang", extra_args=("--enable-torch-compile",))

    args = serve_args(config)
    command, container = container_args(config)

    assert args[-1] == "--enable-torch-compile"
    assert bare_command(config) == ["python3", "-m", "sglang.launch_server", *args]
    assert command == ["python3", "-m", "sglang.launch_server"]
    assert container == args


@pytest.mark.parametrize(
    ("engine", "overrides", "message"),
    [
        ("sglang", {"device": "cpu"}, "does not run on cpu"),
        ("trtllm", {"quantization": "fp8", "quantize_on_load": True}, "it needs a checkpoint already in fp8"),
        ("vllm", {"quantization": "int8", "quantize_on_load": True}, "makes fp8 while loading, not int8"),
        ("vllm", {"engine_version": "0.10.0"}, "vllm 0.10.0 is not pinned"),
        ("transformers", {"quantization": "fp8"}, "does not serve fp8"),
        ("vllm", {"tensor_parallel": 0}, "at least 1"),
        ("vllm", {"gpu_memory_fraction": 1.5}, "not in (0, 1]"),
        ("tgi", {"max_num_seqs": 0}, "at least 1"),
    ],
)
def test_unsupported_candidates_are_refused(engine: str, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UnsupportedCandidate, match=re.escape(message)):
        serve_args(_config(engine, **overrides))


def test_unsupported_candidate_is_still_a_value_error_and_a_benchmark_error() -> None:
    assert issubclass(UnsupportedCandidate, ValueError)
    assert issubclass(UnsupportedCandidate, InvalidSpec)
