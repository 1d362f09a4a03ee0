"""`manage.py manifests` end to end: plan, build, validate, write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.manifests import yamlio
from apps.manifests.validate import validate_bundle
from tests.manifests.test_request import WORKLOAD
from tests.planner.pipeline.test_mixed_fleet import BIMODAL_WORKLOAD


@pytest.fixture
def workload_file(tmp_path: Path) -> Path:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(WORKLOAD))
    return path


def test_writes_a_valid_bundle_for_the_best_option(db: None, workload_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    call_command("manifests", "--workload-file", str(workload_file), "--out", str(out))

    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert "compose.yaml" in files
    assert "k8s/20-deployment.yaml" in files
    assert validate_bundle(files) == []
    deployment = yamlio.load_all(files["k8s/20-deployment.yaml"])[0]
    assert "rank 1:" in deployment["metadata"]["annotations"]["llm-deployment-advisor/option"]


def test_writes_the_option_asked_for(db: None, workload_file: Path, tmp_path: Path) -> None:
    call_command("manifests", "--workload-file", str(workload_file), "--option", "2", "--out", str(tmp_path))
    deployment = yamlio.load_all((tmp_path / "k8s" / "20-deployment.yaml").read_text())[0]
    assert "rank 2:" in deployment["metadata"]["annotations"]["llm-deployment-advisor/option"]


def test_writes_a_mixed_fleet(db: None, tmp_path: Path) -> None:
    # given the workload whose plan mixes two GPU types by prompt length (tests/planner)
    path = tmp_path / "bimodal.json"
    path.write_text(json.dumps(BIMODAL_WORKLOAD))
    out = tmp_path / "out"

    call_command("manifests", "--workload-file", str(path), "--mixed", "0", "--out", str(out))

    files = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert {
        "k8s/20-deployment-rtx-a6000.yaml",
        "k8s/20-deployment-a100-80gb.yaml",
        "litellm/config.yaml",
    } <= set(files)
    assert validate_bundle(files) == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--option", "99"], "no option 99"),
        (["--mixed", "7"], "no mixed fleet 7"),
        (["--workload-file", "/nonexistent.json"], "cannot read"),
    ],
)
def test_bad_input_is_one_clear_error(
    db: None, workload_file: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    argv = ["--workload-file", str(workload_file), "--out", str(tmp_path / "out"), *arguments]
    with pytest.raises(CommandError, match=message):
        call_command("manifests", *argv)
    assert not (tmp_path / "out").exists()


def test_an_invalid_workload_is_refused(db: None, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x"}))
    with pytest.raises(CommandError, match="invalid workload"):
        call_command("manifests", "--workload-file", str(path), "--out", str(tmp_path / "out"))
