"""Replicas over several nodes: a real plan's DeepSeek-R1 option on 2x8 H100 becomes a LeaderWorkerSet that
validates against the vendored CRD, scales through its scale subresource, and has no Compose form.

DeepSeek publishes R1 only in block-wise FP8 (apps/catalog/data/checkpoints.csv: no 16-bit release), and 671B
parameters at 2 bytes would not fit 16 H100s anyway (1,342 GB > 1,280 GB), so the two-node option is the FP8
checkpoint: 671 GB does not fit one 8x80 GB node either.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest

from apps.catalog.specs import load_snapshot
from apps.manifests import yamlio
from apps.manifests.build import ManifestError, build_bundle, request_from_plan
from apps.manifests.validate import validate_bundle
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from tests.manifests.helpers import flag_value

R1_WORKLOAD: dict[str, Any] = {
    "name": "r1-reasoning",
    "model": "deepseek-r1",
    "traffic": {"hourly_requests_per_s": [2.0] * 8 + [10.0] * 10 + [2.0] * 6},
    "prompt_tokens": {"mean": 1000, "p50": 800, "p95": 3000, "max": 6000},
    "output_tokens": {"mean": 400, "p50": 300, "p95": 1000, "max": 2000},
    "slo": {"ttft_p95_ms": 3000, "itl_p95_ms": 100},
    "quality": {"allowed_quantizations": ["bf16", "fp8", "fp8-block"]},
    "constraints": {
        "gpus": ["h100-sxm"],
        "providers": [],
        "max_gpus_per_replica": 16,
        "spot": False,
        "min_replicas": 1,
    },
}


@functools.cache
def _r1_plan(engine: str = "") -> dict[str, Any]:
    """The plan over every engine, or over one (so that its layouts are among the options shown)."""
    document = copy.deepcopy(R1_WORKLOAD)
    if engine:
        document["constraints"]["engines"] = [engine]
    return plan(workload_spec_from_dict(document), load_snapshot())


def _option(engine: str, parallelism: str) -> dict[str, Any]:
    options: list[dict[str, Any]] = [
        o for o in _r1_plan(engine)["options"] if o["parallelism"] == parallelism
    ]
    assert options, [(o["engine"], o["parallelism"]) for o in _r1_plan(engine)["options"]]
    return options[0]


def _bundle(option: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return build_bundle(request_from_plan(option, R1_WORKLOAD, _r1_plan(option["engine"])), **kwargs)


def _lws(files: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = yamlio.load_all(files["k8s/20-leaderworkerset.yaml"])[0]
    return document


def _containers(lws: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    group = lws["spec"]["leaderWorkerTemplate"]
    return (
        group["leaderTemplate"]["spec"]["containers"][0],
        group["workerTemplate"]["spec"]["containers"][0],
    )


def test_the_plan_offers_deepseek_r1_over_two_h100_nodes() -> None:
    two_node = [o for o in _r1_plan()["options"] if o["nodes"] == 2]
    assert two_node
    for option in two_node:
        assert option["gpu"] == "h100-sxm"
        assert option["gpus_per_replica"] == 16
        assert option["instances_per_replica"] == 2


@pytest.mark.parametrize(
    ("engine", "parallelism"), [("vllm", "DP16 EP16"), ("sglang", "DP16 EP16"), ("vllm", "TP8 PP2")]
)
def test_a_two_node_option_becomes_a_valid_leader_worker_set(engine: str, parallelism: str) -> None:
    # given the plan's two-node option
    option = _option(engine, parallelism)

    # when its bundle is built
    files = _bundle(option)

    # then it validates (the LeaderWorkerSet against the vendored lws v0.10.0 CRD) and has no Deployment
    assert validate_bundle(files) == []
    assert "k8s/20-deployment.yaml" not in files
    lws = _lws(files)
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2
    assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
    leader, worker = _containers(lws)
    for container in (leader, worker):
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus == "8"  # a node's share of the 16
    # the leader is node 0 and serves; the worker takes its index from LeaderWorkerSet and joins the leader
    rank = "--node-rank"
    assert flag_value(leader["args"], rank) == "0"
    assert flag_value(worker["args"], rank) == "$(LWS_WORKER_INDEX)"
    join = "--master-addr" if engine == "vllm" else "--dist-init-addr"
    assert flag_value(worker["args"], join).startswith("$(LWS_LEADER_ADDRESS)")
    assert flag_value(leader["args"], "--nnodes") == "2"


def test_vllm_expert_parallel_data_parallel_replica_spells_the_pinned_flags() -> None:
    leader, worker = _containers(_lws(_bundle(_option("vllm", "DP16 EP16"))))

    assert flag_value(leader["args"], "--data-parallel-size") == "16"
    assert "--enable-expert-parallel" in leader["args"]
    assert "--headless" in worker["args"]
    assert "--headless" not in leader["args"]
    assert "readinessProbe" in leader
    assert "readinessProbe" not in worker  # a headless host serves nothing


def test_sglang_workers_keep_a_health_probe_and_the_attention_dp_flags() -> None:
    leader, worker = _containers(_lws(_bundle(_option("sglang", "DP16 EP16"))))

    for container in (leader, worker):
        assert flag_value(container["args"], "--tp-size") == "16"
        assert flag_value(container["args"], "--attn-dp-size") == "16"
        assert flag_value(container["args"], "--ep-size") == "16"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health"


def test_autoscaling_targets_the_leader_worker_set_and_reads_the_leaders() -> None:
    option = _option("vllm", "DP16 EP16")
    files = _bundle(option)
    scaled = yamlio.load_all(files["k8s/60-scaledobject.yaml"])[0]
    lws = _lws(files)

    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": lws["metadata"]["name"],
    }
    assert "replicas" not in lws["spec"]  # KEDA owns it through the scale subresource
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert f'pod=~"{lws["metadata"]["name"]}-[0-9]+"' in query  # leaders only: <name>-<group>
    service = yamlio.load_all(files["k8s/30-service.yaml"])[0]
    assert service["spec"]["selector"]["llm-deployment-advisor/role"] == "leader"
    # the plan's busier hours become cron windows of whole groups
    cron = [t for t in scaled["spec"]["triggers"] if t["type"] == "cron"]
    hours = option["replicas_by_hour"]
    assert max(hours) > min(hours)
    assert sorted(t["metadata"]["desiredReplicas"] for t in cron) == sorted(
        {str(r) for r in hours if r > min(hours)}
    )


def test_hpa_targets_the_leader_worker_set_too() -> None:
    option = _option("vllm", "TP8 PP2")
    files = build_bundle(request_from_plan(option, R1_WORKLOAD, _r1_plan(), use_keda=False))

    hpa = yamlio.load_all(files["k8s/60-hpa.yaml"])[0]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "LeaderWorkerSet"
    assert validate_bundle(files) == []


def test_compose_cannot_span_nodes() -> None:
    option = _option("vllm", "DP16 EP16")

    files = _bundle(option)
    assert "compose.yaml" not in files
    assert "Docker Compose starts containers on one host" in files["README.md"]
    with pytest.raises(ManifestError, match="cannot span nodes: use the Kubernetes bundle"):
        _bundle(option, target="compose")
    assert set(_bundle(option, target="kubernetes")) == set(files)


def test_trtllm_two_node_options_are_refused_with_the_reason() -> None:
    """The planner offers no TensorRT-LLM replica over two nodes (workers.engines.can_split), and a bundle asked
    for one anyway (an edited plan) is refused with the reason, not emitted."""
    trtllm_plan = _r1_plan("trtllm")
    assert not [o for o in trtllm_plan["options"] if o["nodes"] > 1]
    asked = {**_option("vllm", "DP16 EP16"), "engine": "trtllm"}

    with pytest.raises(ManifestError, match="one MPI world"):
        request_from_plan(asked, R1_WORKLOAD, trtllm_plan)


def _edited(files: dict[str, str], edit: Any) -> dict[str, str]:
    lws = _lws(files)
    edit(lws)
    return {**files, "k8s/20-leaderworkerset.yaml": yamlio.dump_all([lws])}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["spec"].update(replicaz=2), "Additional properties are not allowed ('replicaz'"),
        (
            lambda d: d["spec"]["leaderWorkerTemplate"].update(restartPolicy="Sometimes"),
            "'Sometimes' is not one of",
        ),
        (lambda d: d["spec"]["leaderWorkerTemplate"].update(size=1), "size >= 2"),
        (
            lambda d: d["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0][
                "args"
            ].append("$(HOME)"),
            "$(HOME) would be expanded",
        ),
        (
            lambda d: d["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0][
                "resources"
            ]["limits"].update({"nvidia.com/gpu": "4"}),
            "same accelerators",
        ),
        (lambda d: d.update(kind="Deployment", apiVersion="apps/v1"), "'selector' is a required property"),
    ],
)
def test_the_validator_catches_a_broken_leader_worker_set(edit: Any, message: str) -> None:
    files = _bundle(_option("vllm", "DP16 EP16"))

    problems = validate_bundle(_edited(files, edit))

    assert any(message in str(p) for p in problems), [str(p) for p in problems]


def test_an_autoscaler_aimed_at_the_wrong_kind_is_caught() -> None:
    files = _bundle(_option("vllm", "DP16 EP16"))
    scaled = yamlio.load_all(files["k8s/60-scaledobject.yaml"])[0]
    scaled["spec"]["scaleTargetRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": scaled["spec"]["scaleTargetRef"]["name"],
    }

    problems = validate_bundle({**files, "k8s/60-scaledobject.yaml": yamlio.dump_all([scaled])})

    assert any(
        "is a leaderworkerset.x-k8s.io/v1 LeaderWorkerSet, not apps/v1 Deployment" in str(p) for p in problems
    )
