"""User text can only ever become a value: it cannot add keys, documents, anchors or shell expansions."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.manifests import yamlio
from apps.manifests.build import OverflowTarget, build_bundle
from apps.manifests.naming import RFC1035_LABEL, k8s_name, label_value
from apps.manifests.validate import validate_bundle
from tests.manifests.helpers import make_request

EVIL = [
    'evil"\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: pwned}\nstringData: {token: x}\n',
    "model: injected\nextra_key: true",
    "{injected: true, also: [1, 2]}",
    "&anchor [*anchor, *anchor]",
    "*alias",
    "- item\n- second",
    "key: value # comment\n...\n%YAML 1.1\n---",
    "$(HF_TOKEN) ${HF_TOKEN:-x} $$ `id`",
    "'; rm -rf / #\"",
    "line\u2028separator\u2029and\x85next",
    "ÜñïçødÉ 模型 🚀",
    "x" * 5000,
]
KINDS = {"Namespace", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget", "PodMonitor",
         "ScaledObject", "ConfigMap"}  # fmt: skip
DOC_KEYS = {"apiVersion", "kind", "metadata", "spec", "data"}
META_KEYS = {"name", "namespace", "labels", "annotations"}


def _evil_bundle(evil: str) -> dict[str, str]:
    overflow = OverflowTarget(provider=evil, model=evil, litellm_model=evil, api_key_env="OPENAI_API_KEY")
    return build_bundle(
        make_request(
            "vllm",
            workload_name=evil,
            model_path=evil,
            served_name=evil,
            namespace=evil,
            hf_token_secret=evil,
            prometheus_release_label=evil,
            overflow=overflow,
        )
    )


def _documents(files: dict[str, str]) -> list[dict[str, Any]]:
    documents = []
    for path in sorted(p for p in files if p.startswith("k8s/")):
        docs = yamlio.load_all(files[path])
        assert len(docs) == 1, f"{path} holds {len(docs)} documents"
        documents.append(docs[0])
    return documents


@pytest.mark.parametrize("evil", EVIL, ids=range(len(EVIL)))
def test_malicious_names_add_no_documents_or_keys(evil: str) -> None:
    files = _evil_bundle(evil)
    documents = _documents(files)

    assert validate_bundle(files) == []
    assert {d["kind"] for d in documents} == KINDS
    assert len(documents) == 10  # namespace, pvc, deployment, service, pdb, monitor, scaler, 3 for the router
    for doc in documents:
        assert set(doc) <= DOC_KEYS
        assert set(doc["metadata"]) <= META_KEYS
        assert RFC1035_LABEL.match(doc["metadata"]["name"])
        # The raw text survives as a value, exactly (long text clipped with an ellipsis).
        workload = doc["metadata"].get("annotations", {}).get("llm-deployment-advisor/workload")
        if workload is not None:
            assert workload == evil or (len(evil) > 512 and workload == evil[:511] + "…")


@pytest.mark.parametrize("evil", EVIL, ids=range(len(EVIL)))
def test_malicious_names_stay_values_in_compose_router_and_args(evil: str) -> None:
    files = _evil_bundle(evil)
    compose = yamlio.load(files["compose.yaml"])
    deployment = yamlio.load_all(files["k8s/20-deployment.yaml"])[0]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    router = yamlio.load(files["litellm/config.yaml"])

    assert set(compose) == {"name", "services", "volumes"}
    assert set(compose["services"]) == {"vllm", "prometheus", "router"}
    assert set(compose["services"]["vllm"]["environment"]) == {"HF_TOKEN"}
    # Each piece of user text is one argument, with $ escaped for kubelet ($$ reads back as $).
    assert args[args.index("--model") + 1].replace("$$", "$") == evil
    assert args[args.index("--served-model-name") + 1].replace("$$", "$") == evil
    assert [m["model_name"] for m in router["model_list"]] == [evil, f"{evil}-overflow"]
    assert router["router_settings"]["fallbacks"] == [{evil: [f"{evil}-overflow"]}]
    assert set(router) == {"model_list", "router_settings", "litellm_settings", "general_settings"}


@pytest.mark.parametrize("evil", EVIL, ids=range(len(EVIL)))
def test_readme_keeps_user_text_on_one_line_and_out_of_commands(evil: str) -> None:
    readme = _evil_bundle(evil)["README.md"]
    in_shell = False
    for line in readme.splitlines():
        if line.startswith("```"):
            in_shell = not in_shell
        elif in_shell:
            # Operators paste these: only sanitised names, no shell metacharacters, no raw user text.
            assert not set(line) & set("`;|&<>\\{}"), line
            assert "$(" not in line
            assert evil not in line
        assert not line.startswith(("---", "apiVersion:", "kind:"))


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_any_text_round_trips_as_a_single_value(text: str) -> None:
    document = {"metadata": {"annotations": {"raw": text}}, "args": [text]}
    assert yamlio.load_all(yamlio.dump_all([document])) == [document]
    assert yamlio.load(yamlio.dump(document)) == document


def test_no_yaml_anchors_or_aliases_are_emitted() -> None:
    # Labels and selectors share dicts in the builders; PyYAML would otherwise write &id001 / *id001.
    for path, text in build_bundle(make_request("vllm")).items():
        if path.endswith((".yaml", ".yml")):
            assert not re.search(r"[&*]id\d{3}", text), path


def test_sanitised_names_are_stable_and_distinct() -> None:
    assert k8s_name("support-chat") == "support-chat"
    assert k8s_name("Support Chat") == k8s_name("Support Chat")
    assert k8s_name("Support Chat") != k8s_name("support chat")  # the digest keeps them apart
    assert k8s_name("123").startswith("w-123")
    assert len(k8s_name("a" * 300)) <= 40
    assert label_value("ok.value_1") == "ok.value_1"
    assert len(label_value("x" * 300)) <= 63


@pytest.mark.parametrize(
    "changes",
    [
        {"storage_class": "fast\nssd"},
        {"prometheus_url": "http://prom:9090/\nkind: Secret"},
        {"image": "vllm/vllm-openai:v1 --privileged"},
    ],
)
def test_operator_supplied_object_fields_are_refused_when_malformed(changes: dict[str, str]) -> None:
    from apps.manifests.build import ManifestError

    with pytest.raises(ManifestError):
        make_request("vllm", **changes)
