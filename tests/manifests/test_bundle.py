"""Downloads are deterministic zips; writing to disk stays inside the target folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from apps.manifests.build import build_bundle
from apps.manifests.bundle import write_bundle, zip_bundle
from tests.manifests.helpers import bundle, make_request
from workers.releases import all_facts


def test_the_same_bundle_zips_to_the_same_bytes() -> None:
    files = bundle("vllm")
    assert zip_bundle(files) == zip_bundle(dict(reversed(list(files.items()))))


def test_zip_holds_every_file_with_fixed_metadata() -> None:
    files = bundle("sglang")
    with zipfile.ZipFile(io.BytesIO(zip_bundle(files, root="support-chat"))) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == [f"support-chat/{p}" for p in sorted(files)]
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o644}
        assert archive.read("support-chat/compose.yaml").decode() == files["compose.yaml"]


def test_write_bundle_writes_the_tree(tmp_path: Path) -> None:
    files = bundle("tgi")
    written = write_bundle(files, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == sorted(files)
    assert (tmp_path / "out" / "k8s" / "20-deployment.yaml").read_text() == files["k8s/20-deployment.yaml"]


@pytest.mark.parametrize("path", ["../escape.yaml", "/etc/passwd", "k8s/../../x", "a\\b", ""])
def test_paths_leaving_the_bundle_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="unsafe bundle path"):
        write_bundle({path: "x"}, tmp_path)
    with pytest.raises(ValueError, match="unsafe bundle path"):
        zip_bundle({path: "x"})


def test_the_readme_says_per_engine_what_was_verified_and_how() -> None:
    readme = bundle("sglang")["README.md"]
    section = readme.split("## What was verified, per engine", 1)[1].split("## Files", 1)[0]

    for engine, facts in all_facts().items():
        assert f"**{facts.display_name} {facts.current.version}**" in section, engine
        assert f"workers/release_data/flags/{engine}-{facts.current.version}.json" in section
    assert "started for real in the tests" in section  # vLLM's CPU build and llama-server
    assert "checked against the argparse parser of the sglang 0.5.23 wheel" in section


def test_the_readme_names_the_checkpoint_and_what_a_missing_queue_metric_does() -> None:
    request = make_request(
        "vllm",
        quant="awq-int4",
        model_path="hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
        checkpoint_source="https://huggingface.co/hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
    )
    readme = build_bundle(request)["README.md"]

    assert "a checkpoint published in AWQ: https://huggingface.co/hugging-quants/" in readme
    assert 'KEDA reports the trigger as failing (`ignoreNullValues: "false"`)' in readme
    no_queue = bundle("transformers", gpu="cpu", tp=1, quant="bf16")["README.md"]
    assert "**Error: Transformers (transformers serve) exports no queue metric**" in no_queue
