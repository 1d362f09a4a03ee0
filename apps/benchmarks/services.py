"""Writes and rules for benchmarks: worker registration, requesting, executing, cancelling and reaping runs,
and recording results (from a worker in-process, from a remote host over the API, or from an imported file).

Idempotency lives in the database: a run is claimed by compare-and-set (queued -> running, attempt + 1), and every
later write of that execution is conditioned on the run still being running under the same attempt, so a
redelivered task, a requeued run or a cancelled one never gets written twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import secrets
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from rest_framework import exceptions

from advisor.api import validation_error
from advisor.jsonsafe import json_problem
from apps.accounts.selectors import AnyUser
from apps.benchmarks import provenance
from apps.benchmarks.candidates import Candidate, Verdict, smallest_fitting_tp
from apps.benchmarks.models import (
    ACTIVE_STATUSES,
    BenchmarkCandidate,
    BenchmarkRun,
    CandidateStatus,
    Executor,
    Measurement,
    RunStatus,
    SourceKind,
    WorkerHost,
)
from apps.benchmarks.selectors import (
    benchmark_catalog,
    candidate_options,
    context_tokens,
    explicit_candidate_verdict,
)
from apps.benchmarks.tasks import benchmark_run_execute_task
from apps.catalog.models import GpuType, ModelArchitecture
from apps.workloads.models import Workload
from apps.workloads.services import ensure_can_write
from workers.architectures import architecture, load_architectures
from workers.engines import ENGINE_NAMES
from workers.errors import BenchmarkCancelled, BenchmarkError, EngineError, InvalidSpec
from workers.runner import BenchmarkSpec, run_benchmark
from workers.schema import validate_result

log = logging.getLogger(__name__)

QUEUE_PREFIX = "bench."
MAX_ATTEMPTS = 2  # the first claim, plus one requeue after the worker was lost
HEARTBEAT_INTERVAL_S = 10.0  # well under BENCHMARK_STALE_AFTER_S, so one slow write never makes a run stale
CANCEL_POLL_INTERVAL_S = 1.0
# The service stops on its own this long before the task's soft time limit, so the engine is shut down cleanly
# and the run says why; the soft and hard limits remain for a runner that does not stop.
STOP_BEFORE_LIMIT_S = 120
HARD_LIMIT_MARGIN_S = 300
RUNNER_JOIN_S = 120.0
MAX_REQUESTS_PER_LEVEL = 10_000
MAX_LEVELS = 16


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state of the run."
    default_code = "conflict"


class WorkerRegistrationError(Exception):
    """The worker cannot serve the queue it was started for; it is not registered."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- workers


def benchmark_queue(accelerator: str) -> str:
    return f"{QUEUE_PREFIX}{accelerator}"


def accelerator_from_queue(queue_name: str) -> str | None:
    if not queue_name.startswith(QUEUE_PREFIX) or len(queue_name) == len(QUEUE_PREFIX):
        return None
    return queue_name.removeprefix(QUEUE_PREFIX)


def worker_host_register(*, name: str, queue_name: str, probe: Mapping[str, Any]) -> WorkerHost:
    """Record (or refresh) a worker and what it has: called by the worker itself when it starts."""
    accelerator = accelerator_from_queue(queue_name)
    if accelerator is None:
        raise WorkerRegistrationError(f"{queue_name!r} is not a benchmark queue (bench.<accelerator>)")
    if not GpuType.objects.filter(slug=accelerator).exists():
        raise WorkerRegistrationError(
            f"queue {queue_name}: {accelerator!r} is not an accelerator in the catalog"
        )
    hardware: Mapping[str, Any] = probe.get("hardware") or {}
    if accelerator != "cpu" and not hardware.get("accelerator_count"):
        raise WorkerRegistrationError(f"queue {queue_name} needs a GPU, and this host's probe found none")
    guessed = provenance.accelerator_slug(hardware)
    if accelerator != "cpu" and guessed not in (None, accelerator):
        log.warning("worker %s consumes %s but its GPU looks like %s", name, queue_name, guessed)
    now = timezone.now()
    host, _ = WorkerHost.objects.update_or_create(
        name=name,
        defaults={
            "accelerator": accelerator,
            "queue": queue_name,
            "hostname": str(hardware.get("hostname", ""))[:200],
            "accelerator_model": str(hardware.get("accelerator_model", ""))[:200],
            "accelerator_count": int(hardware.get("accelerator_count") or 0),
            "accelerator_memory_mib": int(hardware.get("accelerator_memory_mib") or 0),
            "memory_mib": int(hardware.get("memory_mib") or 0),
            "driver_version": str(hardware.get("driver_version") or "")[:60],
            "cuda_version": str(hardware.get("cuda_version") or "")[:30],
            "engines": dict(probe.get("engines") or {}),
            "probe": dict(probe),
            "registered_at": now,
            "last_heartbeat": now,
        },
    )
    return host


def worker_host_heartbeat(*, name: str) -> bool:
    return bool(WorkerHost.objects.filter(name=name).update(last_heartbeat=timezone.now()))


def worker_host_offline(*, name: str) -> None:
    """A worker shutting down cleanly stops counting as live at once, not after the liveness window."""
    WorkerHost.objects.filter(name=name).update(last_heartbeat=None)


# ---------------------------------------------------------------------------------------------- requesting


