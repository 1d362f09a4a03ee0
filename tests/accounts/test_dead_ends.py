"""No dead ends (issue 14, defect 7): the staff demo user's Admin link leads somewhere, viewers are not offered
what they cannot do and meet a 403 page they can leave, the favicon exists, and the API docs lead back."""

from __future__ import annotations

from io import StringIO

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from tests.conftest import TeamWorld


def test_the_demo_staff_user_can_use_the_admin_it_is_shown(db: None) -> None:
    call_command("load_demo", stdout=StringIO())
    client = Client()
    client.force_login(User.objects.get(username="demo"))
    dashboard = client.get("/accounts/dashboard/").content.decode()
    assert 'href="/admin/"' in dashboard
    admin = client.get("/admin/").content.decode()
    assert "have permission to view or edit anything" not in admin
    for model in ("workload", "recommendation", "cloudoffer"):
        assert f"/{model}/" in admin
    assert client.get("/admin/workloads/workload/").status_code == 200
    assert client.get("/admin/planner/recommendation/").status_code == 200


def test_staff_without_permissions_is_not_shown_an_admin_link(world: TeamWorld) -> None:
    User.objects.filter(pk=world.alice.pk).update(is_staff=True)
    html = world.client_for(User.objects.get(pk=world.alice.pk)).get("/accounts/dashboard/").content.decode()
    assert 'href="/admin/"' not in html


def test_viewers_are_not_offered_new_workloads_and_their_403_has_navigation(world: TeamWorld) -> None:
    client = world.client_for(world.victor)
    for url in ("/workloads/", "/accounts/dashboard/"):
        assert "New workload" not in client.get(url).content.decode()
    forbidden = client.get("/workloads/new/")
    assert forbidden.status_code == 403
    html = forbidden.content.decode()
    assert 'aria-label="Main"' in html
    assert "Back to the dashboard" in html
    assert "viewer" in html


def test_the_favicon_is_served(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    assert 'rel="icon"' in client.get("/workloads/").content.decode()
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301
    assert redirect["Location"].endswith("favicon.svg")


def test_the_api_docs_lead_back_to_the_app(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get("/api/docs/").content.decode()
    assert 'id="back-to-app"' in html
    assert 'href="/accounts/dashboard/"' in html
    assert "swagger-ui" in html
