from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from rest_framework import serializers

from apps.accounts.models import Team
from apps.accounts.selectors import AnyUser, can_write
from apps.catalog.models import ModelArchitecture
from apps.workloads.models import Workload
from apps.workloads.serializers import validate_document
from apps.workloads.traffic import TrafficImportError, curve_from_csv


def ensure_can_write(*, user: AnyUser, team: Team) -> None:
    if not can_write(user=user, team=team):
        raise PermissionDenied("Viewers cannot change anything in this team.")


OPTION_KEYS = ("headroom", "ops_hours_per_month", "ops_hourly_usd", "scheduled_scaling")


def _fields_from_document(document: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": document["name"],
        "model": ModelArchitecture.objects.get(slug=document["model"]),
        "hourly_requests_per_s": list(document["traffic"]["hourly_requests_per_s"]),
        "prompt_tokens": dict(document["prompt_tokens"]),
        "output_tokens": dict(document["output_tokens"]),
        "ttft_p95_ms": document["slo"]["ttft_p95_ms"],
        "itl_p95_ms": document["slo"]["itl_p95_ms"],
        "allowed_quantizations": list(document["quality"]["allowed_quantizations"]),
        "constraints": dict(document["constraints"]),
        "options": {key: document[key] for key in OPTION_KEYS},
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


def workload_update(*, workload: Workload, document: Any, user: AnyUser, partial: bool = False) -> Workload:
    """Replace the workload's document (or merge top-level keys when partial), validated as a whole."""
    ensure_can_write(user=user, team=workload.team)
    if partial:
        if not isinstance(document, dict):
            raise serializers.ValidationError({"non_field_errors": ["Must be a JSON object."]})
        document = {**workload.to_document(), **document}
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


def workload_import_traffic(*, workload: Workload, csv_text: str, user: AnyUser) -> Workload:
    try:
        curve = curve_from_csv(csv_text)
    except TrafficImportError as exc:
        raise serializers.ValidationError({"file": [str(exc)]}) from exc
    document = workload.to_document()
    document["traffic"] = {"hourly_requests_per_s": curve}
    return workload_update(workload=workload, document=document, user=user)
