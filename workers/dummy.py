"""Random-weight models for benchmarking: a runnable Hugging Face directory, and GGUF files for llama.cpp.

Speed does not depend on weight values, so a benchmark of random weights at the real architecture measures what
a deployment would see, without downloading anything. Everything here is built offline:

* the tokenizer is byte-level BPE made with `tokenizers` (every byte is one token, so prompt lengths are exact
  and llama.cpp tokenizes the same text to the same ids), padded with filler tokens up to the model's vocab so
  every id the random model samples decodes to text;
* generation_config.json and config.json carry no EOS, so `transformers serve` runs to max_tokens; engines
  that read an EOS from the tokenizer get ignore_eos / min_tokens from the load generator instead;
* weights are written tensor by tensor from the shapes of the model class instantiated on the meta device, so
  any architecture transformers knows works and an 8B model never has to fit in memory at once.

torch, transformers, safetensors and gguf are imported inside the functions: they are the worker extra, and the
web app imports workers.engines without them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.errors import InvalidSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

ProgressHook = Callable[[int, int], None]
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPECIAL_TOKENS = ("<|pad|>", "<s>", "</s>")
_DOUBLE_SPACE = "ĠĠ"  # the one merge: GGUF's gpt2 vocab needs a non-empty merge list, HF applies it the same
_FIRST_FILLER_ID = len(_SPECIAL_TOKENS) + 256 + 1
MIN_VOCAB = _FIRST_FILLER_ID + 1

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

# Field names follow apps/catalog/specs.py ModelSpec, so a catalog row converts as a plain dict.
ARCHITECTURE_FIELDS = (
    "layers",
    "hidden",
    "attention_heads",
    "kv_heads",
    "head_dim",
    "intermediate",
    "vocab",
    "max_context",
)

# Small, yet with heads of 64: vLLM's CPU attention refuses head_dim 16 ("Unsupported CPU attention
# configuration"), and llama.cpp's Q4_K packs rows in blocks of 256 values.
TINY_SHAPE: dict[str, int] = {
    "layers": 2,
    "hidden": 256,
    "attention_heads": 4,
    "kv_heads": 2,
    "head_dim": 64,
    "intermediate": 512,
    "vocab": 512,
    "max_context": 2048,
    "num_experts": 4,
    "experts_per_token": 2,
}

_DTYPES = ("bfloat16", "float16", "float32")
_SHARD_BYTES = 2 * 1024**3
_WEIGHT_STD = 0.02  # the usual initializer range: keeps activations finite through many random layers
# Engines with a dummy load format still need to know a checkpoint is quantized to pick the kernels.
_QUANTIZATION_CONFIGS: dict[str, dict[str, Any]] = {
    "awq-int4": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "gptq-int4": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False, "sym": True},
}


@dataclass(frozen=True)
class DummyModel:
    path: Path
    model_type: str
    parameter_count: int
    weights_written: bool
    config: dict[str, Any]


# ---------------------------------------------------------------------------------------------- tokenizer


def _byte_level_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table, in byte order (the order llama.cpp's gpt2 vocab also uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    )
    mapping: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return [mapping[b] for b in range(256)]


def vocabulary(vocab_size: int) -> list[str]:
    """Token strings by id: specials, the 256 byte tokens, the double-space merge, then fillers."""
    if vocab_size < MIN_VOCAB:
        raise InvalidSpec(f"vocab {vocab_size} is below the byte-level minimum {MIN_VOCAB}")
    tokens = [*_SPECIAL_TOKENS, *_byte_level_alphabet(), _DOUBLE_SPACE]
    # Fillers start with the byte-level space so decoded output reads as words.
    tokens += [f"Ġt{i}" for i in range(vocab_size - len(tokens))]
    return tokens


def write_tokenizer(out_dir: Path, *, vocab_size: int, max_context: int) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens = vocabulary(vocab_size)
    bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[("Ġ", "Ġ")])
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)]
    )
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in _SPECIAL_TOKENS])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    special = {"pad_token": "<|pad|>", "bos_token": "<s>", "eos_token": "</s>"}
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_context,
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
        **special,
    }
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config)
    _write_json(out_dir / "special_tokens_map.json", special)


# ---------------------------------------------------------------------------------------------- configs


def shrink_architecture(
    architecture: Mapping[str, Any], shrink: bool | Mapping[str, int] = True
) -> dict[str, Any]:
    """The same architecture, smaller: `True` gives TINY_SHAPE, a mapping overrides only the fields it names."""
    if shrink is False:
        return dict(architecture)
    overrides = dict(TINY_SHAPE) if shrink is True else dict(shrink)
    shrunk = dict(architecture)
    for key, value in overrides.items():
        if key in ("num_experts", "experts_per_token"):
            if int(architecture.get(key) or 0) > 0:  # dense models stay dense
                shrunk[key] = min(int(architecture[key]), value)
        elif key == "max_context":
            shrunk[key] = min(int(architecture.get(key, value)), value)
        else:
            shrunk[key] = value
    if int(shrunk["attention_heads"]) % int(shrunk["kv_heads"]):
        raise InvalidSpec("attention_heads must be a multiple of kv_heads")
    return shrunk


def hf_config_kwargs(architecture: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(model_type, config kwargs) for transformers' AutoConfig.for_model from catalog-style fields."""
    missing = [f for f in ARCHITECTURE_FIELDS if f not in architecture]
    if missing:
        raise InvalidSpec(f"architecture lacks {', '.join(missing)}")
    model_type = str(architecture.get("model_type", "llama"))
    kwargs: dict[str, Any] = {
        "num_hidden_layers": int(architecture["layers"]),
        "hidden_size": int(architecture["hidden"]),
        "num_attention_heads": int(architecture["attention_heads"]),
        "num_key_value_heads": int(architecture["kv_heads"]),
        "head_dim": int(architecture["head_dim"]),
        "intermediate_size": int(architecture["intermediate"]),
        "vocab_size": int(architecture["vocab"]),
        "max_position_embeddings": int(architecture["max_context"]),
    }
    experts = int(architecture.get("num_experts") or 0)
    if experts:
        kwargs["num_local_experts" if model_type == "mixtral" else "num_experts"] = experts
        kwargs["num_experts_per_tok"] = int(architecture.get("experts_per_token") or 2)
    kwargs.update(architecture.get("config_overrides") or {})
    if kwargs.get("sliding_window"):
        kwargs["sliding_window"] = min(int(kwargs["sliding_window"]), kwargs["max_position_embeddings"])
    return model_type, kwargs


