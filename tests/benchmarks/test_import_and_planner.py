"""`manage.py import_benchmark` and the planner's view of measurements (`measured_points`, "measured beats
predicted" through `manage.py predict`)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.benchmarks import services
from apps.benchmarks.models import Measurement, SourceKind
from apps.benchmarks.selectors import measured_points
from tests.benchmarks.conftest import level, result_json
from tests.conftest import TeamWorld


def _write(tmp_path: Path, data: Any, name: str = "result.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_import_loads_every_level_with_its_provenance(db: Any, result_file: Path) -> None:
    out = StringIO()

    call_command("import_benchmark", str(result_file), stdout=out)

    rows = list(Measurement.objects.order_by("level_index"))
    assert [m.concurrency for m in rows] == [1, 4]
    first = rows[0]
    assert (first.source_kind, first.source, first.run, first.team) == (
        SourceKind.IMPORT,
        "imported file result.json",
        None,
        None,
    )
    assert (first.accelerator, first.accelerator_model, first.driver_version, first.cuda_version) == (
        "h100-sxm",
        "NVIDIA H100 80GB HBM3",
        "550.54.15",
        "12.4",
    )
    assert (first.engine, first.engine_version, first.host_name) == ("vllm", "0.11.0", "air-gapped-7")
    assert (first.isl, first.osl, first.ttft_p95_ms, first.tpot_p50_ms) == (512, 128, 55.0, 32.0)
    assert len(first.samples) == 3
    assert first.measured_at.isoformat().startswith("2026-11-20T10:05")
    assert "Imported 2 measurement(s)" in out.getvalue()


def test_import_attached_to_a_workload_belongs_to_its_team(world: TeamWorld, result_file: Path) -> None:
    call_command(
        "import_benchmark", str(result_file), "--workload", str(world.workload_a.pk), stdout=StringIO()
    )

    assert set(Measurement.objects.values_list("team", "workload")) == {
        (world.team_a.pk, world.workload_a.pk)
    }


def test_importing_the_same_file_twice_is_refused(db: Any, result_file: Path) -> None:
    call_command("import_benchmark", str(result_file), stdout=StringIO())

    with pytest.raises(CommandError, match="already imported"):
        call_command("import_benchmark", str(result_file), stdout=StringIO())
    assert Measurement.objects.count() == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not JSON \(line 1"),
        ([1, 2], "body: A result.json object is required"),
        (result_json(levels="many"), "levels: 'many' is not of type 'array'"),
        (result_json(schema_version=2), "schema_version"),
        (
            result_json(hardware=result_json()["hardware"] | {"accelerator_model": "Mystery GPU 9000"}),
            "--accelerator",
        ),
    ],
)
def test_bad_files_fail_with_one_clear_line(db: Any, tmp_path: Path, content: Any, message: str) -> None:
    with pytest.raises(CommandError, match=message) as caught:
        call_command("import_benchmark", str(_write(tmp_path, content)), stdout=StringIO())

    assert "\n" not in str(caught.value)
    assert not Measurement.objects.exists()


def test_missing_file_and_unknown_workload_are_named(db: Any, tmp_path: Path, result_file: Path) -> None:
    with pytest.raises(CommandError, match="cannot read it"):
        call_command("import_benchmark", str(tmp_path / "nope.json"))
    with pytest.raises(CommandError, match="no such workload"):
        call_command("import_benchmark", str(result_file), "--workload", "999999")


def test_the_accelerator_can_be_named_when_the_probe_cannot_tell(db: Any, tmp_path: Path) -> None:
    data = result_json(hardware=result_json()["hardware"] | {"accelerator_model": "Mystery GPU 9000"})

    call_command("import_benchmark", str(_write(tmp_path, data)), "--accelerator", "h200", stdout=StringIO())

    assert set(Measurement.objects.values_list("accelerator", flat=True)) == {"h200"}


# ---------------------------------------------------------------------------------------------- planner


def test_measured_points_skip_what_does_not_describe_the_model(db: Any) -> None:
    services.measurements_import(result=result_json(), file_name="good.json")
    services.measurements_import(
        result=result_json(
            model_info={
                "dummy_weights": True,
                "shrunk": True,
                "architecture": {"layers": 32, "hidden": 4096},
            },
            osl=64,
        ),
        file_name="shrunk.json",
    )
    services.measurements_import(
        result=result_json(levels=[level(None, rate=2.0), level(8, ok=1, failed=2)], osl=32),
        file_name="mixed.json",
    )

    points = measured_points()

    assert [(p.concurrency, p.osl, p.source.split(",")[0]) for p in points] == [
        (1, 8, "imported file good.json on air-gapped-7"),
        (4, 8, "imported file good.json on air-gapped-7"),
    ]
    point = points[0]
    assert (point.model_slug, point.gpu_slug, point.engine, point.quant, point.tp, point.gpu_count) == (
        "llama-3.1-8b",
        "h100-sxm",
        "vllm",
        "bf16",
        1,
        1,
    )
    assert (point.isl, point.output_tokens_per_s, point.ttft_p50_ms, point.tpot_ms) == (16, 25.0, 40.0, 32.0)
    shrunk = Measurement.objects.filter(source="imported file shrunk.json").first()
    assert shrunk is not None
    assert shrunk.shrunk
    assert "not representative" in shrunk.weights


def test_predict_quotes_a_measurement_for_the_exact_configuration(db: Any) -> None:
    data = result_json(isl=512, osl=128)
    for lvl in data["levels"]:
        lvl |= {"mean_prompt_tokens": 512.0, "mean_output_tokens": 128.0, "output_tokens_per_s": 1234.5}
    services.measurements_import(result=data, file_name="h100.json")
    out = StringIO()

    call_command(
        "predict",
        *("--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--quant", "bf16"),
        *("--isl", "512", "--osl", "128", "--concurrency", "4", "--json"),
        stdout=out,
    )

    predicted = json.loads(out.getvalue())
    assert predicted["source"] == "measured"
    assert predicted["output_tokens_per_s"] == pytest.approx(1234.5)


def test_a_teams_measurements_stay_with_that_team(world: TeamWorld) -> None:
    services.measurements_import(result=result_json(), file_name="bobs.json", workload=world.workload_b)
    services.measurements_import(result=result_json(), file_name="shared.json")

    def files(points: list[Any]) -> set[str]:
        return {p.source.split(" on ")[0] for p in points}

    assert files(measured_points(team=world.team_b)) == {
        "imported file bobs.json",
        "imported file shared.json",
    }
    assert files(measured_points(team=world.team_a)) == {"imported file shared.json"}
    assert files(measured_points()) == {"imported file shared.json"}
