"""A Celery worker consuming `bench.<accelerator>` queues registers itself and keeps a heartbeat.

    celery -A advisor worker -Q bench.h100-sxm --concurrency 1 -n bench-h100@%h

(or `manage.py run_bench_worker --accelerator h100-sxm`, which checks the slug and runs exactly that). When the
worker is ready it probes the host (workers.probe: GPUs, driver, CUDA, installed engines) and records a
WorkerHost per benchmark queue; a daemon thread in the worker's main process beats every WORKER_HEARTBEAT_S, so
the host stays "live" while the process lives, even while a benchmark keeps the pool busy. Workers of other
queues (the default queue's) register nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.db import close_old_connections, connection

log = logging.getLogger(__name__)

WORKER_HEARTBEAT_S = 30.0
_stop = threading.Event()
_registered: list[str] = []


def consumed_benchmark_queues(consumer: Any) -> list[str]:
    from apps.benchmarks.services import accelerator_from_queue

    names = list(consumer.app.amqp.queues.consume_from or {})
    return sorted(name for name in names if accelerator_from_queue(name) is not None)


def register(*, node_name: str, queues: list[str]) -> list[str]:
    """Register this host once per benchmark queue; returns the WorkerHost names recorded."""
    from apps.benchmarks.services import WorkerRegistrationError, worker_host_register
    from workers.probe import probe_host

    probe = probe_host()
    names = []
    for queue_name in queues:
        # One host row per queue: a node consuming bench.cpu and bench.h100-sxm offers both.
        name = node_name if len(queues) == 1 else f"{node_name}/{queue_name}"
        try:
            worker_host_register(name=name, queue_name=queue_name, probe=probe)
        except WorkerRegistrationError as exc:
            log.error("not registering %s for %s: %s", node_name, queue_name, exc)
            continue
        names.append(name)
        log.info("registered benchmark worker %s for %s", name, queue_name)
    return names


def _beat_once(node_name: str, queues: list[str]) -> None:
    """Heartbeat every registered host; register again when there is none yet (the database was down at start)
    or a row is gone (deleted in the admin)."""
    from apps.benchmarks.services import worker_host_heartbeat

    beaten = [worker_host_heartbeat(name=name) for name in _registered]  # every host, no short cut
    if not beaten or not all(beaten):
        _registered[:] = register(node_name=node_name, queues=queues)


def _keep_beating(node_name: str, queues: list[str]) -> None:
    while not _stop.wait(WORKER_HEARTBEAT_S):
        try:
            close_old_connections()
            _beat_once(node_name, queues)
        except Exception:  # a database blip must not end the heartbeat for good
            log.exception("benchmark worker heartbeat failed")
    connection.close()


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_kwargs: Any) -> None:
    queues = consumed_benchmark_queues(sender)
    if not queues:
        return
    node_name = str(sender.hostname)
    try:
        _registered[:] = register(node_name=node_name, queues=queues)
    except Exception:
        log.exception("could not register benchmark worker %s; retrying with the heartbeat", node_name)
    finally:
        connection.close()  # the heartbeat thread has its own connection; this one must not linger idle
    _stop.clear()
    thread = threading.Thread(
        target=_keep_beating, args=(node_name, queues), name="benchmark-worker-heartbeat", daemon=True
    )
    thread.start()


@worker_shutdown.connect
def _on_worker_shutdown(**_kwargs: Any) -> None:
    _stop.set()
    if not _registered:
        return
    from apps.benchmarks.services import worker_host_offline

    try:
        for name in _registered:
            worker_host_offline(name=name)
    except Exception:
        log.exception("could not mark benchmark workers offline")
    finally:
        connection.close()
