"""An engineering manager's path through the app in a real browser: sign in, describe a workload (and be told
what is wrong with it), plan it, read the recommendation and its charts, preview and download the manifests;
and another team's workload stays out of reach."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from apps.accounts.models import Role
from apps.workloads.models import Workload
from tests.browser.conftest import Shots
from tests.factories import PASSWORD, MembershipFactory, TeamFactory, UserFactory, WorkloadFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll('input, select, textarea'))
  .filter(el => el.type !== 'hidden' && !el.closest('[hidden]'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.closest('label'))
  .map(el => el.name || el.id)"""


@pytest.fixture
def people(catalog: None) -> dict[str, Any]:
    team, other = (
        TeamFactory.create(name="Platform", slug="platform"),
        TeamFactory.create(name="Search", slug="search"),
    )
    alice, bob = UserFactory.create(username="alice"), UserFactory.create(username="bob")
    MembershipFactory.create(team=team, user=alice, role=Role.OWNER)
    MembershipFactory.create(team=other, user=bob, role=Role.OWNER)
    return {"alice": alice, "bobs_workload": WorkloadFactory.create(team=other, name="bob-secret")}


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/accounts/dashboard/")


def assert_labelled(page: Any) -> None:
    assert page.evaluate(UNLABELLED_CONTROLS) == []


def test_manager_plans_a_workload_and_downloads_its_manifests(
    browser: Any, live_server: Any, people: dict[str, Any], planning_worker: None, shots: type[Shots]
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    shot = shots(page)
    base = live_server.url

    # given a signed-in team owner
    page.goto(f"{base}/accounts/login/")
    shot.take("01-sign-in")
    sign_in(page, base, "alice")
    shot.take("02-dashboard")

    # when they describe a workload with a mistake, they are told inline which field is wrong
    page.goto(f"{base}/workloads/new/")
    page.get_by_label("Name", exact=True).fill("support-chat")
    page.get_by_label("Model").select_option("llama-3.1-8b")
    page.get_by_label("Peak req/s for a preset").fill("6")
    page.get_by_role("button", name="Business hours").click()
    page.wait_for_function("document.querySelector('#traffic-editor-chart').data?.[0]?.y?.length === 24")
    for name, value in {
        "prompt_mean": "800", "prompt_p50": "3000", "prompt_p95": "2400", "prompt_max": "8000",
        "output_mean": "200", "output_p50": "150", "output_p95": "600", "output_max": "1024",
        "ttft_p95_ms": "800", "itl_p95_ms": "60",
    }.items():  # fmt: skip
        page.locator(f"#id_{name}").fill(value)
    page.get_by_label("FP8 W8A8 (E4M3)").check()
    page.get_by_label("BF16 (unquantized)").check()
    error = page.locator("#err-prompt_p50")
    error.filter(has_text="above p95").wait_for(timeout=10_000)
    assert_labelled(page)
    shot.take("03-workload-form-error")

    # and once it is fixed the error clears and the workload saves
    page.locator("#id_prompt_p50").fill("600")
    page.wait_for_function(
        "document.querySelector('#err-prompt_p50').textContent.trim() === ''", timeout=10_000
    )
    page.get_by_role("button", name="Save workload").click()
    page.wait_for_url(f"{base}/workloads/*/")
    workload = Workload.objects.get(name="support-chat")
    assert workload.hourly_requests_per_s[10] == 6
    connections.close_all()  # reads from this thread must not hold the test database open at teardown
    page.wait_for_function("document.querySelector('#traffic-chart').data?.length === 1")
    shot.take("04-workload-detail")

    # when they plan it, the recommendation arrives with its charts and evidence badges
    page.get_by_role("button", name="Plan").click()
    page.wait_for_url(f"{base}/plans/*/")
    page.wait_for_function(
        "document.querySelector('#chart-replicas')?.data?.length >= 2 "
        "&& document.querySelector('#chart-latency')?.data?.length >= 1",
        timeout=90_000,
    )
    traces = page.evaluate("document.querySelector('#chart-replicas').data.map(t => t.name)")
    assert "traffic (requests/s)" in traces
    assert any("replicas" in name for name in traces)
    assert page.locator(".badge.predicted, .badge.measured").count() > 0
    assert page.locator("#chart-latency .main-svg").count() >= 1
    shot.take("05-recommendation")

    # then the manifest preview shows a tab per file, and the zip holds them
    page.get_by_role("link", name="Manifests").first.click()
    page.wait_for_url(f"{base}/manifests/plans/*/options/1/")
    page.get_by_role("tab", name="k8s/20-deployment.yaml").click()
    assert page.locator("#file-k8s-20-deployment-yaml").is_visible()
    assert not page.locator("#file-compose-yaml").is_visible()
    shot.take("06-manifest-preview")
    with page.expect_download() as download_info:
        page.locator("#download-zip").click()
    payload = Path(download_info.value.path()).read_bytes()
    names = {name.split("/", 1)[1] for name in zipfile.ZipFile(io.BytesIO(payload)).namelist()}
    assert {"compose.yaml", "README.md", "k8s/20-deployment.yaml", "k8s/30-service.yaml"} <= names

    # and another team's workload answers 404
    response = page.goto(f"{base}/workloads/{people['bobs_workload'].pk}/")
    assert response is not None
    assert response.status == 404

    for name, path in [("07-catalog-gpus", "/catalog/gpus/"), ("08-catalog-offers", "/catalog/offers/?gpu=h100-sxm"),
                       ("09-plans", "/plans/"), ("10-workloads", "/workloads/")]:  # fmt: skip
        page.goto(f"{base}{path}")
        assert_labelled(page)
        shot.take(name)
    context.close()


def test_navigation_and_forms_work_without_javascript(
    browser: Any, live_server: Any, people: dict[str, Any], shots: type[Shots]
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 800, "height": 900})
    page = context.new_page()
    base = live_server.url

    sign_in(page, base, "alice")
    page.get_by_role("link", name="Workloads").first.click()
    page.get_by_role("link", name="New workload").click()
    page.get_by_label("Name", exact=True).fill("no-js")
    page.get_by_label("Requests per second, hour 0..23 UTC").fill(", ".join(["1.5"] * 24))
    for name, value in {
        "prompt_mean": "500", "prompt_p50": "400", "prompt_p95": "1200", "prompt_max": "4000",
        "output_mean": "100", "output_p50": "80", "output_p95": "300", "output_max": "512",
        "ttft_p95_ms": "1000", "itl_p95_ms": "80",
    }.items():  # fmt: skip
        page.locator(f"#id_{name}").fill(value)
    page.get_by_label("BF16 (unquantized)").check()
    page.get_by_role("button", name="Save workload").click()

    page.wait_for_url(f"{base}/workloads/*/")
    assert Workload.objects.filter(name="no-js").exists()
    connections.close_all()
    shots(page).take("11-workload-detail-no-js", widths=(800,))
    context.close()