@dataclass(frozen=True)
class CandidateRequest:
    engine: str
    quant: str
    accelerator: str | None = None
    tp: int | None = None  # None: the smallest TP that holds the model


@dataclass(frozen=True)
class LoadSettings:
    """How every candidate of a run is loaded. Lengths None: the workload's distributions."""

    concurrency: tuple[int, ...] = ()
    rates: tuple[float, ...] = ()
    requests: int = 32
    isl: int | None = None
    osl: int | None = None
    shrink: bool = False
    warmup_requests: int = 2


@dataclass(frozen=True)
class RequestedRun:
    run: BenchmarkRun
    created: bool
    results_token: str | None  # only for a run created now: the database keeps a hash


@dataclass(frozen=True)
class RunRequestOutcome:
    runs: list[RequestedRun]
    left_to_model: list[Verdict]


def _load_document(*, workload: Workload, load: LoadSettings) -> dict[str, Any]:
    return {
        "isl": load.isl if load.isl is not None else dict(workload.prompt_tokens),
        "osl": load.osl if load.osl is not None else dict(workload.output_tokens),
        "concurrency": list(load.concurrency),
        "rates": list(load.rates),
        "requests": load.requests,
        "warmup_requests": load.warmup_requests,
        "shrink": load.shrink,
        "slo": {"ttft_ms": workload.ttft_p95_ms, "itl_ms": workload.itl_p95_ms},
        "seed": 0,
    }


def _validate_load(*, workload: Workload, load: LoadSettings) -> dict[str, Any]:
    if bool(load.concurrency) == bool(load.rates):
        raise validation_error("concurrency", "Give either concurrency levels or request rates (not both).")
    if len(load.concurrency) + len(load.rates) > MAX_LEVELS:
        raise validation_error("concurrency", f"At most {MAX_LEVELS} load levels per run.")
    if not 1 <= load.requests <= MAX_REQUESTS_PER_LEVEL:
        raise validation_error("requests", f"Requests per level must be 1..{MAX_REQUESTS_PER_LEVEL}.")
    document = _load_document(workload=workload, load=load)
    # The runner's own validation, so a run that would be refused on the worker is refused here instead.
    try:
        BenchmarkSpec(
            engine="transformers",
            model=workload.model.slug,
            isl=document["isl"],
            osl=document["osl"],
            concurrency=load.concurrency,
            rates=load.rates,
            requests=load.requests,
        ).validate()
    except InvalidSpec as exc:
        raise validation_error("load", str(exc)) from exc
    return document


def _resolve_candidates(
    *,
    workload: Workload,
    requested: Sequence[CandidateRequest],
    accelerator: str | None,
    load: LoadSettings,
    remote: bool,
) -> tuple[list[Candidate], list[Verdict]]:
    catalog = benchmark_catalog()
    chosen: list[Candidate] = []
    left: list[Verdict] = []
    for index, item in enumerate(requested):
        where = f"candidates[{index}]"
        if item.engine not in ENGINE_NAMES:
            raise validation_error(
                f"{where}.engine", f"Unknown engine {item.engine!r}; known: {', '.join(ENGINE_NAMES)}."
            )
        slug = item.accelerator or accelerator
        if not slug:
            raise validation_error(
                f"{where}.accelerator", "Name the accelerator (catalog slug, e.g. cpu or h100-sxm)."
            )
        try:
            gpu, quant = catalog.gpu(slug), catalog.quantization(item.quant)
        except KeyError as exc:
            raise validation_error(where, str(exc.args[0]), "unknown") from exc
        shrink = load.shrink and gpu.is_cpu
        # Without a TP: the smallest that fits, else 1 so the check below names why nothing fits.
        tp = (
            item.tp
            or smallest_fitting_tp(
                model=catalog.model(workload.model.slug),
                gpu=gpu,
                quant=quant,
                engine=item.engine,
                context_tokens=context_tokens(workload=workload, isl=load.isl, osl=load.osl),
                max_tp=int(workload.constraints.get("max_gpus_per_replica") or 8),
                shrink=shrink,
            )
            or 1
        )
        candidate = Candidate(accelerator=slug, engine=item.engine, quant=item.quant, tp=tp)
        reason, found = explicit_candidate_verdict(
            workload=workload, candidate=candidate, shrink=shrink, isl=load.isl, osl=load.osl
        )
        if reason or found is None:
            raise validation_error(where, f"{candidate.label}: {reason}", "unsupported")
        if remote or found.runnable:
            chosen.append(candidate)
        else:
            left.append(found)
    return list(dict.fromkeys(chosen)), left