def _no_eos(config_dict: dict[str, Any]) -> dict[str, Any]:
    # Output length must be what the benchmark asked for; an EOS would let random weights stop early.
    config_dict["bos_token_id"] = BOS_ID
    config_dict["eos_token_id"] = None
    config_dict["pad_token_id"] = PAD_ID
    return config_dict


# ---------------------------------------------------------------------------------------------- weights


def _meta_state(config: Any) -> dict[str, torch.Tensor]:
    """Parameter names and shapes of the model class, allocated on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    state: dict[str, torch.Tensor] = dict(model.state_dict())
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # safetensors refuses shared tensors; the loader re-ties it
    return state


def _random_tensor(
    name: str, meta: torch.Tensor, dtype: torch.dtype, generator: torch.Generator
) -> torch.Tensor:
    import torch

    if meta.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return torch.zeros(meta.shape, dtype=meta.dtype)  # integer buffers, e.g. position ids
    if name.endswith("bias"):
        return torch.zeros(meta.shape, dtype=dtype)
    if meta.dim() == 1:
        return torch.ones(meta.shape, dtype=dtype)  # norm scales: 1 keeps the residual stream bounded
    tensor = torch.empty(meta.shape, dtype=torch.float32)
    tensor.normal_(0.0, _WEIGHT_STD, generator=generator)
    if name == "lm_head.weight":
        # Zero logits for specials and raw bytes: greedy decoding then only picks filler tokens, each a whole
        # word, so engines stream exactly one chunk per token (a lone byte >= 0x80 is held back as incomplete
        # UTF-8, and a sampled special is skipped), and the usage/chunk cross-check stays exact.
        tensor[:_FIRST_FILLER_ID] = 0.0
    return tensor.to(dtype)


def _shards(state: Mapping[str, torch.Tensor], dtype_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    size = 0
    for name, meta in state.items():
        tensor_bytes = meta.numel() * dtype_bytes
        if shards[-1] and size + tensor_bytes > _SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += tensor_bytes
    return shards


def _write_weights(
    out_dir: Path,
    state: Mapping[str, torch.Tensor],
    dtype_name: str,
    seed: int,
    on_progress: ProgressHook | None,
) -> None:
    import torch
    from safetensors.torch import save_file

    dtype: torch.dtype = getattr(torch, dtype_name)
    dtype_bytes = torch.empty((), dtype=dtype).element_size()
    total_bytes = sum(t.numel() for t in state.values()) * dtype_bytes
    free_bytes = shutil.disk_usage(out_dir).free
    if total_bytes > free_bytes * 0.95:
        raise InvalidSpec(f"random weights need {total_bytes / 1e9:.1f} GB; {free_bytes / 1e9:.1f} GB free")
    generator = torch.Generator().manual_seed(seed)
    shards = _shards(state, dtype_bytes)
    weight_map: dict[str, str] = {}
    written_bytes = 0
    for index, names in enumerate(shards, start=1):
        filename = (
            "model.safetensors" if len(shards) == 1 else f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        )
        tensors = {}
        for name in names:
            tensors[name] = _random_tensor(name, state[name], dtype, generator)
            written_bytes += tensors[name].numel() * dtype_bytes
            if on_progress is not None:
                on_progress(written_bytes, total_bytes)  # may raise to stop (a cancelled benchmark)
        save_file(tensors, str(out_dir / filename), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, filename))
        del tensors
    if len(shards) > 1:
        index_json = {"metadata": {"total_size": total_bytes}, "weight_map": weight_map}
        _write_json(out_dir / "model.safetensors.index.json", index_json)


# ---------------------------------------------------------------------------------------------- model dir


def build_model_dir(
    out_dir: Path,
    *,
    architecture: Mapping[str, Any] | None = None,
    config_json: Path | Mapping[str, Any] | None = None,
    shrink: bool | Mapping[str, int] = False,
    dtype: str = "bfloat16",
    weights: bool = True,
    quantization: str | None = None,
    seed: int = 0,
    on_progress: ProgressHook | None = None,
) -> DummyModel:
    """Write config.json, tokenizer and (unless `weights=False`) random safetensors weights into `out_dir`.

    Give exactly one of `architecture` (catalog fields, plus optional model_type, num_experts,
    experts_per_token, config_overrides) or `config_json` (a config.json path or dict of any architecture).
    `weights=False` suits engines that make their own random weights (vLLM and SGLang `--load-format dummy`).
    `on_progress(written_bytes, total_bytes)` runs after each tensor: a full-size 70B model takes minutes.
    """
    from transformers import AutoConfig

    if (architecture is None) == (config_json is None):
        raise InvalidSpec("give exactly one of architecture or config_json")
    if dtype not in _DTYPES:
        raise InvalidSpec(f"dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if quantization in _QUANTIZATION_CONFIGS and weights:
        raise InvalidSpec(f"random {quantization} weights need an engine with a dummy load format")

    if architecture is not None:
        model_type, kwargs = hf_config_kwargs(shrink_architecture(architecture, shrink))
    else:
        raw = (
            json.loads(Path(config_json).read_text())
            if isinstance(config_json, Path)
            else dict(config_json or {})
        )
        model_type = str(raw.pop("model_type", "llama"))
        kwargs = _shrink_raw_config(raw, shrink)
    if int(kwargs.get("vocab_size", 0)) < MIN_VOCAB:
        raise InvalidSpec(f"vocab_size must be at least {MIN_VOCAB} for the byte-level tokenizer")

    # Special ids of our tokenizer, not the architecture's defaults (Phi-3 defaults pad to 32000, for one).
    kwargs |= {"bos_token_id": BOS_ID, "eos_token_id": None, "pad_token_id": PAD_ID}
    config = AutoConfig.for_model(model_type, **kwargs)
    _set_dtype(config, dtype)
    state = _meta_state(config)
    config.architectures = [_model_class_name(config)]

    out_dir.mkdir(parents=True, exist_ok=True)
    config_dict = _no_eos(config.to_dict())
    # transformers 5 reads `dtype`; engines pinned to older transformers (TGI, trtllm) read `torch_dtype`.
    config_dict["torch_dtype"] = dtype
    if quantization in _QUANTIZATION_CONFIGS:
        config_dict["quantization_config"] = dict(_QUANTIZATION_CONFIGS[quantization or ""])
    _write_json(out_dir / "config.json", config_dict)
    _write_json(out_dir / "generation_config.json", {"bos_token_id": BOS_ID, "pad_token_id": PAD_ID})
    write_tokenizer(out_dir, vocab_size=config.vocab_size, max_context=config.max_position_embeddings)
    if weights:
        _write_weights(out_dir, state, dtype, seed, on_progress)
    parameter_count = sum(t.numel() for t in state.values())
    return DummyModel(out_dir, model_type, parameter_count, weights, config_dict)


def _set_dtype(config: Any, dtype: str) -> None:
    import torch

    config.dtype = getattr(torch, dtype)


def _model_class_name(config: Any) -> str:
    from transformers import AutoModelForCausalLM

    mapping: Any = AutoModelForCausalLM._model_mapping
    return str(mapping[type(config)].__name__)


def _shrink_raw_config(raw: dict[str, Any], shrink: bool | Mapping[str, int]) -> dict[str, Any]:
    """Apply a catalog-style shrink to a raw config.json by mapping the catalog field names onto it."""
    if shrink is False:
        return raw
    names = {
        "layers": "num_hidden_layers",
        "hidden": "hidden_size",
        "attention_heads": "num_attention_heads",
        "kv_heads": "num_key_value_heads",
        "head_dim": "head_dim",
        "intermediate": "intermediate_size",
        "vocab": "vocab_size",
        "max_context": "max_position_embeddings",
    }
    catalog = {ours: raw[theirs] for ours, theirs in names.items() if theirs in raw}
    catalog.setdefault("kv_heads", catalog.get("attention_heads", 1))
    catalog.setdefault("head_dim", int(raw.get("hidden_size", 64)) // int(raw.get("num_attention_heads", 1)))
    catalog.setdefault("max_context", 2048)
    shrunk = shrink_architecture(catalog, shrink)
    out = dict(raw)
    for ours, theirs in names.items():
        if ours in shrunk:
            out[theirs] = shrunk[ours]
    for key in ("num_local_experts", "num_experts"):
        if out.get(key):
            out[key] = min(int(out[key]), TINY_SHAPE["num_experts"])
    if out.get("num_experts_per_tok"):
        out["num_experts_per_tok"] = min(int(out["num_experts_per_tok"]), TINY_SHAPE["experts_per_token"])
    return out


# ---------------------------------------------------------------------------------------------- GGUF

GGUF_QUANTIZATIONS = {"q8_0": 7, "q4_k_m": 15}  # llama_ftype values: LLAMA_FTYPE_MOSTLY_Q8_0, _Q4_K_M
_GGUF_LLAMA_TYPES = ("llama", "mistral")


def _gguf_names(layers: int) -> dict[str, str]:
    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    per_layer = {
        "input_layernorm.weight": "attn_norm.weight",
        "self_attn.q_proj.weight": "attn_q.weight",
        "self_attn.k_proj.weight": "attn_k.weight",
        "self_attn.v_proj.weight": "attn_v.weight",
        "self_attn.o_proj.weight": "attn_output.weight",
        "post_attention_layernorm.weight": "ffn_norm.weight",
        "mlp.gate_proj.weight": "ffn_gate.weight",
        "mlp.up_proj.weight": "ffn_up.weight",
        "mlp.down_proj.weight": "ffn_down.weight",
    }
    for i in range(layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}"] = f"blk.{i}.{gg}"
    return names


def _rope_permute(weights: np.ndarray[Any, Any], heads: int) -> np.ndarray[Any, Any]:
    """HF stores rotary halves split; GGML expects them interleaved (as llama.cpp's convert_hf_to_gguf.py)."""
    shape = weights.shape
    return weights.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _safetensor_items(model_dir: Path) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    from safetensors import safe_open

    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open handles are not iterable)
                yield name, handle.get_tensor(name).float().numpy()


