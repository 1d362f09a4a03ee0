"""Real Chromium (Debian's, driven by Playwright) against the live test server, with a real Celery worker for
the planning queue when a broker is configured. Screenshots of every page land in test-artifacts/screenshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from apps.catalog.services import catalog_load

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between page actions
# are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """One Chromium per test: Playwright's sync API keeps an event loop running in this thread while it is
    open, which would break every later test that calls asyncio.run() (the workers' load generator)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make install-test` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def catalog(transactional_db: None) -> None:
    """Live-server tests flush every table afterwards, so each one loads the catalog again."""
    catalog_load()


@pytest.fixture
def planning_worker(transactional_db: None) -> Iterator[None]:
    """A real Celery worker process on the test database and the real Redis, consuming the planning queue.

    Without REDIS_URL the app runs tasks in-process (its embedded default) and no worker is needed."""
    if not settings.REDIS_URL:
        yield
        return
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "advisor", "purge", "-f", "-Q", "default"],
        env=env, check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    log_path = SCREENSHOTS.parent / "celery-planning-worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "advisor", "worker", "-Q", "default", "--pool", "solo",
         "--concurrency", "1", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        time.sleep(1)
        if worker.poll() is not None:
            pytest.fail(f"the Celery worker exited at start with code {worker.returncode}")
        yield
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        log.close()


class Shots:
    def __init__(self, page: Any) -> None:
        self.page = page
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(self, name: str, *, widths: tuple[int, ...] = (1280, 800)) -> None:
        for width in widths:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_timeout(150)  # Plotly's responsive charts relayout on resize
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})


@pytest.fixture
def shots() -> type[Shots]:
    return Shots