def benchmark_run_request(
    *,
    workload: Workload,
    user: AnyUser,
    load: LoadSettings,
    candidates: Sequence[CandidateRequest] | None = None,
    accelerator: str | None = None,
    executor: str = Executor.CELERY,
) -> RunRequestOutcome:
    """Queue one run per accelerator for the candidates a live worker can run; report the rest as left to the
    model. `candidates` None means every runnable candidate (on `accelerator` when given). For an accelerator
    that already has an active run for this workload, that run is returned instead of a new one."""
    ensure_can_write(user=user, team=workload.team)
    load_document = _validate_load(workload=workload, load=load)
    remote = executor == Executor.REMOTE
    if candidates is None:
        if remote:
            raise validation_error(
                "candidates", "A remote run lists its candidates; nothing is live to choose from."
            )
        options = candidate_options(workload=workload, shrink=load.shrink, isl=load.isl, osl=load.osl)
        chosen = [v.candidate for v in options.runnable if accelerator in (None, v.candidate.accelerator)]
        left = [v for v in options.left_to_model if accelerator in (None, v.candidate.accelerator)]
    else:
        if not candidates:
            raise validation_error("candidates", "List at least one candidate, or ask for all runnable ones.")
        chosen, left = _resolve_candidates(
            workload=workload, requested=candidates, accelerator=accelerator, load=load, remote=remote
        )
    if not chosen:
        reasons = "; ".join(sorted({v.reason for v in left})) or "no candidate matches"
        raise validation_error(
            "candidates",
            f"No live worker can run any of these candidates ({reasons}); the performance model predicts them.",
            "not_runnable",
        )
    if load.shrink and any(c.accelerator != "cpu" for c in chosen):
        raise validation_error(
            "shrink", "Shrinking the model is for CPU smoke runs only; GPU runs use the full model."
        )
    runs = []
    for slug in sorted({c.accelerator for c in chosen}):
        runs.append(
            _run_create(
                workload=workload,
                user=user,
                accelerator=slug,
                candidates=[c for c in chosen if c.accelerator == slug],
                load_document=load_document,
                executor=executor,
                left=left,
            )
        )
    return RunRequestOutcome(runs=runs, left_to_model=left)


def _run_create(
    *,
    workload: Workload,
    user: AnyUser,
    accelerator: str,
    candidates: list[Candidate],
    load_document: dict[str, Any],
    executor: str,
    left: list[Verdict],
) -> RequestedRun:
    token = secrets.token_urlsafe(32)
    run: BenchmarkRun | None = None
    # Twice: the active run that blocked the insert may finish before it is read back.
    for _ in range(2):
        try:
            run = _run_insert(
                workload=workload,
                user=user,
                accelerator=accelerator,
                candidates=candidates,
                load_document=load_document,
                executor=executor,
                left=left,
                token=token,
            )
            break
        except IntegrityError:  # the partial unique constraint: one active run per (workload, accelerator)
            existing = (
                BenchmarkRun.objects.active().filter(workload=workload, accelerator=accelerator).first()
            )
            if existing is not None:
                return RequestedRun(existing, False, None)
    if run is None:
        raise Conflict(
            f"Could not queue a run for {accelerator}: another request is creating one; try again."
        )
    if executor == Executor.CELERY:
        run_id, queue_name = run.pk, run.queue
        transaction.on_commit(lambda: benchmark_run_enqueue(run_id=run_id, queue_name=queue_name))
    return RequestedRun(run, True, token)


def _run_insert(
    *,
    workload: Workload,
    user: AnyUser,
    accelerator: str,
    candidates: list[Candidate],
    load_document: dict[str, Any],
    executor: str,
    left: list[Verdict],
    token: str,
) -> BenchmarkRun:
    with transaction.atomic():
        run = BenchmarkRun.objects.create(
            workload=workload,
            requested_by=user if user.is_authenticated else None,
            accelerator=accelerator,
            queue=benchmark_queue(accelerator) if executor == Executor.CELERY else "",
            executor=executor,
            load=load_document,
            left_to_model=[v.to_dict() for v in left],
            token_hash=_sha256(token),
        )
        BenchmarkCandidate.objects.bulk_create(
            BenchmarkCandidate(
                run=run, position=i, engine=c.engine, quant=c.quant, accelerator=c.accelerator, tp=c.tp
            )
            for i, c in enumerate(candidates)
        )
    return run


def benchmark_run_enqueue(*, run_id: int, queue_name: str) -> None:
    """Send the run to its accelerator's queue, with limits from settings (read now, not at import)."""
    limit_s = settings.BENCHMARK_TIME_LIMIT_S
    benchmark_run_execute_task.apply_async(
        args=(run_id,), queue=queue_name, soft_time_limit=limit_s, time_limit=limit_s + HARD_LIMIT_MARGIN_S
    )


# ---------------------------------------------------------------------------------------------- cancelling


def benchmark_run_cancel(*, run: BenchmarkRun, user: AnyUser) -> BenchmarkRun:
    """A queued run is cancelled at once; a running one is asked to stop (its worker checks within a second
    and stops the engine). A finished run is left as it is."""
    ensure_can_write(user=user, team=run.workload.team)
    now = timezone.now()
    with transaction.atomic():
        stopped = BenchmarkRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED,
            cancel_requested=True,
            finished_at=now,
            error="Cancelled before it started.",
        )
        if stopped:
            BenchmarkCandidate.objects.filter(run_id=run.pk, status=CandidateStatus.PENDING).update(
                status=CandidateStatus.CANCELLED, error="Not run: the run was cancelled.", finished_at=now
            )
        else:
            BenchmarkRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(cancel_requested=True)
    run.refresh_from_db()
    return run


# ---------------------------------------------------------------------------------------------- executing