def write_gguf(model_dir: Path, out_path: Path, *, file_type: str = "f16") -> Path:
    """Convert a Llama-family model directory built by `build_model_dir` into one GGUF file (F16 or F32)."""
    import gguf
    import numpy as np

    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") not in _GGUF_LLAMA_TYPES:
        raise InvalidSpec(
            f"GGUF writer handles {', '.join(_GGUF_LLAMA_TYPES)}, not {config.get('model_type')}"
        )
    if file_type not in ("f16", "f32"):
        raise InvalidSpec("file_type must be f16 or f32; quantize the result with quantize_gguf")
    heads, kv_heads = int(config["num_attention_heads"]), int(config["num_key_value_heads"])
    head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
    matrix_dtype = np.float16 if file_type == "f16" else np.float32

    # Spooled to a temporary file: the writer otherwise holds every tensor in memory until the end.
    writer = gguf.GGUFWriter(str(out_path), "llama", use_temp_file=True)
    writer.add_name(model_dir.name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(
        int(gguf.LlamaFileType.MOSTLY_F16 if file_type == "f16" else gguf.LlamaFileType.ALL_F32)
    )
    _add_gguf_tokenizer(writer, int(config["vocab_size"]))

    names = _gguf_names(int(config["num_hidden_layers"]))
    for hf_name, array in _safetensor_items(model_dir):
        if hf_name not in names:
            raise InvalidSpec(f"no GGUF name for tensor {hf_name}")
        if hf_name.endswith("q_proj.weight"):
            array = _rope_permute(array, heads)
        elif hf_name.endswith("k_proj.weight"):
            array = _rope_permute(array, kv_heads)
        # llama.cpp keeps 1-D tensors (norms) in F32 whatever the file type.
        writer.add_tensor(names[hf_name], array.astype(np.float32 if array.ndim == 1 else matrix_dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path


def _rope_theta(config: Mapping[str, Any]) -> float:
    # transformers 5 moved rope_theta into rope_parameters.
    params = config.get("rope_parameters") or {}
    return float(params.get("rope_theta") or config.get("rope_theta") or 10000.0)


def _add_gguf_tokenizer(writer: Any, vocab_size: int) -> None:
    import gguf

    tokens = vocabulary(vocab_size)
    types = [
        int(gguf.TokenType.CONTROL if i < len(_SPECIAL_TOKENS) else gguf.TokenType.NORMAL)
        for i in range(len(tokens))
    ]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["Ġ Ġ"])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_pad_token_id(PAD_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def quantize_gguf(in_path: Path, out_path: Path, quantization: str, *, threads: int = 0) -> Path:
    """Quantize with llama.cpp's own quantizer (the code llama-quantize runs): q8_0 or q4_k_m."""
    import ctypes

    import llama_cpp

    if quantization not in GGUF_QUANTIZATIONS:
        raise InvalidSpec(f"GGUF quantization must be one of {', '.join(GGUF_QUANTIZATIONS)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = GGUF_QUANTIZATIONS[quantization]
    params.nthread = threads
    status = llama_cpp.llama_model_quantize(
        str(in_path).encode(), str(out_path).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise InvalidSpec(f"llama.cpp could not quantize {in_path} to {quantization} (status {status})")
    return out_path


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
