"""A team owner benchmarks a workload in a real browser (Debian's Chromium through Playwright) and watches the run
page update itself through htmx polling while a real Celery worker measures `transformers serve` on CPU."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.benchmarks.models import BenchmarkRun, Measurement
from tests.benchmarks.conftest import CeleryWorker
from tests.conftest import TeamWorld
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.closest('label'))
  .map(el => el.name || el.id)"""


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make install-test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


def test_a_team_owner_starts_a_benchmark_and_watches_it_finish(
    bench_cpu_worker: CeleryWorker,
    live_server: Any,
    world: TeamWorld,
    chromium: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Playwright's sync API keeps an event loop in this thread; the ORM reads below are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    base = live_server.url

    # given alice, signed in, on her workload's page
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    page.goto(f"{base}/workloads/{world.workload_a.pk}/")

    # when she opens the picker, keeps only transformers on the CPU worker, and starts a short shrunk run
    page.get_by_role("link", name="Benchmark", exact=True).click()
    page.wait_for_url(re.compile(r"/benchmarks/workloads/\d+/new/$"))
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "benchmark-picker-1280.png"), full_page=True)
    assert page.get_by_text("Left to the performance model").is_visible()
    for box in page.locator('input[name="candidates"]').all():
        box.uncheck()
    page.locator('input[name="candidates"][value="transformers|bf16|cpu|1"]').check()
    page.get_by_label("Load").select_option("concurrency")
    page.get_by_label("Levels").fill("1,2")
    page.get_by_label("Requests per level").fill("3")
    page.get_by_label("Prompt tokens").fill("16")
    page.get_by_label("Output tokens").fill("8")
    page.get_by_label("Warm-up requests").fill("1")
    page.get_by_label("Shrink the model (CPU smoke run)").check()
    page.get_by_role("button", name="Start benchmark").click()
    page.wait_for_url(re.compile(r"/benchmarks/runs/\d+/$"))
    page.evaluate("window.notReloaded = true")

    # then the run page fills itself in as the worker measures, without a reload, and stops polling when done
    page.locator("#run-progress .badge.status-succeeded").first.wait_for(timeout=240_000)
    assert page.evaluate("window.notReloaded") is True
    run = BenchmarkRun.objects.get()
    measured = Measurement.objects.filter(run=run).count()
    # These reads ran inside Playwright's event loop, where Django keeps a separate connection: close it, or the
    # test database cannot be dropped at the end of the session.
    connections.close_all()
    assert run.status == "succeeded"
    rows = page.locator("#run-progress table tbody tr")
    assert rows.count() == measured == 2
    assert "concurrency 1" in rows.first.inner_text()
    assert page.get_by_text("measured · shrunk model").first.is_visible()
    assert page.get_by_text("Not representative of the full model").is_visible()
    assert page.locator("#run-progress[hx-trigger]").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "benchmark-run-1280.png"), full_page=True)
