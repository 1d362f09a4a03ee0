from __future__ import annotations

from typing import Any

from apps.workloads.models import Workload
from tests.conftest import TeamWorld


def form_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "team": "",
        "name": "page-made",
        "model": "llama-3.1-8b",
        "hourly_rates": ", ".join(["2"] * 24),
        "prompt_mean": 800, "prompt_p50": 600, "prompt_p95": 2400, "prompt_max": 8000,
        "output_mean": 200, "output_p50": 150, "output_p95": 600, "output_max": 1024,
        "ttft_p95_ms": 800, "itl_p95_ms": 60,
        "allowed_quantizations": ["bf16", "fp8"],
        "max_gpus_per_replica": 8, "min_replicas": 1,
        "headroom_pct": 20, "ops_hours_per_month": 10, "ops_hourly_usd": 100,
    }  # fmt: skip
    data.update(overrides)
    return data


def test_sign_in_page_and_login(world: TeamWorld) -> None:
    from django.test import Client

    from tests.factories import PASSWORD

    client = Client()
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/workloads/").status_code == 200


def test_create_through_the_form(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    assert client.get("/workloads/new/").status_code == 200

    response = client.post("/workloads/new/", form_data(team=world.team_a.pk))

    workload = Workload.objects.get(name="page-made")
    assert response.status_code == 302
    assert response["Location"] == f"/workloads/{workload.pk}/"
    assert workload.options["headroom"] == 0.2
    assert workload.hourly_requests_per_s == [2.0] * 24


def test_form_errors_land_on_the_field_and_nothing_is_saved(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/new/", form_data(team=world.team_a.pk, prompt_p50=3000, hourly_rates="1, 2, 3")
    )

    assert response.status_code == 400
    form = response.context["form"]
    assert "hourly_rates" in form.errors
    assert not Workload.objects.filter(name="page-made").exists()


def test_cross_field_rule_is_shown_on_its_field(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/new/", form_data(team=world.team_a.pk, prompt_p50=3000)
    )

    assert response.status_code == 400
    assert "above p95" in response.context["form"].errors["prompt_p50"][0]


def test_inline_validation_returns_out_of_band_errors_for_filled_fields(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/validate/", {"ttft_p95_ms": "-4", "name": ""}, HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="err-ttft_p95_ms"' in html
    assert 'hx-swap-oob="true"' in html
    assert "greater than or equal to 1" in html
    assert 'id="err-name" role="alert" aria-live="polite" hx-swap-oob="true"></div>' in html


def test_edit_page_prefills_and_saves(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    page = client.get(f"/workloads/{world.workload_a.pk}/edit/")
    assert page.status_code == 200
    assert page.context["form"].initial["prompt_p95"] == 2400

    response = client.post(
        f"/workloads/{world.workload_a.pk}/edit/",
        form_data(team=world.team_a.pk, name="alice-chat", itl_p95_ms=45),
    )

    assert response.status_code == 302
    assert Workload.objects.get(pk=world.workload_a.pk).itl_p95_ms == 45


def test_detail_page_shows_the_curve_and_the_document(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get(f"/workloads/{world.workload_a.pk}/").content.decode()

    assert "alice-chat" in html
    assert 'id="traffic-figure"' in html
    assert "hourly_requests_per_s" in html


def test_delete_from_the_page(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(f"/workloads/{world.workload_a.pk}/delete/")

    assert response.status_code == 302
    assert not Workload.objects.filter(pk=world.workload_a.pk).exists()


def test_catalog_pages_render(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    for path in [
        "/catalog/",
        "/catalog/gpus/?q=h100",
        "/catalog/models/",
        "/catalog/engines/",
        "/catalog/offers/?gpu=h200",
        "/catalog/api-prices/",
    ]:
        assert client.get(path).status_code == 200, path
