from __future__ import annotations

import pytest

from apps.catalog.specs import CatalogSnapshot, load_snapshot
from apps.planner.perf.calibration import Calibration, calibrate


@pytest.fixture(scope="session")
def catalog() -> CatalogSnapshot:
    return load_snapshot()


@pytest.fixture(scope="session")
def calibration(catalog: CatalogSnapshot) -> Calibration:
    return calibrate(catalog)
