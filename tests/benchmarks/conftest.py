from __future__ import annotations

import contextlib
import copy
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from apps.benchmarks import services
from apps.benchmarks.models import BenchmarkRun, Executor, WorkerHost
from apps.benchmarks.services import CandidateRequest, LoadSettings, RequestedRun, benchmark_run_request
from tests.conftest import TeamWorld
from workers.runner import run_benchmark


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    # The shared TeamWorld fixture hashes three passwords per test; the default PBKDF2 cost is what makes the
    # page tests slow, and it has nothing to do with benchmarks.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def work_dir(tmp_path: Path, settings: Any) -> Path:
    settings.BENCHMARK_WORK_DIR = str(tmp_path / "bench")
    return tmp_path / "bench"


CPU_PROBE: dict[str, Any] = {
    "hardware": {
        "accelerator": "cpu",
        "accelerator_model": "AMD EPYC",
        "accelerator_count": 0,
        "accelerator_memory_mib": 0,
        "driver_version": None,
        "cuda_version": None,
        "cpu_model": "AMD EPYC",
        "cpu_cores": 2,
        "memory_mib": 24105,
        "hostname": "bench-host-1",
        "os": "Linux",
        "python": "3.11.7",
        "devices": [],
        "source": "cpu",
    },
    "engines": {"transformers": {"version": "5.23.0", "launchers": ["module:transformers"]}},
    "docker": False,
}

H100_PROBE: dict[str, Any] = {
    "hardware": {
        **CPU_PROBE["hardware"],
        "accelerator": "cuda",
        "accelerator_model": "NVIDIA H100 80GB HBM3",
        "accelerator_count": 8,
        "accelerator_memory_mib": 81559,
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
        "hostname": "gpu-host-1",
        "source": "nvidia-smi",
    },
    "engines": {"vllm": {"version": "0.11.0", "launchers": ["module:vllm"]}},
    "docker": True,
}


def make_host(name: str, probe: dict[str, Any], accelerator: str, *, live: bool = True) -> WorkerHost:
    hardware = probe["hardware"]
    return WorkerHost.objects.create(
        name=name,
        accelerator=accelerator,
        queue=f"bench.{accelerator}",
        hostname=hardware["hostname"],
        accelerator_model=hardware["accelerator_model"],
        accelerator_count=hardware["accelerator_count"],
        memory_mib=hardware["memory_mib"],
        engines=probe["engines"],
        probe=probe,
        last_heartbeat=timezone.now() if live else timezone.now() - timedelta(hours=1),
    )


@pytest.fixture
def cpu_worker(db: Any) -> WorkerHost:
    return make_host("bench-cpu@bench-host-1", CPU_PROBE, "cpu")


@pytest.fixture
def h100_worker(db: Any) -> WorkerHost:
    return make_host("bench-h100@gpu-host-1", H100_PROBE, "h100-sxm")


def remote_run(world: TeamWorld, concurrency: tuple[int, ...] = (1, 4)) -> RequestedRun:
    """A remote run of alice's workload for vllm bf16 on H100: a family with no published calibration rows."""
    return benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=LoadSettings(concurrency=concurrency, requests=3, isl=512, osl=128),
        candidates=[CandidateRequest(engine="vllm", quant="bf16", accelerator="h100-sxm")],
        executor=Executor.REMOTE,
    ).runs[0]


RunnerHook = Callable[[dict[str, Any], Callable[[], bool], int], None]


def intercept_runner(monkeypatch: pytest.MonkeyPatch, after_event: RunnerHook) -> None:
    """Run the real runner, calling `after_event(event, should_cancel, call_number)` in the runner's thread after
    the service received each progress event: a test can hold the runner there until something happened, or kill
    its engine at an exact point, and so waits on events rather than on an engine's speed."""
    calls = itertools.count(1)

    def run(spec: Any, *, on_progress: Any = None, should_cancel: Any = None) -> Any:
        call = next(calls)

        def forward(event: dict[str, Any]) -> None:
            on_progress(event)
            after_event(event, should_cancel, call)

        return run_benchmark(spec, on_progress=forward, should_cancel=should_cancel)

    monkeypatch.setattr(services, "run_benchmark", run)


SMOKE_LOAD = LoadSettings(concurrency=(1, 2), requests=3, isl=16, osl=8, shrink=True, warmup_requests=1)


@pytest.fixture
def queued_run(world: TeamWorld, cpu_worker: WorkerHost) -> BenchmarkRun:
    """A CPU run of alice's workload with one transformers candidate (nothing enqueued: no commit in tests)."""
    outcome = benchmark_run_request(workload=world.workload_a, user=world.alice, load=SMOKE_LOAD)
    return outcome.runs[0].run


