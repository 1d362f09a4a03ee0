"""Fault injection with real parts: real Celery workers, a real `transformers serve` engine, a private redis-server
this test starts (and restarts) on a free port, and the real PostgreSQL. Each test breaks one thing the way
production breaks it and checks that no work is lost, duplicated or left hanging."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

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
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.services import recommendation_request, recommendations_reap_stuck
from tests.benchmarks.conftest import (
    CeleryWorker,
    _test_database_url,
    intercept_runner,
    remote_run,
    result_json,
    start_celery_worker,
    stop_celery_worker,
    wait_registered,
)
from tests.conftest import TeamWorld
from workers.report import post_result

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 360
SMALL_RUN = LoadSettings(concurrency=(1, 2, 3), requests=6, isl=16, osl=8, shrink=True, warmup_requests=1)
ONE_CANDIDATE = [CandidateRequest(engine="transformers", quant="bf16", accelerator="cpu")]


def _request_run(world: TeamWorld, load: LoadSettings) -> BenchmarkRun:
    outcome = services.benchmark_run_request(
        workload=world.workload_a, user=world.alice, load=load, candidates=ONE_CANDIDATE
    )
    return outcome.runs[0].run


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what}")


# ---------------------------------------------------------------------------------------------- private Redis


@dataclass
class PrivateRedis:
    """A redis-server of this test's own, without persistence: a restart loses every message, the worst case.
    The shared server on 6379 is never touched."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.data_dir)]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), 20, f"redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def _use_broker(url: str) -> None:
    """Point this process's Celery app at `url`: its connection and producer pools are built lazily from
    broker_url, so they are dropped and rebuilt on the next send."""
    from advisor.celery import app

    celery: Any = app  # the pools are private attributes, which the type stubs do not declare
    celery.conf.broker_url = url
    # Dropped, not closed: kombu keeps one pool per broker URL for the whole process, and the next test sending
    # to the shared broker gets that URL's pool back.
    celery._pool = None
    celery.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    redis = PrivateRedis(port=free_port(), data_dir=tmp_path)
    redis.start()
    previous = django_settings.CELERY_BROKER_URL
    _use_broker(redis.url)
    try:
        yield redis
    finally:
        _use_broker(previous)
        redis.kill()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[CeleryWorker]]:
    """Every worker a test starts is stopped, whatever happens."""
    started: list[CeleryWorker] = []
    yield started
    for worker in started:
        stop_celery_worker(worker)


def _worker(
    started: list[CeleryWorker], tmp_path: Path, redis: PrivateRedis, name: str, queue: str = "bench.cpu"
) -> CeleryWorker:
    worker = start_celery_worker(
        queue=queue,
        node=f"{name}-{os.getpid()}@{os.uname().nodename}",
        tmp_path=tmp_path,
        broker_url=redis.url,
    )
    started.append(worker)
    if queue.startswith("bench."):
        wait_registered(worker)
    return worker


def _finished_run(worker: CeleryWorker, run_id: int) -> BenchmarkRun:
    run: BenchmarkRun = worker.wait_for(
        lambda: BenchmarkRun.objects.filter(pk=run_id).exclude(status__in=["queued", "running"]).first(),
        RUN_TIMEOUT_S,
        f"benchmark run #{run_id} to finish",
    )
    return run


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# ---------------------------------------------------------------------------------------------- worker killed


def test_a_worker_killed_mid_benchmark_is_requeued_its_engine_dies_and_no_level_is_lost_or_doubled(
    catalog_loaded: None,
    transactional_db: Any,
    world: TeamWorld,
    tmp_path: Path,
    private_redis: PrivateRedis,
    workers: list[CeleryWorker],
) -> None:
    # given a worker measuring a three-level run, with its first level stored
    first = _worker(workers, tmp_path, private_redis, "bench-kill-a")
    run = _request_run(world, SMALL_RUN)
    first.wait_for(lambda: Measurement.objects.filter(run=run).exists(), RUN_TIMEOUT_S, "the first level")
    engine_group = int(BenchmarkRun.objects.get(pk=run.pk).progress["engine_pid"])
    assert not _group_gone(engine_group)

    # when the worker is killed outright (no warm shutdown, no cleanup of its own)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)

    # then the engine it started goes with it: no process of the engine's group is left
    wait_until(lambda: _group_gone(engine_group), 30, "the orphaned engine to be killed")
    assert BenchmarkRun.objects.get(pk=run.pk).status == RunStatus.RUNNING  # the row does not know yet

    # and beat's stale-heartbeat sweep requeues the run, which another worker measures from the start
    later = timezone.now() + timedelta(seconds=django_settings.BENCHMARK_STALE_AFTER_S + 1)
    assert services.benchmark_runs_reap_stale(now=later).requeued == [run.pk]
    second = _worker(workers, tmp_path, private_redis, "bench-kill-b")
    run = _finished_run(second, run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.attempts, run.worker_name) == (2, second.node)
    levels = list(Measurement.objects.filter(run=run).order_by("level_index"))
    assert [(m.level_index, m.concurrency) for m in levels] == [(0, 1), (1, 2), (2, 3)]  # once each
    assert {m.host.name for m in levels if m.host} == {second.node}


