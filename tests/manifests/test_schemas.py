"""The vendored schema files are the upstream files recorded in schemas/README.md, byte for byte."""

from __future__ import annotations

import hashlib
import re

import pytest

from apps.manifests.validate import SCHEMA_DIR

README = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
RECORDED = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", README, flags=re.MULTILINE))


def test_every_schema_file_is_recorded() -> None:
    vendored = {p.name for p in SCHEMA_DIR.iterdir() if p.suffix in {".json", ".yaml"}}
    assert vendored == set(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_schema_file_matches_its_recorded_checksum(name: str) -> None:
    assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == RECORDED[name]
