from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.catalog.models import ApiPrice, CloudOffer, Engine, GpuType, ModelArchitecture, Quantization
from apps.catalog.selectors import catalog_snapshot
from apps.catalog.services import catalog_load
from apps.catalog.specs import first_number, load_models, load_snapshot

SKYPILOT_HEADER = (
    "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region,AvailabilityZone\n"
)


def test_load_catalog_is_idempotent(db: None) -> None:
    first = catalog_load()
    second = catalog_load()

    assert first == second
    # 29 GPUs in gpus.csv + the CPU class in accelerators_extra.csv; 554 offers (gpu_prices.README.md)
    assert (first.gpus, first.models, first.engines, first.quantizations) == (30, 32, 6, 11)
    assert GpuType.objects.count() == 30
    assert CloudOffer.objects.count() == first.offers == 554
    assert ApiPrice.objects.count() == first.api_prices == 60


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


def test_the_database_catalog_uses_the_shipped_calibration_fit(db: None) -> None:
    """The database lists rows by slug, the files in their own order: both must find the shipped fit, or every
    process would refit the corpus (about 20 s) on its first plan."""
    from apps.planner.perf.calibration import load_fit

    assert load_fit(catalog_snapshot()) is not None
    assert load_fit(load_snapshot()) is not None


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


def _import_skypilot(tmp_path: Path, provider: str, *rows: str) -> None:
    vms = tmp_path / "vms.csv"
    vms.write_text(SKYPILOT_HEADER + "".join(f"{row}\n" for row in rows))
    call_command("import_prices", "--skypilot", str(vms), "--provider", provider)


def test_import_prices_refreshes_one_provider_from_skypilot(db: None, tmp_path: Path) -> None:
    lambda_before = CloudOffer.objects.filter(provider="lambda").count()
    assert lambda_before > 2

    _import_skypilot(
        tmp_path,
        "lambda",
        "gpu_8x_h100_sxm5,H100,8,208,1800,23.92,,us-east-1,us-east-1a",
        "gpu_8x_h100_sxm5,H100,8,208,1800,21.50,,us-west-1,us-west-1a",
        "gpu_1x_h100_pcie,H100,1,26,200,2.49,1.10,us-east-1,us-east-1a",
        "cpu_only,,,8,32,0.40,,us-east-1,us-east-1a",
    )

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
    r1 = client.get("/api/v1/catalog/models/deepseek-r1/").json()
    assert (r1["attention"], r1["kv_lora_rank"], r1["kv_bytes_per_token_bf16"]) == ("mla", 512, 70272)
    assert client.get("/api/v1/catalog/models/gpt-oss-120b/").json()["kv_bytes_per_token_bf16_8k"] == 37440
    offers = client.get("/api/v1/catalog/offers/?gpu=h200&page_size=200").json()["results"]
    assert offers
    assert all(o["gpu"] == "h200" for o in offers)
    assert (
        client.get("/api/v1/catalog/offers/?max_usd_per_hour=cheap").json()["errors"][0]["field"]
        == "max_usd_per_hour"
    )
    assert client.get("/api/v1/catalog/gpus/h900/").status_code == 404


def test_import_prices_skips_fractional_gpus(db: None, tmp_path: Path) -> None:
    _import_skypilot(
        tmp_path,
        "aws",
        "g6f.xlarge,L4,0.125,4,16,0.2,,us-east-1,us-east-1a",
        "g6.xlarge,L4,1,4,16,0.80,0.39,us-east-1,us-east-1a",
    )

    offers = CloudOffer.objects.filter(provider="aws")
    assert [(o.instance_type, o.gpu_count, o.gpu.slug if o.gpu else None) for o in offers] == [
        ("g6.xlarge", 1, "l4")
    ]


