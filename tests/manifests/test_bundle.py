"""Downloads are deterministic zips; writing to disk stays inside the target folder."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from apps.manifests.bundle import write_bundle, zip_bundle
from tests.manifests.helpers import bundle


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
