"""The manager's view in a real browser (issue 14): plans run in the background of the embedded deployment while
the page stays usable, an infeasible plan leads to one that works in a click, the what-if panel re-plans as a
slider moves, the comparison highlights what differs, and the form, glossary and navigation have no dead ends."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.accounts.models import Role
from apps.planner import background
from apps.planner.models import Recommendation
from apps.workloads.services import workload_create
from tests.browser.conftest import Shots
from tests.browser.test_manager_journey import sign_in
from tests.factories import WORKLOAD_DOCUMENT, MembershipFactory, TeamFactory, UserFactory
from tests.planner.workloads import TIGHT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def team(catalog: None, settings: Any) -> dict[str, Any]:
    # The embedded default: plans run in a thread of the web process, not in the request.
    settings.PLAN_EXECUTOR = "thread"
    platform = TeamFactory.create(name="Platform", slug="platform")
    alice, victor = UserFactory.create(username="alice"), UserFactory.create(username="victor")
    MembershipFactory.create(team=platform, user=alice, role=Role.OWNER)
    MembershipFactory.create(team=platform, user=victor, role=Role.VIEWER)
    chat = workload_create(team=platform, document=copy.deepcopy(WORKLOAD_DOCUMENT), user=alice)
    tight = workload_create(team=platform, document=copy.deepcopy(TIGHT), user=alice)
    connections.close_all()
    return {"chat": chat, "tight": tight}


def _page(browser: Any, **kwargs: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **kwargs)
    return context.new_page()


def _finished(page: Any, *, charts: bool = True) -> None:
    """Wait for the plan page to fill in by itself (and for its charts, when it has options)."""
    page.wait_for_selector('[data-plan-finished="succeeded"]', state="attached", timeout=90_000)
    if charts:
        page.wait_for_function("document.querySelector('#chart-replicas')?.data?.length >= 2", timeout=30_000)


def _plan(page: Any, base: str, workload_id: int) -> None:
    page.goto(f"{base}/workloads/{workload_id}/")
    page.get_by_role("button", name="Plan", exact=True).click()
    page.wait_for_url(f"{base}/plans/*/")


def test_planning_runs_in_the_background_and_the_page_stays_usable(
    browser: Any, live_server: Any, team: dict[str, Any], shots: type[Shots]
) -> None:
    page = _page(browser)
    base = live_server.url
    sign_in(page, base, "alice")
    # given the planner is busy (its one thread waits on another job), so the plan stays queued for a while
    busy = threading.Event()
    background._executor.submit(busy.wait)
    try:
        # when the manager presses Plan, the page answers at once and shows progress
        started = time.perf_counter()
        _plan(page, base, team["chat"].pk)
        answered_s = time.perf_counter() - started
        status = page.get_by_role("status")
        status.wait_for()
        assert "Queued" in status.inner_text()
        assert page.locator("progress").count() == 1
        plan_url = page.url
        shots(page).take("20-plan-queued")

        # and they can keep working meanwhile
        page.get_by_role("link", name="Workloads").first.click()
        page.wait_for_url(f"{base}/workloads/")
        page.goto(plan_url)
        assert page.get_by_role("status").is_visible()
    finally:
        busy.set()
    # then the plan finishes in the background and the page fills in by itself
    _finished(page)
    assert answered_s < 5
    recommendation = Recommendation.objects.latest("created_at")
    assert recommendation.status == "succeeded"
    assert recommendation.progress == "explain"
    connections.close_all()
    shots(page).take("21-plan-finished")
    page.context.close()


def test_an_infeasible_plan_leads_to_a_feasible_one_in_a_click(
    browser: Any, live_server: Any, team: dict[str, Any], shots: type[Shots]
) -> None:
    page = _page(browser)
    base = live_server.url
    sign_in(page, base, "alice")
    _plan(page, base, team["tight"].pk)
    _finished(page, charts=False)
    assert page.get_by_text("No feasible option").is_visible()
    assert page.locator("#chart-replicas").count() == 0
    suggestion = page.locator(".suggestion").first
    assert "latency targets" in suggestion.inner_text()
    shots(page).take("22-plan-infeasible")

    suggestion.get_by_role("button", name="Plan with this").click()
    _finished(page)
    assert page.get_by_text("No feasible option").count() == 0
    assert "voice-tight-" in page.locator("h1").inner_text()
    connections.close_all()
    page.context.close()


def test_what_if_replans_as_a_slider_moves_and_options_compare_side_by_side(
    browser: Any, live_server: Any, team: dict[str, Any], shots: type[Shots]
) -> None:
    page = _page(browser)
    base = live_server.url
    sign_in(page, base, "alice")
    _plan(page, base, team["chat"].pk)
    _finished(page)
    page.wait_for_selector("#what-if form")

    # when the traffic slider moves to 3x, the plan is recomputed in place
    page.locator("#wi-traffic").fill("3")
    result = page.locator("#what-if-cost")
    result.wait_for(timeout=30_000)
    assert page.locator("#wi-traffic-out").inner_text() == "3.00"
    elapsed_ms = float(page.locator(".what-if-result").get_attribute("data-elapsed-ms") or "inf")
    assert elapsed_ms < 2000
    tripled = result.inner_text()
    page.locator("#wi-itl").fill("1")  # a target nothing meets
    page.locator("#what-if-none").wait_for(timeout=30_000)
    page.locator("#wi-itl").fill("60")
    page.locator("#what-if-cost").wait_for(timeout=30_000)
    assert page.locator("#what-if-cost").inner_text() == tripled
    shots(page).take("23-what-if")

    # and the ticked options compare side by side, the rows that differ highlighted
    page.get_by_role("button", name="Compare the ticked options").click()
    page.wait_for_url(f"{base}/plans/compare/*")
    differs = page.locator("#compare-table tr.differs")
    assert differs.count() >= 1
    colour = differs.first.locator("td").first.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)")
    assert page.locator('#compare-table tr[data-row="Workload"]').get_attribute("class") == ""
    shots(page).take("24-compare")
    connections.close_all()
    page.context.close()


def test_form_presets_preview_and_glossary(
    browser: Any, live_server: Any, team: dict[str, Any], tmp_path: Path, shots: type[Shots]
) -> None:
    page = _page(browser)
    base = live_server.url
    sign_in(page, base, "alice")
    page.goto(f"{base}/workloads/new/")
    assert page.get_by_label("Model").input_value() == "llama-3.1-8b"

    # the nightly batch preset is a night curve that scales to zero by day
    page.get_by_label("Peak req/s for a preset").fill("4")
    page.get_by_role("button", name="Nightly batch").click()
    rates = [float(v) for v in page.locator("#id_hourly_rates").input_value().split(",")]
    assert rates[0] == 4
    assert all(rate == 0 for rate in rates[8:20])
    assert page.locator("#id_min_replicas").input_value() == "0"
    assert "cold start" in page.locator("#preset-note").inner_text()

    # a chosen CSV is previewed before saving
    csv = tmp_path / "traffic.csv"
    csv.write_text("hour,requests\n" + "\n".join(f"{h},{7200 if 9 <= h < 17 else 360}" for h in range(24)))
    page.locator("#id_traffic_csv").set_input_files(str(csv))
    note = page.locator("#traffic-upload-note")
    note.filter(has_text="Preview of traffic.csv").wait_for(timeout=15_000)
    assert "peak 2 req/s" in note.inner_text()
    page.wait_for_function(
        "document.querySelector('#traffic-editor-chart').layout?.title?.text?.startsWith('CSV preview')"
    )
    shots(page).take("25-workload-form-preview")

    # a term's meaning shows on keyboard focus
    page.goto(f"{base}/workloads/{team['chat'].pk}/")
    term = page.locator("a.term[data-term='TTFT']").first
    term.focus()
    tip = term.locator(".tip")
    assert tip.is_visible()
    assert "first word of the answer" in tip.inner_text()
    page.context.close()


def test_viewers_and_api_docs_have_a_way_back(browser: Any, live_server: Any, team: dict[str, Any]) -> None:
    page = _page(browser)
    base = live_server.url
    sign_in(page, base, "victor")
    page.goto(f"{base}/workloads/")
    assert page.get_by_role("link", name="New workload").count() == 0
    response = page.goto(f"{base}/workloads/new/")
    assert response is not None
    assert response.status == 403
    page.get_by_role("link", name="Back to the dashboard").click()
    page.wait_for_url(f"{base}/accounts/dashboard/")
    page.goto(f"{base}/api/docs/")
    page.get_by_role("link", name="← Back to the app").click()
    page.wait_for_url(f"{base}/accounts/dashboard/")
    icon = page.request.get(f"{base}/favicon.ico")
    assert icon.ok
    page.context.close()