def candidate_spec(*, run: BenchmarkRun, candidate: BenchmarkCandidate) -> BenchmarkSpec:
    load = run.load
    slo = load.get("slo") or {}
    return BenchmarkSpec(
        engine=candidate.engine,
        model=candidate.model_path or run.workload.model.slug,
        device="cpu" if candidate.accelerator == "cpu" else "cuda",
        isl=load["isl"],
        osl=load["osl"],
        concurrency=tuple(int(c) for c in load.get("concurrency") or ()),
        rates=tuple(float(r) for r in load.get("rates") or ()),
        requests=int(load["requests"]),
        dummy_weights=not candidate.model_path,
        quantization=candidate.quant,
        tensor_parallel=candidate.tp,
        warmup_requests=int(load.get("warmup_requests", 2)),
        slo_ttft_ms=slo.get("ttft_ms"),
        slo_itl_ms=slo.get("itl_ms"),
        shrink=bool(load.get("shrink")) and not candidate.model_path,
        seed=int(load.get("seed", 0)),
        work_dir=settings.BENCHMARK_WORK_DIR,
        keep_samples=True,
    )


def benchmark_run_execute(*, run_id: int, worker_name: str = "") -> None:
    """Claim the run and measure its pending candidates one after another.

    Does nothing when the run is not queued (a redelivered message, or a run cancelled or taken by another
    worker). One candidate failing (engine crash, out of memory) fails that candidate only.
    """
    now = timezone.now()
    claimed = BenchmarkRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
        worker_name=worker_name[:200],
        progress={"phase": "claimed", "updated_at": now.isoformat()},
    )
    if not claimed:
        return
    run = BenchmarkRun.objects.select_related("workload", "workload__team", "workload__model").get(pk=run_id)
    deadline = time.monotonic() + max(60, settings.BENCHMARK_TIME_LIMIT_S - STOP_BEFORE_LIMIT_S)
    host = WorkerHost.objects.filter(name=worker_name).first() if worker_name else None
    _Execution(run=run, host=host, deadline=deadline).execute()


def _run_in_thread(
    spec: BenchmarkSpec, events: queue.Queue[dict[str, Any]], stop: threading.Event, outcome: dict[str, Any]
) -> None:
    """The runner's thread. It never touches the database: Django forbids ORM calls from the runner's event
    loop, and the main thread owns the connection (in tests, the one that sees the test's transaction)."""
    try:
        outcome["result"] = run_benchmark(spec, on_progress=events.put, should_cancel=stop.is_set)
    except BaseException as exc:  # handed to the main thread, which records it
        outcome["error"] = exc


