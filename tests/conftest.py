"""Test fixtures: a real database per test (SQLite file or a PostgreSQL database made from a
migrated template), built through the services, never raw SQL."""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

os.environ.setdefault("SCRM_SECRET_KEY", "test-secret-key")
os.environ.setdefault("SCRM_INPROCESS_WORKER", "false")

from scrm import jobs, migrate
from scrm.config import Settings, get_settings
from scrm.db import Database

jobs.load()
DB_KIND = os.environ.get("SCRM_TEST_DB", "sqlite")
PG_URL = os.environ.get("SCRM_TEST_PG_URL", "")
_counter = itertools.count()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Train (or load) the default NLP models before the first test: on a clean checkout the
    training takes a minute or more, which must not count against any test's own deadline
    (a worker's `run_until_idle(30)` would return mid-pipeline)."""
    from scrm.nlp import service as nlp_service

    nlp_service.load_default_bundle()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (SCRM_TEST_DB=postgres)")
    for item in items:
        if "postgres_only" in item.keywords and DB_KIND != "postgres":
            item.add_marker(skip_pg)


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database that each test copies."""
    if DB_KIND == "postgres":
        if not PG_URL:
            pytest.exit("SCRM_TEST_DB=postgres needs SCRM_TEST_PG_URL", returncode=2)
        name = f"scrm_tpl_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
        yield name
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path_factory.mktemp("tpl") / "template.db"
        db = Database(f"sqlite:///{path}")
        migrate.upgrade(db)
        db.dispose()  # the last connection to close checkpoints the WAL into the file
        yield str(path)


@pytest.fixture
def db_url(db_template: str, tmp_path: Path) -> Iterator[str]:
    if DB_KIND == "postgres":
        name = f"scrm_t_{os.getpid()}_{next(_counter)}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{db_template}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    else:
        path = tmp_path / "scrm.db"
        shutil.copy(db_template, path)
        yield f"sqlite:///{path}"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("SCRM_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@dataclass
class Workspace:
    id: int
    slug: str
    admin_token: str
    agent_token: str
    agent_member_id: int
    admin_member_id: int
    channel_id: int
    channel_secret: str
    team_ids: dict[str, int]


def make_workspace(db: Database, slug: str, *, callback_url: str = "") -> Workspace:
    from scrm.workspace import service

    with db.transaction() as s:
        ws = service.create_workspace(s, slug, f"{slug} 演示")
        admin = service.add_member(
            s, ws.id, service.create_user(s, f"admin@{slug}.test", "password123", "管理员"), "admin"
        )
        agent = service.add_member(
            s, ws.id, service.create_user(s, f"agent@{slug}.test", "password123", "客服小王"), "agent"
        )
        teams = {
            key: service.create_team(s, ws.id, key, name, kind).id
            for key, name, kind in [("service", "客服", "service"), ("lost", "失物招领", "department")]
        }
        service.add_to_team(s, ws.id, teams["service"], agent.id)
        admin_token, _ = service.create_api_token(s, ws.id, admin.id, "tests")
        agent_token, _ = service.create_api_token(s, ws.id, agent.id, "tests")
        secret = f"whsec-{slug}-0123456789"
        channel = service.create_channel_account(
            s, ws.id, "webhook", "App", secrets={"secret": secret}, config={"callback_url": callback_url}
        )
        return Workspace(ws.id, slug, admin_token, agent_token, agent.id, admin.id, channel.id, secret, teams)


@pytest.fixture
def workspace(db: Database, settings: Settings) -> Workspace:
    return make_workspace(db, "yuncheng")


@pytest.fixture
def other_workspace(db: Database, settings: Settings) -> Workspace:
    return make_workspace(db, "xiaomo")
