"""The hourly replica plan becomes KEDA cron triggers that reproduce it hour by hour."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.manifests.schedule import ReplicaWindow, floor_replicas, replica_windows
from tests.manifests.helpers import BUSINESS_HOURS, bundle, k8s, make_request

MINUTES_PER_DAY = 24 * 60


def _minute_of_day(cron: str) -> int:
    minute, hour, *rest = cron.split()
    assert rest == ["*", "*", "*"], cron
    return int(hour) * 60 + int(minute)


def _active(trigger: dict[str, Any], minute: int) -> bool:
    """KEDA's cron scaler: active from start until end, wrapping past midnight when end comes first."""
    start = _minute_of_day(trigger["metadata"]["start"])
    end = _minute_of_day(trigger["metadata"]["end"])
    return start <= minute < end if start < end else minute >= start or minute < end


def _desired(scaled_object: dict[str, Any], minute: int) -> int:
    """The HPA follows the largest metric; cron triggers outside their window contribute nothing."""
    crons = [t for t in scaled_object["spec"]["triggers"] if t["type"] == "cron"]
    active = [int(t["metadata"]["desiredReplicas"]) for t in crons if _active(t, minute)]
    floor: int = scaled_object["spec"]["minReplicaCount"]
    return max([floor, *active])


def _cron_triggers(scaled_object: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        t["metadata"] | {"name": t["name"]} for t in scaled_object["spec"]["triggers"] if t["type"] == "cron"
    ]


def test_business_hours_become_one_window_per_step() -> None:
    # given the plan: 1 replica at night, 2-4-6 in the morning ramp, 6 all day, 4-2 in the evening
    scaled_object = k8s(bundle("vllm", replicas_by_hour=BUSINESS_HOURS), "scaledobject")

    # then: one trigger per run above the floor, each starting 10 minutes early (warm load of 16 GB)
    assert scaled_object["spec"]["minReplicaCount"] == 1
    assert _cron_triggers(scaled_object) == [
        {"name": "hours-07-08", "timezone": "Etc/UTC", "start": "50 6 * * *", "end": "0 8 * * *", "desiredReplicas": "2"},
        {"name": "hours-08-09", "timezone": "Etc/UTC", "start": "50 7 * * *", "end": "0 9 * * *", "desiredReplicas": "4"},
        {"name": "hours-09-17", "timezone": "Etc/UTC", "start": "50 8 * * *", "end": "0 17 * * *", "desiredReplicas": "6"},
        {"name": "hours-17-18", "timezone": "Etc/UTC", "start": "50 16 * * *", "end": "0 18 * * *", "desiredReplicas": "4"},
        {"name": "hours-18-19", "timezone": "Etc/UTC", "start": "50 17 * * *", "end": "0 19 * * *", "desiredReplicas": "2"},
    ]  # fmt: skip


def test_a_plain_office_day() -> None:
    curve = (1,) * 9 + (4,) * 8 + (1,) * 7
    scaled_object = k8s(bundle("sglang", replicas_by_hour=curve, prescaled=True), "scaledobject")
    assert _cron_triggers(scaled_object) == [
        {
            "name": "hours-09-17",
            "timezone": "Etc/UTC",
            "start": "0 9 * * *",
            "end": "0 17 * * *",
            "desiredReplicas": "4",
        }
    ]
    assert scaled_object["spec"]["maxReplicaCount"] >= 4


def test_a_run_across_midnight_is_one_window() -> None:
    curve = (3, 3) + (1,) * 20 + (3, 3)
    assert replica_windows(curve, floor=1) == [ReplicaWindow(start_hour=22, hours=4, replicas=3)]
    [trigger] = _cron_triggers(k8s(bundle("vllm", replicas_by_hour=curve, prescaled=True), "scaledobject"))
    assert (trigger["start"], trigger["end"]) == ("0 22 * * *", "0 2 * * *")


