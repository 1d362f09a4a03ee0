"""Bundles for a stored recommendation: built from the plan the user saw, validated before anything is offered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.catalog.selectors import catalog_snapshot
from apps.manifests.build import BundleTarget, ManifestError, build_bundle, request_from_plan
from apps.manifests.bundle import zip_bundle
from apps.manifests.mixed import build_mixed_bundle
from apps.manifests.validate import Problem, validate_bundle
from apps.planner.models import PlanStatus, Recommendation


class BundleUnavailable(ValueError):
    """The bundle cannot be offered: the plan has no such option, the choices are invalid, or it failed
    validation. The message says which."""

    def __init__(self, message: str, *, field: str = "option", problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.problems = problems or []


@dataclass(frozen=True)
class BundleChoices:
    rank: int = 1
    use_keda: bool = True
    overflow: bool | dict[str, Any] = False  # True: the cheapest hosted alternative the planner listed
    namespace: str = "llm"
    model_path: str | None = None
    target: BundleTarget = "all"  # both, or only the Compose or the Kubernetes files
    mixed: int | None = None  # the plan's mixed fleet of this index instead of option `rank`


def manifest_bundle_build(*, recommendation: Recommendation, choices: BundleChoices) -> dict[str, str]:
    if recommendation.status != PlanStatus.SUCCEEDED:
        raise BundleUnavailable(
            f"plan #{recommendation.pk} has not succeeded (status {recommendation.status})"
        )
    if choices.mixed is not None:
        return _mixed_bundle(recommendation=recommendation, choices=choices)
    try:
        option = recommendation.option(choices.rank)
    except KeyError as exc:
        ranks = [o["rank"] for o in recommendation.options]
        raise BundleUnavailable(
            f"plan #{recommendation.pk} has no option {choices.rank}; options: {ranks or 'none'}"
        ) from exc
    try:
        request = request_from_plan(
            option,
            recommendation.inputs,
            recommendation.result,
            snapshot=catalog_snapshot(),
            namespace=choices.namespace,
            model_path=choices.model_path,
            use_keda=choices.use_keda,
            overflow=choices.overflow or None,
        )
    except ManifestError as exc:
        raise BundleUnavailable(str(exc), field="overflow" if "overflow" in str(exc) else "option") from exc
    try:
        files = build_bundle(request, target=choices.target)
    except ManifestError as exc:  # e.g. Compose for a replica that spans nodes
        raise BundleUnavailable(str(exc), field="target") from exc
    return _validated(files)


def _validated(files: dict[str, str]) -> dict[str, str]:
    problems = validate_bundle(files)
    if problems:
        raise BundleUnavailable(
            f"the bundle failed validation ({len(problems)} problems): {problems[0]}", problems=problems
        )
    return files


def _mixed_bundle(*, recommendation: Recommendation, choices: BundleChoices) -> dict[str, str]:
    if choices.overflow:
        raise BundleUnavailable(
            "a mixed fleet's router routes between its two deployments; overflow to a hosted API is offered "
            "for single options only",
            field="overflow",
        )
    try:
        files = build_mixed_bundle(
            recommendation.result or {},
            recommendation.inputs,
            choices.mixed or 0,
            target=choices.target,
            snapshot=catalog_snapshot(),
            namespace=choices.namespace,
            use_keda=choices.use_keda,
        )
    except ManifestError as exc:
        raise BundleUnavailable(str(exc), field="target" if choices.target == "compose" else "mixed") from exc
    return _validated(files)


def manifest_bundle_zip(*, recommendation: Recommendation, choices: BundleChoices) -> tuple[str, bytes]:
    files = manifest_bundle_build(recommendation=recommendation, choices=choices)
    what = f"mixed{choices.mixed}" if choices.mixed is not None else f"option{choices.rank}"
    root = f"{recommendation.workload.name}-plan{recommendation.pk}-{what}"
    safe_root = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in root)
    return f"{safe_root}.zip", zip_bundle(files, root=safe_root)
