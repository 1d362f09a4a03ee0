from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization
from apps.catalog.selectors import catalog_snapshot
from apps.catalog.services import catalog_load
from apps.catalog.specs import first_number, load_snapshot

SKYPILOT_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n"
)


def test_load_catalog_is_idempotent(db: None) -> None:
    first = catalog_load()
    second = catalog_load()

    assert first == second
    assert (first.gpus, first.models, first.engines, first.quantizations) == (19, 12, 6, 9)
    assert GpuType.objects.count() == 19
    assert CloudOffer.objects.count() == first.offers == 506


def test_catalog_keeps_sources(db: None) -> None:
    h100 = GpuType.objects.get(slug="h100-sxm")
    assert h100.memory_bandwidth_tbps == 3.35
    assert h100.fp8_tflops == 1979
    assert "nvidia.com" in h100.source
    assert Quantization.objects.get(slug="fp8").quality_source.startswith("Kurtic")
    assert all(offer.source for offer in CloudOffer.objects.all()[:20])
    assert ApiPrice.objects.filter(source="").count() == 0


def test_engines_come_from_the_worker_definitions(db: None) -> None:
    from workers.engines import ENGINES

    vllm = Engine.objects.get(slug="vllm")
    assert vllm.image == ENGINES["vllm"].image
    assert "fp8" in vllm.quantizations
    assert Engine.objects.get(slug="llamacpp").accelerators == ["cuda", "rocm", "cpu"]


def test_moe_fields_are_parsed(db: None) -> None:
    mixtral = ModelArchitecture.objects.get(slug="mixtral-8x7b")

    assert (mixtral.architecture_type, mixtral.num_experts, mixtral.experts_per_token) == ("moe", 8, 2)
    assert mixtral.params_active_b < mixtral.params_total_b


def test_snapshot_from_database_matches_the_shipped_files(db: None) -> None:
    from_db = catalog_snapshot()
    shipped = load_snapshot()

    assert {g.slug for g in from_db.gpus} == {g.slug for g in shipped.gpus}
    assert from_db.gpu("h200") == shipped.gpu("h200")
    assert from_db.version.startswith("catalog-")
    assert catalog_snapshot().version == from_db.version


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("989", 989.0),
        ("~364 (derived)", 364.0),
        ("n/p (~70 reported, unverified)", 70.0),
        ("not supported", None),
        ("", None),
    ],
)
def test_first_number_reads_researched_cells(raw: str, number: float | None) -> None:
    assert first_number(raw) == number


def test_import_prices_refreshes_one_provider_from_skypilot(db: None, tmp_path: Path) -> None:
    vms = tmp_path / "vms.csv"
    vms.write_text(
        SKYPILOT_HEADER
        + "gpu_8x_h100_sxm5,H100,8,208,1800,23.92,,us-east-1,us-east-1a\n"
        + "gpu_8x_h100_sxm5,H100,8,208,1800,21.50,,us-west-1,us-west-1a\n"
        + "gpu_1x_h100_pcie,H100,1,26,200,2.49,1.10,us-east-1,us-east-1a\n"
        + "cpu_only,,,8,32,0.40,,us-east-1,us-east-1a\n"
    )
    lambda_before = CloudOffer.objects.filter(provider="lambda").count()
    assert lambda_before > 2

    call_command("import_prices", "--skypilot", str(vms), "--provider", "lambda")

    offers = {o.instance_type: o for o in CloudOffer.objects.filter(provider="lambda")}
    assert set(offers) == {"gpu_8x_h100_sxm5", "gpu_1x_h100_pcie"}
    assert offers["gpu_8x_h100_sxm5"].ondemand_usd_per_hour == 21.50
    assert {name: offer.gpu.slug if offer.gpu else None for name, offer in offers.items()} == {
        "gpu_8x_h100_sxm5": "h100-sxm",
        "gpu_1x_h100_pcie": "h100-pcie",
    }
    assert offers["gpu_1x_h100_pcie"].spot_usd_per_hour == 1.10
    assert CloudOffer.objects.filter(provider="nebius").exists()


def test_import_prices_rejects_a_file_that_is_not_a_skypilot_catalog(db: None, tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("name,price\nfoo,1\n")
    before = CloudOffer.objects.count()

    with pytest.raises(CommandError, match="missing columns"):
        call_command("import_prices", "--skypilot", str(bad), "--provider", "lambda")
    assert CloudOffer.objects.count() == before


def test_catalog_api_lists_and_filters(db: None, django_user_model: object) -> None:
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory.create())

    gpus = client.get("/api/v1/catalog/gpus/?search=h100").json()
    assert {g["slug"] for g in gpus["results"]} == {"h100-sxm", "h100-pcie", "h100-nvl"}
    assert client.get("/api/v1/catalog/models/llama-3.1-70b/").json()["kv_bytes_per_token_bf16"] == 327680
    offers = client.get("/api/v1/catalog/offers/?gpu=h200&page_size=200").json()["results"]
    assert offers
    assert all(o["gpu"] == "h200" for o in offers)
    assert (
        client.get("/api/v1/catalog/offers/?max_usd_per_hour=cheap").json()["errors"][0]["field"]
        == "max_usd_per_hour"
    )
    assert client.get("/api/v1/catalog/gpus/h900/").status_code == 404