@dataclass
class _Execution:
    run: BenchmarkRun
    host: WorkerHost | None
    deadline: float
    stop: str = ""  # "cancelled", "lost" (requeued or failed by the reaper), "time_limit"
    progress: dict[str, Any] = field(default_factory=dict)
    states: dict[int, dict[str, Any]] = field(default_factory=dict)
    engine_command: list[str] = field(default_factory=list)
    last_heartbeat: float = 0.0
    last_poll: float = 0.0

    @property
    def attempt(self) -> int:
        return self.run.attempts

    def _ours(self) -> Any:
        return BenchmarkRun.objects.filter(pk=self.run.pk, status=RunStatus.RUNNING, attempts=self.attempt)

    # -- the loop

    def execute(self) -> None:
        candidates = list(self.run.candidates.order_by("position"))
        self.states = {c.pk: {"id": c.pk, "label": c.label, "status": c.status} for c in candidates}
        try:
            for candidate in candidates:
                if candidate.status != CandidateStatus.PENDING:
                    continue  # measured by an earlier attempt, or posted by a remote host
                self.poll(force=True)
                if self.stop:
                    break
                self.run_candidate(candidate)
        except SoftTimeLimitExceeded:
            self.stop = self.stop or "time_limit"
        self.finish()

    def poll(self, *, force: bool = False) -> None:
        """Between and during levels: cancelled? still ours? past the deadline? And keep the heartbeat fresh."""
        now = time.monotonic()
        if now >= self.deadline:
            self.stop = self.stop or "time_limit"
        if force or now - self.last_poll >= CANCEL_POLL_INTERVAL_S:
            self.last_poll = now
            row = (
                BenchmarkRun.objects.filter(pk=self.run.pk)
                .values("status", "attempts", "cancel_requested")
                .first()
            )
            if row is None or row["status"] != RunStatus.RUNNING or row["attempts"] != self.attempt:
                self.stop = "lost"
            elif row["cancel_requested"]:
                self.stop = self.stop or "cancelled"
        if not self.stop and (force or now - self.last_heartbeat >= HEARTBEAT_INTERVAL_S):
            self.write_progress()

    def write_progress(self) -> None:
        self.last_heartbeat = time.monotonic()
        now = timezone.now()
        self.progress["updated_at"] = now.isoformat()
        self.progress["candidates"] = list(self.states.values())
        self._ours().update(heartbeat_at=now, progress=self.progress)

    # -- one candidate

    def run_candidate(self, candidate: BenchmarkCandidate) -> None:
        now = timezone.now()
        started = BenchmarkCandidate.objects.filter(pk=candidate.pk, status=CandidateStatus.PENDING).update(
            status=CandidateStatus.RUNNING, started_at=now, phase="starting", error="", log_tail=""
        )
        if not started:
            return
        candidate.status, candidate.phase = CandidateStatus.RUNNING, "starting"
        self.states[candidate.pk] |= {"status": CandidateStatus.RUNNING, "phase": "starting"}
        self.progress = {"candidate_id": candidate.pk, "candidate": candidate.label, "phase": "starting"}
        self.engine_command = []
        self.write_progress()
        try:
            spec = candidate_spec(run=self.run, candidate=candidate)
        except (KeyError, TypeError, ValueError) as exc:
            self.record(candidate, {"error": InvalidSpec(f"the run's load settings are unusable: {exc}")})
            return
        events: queue.Queue[dict[str, Any]] = queue.Queue()
        stop_runner = threading.Event()
        outcome: dict[str, Any] = {}
        thread = threading.Thread(
            target=_run_in_thread,
            args=(spec, events, stop_runner, outcome),
            name=f"benchmark-run-{self.run.pk}-candidate-{candidate.pk}",
            daemon=True,
        )
        thread.start()
        try:
            while thread.is_alive():
                self.drain(candidate, events, timeout_s=0.5)
                self.poll()
                if self.stop:
                    stop_runner.set()
        except SoftTimeLimitExceeded:  # raised in this (main) thread by the pool's signal
            stop_runner.set()
            thread.join(RUNNER_JOIN_S)  # the runner stops its engine before it returns
            self.stop = self.stop or "time_limit"
            self.record(candidate, outcome or {"error": BenchmarkCancelled("stopped at the time limit")})
            raise
        except BaseException:
            # The worker is going away: stop the engine, write nothing; the stale-heartbeat job requeues the run.
            stop_runner.set()
            thread.join(RUNNER_JOIN_S)
            raise
        thread.join()
        self.drain(candidate, events, timeout_s=0.0)
        self.record(candidate, outcome)

    def drain(
        self, candidate: BenchmarkCandidate, events: queue.Queue[dict[str, Any]], *, timeout_s: float
    ) -> None:
        try:
            event = events.get(timeout=timeout_s) if timeout_s else events.get_nowait()
        except queue.Empty:
            return
        while True:
            self.handle(candidate, event)
            try:
                event = events.get_nowait()
            except queue.Empty:
                return

    def handle(self, candidate: BenchmarkCandidate, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        phase = str(event.get("phase") or "")
        if phase and phase != candidate.phase:
            candidate.phase = phase
            BenchmarkCandidate.objects.filter(pk=candidate.pk, status=CandidateStatus.RUNNING).update(
                phase=phase[:30]
            )
            self.states[candidate.pk]["phase"] = phase
        self.progress["phase"] = phase or self.progress.get("phase")
        self.progress["elapsed_s"] = event.get("elapsed_s")
        if kind == "phase" and event.get("message"):
            self.progress["message"] = str(event["message"])[:500]
        elif kind == "engine_started":
            self.engine_command = [str(a) for a in event.get("command") or []]
            self.progress["engine_pid"] = event.get("pid")
        elif kind == "level_started":
            self.progress |= {
                "level_index": event.get("level_index"),
                "levels_total": event.get("levels_total"),
                "load": event.get("load"),
                "requests_done": 0,
                "requests_total": self.run.load.get("requests"),
            }
        elif kind == "heartbeat":
            for key in ("requests_done", "requests_total", "startup_s"):
                if key in event:
                    self.progress[key] = event[key]
        elif kind == "level_finished" and self.stop != "lost":
            level = event.get("level") or {}
            self.save_level(candidate, int(event.get("level_index") or 0), level, result=None)
            self.progress["levels_done"] = int(event.get("level_index") or 0) + 1
            self.progress["requests_done"] = int(level.get("requests_ok", 0)) + int(
                level.get("requests_failed", 0)
            )
        if self.stop != "lost":
            self.write_progress()

    # -- results

    def _early_provenance(self, candidate: BenchmarkCandidate) -> dict[str, Any]:
        """What is known before the runner returns; the final result.json replaces it."""
        host = self.host
        load = self.run.load
        model_info: dict[str, Any] = {}
        slug = self.run.workload.model.slug
        if not candidate.model_path and slug in load_architectures():
            model_info = {
                "dummy_weights": True,
                "shrunk": bool(load.get("shrink")),
                "architecture": architecture(slug),
            }
        elif candidate.model_path:
            model_info = {"dummy_weights": False, "path": candidate.model_path}
        isl_value, osl_value = load.get("isl", 1), load.get("osl", 1)
        fields = provenance.result_fields(
            {
                "hardware": (host.probe.get("hardware") if host else None) or {},
                "engine": {
                    "name": candidate.engine,
                    "version": ((host.engines.get(candidate.engine) or {}).get("version") if host else None),
                    "args": self.engine_command[-30:],
                },
                "model_info": model_info,
                "quant": candidate.quant,
                "tp": candidate.tp,
                "isl": isl_value,
                "osl": osl_value,
                "slo": load.get("slo") or {},
            }
        )
        if host is not None:
            fields["host_name"] = host.hostname or host.name
        return fields

    def save_level(
        self,
        candidate: BenchmarkCandidate,
        index: int,
        level: Mapping[str, Any],
        *,
        result: Mapping[str, Any] | None,
    ) -> None:
        common = provenance.result_fields(result) if result is not None else self._early_provenance(candidate)
        defaults = {
            **common,
            **provenance.level_fields(level),
            "run": self.run,
            "team_id": self.run.workload.team_id,
            "workload": self.run.workload,
            "source_kind": SourceKind.RUN,
            "source": self.run.source_label,
            "host": self.host,
            "accelerator": self.run.accelerator,
            "model_slug": self.run.workload.model.slug,
            "engine": candidate.engine,
            "quant": candidate.quant,
            "tp": candidate.tp,
        }
        if "samples" in level:
            defaults["samples"] = level["samples"]
        if not defaults.get("host_name") and self.run.worker_name:
            defaults["host_name"] = self.run.worker_name
        # measured_at is when the level finished: set by the first write, kept by the final one.
        Measurement.objects.update_or_create(
            candidate=candidate,
            level_index=index,
            defaults=defaults,
            create_defaults={**defaults, "measured_at": timezone.now()},
        )

    def record(self, candidate: BenchmarkCandidate, outcome: Mapping[str, Any]) -> None:
        """Write the candidate's final state and its levels with samples and full provenance."""
        if self.stop == "lost":
            return
        result: dict[str, Any] | None = outcome.get("result")
        error: BaseException | None = outcome.get("error")
        final = result if result is not None else getattr(error, "partial_result", None)
        if isinstance(final, Mapping):
            # Includes levels whose level_finished event never came: a cancel mid-level keeps the partial level.
            for index, level in enumerate(final.get("levels") or []):
                self.save_level(candidate, index, level, result=final)
        fields: dict[str, Any] = {"finished_at": timezone.now(), "phase": "done"}
        if isinstance(final, Mapping):
            fields["result_meta"] = {k: v for k, v in final.items() if k != "levels"}
        if result is not None:
            fields["status"] = CandidateStatus.SUCCEEDED
        elif isinstance(error, BenchmarkCancelled):
            timed_out = self.stop == "time_limit"
            fields["status"] = CandidateStatus.FAILED if timed_out else CandidateStatus.CANCELLED
            fields["error"] = "Stopped at the run's time limit." if timed_out else "Cancelled on request."
        elif isinstance(error, EngineError):
            fields |= {
                "status": CandidateStatus.FAILED,
                "error": str(error).split("\n--- last engine log lines ---")[0],
            }
            fields["log_tail"] = error.log_tail
        elif isinstance(error, BenchmarkError):
            fields |= {"status": CandidateStatus.FAILED, "error": str(error)}
        else:
            detail = (
                f"{type(error).__name__}: {error}" if error is not None else "the runner returned nothing"
            )
            log.error(
                "benchmark run #%s candidate %s: %s", self.run.pk, candidate.label, detail, exc_info=error
            )
            fields |= {
                "status": CandidateStatus.FAILED,
                "error": f"Internal error in the benchmark runner: {detail}",
            }
            if error is not None:
                fields["log_tail"] = "".join(traceback.format_exception(error)[-20:])
        fields["phase"] = str(fields["status"])
        BenchmarkCandidate.objects.filter(pk=candidate.pk, status=CandidateStatus.RUNNING).update(**fields)
        candidate.status = fields["status"]
        self.states[candidate.pk] |= {"status": fields["status"], "phase": fields["phase"]}
        if fields.get("error"):
            self.states[candidate.pk]["error"] = str(fields["error"]).splitlines()[0][:300]
        self.write_progress()

    def finish(self) -> None:
        if self.stop == "lost":
            return
        now = timezone.now()
        candidates = list(BenchmarkCandidate.objects.filter(run_id=self.run.pk).order_by("position"))
        if self.stop == "cancelled":
            status, error, note = (
                RunStatus.CANCELLED,
                "Cancelled on request.",
                "Not run: the run was cancelled.",
            )
        elif self.stop == "time_limit":
            limit_s = settings.BENCHMARK_TIME_LIMIT_S
            status = RunStatus.FAILED
            error = (
                f"Stopped at the time limit ({limit_s} s, BENCHMARK_TIME_LIMIT_S) before every candidate ran."
            )
            note = "Not run: the run reached its time limit."
        elif any(c.status == CandidateStatus.SUCCEEDED for c in candidates):
            status, error, note = RunStatus.SUCCEEDED, "", ""
        else:
            status, note = RunStatus.FAILED, ""
            failures = "; ".join(
                f"{c.label}: {c.error.splitlines()[0] if c.error else c.status}" for c in candidates
            )
            error = f"Every candidate failed. {failures}"[:4000]
        self.progress |= {
            "phase": str(status),
            "candidates": list(self.states.values()),
            "updated_at": now.isoformat(),
        }
        with transaction.atomic():
            finished = self._ours().update(
                status=status, finished_at=now, heartbeat_at=now, error=error, progress=self.progress
            )
            if finished and note:
                BenchmarkCandidate.objects.filter(
                    run_id=self.run.pk, status__in=(CandidateStatus.PENDING, CandidateStatus.RUNNING)
                ).update(status=CandidateStatus.CANCELLED, error=note, finished_at=now)


# ---------------------------------------------------------------------------------------------- reaping


@dataclass(frozen=True)
class ReapOutcome:
    requeued: list[int]
    failed: list[int]
    cancelled: list[int]


def benchmark_runs_reap_stale(*, now: datetime | None = None) -> ReapOutcome:
    """Runs whose worker stopped sending heartbeats: requeue once, then fail with a clear error.

    Every transition is a compare-and-set on (status, attempts, heartbeat_at), so two beat processes, or a
    worker that comes back to life, cannot both act on the same run; no lock is needed.
    """
    now = now or timezone.now()
    stale_s = settings.BENCHMARK_STALE_AFTER_S
    cutoff = now - timedelta(seconds=stale_s)
    stale = BenchmarkRun.objects.filter(status=RunStatus.RUNNING, executor=Executor.CELERY).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    outcome = ReapOutcome([], [], [])
    for run in stale:
        seen = BenchmarkRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, attempts=run.attempts, heartbeat_at=run.heartbeat_at
        )
        last = f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC" if run.heartbeat_at else "it started"
        worker = run.worker_name or "its worker"
        with transaction.atomic():
            if run.cancel_requested:
                if seen.update(
                    status=RunStatus.CANCELLED, finished_at=now, error="Cancelled; the worker was lost."
                ):
                    _close_candidates(
                        run, now, "Not finished: the run was cancelled and its worker was lost."
                    )
                    outcome.cancelled.append(run.pk)
            elif run.attempts < MAX_ATTEMPTS:
                note = f"Requeued at {now:%Y-%m-%d %H:%M:%S} UTC: no heartbeat from {worker} since {last} (over {stale_s} s)."
                if seen.update(
                    status=RunStatus.QUEUED, error=note, progress={"phase": "requeued", "message": note}
                ):
                    # The interrupted candidate starts over; its partial levels came from a process now gone.
                    interrupted = BenchmarkCandidate.objects.filter(run=run, status=CandidateStatus.RUNNING)
                    Measurement.objects.filter(candidate__in=interrupted).delete()
                    interrupted.update(status=CandidateStatus.PENDING, phase="", started_at=None, error="")
                    queue_name = run.queue
                    transaction.on_commit(
                        partial(benchmark_run_enqueue, run_id=run.pk, queue_name=queue_name)
                    )
                    outcome.requeued.append(run.pk)
            else:
                error = (
                    f"Failed: no heartbeat from {worker} since {last} (over {stale_s} s). The run had already been "
                    f"requeued once after losing a worker, so it is not retried again; check the worker hosts "
                    f"(GET /api/v1/workers/) and start a new run."
                )
                if seen.update(status=RunStatus.FAILED, finished_at=now, error=error):
                    _close_candidates(run, now, "Not finished: the worker was lost.")
                    outcome.failed.append(run.pk)
    return outcome