def test_a_flat_plan_needs_no_cron_and_holds_its_level_as_the_floor() -> None:
    scaled_object = k8s(bundle("vllm", replicas_by_hour=(3,) * 24), "scaledobject")
    assert _cron_triggers(scaled_object) == []
    assert scaled_object["spec"]["minReplicaCount"] == 3
    assert [t["type"] for t in scaled_object["spec"]["triggers"]] == ["prometheus"]


def test_min_replicas_above_the_quiet_hours_is_the_floor() -> None:
    scaled_object = k8s(bundle("vllm", min_replicas=2), "scaledobject")
    assert scaled_object["spec"]["minReplicaCount"] == 2
    assert all(int(t["desiredReplicas"]) > 2 for t in _cron_triggers(scaled_object))


def test_the_warmup_lead_never_reaches_past_the_gap_before_a_window() -> None:
    window = ReplicaWindow(start_hour=1, hours=23, replicas=5)
    assert window.cron_start(lead_min=180) != window.cron_end()
    assert _minute_of_day(window.cron_start(lead_min=180)) == 5  # 5 minutes after the gap opens at 00:00


def test_queue_trigger_uses_the_engines_gauge_in_current_keda_syntax() -> None:
    scaled_object = k8s(bundle("tgi"), "scaledobject")
    [queue] = [t for t in scaled_object["spec"]["triggers"] if t["type"] == "prometheus"]
    assert queue["metricType"] == "AverageValue"
    assert "metricName" not in queue["metadata"]
    assert all(isinstance(v, str) for v in queue["metadata"].values())
    assert queue["metadata"]["query"].startswith("sum(tgi_queue_size{")
    assert scaled_object["spec"]["fallback"]["replicas"] == max(BUSINESS_HOURS)


def test_without_keda_an_hpa_scales_on_the_queue_and_the_adapter_rule_comes_along() -> None:
    files = bundle("vllm", use_keda=False)
    hpa = k8s(files, "hpa")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    assert "k8s/60-scaledobject.yaml" not in files
    assert "extras/prometheus-adapter-values.yaml" in files
    assert "replicas" not in k8s(files, "deployment")["spec"]


def test_an_engine_without_queue_metric_scales_on_the_schedule_alone() -> None:
    files = bundle("transformers")
    scaled_object = k8s(files, "scaledobject")
    assert {t["type"] for t in scaled_object["spec"]["triggers"]} == {"cron"}
    assert "fallback" not in scaled_object["spec"]
    assert "exports no queue metric" in files["README.md"]


def test_an_engine_without_queue_metric_and_no_keda_holds_the_peak() -> None:
    files = bundle("transformers", use_keda=False)
    assert not any("hpa" in path or "scaledobject" in path for path in files)
    assert k8s(files, "deployment")["spec"]["replicas"] == max(BUSINESS_HOURS)


curves = st.lists(st.integers(min_value=1, max_value=9), min_size=24, max_size=24)


@settings(max_examples=60, deadline=None)
@given(curve=curves, min_replicas=st.integers(min_value=1, max_value=3), prescaled=st.booleans())
def test_cron_triggers_reproduce_any_plan_hour_by_hour(
    curve: list[int], min_replicas: int, prescaled: bool
) -> None:
    from apps.manifests.build import build_bundle

    files = build_bundle(
        make_request("vllm", replicas_by_hour=tuple(curve), min_replicas=min_replicas, prescaled=prescaled)
    )
    scaled_object = k8s(files, "scaledobject")
    floor = floor_replicas(curve, min_replicas)

    for hour, planned in enumerate(curve):
        # Mid-hour the schedule asks for exactly the plan (never less than the warm floor).
        assert _desired(scaled_object, hour * 60 + 30) == max(planned, floor)
        # Just before the hour it already asks for at least the coming hour's plan (the warm-up lead).
        if not prescaled:
            assert _desired(scaled_object, (hour * 60 - 1) % MINUTES_PER_DAY) >= max(planned, floor)
