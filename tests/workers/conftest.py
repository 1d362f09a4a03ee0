"""Models built offline for the worker tests: random weights, never downloaded, never committed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from workers.dummy import build_model_dir, quantize_gguf, write_gguf
from workers.launch import find_executable

# Nothing in these tests may reach the network (the engines get the same variables from the launcher).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_LLAMA = {
    "layers": 2,
    "hidden": 64,
    "attention_heads": 4,
    "kv_heads": 2,
    "head_dim": 16,
    "intermediate": 128,
    "vocab": 512,
    "max_context": 2048,
}
# Q4_K packs rows in super-blocks of 256 values; narrower rows would silently fall back to another type.
GGUF_LLAMA = TINY_LLAMA | {"hidden": 256, "head_dim": 64, "intermediate": 512}

needs_llama_server = pytest.mark.skipif(
    find_executable("llama-server") is None,
    reason="llama.cpp's llama-server is not built (`make install-test` builds it into the engine cache)",
)
needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install 'llm-deployment-advisor[llamacpp]')",
)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny-llama"
    build_model_dir(path, architecture=TINY_LLAMA, dtype="bfloat16")
    return path


@pytest.fixture(scope="session")
def tiny_gguf_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"f16", "q8_0", "q4_k_m"}: one random Llama, converted once and quantized by llama.cpp itself."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (pip install 'llm-deployment-advisor[llamacpp]')")
    root = tmp_path_factory.mktemp("gguf")
    build_model_dir(root / "hf", architecture=GGUF_LLAMA, dtype="float32")
    files = {"f16": write_gguf(root / "hf", root / "model-f16.gguf", file_type="f16")}
    for quant in ("q8_0", "q4_k_m"):
        files[quant] = quantize_gguf(files["f16"], root / f"model-{quant}.gguf", quant)
    return files