def test_new_gpu_fields_are_loaded(db: None) -> None:
    gpus = {g.slug: g for g in GpuType.objects.all()}

    assert {
        s: gpus[s].scale_up_domain_gpus for s in ("h100-sxm", "b300", "gb200", "gb300", "h100-nvl", "l4")
    } == {
        "h100-sxm": 8,
        "b300": 8,
        "gb200": 72,
        "gb300": 72,
        "h100-nvl": 2,
        "l4": 1,
    }
    assert (gpus["b300"].memory_gb, gpus["b300"].scale_out_gbit_per_gpu, gpus["b300"].fp4_native) == (
        288,
        800,
        True,
    )
    assert gpus["h200"].scale_out_gbit_per_gpu == 400
    assert gpus["rtx-5090"].pcie_only
    assert gpus["rtx-pro-6000"].pcie_only
    assert not gpus["h20"].pcie_only
    assert gpus["mi355x"].architecture == "cdna4"
    assert gpus["mi355x"].fp4_native
    assert gpus["mi355x"].fp6_tflops == gpus["mi355x"].fp4_tflops  # CDNA4 runs FP6 at the FP4 rate
    assert gpus["b200"].fp6_tflops == gpus["b200"].fp8_tflops  # Blackwell runs FP6 at the FP8 rate
    assert gpus["h20"].memory_bandwidth_tbps == 4.0
    assert gpus["h20"].bf16_tflops == 148
    assert all(g.source for g in gpus.values())


def test_calibration_corpus_gpus_are_loaded_with_their_specs(db: None) -> None:
    gpus = {g.slug: g for g in GpuType.objects.all()}

    gh200 = gpus["gh200"]
    # the 96 GB HBM3 superchip of TensorRT-LLM's perf overview: H100-class tensor rates, 4 TB/s, one GPU per node
    assert (gh200.memory_gb, gh200.memory_bandwidth_tbps, gh200.architecture) == (96, 4.0, "hopper")
    assert (gh200.fp8_tflops, gh200.interconnect_gbps, gh200.scale_up_domain_gpus) == (1979, 900, 1)
    assert "NVLink-C2C" in gh200.interconnect
    pcie, sxm = gpus["a100-80gb-pcie"], gpus["a100-80gb"]
    assert (pcie.bf16_tflops, pcie.memory_gb) == (sxm.bf16_tflops, sxm.memory_gb)
    assert pcie.memory_bandwidth_tbps < sxm.memory_bandwidth_tbps
    assert (pcie.tdp_w, sxm.tdp_w, pcie.scale_up_domain_gpus) == (300, 400, 1)
    a6000 = gpus["rtx-a6000"]
    assert (a6000.memory_gb, a6000.memory_bandwidth_tbps, a6000.bf16_tflops) == (48, 0.768, 154.8)
    assert (a6000.architecture, a6000.fp8_native) == ("ampere", False)
    # the workstation part runs BF16 MMA with FP32 accumulate at twice the GeForce 3090's rate
    assert (a6000.bf16_tflops or 0) > 2 * (gpus["rtx-3090"].bf16_tflops or 0)
    mi350x, mi355x = gpus["mi350x"], gpus["mi355x"]
    assert (mi350x.architecture, mi350x.memory_gb, mi350x.tdp_w, mi350x.fp4_native) == (
        "cdna4",
        288,
        1000,
        True,
    )
    # 7 Infinity Fabric links of 153.6 GB/s on both parts of the MI350 series
    assert mi350x.interconnect_gbps == mi355x.interconnect_gbps == 1075
    # same silicon at 2.2 instead of 2.4 GHz
    assert mi350x.bf16_tflops == pytest.approx((mi355x.bf16_tflops or 0) * 2.2 / 2.4, rel=0.001)
    assert all(gpus[s].source for s in ("gh200", "a100-80gb-pcie", "rtx-a6000", "mi350x"))


def test_cloud_offers_of_the_added_gpus_map_to_them(db: None) -> None:
    offers = CloudOffer.objects.select_related("gpu")
    slugs = {(o.provider, o.instance_type): o.gpu.slug if o.gpu else None for o in offers}

    assert slugs[("lambda", "gpu_1x_gh200")] == "gh200"
    assert slugs[("lambda", "gpu_1x_a6000")] == "rtx-a6000"
    assert slugs[("hyperstack", "n3-RTX-A6000x1")] == "rtx-a6000"
    assert slugs[("hyperstack", "n3-A100x1")] == "a100-80gb-pcie"
    assert slugs[("hyperstack", "n3-A100x8-NVLink")] == "a100-80gb-pcie"
    assert slugs[("lambda", "gpu_1x_rtx6000")] is None  # the Turing Quadro RTX 6000, not an RTX A6000


