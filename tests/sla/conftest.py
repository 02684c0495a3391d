from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from scrm.app import create_app
from scrm.db import Database


@pytest.fixture
def client(db: Database, settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))
