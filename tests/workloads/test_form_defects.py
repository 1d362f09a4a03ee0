"""The workload form as issue 14 found it (defects 5 and 8) and the pricing choice: each held by a view test."""

from __future__ import annotations

import io
import re
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.workloads.models import Workload
from tests.conftest import TeamWorld
from tests.workloads.test_pages import form_data


def _errors(response: Any, field: str) -> list[str]:
    return [str(e) for e in response.context["form"].errors.get(field, [])]


def test_prompt_and_output_lengths_sit_in_rows_of_their_own(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get("/workloads/new/").content.decode()
    prompt = html.split('id="prompt-lengths"', 1)[1].split('id="output-lengths"', 1)[0]
    output = html.split('id="output-lengths"', 1)[1].split("</div>\n  </fieldset>", 1)[0]
    assert "id_prompt_max" in prompt
    assert "id_output_mean" not in prompt
    assert "id_output_max" in output
    assert "id_prompt_mean" not in output


def test_headroom_is_validated_in_percent(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/new/", form_data(team=world.team_a.pk, headroom_pct=300)
    )
    assert response.status_code == 400
    assert _errors(response, "headroom_pct") == ["Ensure this value is less than or equal to 200."]
    saved = world.client_for(world.alice).post(
        "/workloads/new/", form_data(team=world.team_a.pk, headroom_pct=150)
    )
    assert saved.status_code == 302
    assert Workload.objects.get(name="page-made").options["headroom"] == 1.5


def test_a_bad_csv_shows_only_what_is_wrong_with_the_csv(world: TeamWorld) -> None:
    upload = SimpleUploadedFile("traffic.csv", b"hour,requests\nnoon,12\n", content_type="text/csv")
    response = world.client_for(world.alice).post(
        "/workloads/new/", {**form_data(team=world.team_a.pk, hourly_rates=""), "traffic_csv": upload}
    )
    assert response.status_code == 400
    assert _errors(response, "traffic_csv")
    assert "This field is required." not in response.content.decode()


def test_hours_out_of_range_make_one_message_naming_them(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/new/", form_data(team=world.team_a.pk, hourly_rates=", ".join(["200000"] * 24))
    )
    errors = _errors(response, "hourly_rates")
    assert len(errors) == 1
    assert errors[0].startswith("Hours 0–23: ")


def test_a_chosen_csv_is_previewed_before_saving(world: TeamWorld) -> None:
    csv = "hour,requests\n" + "\n".join(f"{h},{3600 * (h + 1)}" for h in range(24))
    client = world.client_for(world.alice)
    response = client.post(
        "/workloads/traffic-preview/", {"traffic_csv": SimpleUploadedFile("t.csv", csv.encode(), "text/csv")}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["hourly_requests_per_s"][0] == 1.0
    assert body["peak_requests_per_s"] == 24.0
    bad = client.post("/workloads/traffic-preview/", {"traffic_csv": io.BytesIO(b"")})
    assert bad.status_code == 400
    assert "traffic_csv" in bad.json()["error"]
    viewer = world.client_for(world.victor).post("/workloads/traffic-preview/", {})
    assert viewer.status_code == 403


def test_the_model_picker_starts_on_a_common_small_model(world: TeamWorld) -> None:
    html = world.client_for(world.alice).get("/workloads/new/").content.decode()
    selected = re.search(r'<option value="([^"]+)" selected>', html.split('name="model"', 1)[1])
    assert selected is not None
    assert selected.group(1) == "llama-3.1-8b"
    log_html = world.client_for(world.alice).get("/workloads/import-log/").content.decode()
    assert re.search(r'<option value="llama-3.1-8b" selected>', log_html)


def test_min_replicas_zero_is_accepted_and_explained(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    html = client.get("/workloads/new/").content.decode()
    assert "scale to zero" in html
    assert client.post("/workloads/new/", form_data(team=world.team_a.pk, min_replicas=0)).status_code == 302
    assert Workload.objects.get(name="page-made").constraints["min_replicas"] == 0


def test_pricing_is_a_workload_choice_with_the_old_behaviour_by_default(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    api = world.api_for(world.alice)
    assert api.get(f"/api/v1/workloads/{world.workload_a.pk}/").json()["offer_pricing"] == "cheapest_listing"
    response = client.post("/workloads/new/", form_data(team=world.team_a.pk, offer_pricing="median_market"))
    assert response.status_code == 302
    workload = Workload.objects.get(name="page-made")
    assert workload.to_document()["offer_pricing"] == "median_market"
    assert "median market price" in client.get(workload.get_absolute_url()).content.decode()
    named = client.post(
        "/workloads/new/", form_data(team=world.team_a.pk, name="named", offer_pricing="named_providers")
    )
    assert named.status_code == 400
    assert "tick at least one provider" in " ".join(_errors(named, "offer_pricing"))
    refused = api.post(
        "/api/v1/workloads/",
        {
            **workload.to_document(),
            "name": "api-named",
            "offer_pricing": "named_providers",
            "team": world.team_a.slug,
        },
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "offer_pricing"