def test_native_checkpoint_formats_are_quantizations(db: None) -> None:
    mxfp4 = Quantization.objects.get(slug="mxfp4")
    fp8_block = Quantization.objects.get(slug="fp8-block")

    assert mxfp4.weight_bytes_per_param == 17 / 32  # 32 four-bit values + one E8M0 scale byte
    assert mxfp4.native_families == ["blackwell", "cdna4"]
    assert set(mxfp4.engines) == {"vllm", "sglang", "trtllm", "llamacpp"}
    assert "Hopper" in mxfp4.notes
    assert "Marlin" in mxfp4.notes
    assert fp8_block.compute_dtype == "fp8"
    assert "hopper" in fp8_block.native_families
    natives = {
        m.slug: (m.native_quant, m.native_quant_scope)
        for m in ModelArchitecture.objects.all()
        if m.native_quant
    }
    assert natives == {
        "gpt-oss-20b": ("mxfp4", "experts"),
        "gpt-oss-120b": ("mxfp4", "experts"),
        "deepseek-r1": ("fp8-block", "linear"),
        "deepseek-v3.1": ("fp8-block", "linear"),
        "deepseek-v3.2": ("fp8-block", "linear"),
        "kimi-k2": ("fp8-block", "linear"),
    }
    assert all(Quantization.objects.filter(slug=quant).exists() for quant, _ in natives.values())


def test_api_prices_name_the_catalog_model_they_serve(db: None) -> None:
    known = set(ModelArchitecture.objects.values_list("slug", flat=True))
    served = {p.model_slug for p in ApiPrice.objects.exclude(model_slug="")}

    assert served <= known
    # every model the issue adds has at least one hosted price to compare with
    assert {"gpt-oss-20b", "gpt-oss-120b", "deepseek-r1", "deepseek-v3.1", "qwen3-30b-a3b", "qwen3-235b-a22b",
            "llama-4-scout", "llama-4-maverick", "gemma-3-27b", "mistral-small-3.2", "qwen3-8b", "llama-2-7b",
            "llama-2-70b"} <= served  # fmt: skip
    assert ApiPrice.objects.get(provider="Groq", model="openai/gpt-oss-120b").output_usd_per_mtok == 0.6


def test_hyperscaler_offers_map_to_catalog_gpus(db: None) -> None:
    offers = CloudOffer.objects.filter(provider__in=["aws", "gcp", "azure"]).select_related("gpu")

    assert {o.provider for o in offers} == {"aws", "gcp", "azure"}
    assert all(o.gpu is not None and o.gpu_count >= 1 for o in offers)
    by_type = {o.instance_type: o for o in offers}
    slugs = {name: offer.gpu.slug if offer.gpu else None for name, offer in by_type.items()}
    assert slugs["p6-b300.48xlarge"] == "b300"
    assert slugs["a3-megagpu-8g"] == "h100-sxm"
    assert by_type["a4-highgpu-8g"].ondemand_usd_per_hour == 90.216
    assert slugs["Standard_NC40ads_H100_v5"] == "h100-nvl"  # NCads H100 v5 carries the H100 NVL
    assert slugs["Standard_ND96isr_H100_v5"] == "h100-sxm"
    assert by_type["Standard_ND96isr_H100_v5"].gpu_count == 8


def test_models_csv_kv_columns_agree_with_the_spec() -> None:
    import csv

    from apps.catalog.specs import DATA_DIR

    with (DATA_DIR / "models.csv").open(newline="") as handle:
        rows = {row["slug"]: row for row in csv.DictReader(handle)}
    for model in load_models():
        row = rows[model.slug]
        assert int(row["kv_bytes_per_token_bf16"]) == model.kv_bytes_per_token(), model.slug
        assert int(row["kv_bytes_per_token_bf16_8k"]) == round(
            model.kv_bytes_per_token(context_tokens=8192)
        ), model.slug
