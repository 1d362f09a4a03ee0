"""Catalog and measurements for the planner commands: the database when it is loaded, else the shipped CSVs."""

from __future__ import annotations

from django.db import DatabaseError

from apps.catalog.specs import CatalogSnapshot, load_snapshot
from apps.planner.calibration import MeasuredPoint


def planner_catalog() -> CatalogSnapshot:
    try:
        from apps.catalog.selectors import catalog_snapshot
    except ImportError:
        return load_snapshot()
    try:
        snapshot = catalog_snapshot()
    except DatabaseError:  # tables not migrated yet
        return load_snapshot()
    # An empty database (load_catalog not run) would make every name unknown; the shipped CSVs are the same rows.
    if not snapshot.models or not snapshot.gpus:
        return load_snapshot()
    return snapshot


def planner_measured_points() -> tuple[MeasuredPoint, ...]:
    try:
        from apps.benchmarks.selectors import measured_points
    except ImportError:
        return ()
    try:
        return tuple(measured_points())
    except DatabaseError:
        return ()
