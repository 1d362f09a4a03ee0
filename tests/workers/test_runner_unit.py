"""run_benchmark's refusals and cancellation before any engine starts (no engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workers.engines import UnsupportedCandidate
from workers.errors import BenchmarkCancelled, InvalidSpec
from workers.runner import BenchmarkSpec, run_benchmark


def _spec(tmp_path: Path, **overrides: Any) -> BenchmarkSpec:
    fields: dict[str, Any] = {
        "engine": "transformers",
        "model": "llama-3.1-8b",
        "dummy_weights": True,
        "shrink": True,
        "device": "cpu",
        "isl": 16,
        "osl": 8,
        "concurrency": (1,),
        "requests": 2,
        "work_dir": str(tmp_path),
    }
    return BenchmarkSpec(**(fields | overrides))


def test_an_impossible_candidate_is_refused_before_any_work(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []

    with pytest.raises(UnsupportedCandidate, match="does not run on cpu"):
        run_benchmark(_spec(tmp_path, engine="sglang"), on_progress=events.append)

    assert events == []
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "no-such-model"}, "neither an existing path nor a catalog slug"),
        ({"dummy_weights": False}, "add --dummy-weights"),
        ({"concurrency": ()}, "exactly one of"),
        ({"concurrency": (), "sweep": True}, "needs at least one SLO"),
    ],
)
def test_bad_specs_are_invalid(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        run_benchmark(_spec(tmp_path, **overrides))


def test_cancel_while_building_weights_starts_no_engine(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []

    with pytest.raises(BenchmarkCancelled) as caught:
        run_benchmark(_spec(tmp_path), on_progress=events.append, should_cancel=lambda: True)

    assert "building random weights" in str(caught.value)
    assert caught.value.partial_result is not None
    assert caught.value.partial_result["cancelled"] is True
    assert not any(e["event"] == "engine_started" for e in events)
    assert events[-1]["phase"] == "failed"