def _close_candidates(run: BenchmarkRun, now: datetime, note: str) -> None:
    BenchmarkCandidate.objects.filter(run=run, status=CandidateStatus.RUNNING).update(
        status=CandidateStatus.FAILED, error=note, finished_at=now
    )
    BenchmarkCandidate.objects.filter(run=run, status=CandidateStatus.PENDING).update(
        status=CandidateStatus.CANCELLED, error=note, finished_at=now
    )


# ---------------------------------------------------------------------------------------------- results


def _validated_result(result: Any) -> dict[str, Any]:
    import jsonschema

    if not isinstance(result, dict):
        raise validation_error("body", "A result.json object is required.")
    # NaN, Infinity, NUL or an unpaired surrogate would pass the schema and then be refused by PostgreSQL.
    problem = json_problem(result)
    if problem is not None:
        raise validation_error(problem.path or "body", problem.message, problem.code)
    try:
        validate_result(result)
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "body"
        raise validation_error(path, exc.message.splitlines()[0][:300], "schema") from exc
    return result


def result_sha256(result: Mapping[str, Any]) -> str:
    """What `python -m workers report` sends as its Idempotency-Key: sha256 of the canonical JSON body."""
    return _sha256(json.dumps(result, separators=(",", ":"), sort_keys=True))


