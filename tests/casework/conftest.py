from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from scrm.app import create_app
from scrm.db import Database
from tests.channels.test_integration_wechat import wechat  # noqa: F401 (the fake WeChat account fixture)
from tests.channels.test_integration_weibo import weibo  # noqa: F401 (the fake Weibo account fixture)


@pytest.fixture
def client(db: Database, settings) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))