# ---------------------------------------------------------------------------------------------- engine dies


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize(
    ("sig", "reported"),
    [
        (signal.SIGKILL, "was killed by SIGKILL (what the kernel's out-of-memory killer sends)"),
        (signal.SIGTERM, ""),
    ],
    ids=["out-of-memory-kill", "exit"],
)
def test_an_engine_dying_mid_level_fails_its_candidate_with_its_log_and_the_run_goes_on(
    world: TeamWorld,
    cpu_worker: WorkerHost,
    work_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    sig: signal.Signals,
    reported: str,
) -> None:
    # given two candidates; the first one's engine process is signalled as its first level starts
    outcome = services.benchmark_run_request(
        workload=world.workload_a,
        user=world.alice,
        load=SMALL_RUN,
        candidates=[
            CandidateRequest(engine="transformers", quant="fp16", accelerator="cpu"),
            CandidateRequest(engine="transformers", quant="bf16", accelerator="cpu"),
        ],
    )
    run = outcome.runs[0].run
    guard_pids: list[int] = []

    def kill_the_first_engine(event: dict[str, Any], should_cancel: Any, call: int) -> None:
        if event.get("event") == "engine_started":
            guard_pids.append(int(event["pid"]))
        if call == 1 and event.get("event") == "level_started" and event.get("level_index") == 0:
            (engine_pid,) = _children(guard_pids[0])  # the engine itself, under workers.guard
            os.kill(engine_pid, sig)

    intercept_runner(monkeypatch, kill_the_first_engine)

    # when the worker executes the run
    services.benchmark_run_execute(run_id=run.pk, worker_name=cpu_worker.name)

    # then the first candidate failed naming how its engine ended, with the engine's own log; the second ran
    run = BenchmarkRun.objects.get(pk=run.pk)
    killed, measured = run.candidates.order_by("position")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert killed.status == CandidateStatus.FAILED
    assert "during the benchmark" in killed.error
    assert reported in killed.error
    assert "transformers" in killed.log_tail.lower() or "uvicorn" in killed.log_tail.lower()
    assert measured.status == CandidateStatus.SUCCEEDED
    assert [
        m.concurrency for m in Measurement.objects.filter(candidate=measured).order_by("level_index")
    ] == [
        1,
        2,
        3,
    ]


# ---------------------------------------------------------------------------------------------- Redis restarts


