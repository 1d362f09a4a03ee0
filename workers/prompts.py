"""Prompts of an exact token length, measured with the served model's own tokenizer, loaded offline.

Lengths matter more than content for speed, but prefix caches make content matter too: every prompt is a
fresh random word sequence, so no two requests share more than the BOS token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workers.errors import InvalidSpec

# Short common words: one or two tokens each in every mainstream vocabulary.
_WORD_TEXT = (
    "time year people way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night "
    "point home water room mother area money story fact month lot right study book eye job word business "
    "issue side kind head house service friend father power hour game line end member law car city "
    "community name president team minute idea kid body information back parent face others level office "
    "door health person art war history party result change morning reason research girl guy moment air "
    "teacher force education foot boy age policy process music market sense nation plan college interest "
    "death experience effect use class control care field development role effort rate heart drug show "
    "leader light voice wife police mind price report decision son view relationship town road arm "
    "difference value building action model season society tax director position player record paper "
    "space ground form event official matter center couple site project activity star table need court "
    "oil situation cost industry figure street image phone data picture practice piece land product "
    "doctor wall patient worker news test movie"
)
_WORDS = tuple(_WORD_TEXT.split())
_MAX_DRAWS = 8
_MAX_NUDGES = 4


class Tokenizer(Protocol):
    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class HfTokenizer:
    """tokenizer.json through the `tokenizers` library: no transformers import, no network."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as RustTokenizer

        self._tokenizer = RustTokenizer.from_file(str(path))

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=True))


class GgufTokenizer:
    """The vocabulary inside a GGUF file, through llama.cpp itself: exactly what llama.cpp servers count."""

    def __init__(self, path: Path) -> None:
        import atexit

        import llama_cpp

        self._llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        # Freed before interpreter teardown: llama_cpp's own finaliser fails once its module globals are gone.
        atexit.register(self._llama.close)

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        return list(self._llama.tokenize(text.encode(), add_bos=add_special_tokens, special=False))

    def decode(self, ids: list[int]) -> str:
        return self._llama.detokenize(ids).decode("utf-8", errors="replace")


def load_tokenizer(model: Path) -> Tokenizer:
    """The tokenizer next to a model: a directory with tokenizer.json, or a GGUF file (its embedded vocab)."""
    if model.is_file() and model.suffix == ".gguf":
        return GgufTokenizer(model)
    candidate = model / "tokenizer.json" if model.is_dir() else model
    if candidate.name == "tokenizer.json" and candidate.is_file():
        return HfTokenizer(candidate)
    raise InvalidSpec(f"no tokenizer.json or GGUF file at {model}: prompts need the model's tokenizer")


@dataclass(frozen=True)
class Prompt:
    text: str
    tokens: int  # as the server should count it: special tokens it adds included


class PromptFactory:
    """Random word prompts fitted to an exact token count (counting the special tokens the server adds)."""

    def __init__(self, tokenizer: Tokenizer, *, seed: int = 0, template_tokens: int | None = None) -> None:
        """`template_tokens`: what a chat template adds around the message (see chat_overhead_tokens), so
        chat prompts hit the length too; None for /v1/completions, where the prompt goes in as it is."""
        self._tokenizer = tokenizer
        self._rng = np.random.default_rng(seed)
        self.special_tokens = len(tokenizer.encode("", add_special_tokens=True))
        # Tokens around the content beyond the specials the content's own encoding already counts.
        self._wrapper_tokens = 0 if template_tokens is None else template_tokens - self.special_tokens

    def _words(self, count: int) -> str:
        return " ".join(self._rng.choice(_WORDS, size=max(count, 1)).tolist())

    def make(self, tokens: int) -> Prompt:
        """A prompt the server will count as `tokens` long (closest reachable; chat lengths are approximate
        where the template's tokens merge with the message's)."""
        fitted = self._fit(tokens - self._wrapper_tokens)
        return Prompt(fitted.text, fitted.tokens + self._wrapper_tokens)

    def _fit(self, tokens: int) -> Prompt:
        """A prompt whose tokenization (with specials) is `tokens` long, or the closest length reached.

        Decoding a token prefix and re-encoding it can merge across the cut, so the cut is nudged by the
        difference a few times, and when a word sequence will not fit exactly a fresh one is drawn. A
        byte-level vocabulary fits at once; merge-heavy ones within a few draws.
        """
        content_tokens = tokens - self.special_tokens
        if content_tokens <= 0:
            return Prompt("", self.special_tokens)
        best = Prompt("", self.special_tokens)
        for _ in range(_MAX_DRAWS):
            ids = self._content_ids(content_tokens)
            cut = content_tokens
            for _ in range(_MAX_NUDGES):
                text = self._tokenizer.decode(ids[:cut])
                length = len(self._tokenizer.encode(text, add_special_tokens=True))
                if abs(length - tokens) < abs(best.tokens - tokens):
                    best = Prompt(text, length)
                if length == tokens:
                    return best
                cut = max(1, min(len(ids), cut + tokens - length))
        return best

    def _content_ids(self, content_tokens: int) -> list[int]:
        """Token ids of fresh random words, a few more than needed so every cut has text behind it."""
        words = self._words(content_tokens)
        ids = self._tokenizer.encode(words, add_special_tokens=False)
        while len(ids) < content_tokens + 8:
            words += " " + self._words(content_tokens - len(ids) + 8)
            ids = self._tokenizer.encode(words, add_special_tokens=False)
        return ids


def chat_overhead_tokens(tokenizer_dir: Path) -> int | None:
    """Tokens the chat template adds around one user message, when the directory has a template.

    Approximate where template text and message merge into shared tokens; exact for byte-level vocabularies.
    """
    config_path = tokenizer_dir / "tokenizer_config.json"
    if not config_path.is_file():
        return None
    config: dict[str, Any] = json.loads(config_path.read_text())
    template = config.get("chat_template")
    if not isinstance(template, str):
        return None
    import jinja2

    rendered = (
        jinja2.Environment()
        .from_string(template)
        .render(
            messages=[{"role": "user", "content": ""}], add_generation_prompt=True, bos_token="", eos_token=""
        )
    )
    # Servers render the template and tokenize it without adding specials (templates carry their own BOS).
    return len(HfTokenizer(tokenizer_dir / "tokenizer.json").encode(rendered, add_special_tokens=False))
