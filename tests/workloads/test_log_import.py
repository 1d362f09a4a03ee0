"""Importing a request log into a new workload: the service, the REST API, the command and the page."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework import serializers

from apps.workloads import services
from apps.workloads.models import Workload
from apps.workloads.serializers import validate_document
from tests.conftest import TeamWorld
from tests.workloads import logfiles
from tests.workloads.logfiles import Request, arrivals, encoded, requests, utc

MONDAY = utc("2024-05-06T00:00:00")


def day_log() -> list[Request]:
    times = list(arrivals(start_s=MONDAY, seconds=86_400, rate_per_s=0.1, seed=2))
    return requests(times)


DAY = day_log()
AZURE = encoded(logfiles.azure_2024_csv(DAY))


class Unreadable:
    """A file that fails the test if anything reads it."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the upload was read")


def with_bad_rows(data: bytes) -> bytes:
    header, first, rest = data.split(b"\n", 2)
    return b"\n".join([header, first, b"yesterday,100,10", b"2024-05-06 10:00:00,0,5", rest])


def test_the_service_saves_a_workload_the_document_validator_accepts(world: TeamWorld) -> None:
    # when a day of Azure trace is imported
    workload = services.workload_import_log(
        team=world.team_a,
        source=io.BytesIO(with_bad_rows(AZURE)),
        options={"name": "azure-day", "model": "llama-3.1-8b", "shared_prefix_tokens": 50},
        user=world.alice,
        file_name="AzureLLMInferenceTrace_code_1week.csv",
    )

    # then it holds the derived curve, histograms and burstiness, with the targets' defaults
    document = workload.to_document()
    assert validate_document(document)
    assert document["traffic"]["hourly_requests_per_s"] == pytest.approx([0.1] * 24, rel=0.2)
    assert isinstance(document["traffic"]["burstiness_cv"], list)
    assert sum(document["prompt_tokens"]["histogram"]["counts"]) == len(DAY)
    assert document["slo"] == {"ttft_p95_ms": 800.0, "itl_p95_ms": 60.0}
    assert document["quality"]["allowed_quantizations"] == ["bf16", "fp8", "awq-int4"]
    assert document["prefix"] == {"shared_prefix_tokens": 50, "multi_turn_reuse_fraction": 0.0}
    summary = workload.import_summary
    assert summary["rows_used"] == len(DAY)
    assert summary["skipped_by_reason"] == {"bad_timestamp": 1, "zero_tokens": 1}
    assert [e["line"] for e in summary["skipped_examples"]] == [3, 4]
    assert summary["file_name"] == "AzureLLMInferenceTrace_code_1week.csv"
    assert workload.created_by == world.alice


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": "x", "model": "no-such-model"}, "model"),
        ({"name": "bad/name", "model": "llama-3.1-8b"}, "name"),
        ({"name": "x", "model": "llama-3.1-8b", "log_format": "splunk"}, "log_format"),
        ({"name": "x", "model": "llama-3.1-8b", "ttft_p95_ms": "inf"}, "ttft_p95_ms"),
        (
            {"name": "x", "model": "llama-3.1-8b", "allowed_quantizations": "bf16,int3"},
            "allowed_quantizations",
        ),
        (
            {"name": "x", "model": "llama-3.1-8b", "multi_turn_reuse_fraction": 1.5},
            "multi_turn_reuse_fraction",
        ),
        ({"name": "x", "model": "llama-3.1-8b", "colour": "red"}, "colour"),
        ({"name": "alice-chat", "model": "llama-3.1-8b"}, "name"),
    ],
)
def test_options_are_checked_before_the_file_is_read(
    world: TeamWorld, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(serializers.ValidationError) as caught:
        services.workload_import_log(
            team=world.team_a, source=Unreadable(), options=options, user=world.alice
        )

    assert field in caught.value.detail


def test_a_file_that_fails_leaves_no_workload(world: TeamWorld) -> None:
    before = Workload.objects.count()

    with pytest.raises(serializers.ValidationError) as caught:
        services.workload_import_log(
            team=world.team_a,
            source=io.BytesIO(b"TIMESTAMP,ContextTokens,GeneratedTokens\ninf,1,1\n1e20,2,2\n"),
            options={"name": "broken", "model": "llama-3.1-8b"},
            user=world.alice,
        )

    assert "No usable rows" in str(caught.value.detail["file"][0])  # type: ignore[index,call-overload]
    assert Workload.objects.count() == before


def test_requests_longer_than_the_models_context_are_skipped(world: TeamWorld) -> None:
    rows = [*DAY[:500], Request(MONDAY + 100, 131_000, 500)]

    workload = services.workload_import_log(
        team=world.team_a,
        source=io.BytesIO(encoded(logfiles.plain_csv(rows))),
        options={"name": "long", "model": "llama-3.1-8b"},
        user=world.alice,
    )

    assert workload.import_summary["skipped_by_reason"] == {"over_context": 1}
    assert workload.prompt_tokens["max"] < 131_000


def test_a_viewer_cannot_import(world: TeamWorld) -> None:
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.workload_import_log(
            team=world.team_a,
            source=Unreadable(),
            options={"name": "x", "model": "llama-3.1-8b"},
            user=world.victor,
        )


# REST API


def test_api_imports_a_log_sent_as_the_body(world: TeamWorld) -> None:
    body = encoded(logfiles.litellm_csv(DAY, failed_every=50))

    response = world.api_for(world.alice).post(
        "/api/v1/workloads/import-log/?name=from-litellm&model=llama-3.1-8b&team=team-a"
        "&allowed_quantizations=fp8&allowed_quantizations=bf16&ttft_p95_ms=1500",
        body,
        content_type="text/csv",
    )

    assert response.status_code == 201, response.content
    out = response.json()
    assert out["name"] == "from-litellm"
    assert out["team"] == "team-a"
    assert out["quality"]["allowed_quantizations"] == ["fp8", "bf16"]
    assert out["slo"]["ttft_p95_ms"] == 1500
    assert out["import_summary"]["format"] == "litellm"
    assert out["import_summary"]["skipped_by_reason"] == {"failed_request": len(DAY) // 50}
    assert "histogram" in out["prompt_tokens"]
    assert len(out["traffic"]["hourly_requests_per_s"]) == 24


def test_api_imports_a_multipart_file_with_a_named_format(world: TeamWorld) -> None:
    upload = io.BytesIO(encoded(logfiles.openai_batch_jsonl(DAY)))
    upload.name = "batch_output.jsonl"

    response = world.api_for(world.alice).post(
        "/api/v1/workloads/import-log/?name=from-batch&model=llama-3.1-8b&log_format=openai",
        {"file": upload},
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert response.json()["import_summary"]["file_name"] == "batch_output.jsonl"


@pytest.mark.parametrize(
    ("query", "body", "field", "message"),
    [
        ("name=x&model=llama-3.1-8b", b"", "file", "The request body is empty"),
        ("name=x&model=llama-3.1-8b", b"when,a,b\n1,2,3\n", "file", "lacks the columns of a known format"),
        (
            "name=x&model=llama-3.1-8b&log_format=azure",
            AZURE[:0] + b"timestamp,input_tokens,output_tokens\n",
            "file",
            "for --format azure",
        ),
        ("model=llama-3.1-8b", AZURE, "name", "required"),
        ("name=x&model=llama-3.1-8b&team=team-b", AZURE, "team", "Unknown team"),
        ("name=x&model=llama-3.1-8b&shared_prefix_tokens=" + "9" * 400, AZURE, "shared_prefix_tokens", ""),
        (
            "name=x&model=llama-3.1-8b&shared_prefix_tokens=100000",
            AZURE,
            "prefix.shared_prefix_tokens",
            "median prompt",
        ),
    ],
)
def test_api_errors_name_the_field(
    world: TeamWorld, query: str, body: bytes, field: str, message: str
) -> None:
    response = world.api_for(world.alice).post(
        f"/api/v1/workloads/import-log/?{query}", body, content_type="text/csv"
    )

    assert response.status_code == 400, response.content
    error = response.json()["errors"][0]
    assert error["field"] == field
    assert message in error["message"]


def test_api_refuses_an_upload_over_the_cap_with_the_cap_in_the_message(
    world: TeamWorld, settings: Any
) -> None:
    settings.UPLOAD_MAX_BYTES = 1000

    response = world.api_for(world.alice).post(
        "/api/v1/workloads/import-log/?name=big&model=llama-3.1-8b", AZURE, content_type="text/csv"
    )

    assert response.status_code == 413
    body = response.json()
    assert body["status"] == 413
    assert body["errors"][0]["field"] == "file"
    assert (
        f"Request body is {len(AZURE)} bytes; the limit is 1000 bytes (UPLOAD_MAX_BYTES)"
        in body["errors"][0]["message"]
    )
    assert not Workload.objects.filter(name="big").exists()


def test_api_viewer_is_refused(world: TeamWorld) -> None:
    response = world.api_for(world.victor).post(
        "/api/v1/workloads/import-log/?name=x&model=llama-3.1-8b&team=team-a", AZURE, content_type="text/csv"
    )

    assert response.status_code == 403


# The command


def test_command_prints_the_new_workloads_id(world: TeamWorld, tmp_path: Path) -> None:
    log = tmp_path / "usage.jsonl"
    log.write_bytes(encoded(logfiles.openai_chat_jsonl(DAY)))
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import_workload", "--log", str(log), "--name", "cli-import", "--model", "llama-3.1-8b",
        "--team", "team-a", "--user", "alice", "--allowed-quantizations", "fp8", stdout=out, stderr=err,
    )  # fmt: skip

    workload = Workload.objects.get(name="cli-import")
    assert out.getvalue().strip() == str(workload.pk)
    assert f"{len(DAY)} of {len(DAY)} rows used (openai format" in err.getvalue()
    assert workload.allowed_quantizations == ["fp8"]


def test_command_with_a_wrong_format_fails_in_one_line(world: TeamWorld, tmp_path: Path) -> None:
    log = tmp_path / "trace.csv"
    log.write_bytes(AZURE)

    with pytest.raises(
        CommandError, match=r"file: Line 1: the header .* lacks the columns for --format litellm"
    ):
        call_command(
            "import_workload", "--log", str(log), "--format", "litellm", "--name", "n", "--model", "llama-3.1-8b",
            "--team", "team-a", "--user", "alice",
        )  # fmt: skip
    with pytest.raises(CommandError, match="--name is required with --log"):
        call_command("import_workload", "--log", str(log), "--team", "team-a", "--user", "alice")
    with pytest.raises(CommandError, match="Viewers cannot change"):
        call_command(
            "import_workload", "--log", str(log), "--name", "n", "--model", "llama-3.1-8b",
            "--team", "team-a", "--user", "victor",
        )  # fmt: skip


def test_command_still_imports_a_workload_file(world: TeamWorld, tmp_path: Path) -> None:
    import json

    from tests.factories import workload_document

    path = tmp_path / "w.json"
    path.write_text(json.dumps(workload_document(name="from-file")))
    out = io.StringIO()

    call_command(
        "import_workload", "--workload-file", str(path), "--team", "team-a", "--user", "alice", stdout=out
    )

    assert "workload from-file saved" in out.getvalue()


# The page


def page_data(**overrides: Any) -> dict[str, Any]:
    upload = io.BytesIO(with_bad_rows(AZURE))
    upload.name = "trace.csv"
    data: dict[str, Any] = {
        "log_file": upload, "log_format": "", "name": "page-import", "model": "llama-3.1-8b",
        "ttft_p95_ms": 900, "itl_p95_ms": 70, "allowed_quantizations": ["bf16", "fp8"],
        "shared_prefix_tokens": "", "multi_turn_reuse_pct": "",
    }  # fmt: skip
    data.update(overrides)
    return data


def test_page_imports_and_the_detail_page_shows_what_was_skipped(world: TeamWorld) -> None:
    client = world.client_for(world.alice)
    assert client.get("/workloads/import-log/").status_code == 200

    response = client.post("/workloads/import-log/?team=team-a", page_data())

    workload = Workload.objects.get(name="page-import")
    assert response.status_code == 302
    assert response["Location"] == workload.get_absolute_url()
    assert workload.ttft_p95_ms == 900
    detail = client.get(response["Location"]).content.decode()
    assert "Imported from a request log" in detail
    assert "trace.csv (azure format)" in detail
    assert "the timestamp is not a time in 2000..2099" in detail
    assert "Line 3: TIMESTAMP: &#x27;yesterday&#x27; is not a timestamp" in detail
    assert 'id="length-figures"' in detail
    assert "burstiness" in detail


def test_page_through_htmx_redirects_the_client(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/import-log/?team=team-a", page_data(name="htmx-import"), HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == Workload.objects.get(name="htmx-import").get_absolute_url()


def bad_log() -> io.BytesIO:
    bad = io.BytesIO(b"timestamp,input_tokens,output_tokens\nnever,1,1\n")
    bad.name = "bad.csv"
    return bad


def test_page_errors_land_on_their_fields(world: TeamWorld) -> None:
    response = world.client_for(world.alice).post(
        "/workloads/import-log/?team=team-a",
        page_data(log_file=bad_log(), multi_turn_reuse_pct=250),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 400
    form = response.context["form"]
    assert "multi_turn_reuse_pct" in form.errors
    assert not Workload.objects.filter(name="page-import").exists()
    response = world.client_for(world.alice).post(
        "/workloads/import-log/?team=team-a", page_data(log_file=bad_log())
    )
    assert "No usable rows" in response.context["form"].errors["log_file"][0]
    assert '<form id="log-import"' in response.content.decode()


def test_page_refuses_viewers_and_other_teams(world: TeamWorld) -> None:
    assert world.client_for(world.victor).get("/workloads/import-log/").status_code == 403
    alice = world.client_for(world.alice)
    assert alice.get("/workloads/import-log/?team=team-b").status_code == 404


def test_page_refuses_an_upload_over_the_cap(world: TeamWorld, settings: Any) -> None:
    settings.UPLOAD_MAX_BYTES = 1000

    response = world.client_for(world.alice).post("/workloads/import-log/?team=team-a", page_data())

    assert response.status_code == 413
    assert "the limit is 1000 bytes (UPLOAD_MAX_BYTES)" in response.content.decode()
    assert not Workload.objects.filter(name="page-import").exists()


def test_editing_through_the_form_keeps_what_the_log_gave_unless_it_is_changed(world: TeamWorld) -> None:
    from apps.workloads.forms import WorkloadForm
    from tests.workloads.test_pages import form_data

    workload = services.workload_import_log(
        team=world.team_a,
        source=io.BytesIO(AZURE),
        options={"name": "kept", "model": "llama-3.1-8b"},
        user=world.alice,
    )
    initial = WorkloadForm.initial_from(workload)
    fields = form_data(team=world.team_a.pk, name="kept", allowed_quantizations=["fp8"])
    fields.update({key: initial[key] for key in initial if key.startswith(("prompt_", "output_", "hourly"))})
    client = world.client_for(world.alice)

    # an edit of the quality bar keeps the histograms and the burstiness
    assert client.post(f"/workloads/{workload.pk}/edit/", fields).status_code == 302
    workload.refresh_from_db()
    assert "histogram" in workload.prompt_tokens
    assert "burstiness_cv" in workload.traffic_profile

    # a hand-edited p50 drops the prompt histogram it no longer matches, not the output one
    fields["prompt_p50"] = workload.prompt_tokens["p50"] + 1
    assert client.post(f"/workloads/{workload.pk}/edit/", fields).status_code == 302
    workload.refresh_from_db()
    assert "histogram" not in workload.prompt_tokens
    assert "histogram" in workload.output_tokens
