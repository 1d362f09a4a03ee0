"""A plan's mixed fleet as a bundle: two deployments, one per GPU type, behind a LiteLLM router that sends each
prompt-length bucket where the plan says, shown with the real LiteLLM 1.83.14 Router against two local
OpenAI-compatible backends."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from apps.catalog.specs import load_snapshot
from apps.manifests import yamlio
from apps.manifests.build import ManifestError
from apps.manifests.mixed import build_mixed_bundle
from apps.manifests.validate import validate_bundle
from apps.planner.pipeline.plan import plan
from apps.planner.pipeline.workload import workload_spec_from_dict
from tests.planner.pipeline.test_mixed_fleet import BIMODAL_WORKLOAD

ROUTE_SCRIPT = Path(__file__).with_name("litellm_route.py")
LITELLM_PYTHON = os.environ.get("ADVISOR_LITELLM_PYTHON", "")


@functools.cache
def _plan() -> dict[str, Any]:
    return plan(workload_spec_from_dict(copy.deepcopy(BIMODAL_WORKLOAD)), load_snapshot())


@functools.cache
def _files() -> dict[str, str]:
    return build_mixed_bundle(_plan(), BIMODAL_WORKLOAD, 0)


def _doc(path: str) -> dict[str, Any]:
    document: dict[str, Any] = yamlio.load_all(_files()[path])[0]
    return document


def test_the_mixed_bundle_has_one_deployment_per_gpu_and_validates() -> None:
    files = _files()
    mix = _plan()["mixed_fleets"][0]

    assert validate_bundle(files) == []
    assert "compose.yaml" not in files
    for part in mix["parts"]:
        deployment = _doc(f"k8s/20-deployment-{part['gpu']}.yaml")
        pod = deployment["spec"]["template"]["spec"]
        values = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        products = values["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
        assert products  # pinned to the part's GPU product
        assert deployment["metadata"]["name"].endswith(part["gpu"])
        scaled = _doc(f"k8s/60-scaledobject-{part['gpu']}.yaml")
        assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert scaled["spec"]["minReplicaCount"] == min(part["replicas_by_hour"])
    router = _doc("k8s/71-router-deployment.yaml")
    env = {e["name"]: e.get("value") for e in router["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SELF_HOSTED_API_BASE_RTX_A6000"].startswith("http://chat-and-documents-rtx-a6000.")


def test_the_router_config_says_what_the_plan_says() -> None:
    mix = _plan()["mixed_fleets"][0]
    config = yamlio.load(_files()["litellm/config.yaml"])
    short, long = config["model_list"]

    assert config["router_settings"]["enable_pre_call_checks"] is True
    assert short["model_info"]["max_input_tokens"] == mix["threshold_prompt_tokens"]
    assert (short["litellm_params"]["order"], long["litellm_params"]["order"]) == (1, 2)
    assert short["litellm_params"]["api_base"] == "os.environ/SELF_HOSTED_API_BASE_RTX_A6000"
    assert long["litellm_params"]["api_base"] == "os.environ/SELF_HOSTED_API_BASE_A100_80GB"
    assert short["model_name"] == long["model_name"]


def test_compose_is_refused_for_a_mixed_fleet() -> None:
    with pytest.raises(ManifestError, match="different hosts"):
        build_mixed_bundle(_plan(), BIMODAL_WORKLOAD, 0, target="compose")
    with pytest.raises(ManifestError, match="no mixed fleet 3"):
        build_mixed_bundle(_plan(), BIMODAL_WORKLOAD, 3)


# --- the real router ----------------------------------------------------------------------------------


class _Backend(ThreadingHTTPServer):
    """An OpenAI-compatible chat completions endpoint that says who answered and remembers each prompt."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.prompts: list[str] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: _Backend

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        self.server.prompts.append(prompt)
        answer = {
            "id": f"chatcmpl-{len(self.server.prompts)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"answered by {self.server.name}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 3, "total_tokens": 0},
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:  # keep the test output to the test's
        pass


@pytest.fixture
def backends() -> Iterator[dict[str, _Backend]]:
    servers = {gpu: _Backend(gpu) for gpu in ("rtx-a6000", "a100-80gb")}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


@pytest.mark.skipif(
    not Path(LITELLM_PYTHON).is_file(),
    reason="ADVISOR_LITELLM_PYTHON names no LiteLLM virtualenv (`make install-test` builds it)",
)
def test_litellm_sends_each_length_bucket_to_the_gpu_the_plan_says(
    backends: dict[str, _Backend], tmp_path: Path
) -> None:
    # given the bundle's router config and the plan's split
    mix = _plan()["mixed_fleets"][0]
    threshold = mix["threshold_prompt_tokens"]
    short_gpu, long_gpu = (part["gpu"] for part in mix["parts"])
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(yamlio.load(_files()["litellm/config.yaml"])))
    # prompts from both buckets, well clear of the threshold (LiteLLM counts with cl100k_base: 1 token a word,
    # plus the chat framing), and the longest close to the workload's longest prompt
    words = [10, 60, threshold - 40, threshold + 40, 2000, 7000]
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "SELF_HOSTED_API_BASE_RTX_A6000": backends["rtx-a6000"].base_url,
        "SELF_HOSTED_API_BASE_A100_80GB": backends["a100-80gb"].base_url,
        "SELF_HOSTED_API_KEY": "unauthenticated",
        # the model price map shipped in the package, not the one LiteLLM would fetch at import
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "NO_PROXY": "127.0.0.1",
    }

    # when each prompt goes through the real Router, in its process
    done = subprocess.run(
        [LITELLM_PYTHON, str(ROUTE_SCRIPT), str(config_path)],
        input=json.dumps([{"words": n} for n in words]),
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)

    # then prompts up to the threshold reached the short part's GPU and the others the long part's
    for n, result in zip(words, results, strict=True):
        expected = short_gpu if result["tokens"] <= threshold else long_gpu
        assert result["content"] == f"answered by {expected}", (n, result)
        assert result["deployment"].endswith(expected)
    short_tokens = [r["tokens"] for r in results if r["tokens"] <= threshold]
    assert len(short_tokens) == 3
    assert len(backends[short_gpu].prompts) == 3
    assert len(backends[long_gpu].prompts) == 3
    assert max(len(p.split()) for p in backends[short_gpu].prompts) < threshold
    assert min(len(p.split()) for p in backends[long_gpu].prompts) > threshold


