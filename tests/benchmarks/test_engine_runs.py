"""The execute service with real engines: `transformers serve` on CPU with a tiny random Llama built by the runner
in a temp dir. A candidate whose engine really crashes fails alone; a cancel really stops a running engine."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from apps.benchmarks import services
from apps.benchmarks.models import (
    BenchmarkCandidate,
    BenchmarkRun,
    CandidateStatus,
    Measurement,
    RunStatus,
    WorkerHost,
)
from apps.benchmarks.services import CandidateRequest, LoadSettings
from tests.benchmarks.conftest import intercept_runner
from tests.conftest import TeamWorld
from workers.dummy import write_tokenizer
from workers.runner import _CANCEL_POLL_INTERVAL_S

pytestmark = pytest.mark.integration


def _broken_model_dir(path: Path) -> Path:
    """A directory an engine starts on and dies loading: a real tokenizer, a config naming no architecture."""
    write_tokenizer(path, vocab_size=512, max_context=2048)
    (path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    return path


def test_a_crashing_engine_fails_its_candidate_and_the_run_goes_on(
    world: TeamWorld, cpu_worker: WorkerHost, work_dir: Path, tmp_path: Path
) -> None:
    # given two candidates; the first one's engine exits while loading its model
    outcome = services.benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=LoadSettings(concurrency=(1, 2), requests=3, isl=16, osl=8, shrink=True, warmup_requests=1),
        candidates=[
            CandidateRequest(engine="transformers", quant="fp16", accelerator="cpu"),
            CandidateRequest(engine="transformers", quant="bf16", accelerator="cpu"),
        ],
    )
    run = outcome.runs[0].run
    BenchmarkCandidate.objects.filter(run=run, quant="fp16").update(
        model_path=str(_broken_model_dir(tmp_path / "broken-model"))
    )

    # when the worker executes the run
    services.benchmark_run_execute(run_id=run.pk, worker_name=cpu_worker.name)

    # then the crash is recorded with the engine's own last log lines, and the next candidate was measured
    run = BenchmarkRun.objects.get(pk=run.pk)
    crashed, measured = run.candidates.order_by("position")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert crashed.status == CandidateStatus.FAILED
    assert "exited with code" in crashed.error
    assert "no-such-architecture" in crashed.log_tail or "Traceback" in crashed.log_tail
    assert measured.status == CandidateStatus.SUCCEEDED
    levels = list(Measurement.objects.filter(candidate=measured).order_by("level_index"))
    assert [m.concurrency for m in levels] == [1, 2]
    for m in levels:
        assert m.requests_ok == 3
        assert m.requests_failed == 0
        ttft = [m.ttft_p50_ms, m.ttft_p90_ms, m.ttft_p95_ms, m.ttft_p99_ms]
        assert None not in ttft
        assert 0 < ttft[0] <= ttft[1] <= ttft[2] <= ttft[3]  # type: ignore[operator]
        assert all(sample["output_tokens"] == 8 for sample in m.samples)
        assert m.shrunk
        assert "shrunk to 2 layers" in m.weights
        assert (m.engine_version, m.host, m.run_id) == ("5.23.0", cpu_worker, run.pk)
        assert "--continuous-batching" in m.engine_args
    assert run.progress["phase"] == "succeeded"
    assert [c["status"] for c in run.progress["candidates"]] == ["failed", "succeeded"]


def _hold_after_the_first_level(event: dict[str, Any], should_cancel: Any, call: int) -> None:
    """Once the first level is reported, the runner waits until the cancel has reached it: the test then does
    not depend on how fast the engine is. The hold lasts at least the runner's cancel-poll interval, so its next
    check between levels asks again and sees the cancel."""
    if event.get("event") != "level_finished" or event.get("level_index") != 0:
        return
    held_since = time.monotonic()
    while not should_cancel() or time.monotonic() - held_since < _CANCEL_POLL_INTERVAL_S:
        if time.monotonic() - held_since > 180:
            raise AssertionError("the cancel never reached the runner")
        time.sleep(0.05)


def test_cancelling_a_running_run_stops_its_engine(
    catalog_loaded: None,
    transactional_db: Any,
    world: TeamWorld,
    cpu_worker: WorkerHost,
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a run with four load levels whose runner holds after the first one until the cancel reaches it
    outcome = services.benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=LoadSettings(
            concurrency=(1, 2, 3, 4), requests=6, isl=16, osl=8, shrink=True, warmup_requests=1
        ),
    )
    run = outcome.runs[0].run
    intercept_runner(monkeypatch, _hold_after_the_first_level)
    cancelled = threading.Event()

    def cancel_after_the_first_level() -> None:
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and not Measurement.objects.filter(run_id=run.pk).exists():
                time.sleep(0.2)
            services.benchmark_run_cancel(run=BenchmarkRun.objects.get(pk=run.pk), user=world.alice)
            cancelled.set()
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_after_the_first_level)
    canceller.start()

    # when the worker executes it and the user cancels once a level is in
    services.benchmark_run_execute(run_id=run.pk, worker_name=cpu_worker.name)
    canceller.join()

    # then the run ends cancelled with exactly the finished level kept, and the engine process is gone
    run = BenchmarkRun.objects.get(pk=run.pk)
    assert cancelled.is_set()
    assert run.status == RunStatus.CANCELLED
    assert run.candidates.get().status == CandidateStatus.CANCELLED
    assert [m.concurrency for m in Measurement.objects.filter(run=run)] == [1]
    with pytest.raises(ProcessLookupError):
        os.kill(int(run.progress["engine_pid"]), 0)
