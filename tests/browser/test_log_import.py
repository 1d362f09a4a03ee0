"""A manager imports the request log they already have, in a real browser: with htmx (progress, errors in
place, redirect to the new workload) and without JavaScript (a plain form post)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.accounts.models import Role
from apps.workloads.models import Workload
from tests.browser.conftest import Shots
from tests.browser.test_manager_journey import assert_labelled, sign_in
from tests.factories import MembershipFactory, TeamFactory, UserFactory
from tests.workloads import logfiles
from tests.workloads.logfiles import arrivals, encoded, requests, utc

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MONDAY = utc("2024-05-06T00:00:00")


@pytest.fixture
def owner(catalog: None) -> None:
    team, second = (
        TeamFactory.create(name="Platform", slug="platform"),
        TeamFactory.create(name="Search", slug="search"),
    )
    alice = UserFactory.create(username="alice")
    MembershipFactory.create(team=team, user=alice, role=Role.OWNER)
    MembershipFactory.create(team=second, user=alice, role=Role.MEMBER)


@pytest.fixture
def azure_log(tmp_path: Path) -> Path:
    """A day of Azure trace with two bad rows."""
    times = list(arrivals(start_s=MONDAY, seconds=86_400, rate_per_s=0.05, seed=4))
    header, first, rest = encoded(logfiles.azure_2023_csv(requests(times))).split(b"\n", 2)
    path = tmp_path / "AzureLLMInferenceTrace_conv.csv"
    path.write_bytes(b"\n".join([header, first, b"inf,10,10", b"2024-05-06 10:00:00,12,-3", rest]))
    return path


def test_a_log_upload_becomes_a_workload(
    browser: Any, live_server: Any, owner: None, azure_log: Path, tmp_path: Path, shots: type[Shots]
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    shot = shots(page)
    base = live_server.url
    sign_in(page, base, "alice")

    # given the import page, reached from the workload list, for the second team
    page.goto(f"{base}/workloads/")
    page.get_by_role("link", name="Import a request log").click()
    page.wait_for_url(f"{base}/workloads/import-log/")
    page.get_by_label("Team").select_option("search")
    page.locator("#log-import").filter(has_text="Into team Search").wait_for()
    assert_labelled(page)
    shot.take("20-log-import")

    # when a file that is not a log is sent, the error shows on the file field, in place
    wrong = tmp_path / "notes.csv"
    wrong.write_text("when,what\n2024-05-06,lunch\n")
    page.get_by_label("Request log").set_input_files(str(wrong))
    page.get_by_label("Name", exact=True).fill("conversations")
    page.get_by_label("Model").select_option("llama-3.1-8b")
    page.get_by_role("button", name="Import log").click()
    page.locator("#err-log_file").filter(has_text="lacks the columns of a known format").wait_for(
        timeout=20_000
    )
    assert page.url == f"{base}/workloads/import-log/?team=search"
    shot.take("21-log-import-error")

    # and when the real log is sent, the new workload opens with what was read and skipped
    page.get_by_label("Request log").set_input_files(str(azure_log))
    page.get_by_role("button", name="Import log").click()
    page.wait_for_url(f"{base}/workloads/*/", timeout=60_000)
    workload = Workload.objects.select_related("team").get(name="conversations")
    connections.close_all()  # reads from this thread must not hold the test database open at teardown
    assert workload.team.slug == "search"
    assert workload.import_summary["rows_skipped"] == 2
    page.get_by_text("rows skipped.").first.wait_for()
    assert page.get_by_role("cell", name="the timestamp is not a time in 2000..2099").is_visible()
    assert page.get_by_text("Line 3: TIMESTAMP: 'inf' is not a finite time").is_visible()
    page.wait_for_function(
        "document.querySelector('#prompt-length-chart')?.data?.length === 1 "
        "&& document.querySelector('#traffic-chart')?.data?.length >= 1"
    )
    assert page.get_by_role("row", name="burstiness").count() == 1
    shot.take("22-imported-workload")
    context.close()


def test_a_log_upload_works_without_javascript(
    browser: Any, live_server: Any, owner: None, azure_log: Path, shots: type[Shots]
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 800, "height": 900})
    page = context.new_page()
    base = live_server.url
    sign_in(page, base, "alice")

    page.goto(f"{base}/workloads/import-log/")
    page.get_by_label("Request log").set_input_files(str(azure_log))
    page.get_by_label("Format").select_option("azure")
    page.get_by_label("Name", exact=True).fill("no-js-log")
    page.get_by_label("Model").select_option("llama-3.1-8b")
    page.get_by_label("p95 time to first token (ms)").fill("1200")
    page.get_by_role("button", name="Import log").click()

    page.wait_for_url(f"{base}/workloads/*/", timeout=60_000)
    workload = Workload.objects.select_related("team").get(name="no-js-log")
    connections.close_all()
    assert workload.ttft_p95_ms == 1200
    assert workload.team.slug == "platform"
    assert page.get_by_text("Imported from a request log").is_visible()
    shots(page).take("23-log-import-no-js", widths=(800,))
    context.close()