def test_redis_restarting_during_a_run_loses_nothing_and_the_worker_takes_the_next_run(
    catalog_loaded: None,
    transactional_db: Any,
    world: TeamWorld,
    tmp_path: Path,
    private_redis: PrivateRedis,
    workers: list[CeleryWorker],
) -> None:
    worker = _worker(workers, tmp_path, private_redis, "bench-redis")
    load = LoadSettings(concurrency=(1, 2, 3), requests=10, isl=16, osl=8, shrink=True, warmup_requests=1)
    run = _request_run(world, load)
    worker.wait_for(lambda: Measurement.objects.filter(run=run).exists(), RUN_TIMEOUT_S, "the first level")

    # when Redis restarts (losing every message) while the run is being measured
    assert BenchmarkRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    private_redis.restart()

    # then the run completes with every level once, and the worker, reconnected, measures the next run
    run = _finished_run(worker, run.pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert [m.concurrency for m in Measurement.objects.filter(run=run).order_by("level_index")] == [1, 2, 3]
    quick = LoadSettings(concurrency=(1,), requests=3, isl=16, osl=8, shrink=True, warmup_requests=1)
    after = _request_run(world, quick)
    after = _finished_run(worker, after.pk)
    assert after.status == RunStatus.SUCCEEDED, after.error
    assert worker.process.poll() is None


def test_redis_restarting_during_planning_leaves_no_plan_stuck(
    catalog_loaded: None,
    transactional_db: Any,
    world: TeamWorld,
    tmp_path: Path,
    private_redis: PrivateRedis,
    workers: list[CeleryWorker],
) -> None:
    # given a plan queued while no planning worker runs, and Redis restarting before one starts
    lost = recommendation_request(workload=world.workload_a, user=world.alice)
    private_redis.restart()
    planner = _worker(workers, tmp_path, private_redis, "planner", queue="default")

    # when beat's sweep finds it still queued after PLAN_RESEND_AFTER_S, it sends it again and it completes
    later = timezone.now() + timedelta(seconds=django_settings.PLAN_RESEND_AFTER_S + 1)
    assert recommendations_reap_stuck(now=later).requeued == [lost.pk]

    def finished(pk: int) -> Recommendation | None:
        return Recommendation.objects.filter(
            pk=pk, status__in=[PlanStatus.SUCCEEDED, PlanStatus.FAILED]
        ).first()

    done = planner.wait_for(lambda: finished(lost.pk), 180, f"plan #{lost.pk}")
    assert done.status == PlanStatus.SUCCEEDED, done.error

    # and a plan being computed when Redis restarts still finishes, as does the next one
    during = recommendation_request(workload=world.workload_a, user=world.alice)
    planner.wait_for(
        lambda: Recommendation.objects.filter(pk=during.pk).exclude(status=PlanStatus.QUEUED).exists(),
        60,
        "the planning worker to claim the plan",
    )
    private_redis.restart()
    assert planner.wait_for(lambda: finished(during.pk), 180, "the plan").status == PlanStatus.SUCCEEDED
    after = recommendation_request(workload=world.workload_a, user=world.alice)
    assert planner.wait_for(lambda: finished(after.pk), 180, "the next plan").status == PlanStatus.SUCCEEDED


# ---------------------------------------------------------------------------------------------- PostgreSQL drops


def test_a_database_connection_dropped_during_a_result_post_is_retried_and_stored_once(
    catalog_loaded: None, live_server: Any, world: TeamWorld
) -> None:
    # given a remote run, and the run's row locked so the server's post waits inside its transaction
    remote = remote_run(world)
    database = _test_database_url().replace("postgres://", "postgresql://", 1)
    locker = psycopg.connect(database)
    # pg_stat_activity is a snapshot per transaction: watch from a connection of its own, in autocommit.
    admin = psycopg.connect(database, autocommit=True)
    locker.execute("SELECT id FROM benchmarks_benchmarkrun WHERE id = %s FOR UPDATE", [remote.run.pk])
    statuses: list[int] = []
    dropped = threading.Event()

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            statuses.append(response.status_code)
            return response

    outcome: dict[str, Any] = {}

    def wait_for_the_database(_backoff_s: float) -> None:
        dropped.wait(60)  # the client retries once the test has restored the database

    def report() -> None:
        outcome["response"] = post_result(
            f"{live_server.url}/api/v1/benchmark-runs/{remote.run.pk}/results/",
            remote.results_token or "",
            result_json(),
            sleep=wait_for_the_database,
            attempts=3,
            transport=Recording(),
        )

    client = threading.Thread(target=report)
    client.start()

    # when PostgreSQL terminates the server's connection while the post waits for the row
    blocked = wait_until(
        lambda: admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        ).fetchall(),
        60,
        f"the result post to wait for the run's row (answers so far: {statuses})",
    )
    for (pid,) in blocked:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    admin.close()
    locker.rollback()
    locker.close()
    dropped.set()
    client.join(120)

    # then the client was told to retry (503), retried with the same idempotency key, and it was stored once
    assert statuses == [503, 201]
    assert outcome["response"].status_code == 201
    assert Measurement.objects.filter(run=remote.run).count() == 2
    assert BenchmarkCandidate.objects.get(run=remote.run).status == CandidateStatus.SUCCEEDED
    again = post_result(
        f"{live_server.url}/api/v1/benchmark-runs/{remote.run.pk}/results/",
        remote.results_token or "",
        result_json(),
    )
    assert (again.status_code, json.loads(again.content)["created"]) == (200, False)
    assert Measurement.objects.filter(run=remote.run).count() == 2
