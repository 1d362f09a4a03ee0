from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from rest_framework import serializers

from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser, can_write
from apps.catalog.models import ModelArchitecture
from apps.workloads.logs import LogFormat, LogImportError, profile_log
from apps.workloads.models import Workload
from apps.workloads.serializers import validate_document, validate_log_import
from apps.workloads.streams import Readable
from apps.workloads.traffic import TrafficImportError, curve_from_csv

# The parts of the traffic object beside the hourly curve (stored in Workload.traffic_profile).
TRAFFIC_PROFILE_KEYS = ("burstiness_cv", "weekday_hourly_requests_per_s", "weekend_hourly_requests_per_s")
DISTRIBUTION_FIGURES = ("mean", "p50", "p95", "max")


def ensure_can_write(*, user: AnyUser, team: Team) -> None:
    if not can_write(user=user, team=team):
        raise PermissionDenied("Viewers cannot change anything in this team.")


OPTION_KEYS = (
    "headroom",
    "ops_hours_per_month",
    "ops_hourly_usd",
    "scheduled_scaling",
    "costing",
    "offer_pricing",
)


def _fields_from_document(document: dict[str, Any]) -> dict[str, Any]:
    traffic = document["traffic"]
    return {
        "name": document["name"],
        "model": ModelArchitecture.objects.get(slug=document["model"]),
        "hourly_requests_per_s": list(traffic["hourly_requests_per_s"]),
        "traffic_profile": {key: traffic[key] for key in TRAFFIC_PROFILE_KEYS if key in traffic},
        "prefix": dict(document.get("prefix") or {}),
        "prompt_tokens": dict(document["prompt_tokens"]),
        "output_tokens": dict(document["output_tokens"]),
        "ttft_p95_ms": document["slo"]["ttft_p95_ms"],
        "itl_p95_ms": document["slo"]["itl_p95_ms"],
        "allowed_quantizations": list(document["quality"]["allowed_quantizations"]),
        "constraints": dict(document["constraints"]),
        "options": {key: document[key] for key in OPTION_KEYS if key in document},
    }


def _duplicate_name(name: str) -> serializers.ValidationError:
    return serializers.ValidationError({"name": [f"This team already has a workload named {name!r}."]})


def workload_create(*, team: Team, document: Any, user: AnyUser) -> Workload:
    ensure_can_write(user=user, team=team)
    clean = validate_document(document)
    try:
        with transaction.atomic():
            return Workload.objects.create(
                team=team, created_by=user if user.is_authenticated else None, **_fields_from_document(clean)
            )
    except IntegrityError as exc:
        raise _duplicate_name(clean["name"]) from exc


def keep_log_derived(*, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` with what a log import derived and an edit did not touch: the histograms while the four figures
    they give are unchanged, the weekday and weekend curves while the hourly curve is, and the burstiness."""
    document = {**new}
    old_traffic, new_traffic = old.get("traffic") or {}, dict(new.get("traffic") or {})
    if "burstiness_cv" in old_traffic:
        new_traffic.setdefault("burstiness_cv", old_traffic["burstiness_cv"])
    if new_traffic.get("hourly_requests_per_s") == old_traffic.get("hourly_requests_per_s"):
        for key in ("weekday_hourly_requests_per_s", "weekend_hourly_requests_per_s"):
            if key in old_traffic:
                new_traffic.setdefault(key, old_traffic[key])
    document["traffic"] = new_traffic
    for key in ("prompt_tokens", "output_tokens"):
        before, after = old.get(key) or {}, dict(new.get(key) or {})
        unchanged = all(after.get(f) == before.get(f) for f in DISTRIBUTION_FIGURES)
        if "histogram" in before and unchanged:
            after.setdefault("histogram", before["histogram"])
        document[key] = after
    return document


def workload_update(
    *, workload: Workload, document: Any, user: AnyUser, partial: bool = False, keep_derived: bool = False
) -> Workload:
    """Replace the workload's document (or merge top-level keys when partial), validated as a whole.

    keep_derived: for editors that show only part of the document (the form), keep_log_derived() first."""
    ensure_can_write(user=user, team=workload.team)
    if (partial or keep_derived) and not isinstance(document, dict):
        raise serializers.ValidationError({"non_field_errors": ["Must be a JSON object."]})
    if partial:
        document = {**workload.to_document(), **document}
    if keep_derived:
        document = keep_log_derived(new=document, old=workload.to_document())
    clean = validate_document(document)
    for field, value in _fields_from_document(clean).items():
        setattr(workload, field, value)
    try:
        with transaction.atomic():
            workload.save()
    except IntegrityError as exc:
        raise _duplicate_name(clean["name"]) from exc
    return workload


def workload_delete(*, workload: Workload, user: AnyUser) -> None:
    ensure_can_write(user=user, team=workload.team)
    workload.delete()


def workload_import_traffic(*, workload: Workload, source: Readable, user: AnyUser) -> Workload:
    """Replace the hourly curve from a CSV read as a stream (apps/workloads/traffic.py)."""
    ensure_can_write(user=user, team=workload.team)
    try:
        curve = curve_from_csv(source)
    except TrafficImportError as exc:
        raise serializers.ValidationError({"file": [str(exc)]}) from exc
    document = workload.to_document()
    document["traffic"] = {"hourly_requests_per_s": curve}
    return workload_update(workload=workload, document=document, user=user, keep_derived=True)


def workload_import_log(
    *, team: Team, source: Readable, options: Any, user: AnyUser, file_name: str = ""
) -> Workload:
    """Create a workload from a request log (apps/workloads/logs.py), in one transaction after the whole file
    is read: a file that fails half-way leaves nothing behind.

    options: name, model, and optionally log_format, ttft_p95_ms, itl_p95_ms, allowed_quantizations,
    shared_prefix_tokens, multi_turn_reuse_fraction (LogImportIn). They are checked before the file is read."""
    ensure_can_write(user=user, team=team)
    request = validate_log_import(options)
    if Workload.objects.filter(team=team, name=request["name"]).exists():
        raise _duplicate_name(request["name"])
    model = ModelArchitecture.objects.get(slug=request["model"])
    try:
        profile = profile_log(
            source,
            log_format=LogFormat(request["log_format"]) if request.get("log_format") else None,
            max_total_tokens=model.max_context,
        )
    except LogImportError as exc:
        raise serializers.ValidationError({"file": [str(exc)]}) from exc
    document: dict[str, Any] = {
        "name": request["name"],
        "model": request["model"],
        "traffic": profile.traffic(),
        "prompt_tokens": profile.prompt.to_distribution(),
        "output_tokens": profile.output.to_distribution(),
        "slo": {"ttft_p95_ms": request["ttft_p95_ms"], "itl_p95_ms": request["itl_p95_ms"]},
        "quality": {"allowed_quantizations": request["allowed_quantizations"]},
    }
    prefix = {
        key: request[key] for key in ("shared_prefix_tokens", "multi_turn_reuse_fraction") if key in request
    }
    if prefix:
        document["prefix"] = prefix
    clean = validate_document(document)
    summary = {**profile.summary(), "file_name": file_name[:200]}
    try:
        with transaction.atomic():
            return Workload.objects.create(
                team=team,
                created_by=user if user.is_authenticated else None,
                import_summary=summary,
                **_fields_from_document(clean),
            )
    except IntegrityError as exc:
        raise _duplicate_name(clean["name"]) from exc
