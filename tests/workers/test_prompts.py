"""Prompts of exact token length, for byte-level and merge-heavy vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.errors import InvalidSpec
from workers.prompts import HfTokenizer, PromptFactory, load_tokenizer


@pytest.fixture(scope="module")
def merging_tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real BPE with merges, trained here offline: words become one or a few tokens, as in production."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from workers.prompts import _WORDS

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>"])
    tokenizer.train_from_iterator([" ".join(_WORDS)] * 50, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    path = tmp_path_factory.mktemp("bpe") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.mark.parametrize("tokens", [1, 2, 3, 16, 100, 1000])
def test_byte_level_prompts_are_exact(tiny_llama_dir: Path, tokens: int) -> None:
    tokenizer = load_tokenizer(tiny_llama_dir)
    factory = PromptFactory(tokenizer, seed=tokens)

    prompt = factory.make(tokens)

    assert prompt.tokens == tokens
    assert len(tokenizer.encode(prompt.text, add_special_tokens=True)) == tokens


@pytest.mark.parametrize("tokens", [2, 5, 17, 128, 777])
def test_merging_tokenizer_prompts_are_exact(merging_tokenizer_path: Path, tokens: int) -> None:
    tokenizer = HfTokenizer(merging_tokenizer_path)
    factory = PromptFactory(tokenizer, seed=7)

    for _ in range(5):
        prompt = factory.make(tokens)
        assert len(tokenizer.encode(prompt.text, add_special_tokens=True)) == prompt.tokens == tokens


def test_prompts_differ_so_prefix_caches_cannot_help(tiny_llama_dir: Path) -> None:
    factory = PromptFactory(load_tokenizer(tiny_llama_dir), seed=0)

    first, second = factory.make(64), factory.make(64)

    assert first.text[:8] != second.text[:8]


def test_a_length_below_the_special_tokens_gives_an_empty_prompt(tiny_llama_dir: Path) -> None:
    factory = PromptFactory(load_tokenizer(tiny_llama_dir))

    prompt = factory.make(0)

    assert prompt.text == ""
    assert prompt.tokens == factory.special_tokens == 1


def test_a_model_without_tokenizer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="tokenizer"):
        load_tokenizer(tmp_path)
