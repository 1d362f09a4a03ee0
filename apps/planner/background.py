"""Plans in a background thread of the web process: the embedded default has no broker, and Celery's eager mode
would run a plan inside the request that asked for it (0.5 to 3 s with no page to look at).

One worker thread: plans take well under a second each and queue behind one another. The Recommendation row
stays the truth: the thread claims it by compare-and-set like a Celery worker, and a plan this process never
finished (it was stopped mid-plan, or a thread died) is failed or sent again by the same sweep beat runs for
the full stack (`recommendations_reap_stuck`), which this module runs when plans are sent and while a page waits.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import connections

logger = logging.getLogger(__name__)

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plan")
_lock = threading.Lock()
_last_sweep = 0.0
SWEEP_EVERY_S = 30.0


def _run(recommendation_id: int) -> None:
    from apps.planner.services import recommendation_compute  # services imports this module

    try:
        recommendation_compute(recommendation_id=recommendation_id)
    except Exception:  # recommendation_compute fails the row itself; this is a database outage or similar
        logger.exception("background plan #%s could not run", recommendation_id)
    finally:
        connections.close_all()  # this thread's connections: the next plan may come much later


def submit(recommendation_id: int) -> Future[None]:
    return _executor.submit(_run, recommendation_id)


def sweep_if_due() -> None:
    """Fail or send again the plans nobody is finishing, at most every SWEEP_EVERY_S in this process."""
    global _last_sweep
    with _lock:
        now = time.monotonic()
        if now - _last_sweep < SWEEP_EVERY_S:
            return
        _last_sweep = now
    from apps.planner.services import recommendations_reap_stuck

    recommendations_reap_stuck()