def benchmark_run_token_matches(*, run: BenchmarkRun, token: str) -> bool:
    return bool(token) and hmac.compare_digest(_sha256(token), run.token_hash)


@dataclass(frozen=True)
class PostedResult:
    run: BenchmarkRun
    candidate: BenchmarkCandidate
    measurements: list[Measurement]
    created: bool


def benchmark_run_post_result(*, run_id: int, result: Any, idempotency_key: str = "") -> PostedResult:
    """Record a remote host's result.json against the run's matching pending candidate.

    Posting the same body again (same Idempotency-Key) answers with what was stored the first time. A celery
    run keeps its status (its worker skips candidates already measured); a remote run finishes when its last
    candidate has a result.
    """
    data = _validated_result(result)
    key = idempotency_key or result_sha256(data)
    with transaction.atomic():
        run = BenchmarkRun.objects.select_for_update(of=("self",)).select_related("workload").get(pk=run_id)
        engine, quant, tp = data["engine"]["name"], data["quant"], int(data["tp"])
        candidate = (
            run.candidates.select_for_update()
            .filter(engine=engine, quant=quant, tp=tp, accelerator=run.accelerator)
            .first()
        )
        if candidate is None:
            known = ", ".join(c.label for c in run.candidates.all())
            raise validation_error(
                "engine",
                f"Run #{run.pk} has no candidate {engine} {quant} on {tp}x {run.accelerator}; its candidates: {known}.",
                "no_candidate",
            )
        if candidate.result_sha256 == key:
            return PostedResult(run, candidate, list(candidate.measurements.order_by("level_index")), False)
        if run.status not in ACTIVE_STATUSES:
            raise Conflict(f"Run #{run.pk} is already {run.status}; it takes no more results.")
        if candidate.status != CandidateStatus.PENDING:
            raise Conflict(f"{candidate.label} of run #{run.pk} is already {candidate.status}.")
        on_cpu = str(data.get("device") or data["hardware"].get("accelerator")) == "cpu"
        if on_cpu != (run.accelerator == "cpu"):
            where = "a CPU" if on_cpu else "a GPU"
            raise validation_error(
                "hardware.accelerator",
                f"Run #{run.pk} is for {run.accelerator}; this result was measured on {where}.",
            )
        now = timezone.now()
        common = provenance.result_fields(data)
        measured_at = provenance.parse_time(data.get("finished_at")) or now
        host_label = common["host_name"] or "a remote host"
        measurements = [
            Measurement.objects.create(
                **common,
                **provenance.level_fields(level),
                run=run,
                candidate=candidate,
                team_id=run.workload.team_id,
                workload=run.workload,
                source_kind=SourceKind.REMOTE,
                source=f"{run.source_label} (posted by {host_label})",
                result_sha256=key,
                level_index=index,
                accelerator=run.accelerator,
                model_slug=run.workload.model.slug,
                samples=level.get("samples") or [],
                measured_at=measured_at,
            )
            for index, level in enumerate(data["levels"])
        ]
        error = data.get("error")
        if data.get("cancelled"):
            status = CandidateStatus.CANCELLED
        elif error and not data["levels"]:
            status = CandidateStatus.FAILED
        else:
            status = CandidateStatus.SUCCEEDED
        engine_meta = data.get("engine") or {}
        BenchmarkCandidate.objects.filter(pk=candidate.pk).update(
            status=status,
            phase=str(status),
            error=str(error or "")[:4000],
            log_tail=str(engine_meta.get("log_tail") or "") if status == CandidateStatus.FAILED else "",
            result_meta={k: v for k, v in data.items() if k != "levels"},
            result_sha256=key,
            started_at=provenance.parse_time(data.get("started_at")) or now,
            finished_at=now,
        )
        _after_posted_candidate(run, now)
    run.refresh_from_db()
    candidate.refresh_from_db()
    return PostedResult(run, candidate, measurements, True)