def level(
    concurrency: int | None = 1, rate: float | None = None, *, ok: int = 3, failed: int = 0
) -> dict[str, Any]:
    """One load level as workers.loadgen writes it, with per-request samples."""
    pct = {"p50": 40.0, "p90": 50.0, "p95": 55.0, "p99": 60.0, "mean": 42.0, "max": 61.0}
    body: dict[str, Any] = {"concurrency": concurrency} if rate is None else {"rate": rate, "burstiness": 1.0}
    samples = [
        {
            "index": i,
            "ok": i < ok,
            "error": None if i < ok else "http_500: boom",
            "ttft_ms": 40.0 if i < ok else None,
            "e2e_ms": 300.0 if i < ok else None,
            "tpot_ms": 35.0 if i < ok else None,
            "output_tokens": 8 if i < ok else 0,
            "prompt_tokens_planned": 16,
        }
        for i in range(ok + failed)
    ]
    return body | {
        "ttft_ms": pct,
        "itl_ms": {k: v / 2 for k, v in pct.items()},
        "tpot_ms": {k: v * 0.8 for k, v in pct.items()},
        "e2e_ms": {k: v * 7 for k, v in pct.items()},
        "output_tokens_per_s": 25.0 * (concurrency or 1),
        "input_tokens_per_s": 50.0,
        "requests_per_s": 3.0,
        "goodput_requests_per_s": 2.5,
        "requests_ok": ok,
        "requests_failed": failed,
        "mean_prompt_tokens": 16.0,
        "mean_output_tokens": 8.0,
        "token_source": "usage",
        "samples": samples,
    }


RESULT: dict[str, Any] = {
    "schema_version": 1,
    "started_at": "2026-11-20T10:00:00+00:00",
    "finished_at": "2026-11-20T10:05:00+00:00",
    "model": "llama-3.1-8b",
    "device": "cuda",
    "quant": "bf16",
    "tp": 1,
    "isl": 512,
    "osl": 128,
    "api": "completions",
    "mode": "concurrency",
    "requests_per_level": 3,
    "slo": {"ttft_ms": 800, "itl_ms": 60, "e2e_ms": None},
    "hardware": H100_PROBE["hardware"] | {"hostname": "air-gapped-7"},
    "engine": {
        "name": "vllm",
        "version": "0.11.0",
        "args": ["--model", "/models/llama", "--max-num-seqs", "256"],
    },
    "model_info": {"dummy_weights": True, "shrunk": False, "architecture": {"layers": 32, "hidden": 4096}},
    "levels": [level(1), level(4)],
    "cancelled": False,
    "error": None,
}


def result_json(**overrides: Any) -> dict[str, Any]:
    data = copy.deepcopy(RESULT)
    data.update(overrides)
    return data


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "result.json"
    path.write_text(json.dumps(result_json()))
    return path


@pytest.fixture
def catalog_loaded(django_db_blocker: Any) -> Iterator[None]:
    """Request it before `transactional_db` (or `live_server`). pytest-django runs transactional tests last and
    each ends by flushing every table, so the catalog the session loaded once (tests/conftest.py) may be gone
    when this test starts, and the tests after it expect it back."""
    from apps.catalog.models import GpuType
    from apps.catalog.services import catalog_load

    with django_db_blocker.unblock():
        if not GpuType.objects.exists():
            catalog_load()
    yield
    with django_db_blocker.unblock():
        catalog_load()


@dataclass
class CeleryWorker:
    node: str
    log: Path
    process: subprocess.Popen[bytes]

    def wait_for(self, check: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(
            f"gave up waiting for {what} (worker exit code {self.process.poll()}); worker log tail:\n{tail}"
        )


def _purge_queue(name: str) -> None:
    from advisor.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(name)  # type: ignore[attr-defined]


def _test_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres") + (f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{quote(db['NAME'])}"


def start_celery_worker(
    *, queue: str, node: str, tmp_path: Path, broker_url: str, extra_env: dict[str, str] | None = None
) -> CeleryWorker:
    """A real `celery worker -Q <queue>` process on the test database (committed rows only) and `broker_url`,
    in its own session. A bench.* worker registers itself from its own probe."""
    env = os.environ | {
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": broker_url,
        "BENCHMARK_WORK_DIR": str(tmp_path / "bench"),
        "DB_CONN_MAX_AGE": "0",
        "DEBUG": "true",
    }
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "advisor", "worker", "-Q", queue]
    argv += ["--concurrency", "1", "--pool", "solo", "-n", node, "--loglevel", "INFO"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    log = tmp_path / f"celery-{node.split('@')[0]}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env | (extra_env or {}), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return CeleryWorker(node, log, process)


def stop_celery_worker(worker: CeleryWorker) -> None:
    """Warm shutdown, then the whole process group killed if it does not stop. A run it still has is asked to
    stop first, so the shutdown does not wait for a whole benchmark."""
    BenchmarkRun.objects.filter(status="running", worker_name=worker.node).update(cancel_requested=True)
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGKILL)  # anything its group still holds


def wait_registered(worker: CeleryWorker) -> None:
    worker.wait_for(
        lambda: WorkerHost.objects.filter(name=worker.node, last_heartbeat__isnull=False).exists(),
        90,
        "the worker to register",
    )


@pytest.fixture
def bench_cpu_worker(catalog_loaded: None, transactional_db: Any, tmp_path: Path) -> Iterator[CeleryWorker]:
    """A real `celery worker -Q bench.cpu` process on the test database (committed rows: transactional_db) and
    the real Redis, registered from its own probe. Stopped (warm shutdown, then killed) and the queue purged
    whatever the test does."""
    from django.conf import settings

    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL: without a broker Celery runs tasks in-process")
    _purge_queue("bench.cpu")
    worker = start_celery_worker(
        queue="bench.cpu",
        node=f"bench-cpu-it-{os.getpid()}@{os.uname().nodename}",
        tmp_path=tmp_path,
        broker_url=settings.REDIS_URL,
    )
    try:
        wait_registered(worker)
        yield worker
    finally:
        stop_celery_worker(worker)
        _purge_queue("bench.cpu")