# --- by hour --------------------------------------------------------------------------------------------

# Quiet nights and a busy day (UTC): a 1x RTX A6000 carries the nights for less than an H100 would, and H100s
# carry the day for less than A6000s would.
DAY_NIGHT_WORKLOAD: dict[str, Any] = {
    **copy.deepcopy(BIMODAL_WORKLOAD),
    "name": "day-and-night",
    "traffic": {"hourly_requests_per_s": [0.5] * 8 + [20.0] * 12 + [0.5] * 4},
    "prompt_tokens": {"mean": 600, "p50": 500, "p95": 1500, "max": 3000},
    "constraints": {**BIMODAL_WORKLOAD["constraints"], "gpus": ["rtx-a6000", "h100-sxm"]},
}


@functools.cache
def _day_night_plan() -> dict[str, Any]:
    return plan(workload_spec_from_dict(copy.deepcopy(DAY_NIGHT_WORKLOAD)), load_snapshot())


def _scheduled_replicas(scaled: dict[str, Any]) -> list[int]:
    """Replicas per UTC hour that the ScaledObject's cron windows ask for (minReplicaCount elsewhere)."""
    hours = [int(scaled["spec"]["minReplicaCount"])] * 24
    for trigger in scaled["spec"]["triggers"]:
        if trigger["type"] != "cron":
            continue
        meta = trigger["metadata"]
        start_minute, start_hour = (int(x) for x in meta["start"].split()[:2])
        start = (start_hour + (1 if start_minute else 0)) % 24  # a window starting early serves from the hour
        end = int(meta["end"].split()[1])
        hour = start
        while hour != end:
            hours[hour] = max(hours[hour], int(meta["desiredReplicas"]))
            hour = (hour + 1) % 24
    return hours


def test_a_by_hour_fleet_schedules_each_gpu_for_its_hours() -> None:
    # given a plan whose mixed fleet serves some hours on each GPU
    result = _day_night_plan()
    mixes = [m for m in result["mixed_fleets"] if m["kind"] == "by_hour"]
    assert mixes, result["mixed_fleets"]
    index = result["mixed_fleets"].index(mixes[0])

    # when its bundle is built
    files = build_mixed_bundle(result, DAY_NIGHT_WORKLOAD, index)

    # then each deployment's KEDA schedule is the plan's replicas for that GPU, down to zero off its hours
    assert validate_bundle(files) == []
    for part in mixes[0]["parts"]:
        scaled = yamlio.load_all(files[f"k8s/60-scaledobject-{part['gpu']}.yaml"])[0]
        assert _scheduled_replicas(scaled) == part["replicas_by_hour"]
        assert scaled["spec"]["minReplicaCount"] == 0
        assert "fallback" not in scaled["spec"]  # a fallback would wake the off-hours GPU
        queue = next(t for t in scaled["spec"]["triggers"] if t["type"] == "prometheus")
        assert queue["metadata"]["ignoreNullValues"] == "true"
    # and the router sends requests only to the deployments its health checks find serving
    config = yamlio.load(files["litellm/config.yaml"])
    assert config["general_settings"]["enable_health_check_routing"] is True
    assert config["general_settings"]["background_health_checks"] is True
    assert all("order" not in entry["litellm_params"] for entry in config["model_list"])


def test_a_by_hour_fleet_needs_keda() -> None:
    result = _day_night_plan()
    index = next(i for i, m in enumerate(result["mixed_fleets"]) if m["kind"] == "by_hour")
    with pytest.raises(ManifestError, match="needs KEDA"):
        build_mixed_bundle(result, DAY_NIGHT_WORKLOAD, index, use_keda=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["router_settings"].update(enable_pre_call_checks=False), "need pre-call checks"),
        (lambda c: c["model_list"][1]["model_info"].pop("max_input_tokens"), "its own max_input_tokens"),
    ],
)
def test_the_validator_catches_a_length_router_that_would_not_route(edit: Any, message: str) -> None:
    config = yamlio.load(_files()["litellm/config.yaml"])
    edit(config)

    problems = validate_bundle({**_files(), "litellm/config.yaml": yamlio.dump(config)})

    assert any(message in str(p) for p in problems), [str(p) for p in problems]