def _after_posted_candidate(run: BenchmarkRun, now: datetime) -> None:
    statuses = list(BenchmarkCandidate.objects.filter(run=run).values_list("status", flat=True))
    done = all(s not in (CandidateStatus.PENDING, CandidateStatus.RUNNING) for s in statuses)
    if run.executor == Executor.REMOTE:
        BenchmarkRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now
        )
        BenchmarkRun.objects.filter(pk=run.pk).update(heartbeat_at=now)
    elif run.status == RunStatus.RUNNING:
        return  # its worker finishes it
    if done:
        succeeded = CandidateStatus.SUCCEEDED in statuses
        BenchmarkRun.objects.filter(pk=run.pk, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED,
            finished_at=now,
            error="" if succeeded else "Every candidate's posted result reported a failure.",
        )


def measurements_import(
    *,
    result: Any,
    file_name: str,
    workload: Workload | None = None,
    accelerator: str | None = None,
    model: str | None = None,
) -> list[Measurement]:
    """Load a `python -m workers bench` result.json as measurements, with the file named as their source.

    Attached to `workload`, the rows belong to its team; without one they are shared reference data.
    """
    data = _validated_result(result)
    slug = accelerator or provenance.accelerator_slug(data["hardware"])
    if slug is None:
        name = data["hardware"].get("accelerator_model", "")
        raise validation_error(
            "hardware.accelerator_model",
            f"Cannot tell which catalog accelerator {name!r} is; name it (--accelerator SLUG).",
        )
    if not GpuType.objects.filter(slug=slug).exists():
        raise validation_error("accelerator", f"Unknown accelerator {slug!r}; see the catalog's GPU slugs.")
    model_slug = model or str(data["model"])
    if model is not None and not ModelArchitecture.objects.filter(slug=model).exists():
        raise validation_error("model", f"Unknown model {model!r}; see the catalog's model slugs.")
    key = result_sha256(data)
    team_id = workload.team_id if workload is not None else None
    same_owner = Q(team_id=team_id) if team_id is not None else Q(team__isnull=True)
    already = Measurement.objects.filter(same_owner, source_kind=SourceKind.IMPORT, result_sha256=key)
    if already.exists():
        ids = ", ".join(str(pk) for pk in already.values_list("pk", flat=True))
        raise Conflict(f"This result was already imported (measurements {ids}).")
    common = provenance.result_fields(data)
    measured_at = provenance.parse_time(data.get("finished_at")) or provenance.parse_time(
        data.get("started_at")
    )
    with transaction.atomic():
        return [
            Measurement.objects.create(
                **common,
                **provenance.level_fields(level),
                result_sha256=key,
                run=None,
                candidate=None,
                team_id=team_id,
                workload=workload,
                source_kind=SourceKind.IMPORT,
                source=f"imported file {file_name}"[:300],
                level_index=index,
                accelerator=slug,
                model_slug=model_slug[:200],
                samples=level.get("samples") or [],
                measured_at=measured_at or timezone.now(),
            )
            for index, level in enumerate(data["levels"])
        ]
