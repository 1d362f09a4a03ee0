"""Bundles for a stored plan: validated, zipped, team-scoped, and refused with a reason."""

from __future__ import annotations

import copy
import io
import zipfile

import pytest
import yaml

from apps.catalog.specs import load_snapshot
from apps.planner.models import PlanStatus, Recommendation
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from apps.planner.services import recommendation_compute
from tests.conftest import TeamWorld
from tests.planner.pipeline.test_mixed_fleet import BIMODAL_WORKLOAD


@pytest.fixture
def planned(world: TeamWorld) -> Recommendation:
    recommendation = Recommendation.objects.create(
        workload=world.workload_a, inputs=world.workload_a.to_document()
    )
    recommendation_compute(recommendation_id=recommendation.pk)
    recommendation.refresh_from_db()
    return recommendation


def _files(payload: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name.split("/", 1)[1]: archive.read(name).decode() for name in archive.namelist()}


def test_api_zip_holds_the_best_option(world: TeamWorld, planned: Recommendation) -> None:
    response = world.api_for(world.alice).get(f"/api/v1/recommendations/{planned.pk}/manifests.zip")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    files = _files(response.content)
    assert {"compose.yaml", "README.md", "k8s/20-deployment.yaml"} <= set(files)
    best = planned.options[0]
    deployment = yaml.safe_load(files["k8s/20-deployment.yaml"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    limits = container["resources"]["limits"]
    assert any(key.endswith("/gpu") and int(value) == best["tp"] for key, value in limits.items())


def test_hpa_and_overflow_choices_change_the_bundle(world: TeamWorld, planned: Recommendation) -> None:
    response = world.api_for(world.alice).get(
        f"/api/v1/recommendations/{planned.pk}/manifests.zip?autoscaler=hpa&overflow=cheapest"
    )

    files = _files(response.content)
    assert response.status_code == 200
    assert not any("scaledobject" in name for name in files)
    assert any("hpa" in name for name in files)
    assert "litellm/config.yaml" in files


def test_the_target_choice_picks_the_compose_or_the_kubernetes_files(
    world: TeamWorld, planned: Recommendation
) -> None:
    api = world.api_for(world.alice)
    url = f"/api/v1/recommendations/{planned.pk}/manifests.zip"

    only_k8s = _files(api.get(f"{url}?target=kubernetes").content)
    only_compose = _files(api.get(f"{url}?target=compose").content)

    assert "compose.yaml" not in only_k8s
    assert "k8s/20-deployment.yaml" in only_k8s
    assert "compose.yaml" in only_compose
    assert not any(p.startswith("k8s/") for p in only_compose)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("option=99", "option"),
        ("option=zero", "option"),
        ("autoscaler=cron", "autoscaler"),
        ("namespace=Bad_NS", "namespace"),
        ("target=helm", "target"),
        ("mixed=-1", "mixed"),
        ("mixed=99", "mixed"),
    ],
)
def test_bad_choices_get_400_naming_the_field(
    world: TeamWorld, planned: Recommendation, query: str, field: str
) -> None:
    response = world.api_for(world.alice).get(f"/api/v1/recommendations/{planned.pk}/manifests.zip?{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_preview_page_has_a_tab_per_file_and_a_download(world: TeamWorld, planned: Recommendation) -> None:
    response = world.client_for(world.alice).get(f"/manifests/plans/{planned.pk}/options/1/")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<a role="tab"') == len(response.context["files"]) >= 8
    assert 'id="download-zip"' in html
    download = world.client_for(world.alice).get(f"/manifests/plans/{planned.pk}/options/1/bundle.zip")
    assert download.status_code == 200
    assert "compose.yaml" in _files(download.content)


def test_a_stored_plans_mixed_fleet_downloads_as_one_zip(world: TeamWorld) -> None:
    # given a stored plan whose cheapest way is a mixed fleet
    workload = copy.deepcopy(BIMODAL_WORKLOAD)
    result = plan(workload_spec_from_dict(copy.deepcopy(workload)), load_snapshot())
    stored = Recommendation.objects.create(
        workload=world.workload_a, inputs=workload, result=result, status=PlanStatus.SUCCEEDED
    )

    # when the API is asked for its mixed fleet 0
    response = world.api_for(world.alice).get(f"/api/v1/recommendations/{stored.pk}/manifests.zip?mixed=0")

    # then the zip holds both deployments and the router between them
    assert response.status_code == 200
    files = _files(response.content)
    assert {
        "k8s/20-deployment-rtx-a6000.yaml",
        "k8s/20-deployment-a100-80gb.yaml",
        "litellm/config.yaml",
    } <= set(files)
    assert "-mixed0.zip" in response["Content-Disposition"]
    refused = world.api_for(world.alice).get(
        f"/api/v1/recommendations/{stored.pk}/manifests.zip?mixed=0&target=compose"
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "target"
