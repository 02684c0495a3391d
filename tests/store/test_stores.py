"""Stores: the import (validated per row, idempotent on code, bad rows named by line), the
nearest one by haversine, the REST endpoints (workspace-scoped), the CLI, and the fan's last
shared location kept on the contact."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from scrm.app import create_app
from scrm.channels.base import InboundEvent, Sender
from scrm.cli import app as cli
from scrm.contact import service as contact_service
from scrm.db import Database
from scrm.kit.geo import haversine_km, valid_point
from scrm.models import Contact, Store
from scrm.store import imports
from scrm.store import service as store_service

STORES_CSV = """code,name,city,address,hours,phone,latitude,longitude
SH001,南京西路店,上海,上海市静安区南京西路1266号,07:00-22:00,021-62880101,31.2286,121.4510
SH002,陆家嘴店,上海,上海市浦东新区陆家嘴环路1000号,07:30-21:30,,31.2376,121.5050
BJ001,国贸店,北京,北京市朝阳区建国门外大街1号,07:00-22:00,,39.9087,116.4590
"""
PEOPLES_SQUARE = (31.2323, 121.4752)  # 上海人民广场


def run(db: Database, ws: int, text: str, fmt: str = "csv") -> imports.ImportReport:
    return imports.run_import(db, ws, io.BytesIO(text.encode()), fmt)  # type: ignore[arg-type]


def stores(db: Database, ws: int) -> dict[str, Store]:
    with db.transaction(readonly=True) as s:
        return {x.code: x for x in store_service.list_stores(s, ws)}


def test_haversine_and_coordinate_checks() -> None:
    # 上海人民广场 → 北京天安门: about 1,067 km great-circle
    assert haversine_km(*PEOPLES_SQUARE, 39.9042, 116.3976) == pytest.approx(1067, abs=5)
    assert haversine_km(31.0, 121.0, 31.0, 121.0) == 0
    assert haversine_km(0, 0, 0, 180) == pytest.approx(20015, abs=2)  # half the Earth
    assert valid_point(31.2, 121.4) == (31.2, 121.4)
    for lat, lng in [
        (float("nan"), 121),
        (31, float("inf")),
        (91, 0),
        (0, -181),
        (True, 1),
        ("31", "121"),
        (None, 1),
    ]:
        assert valid_point(lat, lng) is None


def test_import_is_idempotent_on_code_and_finds_the_nearest(db, workspace) -> None:  # type: ignore[no-untyped-def]
    report = run(db, workspace.id, STORES_CSV)
    assert (report.rows, report.inserted, report.updated, report.rejected) == (3, 3, 0, 0)
    again = run(db, workspace.id, STORES_CSV.replace("07:30-21:30", "08:00-21:00"))
    assert (again.inserted, again.updated) == (0, 3)
    assert len(stores(db, workspace.id)) == 3 and stores(db, workspace.id)["SH002"].hours == "08:00-21:00"
    with db.transaction(readonly=True) as s:
        found = store_service.nearest(s, workspace.id, *PEOPLES_SQUARE)
        assert found is not None and found.store.code == "SH001"
        assert found.distance_km == pytest.approx(2.3, abs=0.3)
        beijing = store_service.nearest(s, workspace.id, 39.99, 116.48)
        assert beijing is not None and beijing.store.code == "BJ001"
        assert store_service.nearest(s, workspace.id, 22.54, 114.06, max_km=50) is None  # 深圳: none near
    # an inactive store is never the answer
    run(db, workspace.id, "code,name,latitude,longitude,active\nSH001,南京西路店,31.2286,121.4510,false\n")
    with db.transaction(readonly=True) as s:
        found = store_service.nearest(s, workspace.id, *PEOPLES_SQUARE)
        assert found is not None and found.store.code == "SH002"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("X1,店,nan,121.4", "latitude must be between -90 and 90"),
        ("X2,店,31.2,Infinity", "longitude must be between -180 and 180"),
        ("X3,店,95,121.4", "latitude must be between -90 and 90"),
        ("X4,店,31.2,-200", "longitude must be between -180 and 180"),
        ("X5,店,,121.4", "latitude must be a number"),
        ("X6,店,北纬31度,121.4", "latitude must be a number"),
        ("X7,,31.2,121.4", "name"),
        ("bad code!,店,31.2,121.4", "code is 1-64 letters"),
        ("X8,店,31.2,121.4,extra", "more fields than the header"),
    ],
)
def test_bad_rows_are_rejected_with_their_line_and_reason(db, workspace, row: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    text = f"code,name,latitude,longitude\nOK1,好店,31.2,121.4\n{row}\n"
    report = run(db, workspace.id, text)
    assert (report.rows, report.inserted, report.rejected) == (2, 1, 1)
    assert report.errors[0]["line"] == 3 and reason in report.errors[0]["reason"], report.errors
    assert set(stores(db, workspace.id)) == {"OK1"}


def test_jsonl_unknown_columns_and_duplicate_codes(db, workspace) -> None:  # type: ignore[no-untyped-def]
    lines = [
        {"code": "J1", "name": "一号店", "latitude": 31.2, "longitude": 121.4},
        {"code": "J1", "name": "又一个一号店", "latitude": 31.3, "longitude": 121.5},
        {"code": "J2", "name": "二号店", "lat": 31.2, "lng": 121.4},
        {"code": "J3", "name": "三号店", "latitude": True, "longitude": 121.4},
        "not an object",
    ]
    report = run(
        db, workspace.id, "\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n{bad", "jsonl"
    )
    reasons = {e["line"]: e["reason"] for e in report.errors}
    assert report.inserted == 1 and report.rejected == 5
    assert "code 'J1' is already on line 1" in reasons[2]
    assert "lat" in reasons[3] and "latitude" in reasons[3]  # unknown column, and the missing one
    assert "latitude must be a number" in reasons[4]
    assert "JSON object" in reasons[5] and "not valid JSON" in reasons[6]


def test_rest_lists_finds_and_imports_within_the_workspace(db, settings, workspace, other_workspace) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(settings, db))
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    agent = {"authorization": f"Bearer {workspace.agent_token}"}
    files = {"file": ("stores.csv", STORES_CSV.encode(), "text/csv")}
    assert client.post("/api/v1/imports/stores", files=files, headers=agent).status_code == 403
    r = client.post("/api/v1/imports/stores", files=files, headers=admin)
    assert r.status_code == 200 and r.json()["inserted"] == 3, r.text
    bad = {"file": ("stores.xlsx", b"x", "application/octet-stream")}
    assert client.post("/api/v1/imports/stores", files=bad, headers=admin).status_code == 422
    listed = client.get("/api/v1/stores", headers=agent).json()["items"]
    assert [s["code"] for s in listed] == ["BJ001", "SH001", "SH002"]
    near = client.get("/api/v1/stores/nearest", params={"lat": 31.2323, "lng": 121.4752}, headers=agent)
    assert near.status_code == 200 and near.json()["code"] == "SH001" and 2 < near.json()["distance_km"] < 3
    for params in ({"lat": 91, "lng": 0}, {"lat": "nan", "lng": 0}, {"lat": "x", "lng": 0}, {"lat": 31}):
        assert client.get("/api/v1/stores/nearest", params=params, headers=agent).status_code == 422, params
    other = {"authorization": f"Bearer {other_workspace.admin_token}"}
    assert client.get("/api/v1/stores", headers=other).json()["items"] == []
    assert (
        client.get("/api/v1/stores/nearest", params={"lat": 31.2, "lng": 121.4}, headers=other).status_code
        == 404
    )


def test_cli_import_reports_bad_rows_and_refuses_bad_files(db, settings, workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "stores.csv"
    good.write_text(STORES_CSV + "SH009,坏坐标店,上海,,,,nan,121.4\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["import", "stores", str(good), "--workspace", workspace.slug])
    assert r.exit_code == 0, r.output
    assert "4 rows: 3 inserted, 0 updated, 1 rejected" in r.output
    assert "line 5: latitude: latitude must be between -90 and 90" in r.output
    for args, message in [
        ([str(tmp_path / "missing.csv")], "no such file"),
        ([str(tmp_path)], "no such file"),
    ]:
        r = CliRunner().invoke(cli, ["import", "stores", *args, "--workspace", workspace.slug])
        assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output
    xlsx = tmp_path / "stores.xlsx"
    xlsx.write_bytes(b"PK")
    r = CliRunner().invoke(cli, ["import", "stores", str(xlsx), "--workspace", workspace.slug])
    assert r.exit_code != 0 and ".csv or .jsonl" in r.output
    r = CliRunner().invoke(cli, ["import", "stores", str(good), "--workspace", "nope"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    with db.transaction(readonly=True) as s:
        assert int(s.execute(select(func.count()).select_from(Store)).scalar_one()) == 3


def _located(lat: float, lng: float, at: dt.datetime, kind: str = "message") -> InboundEvent:
    return InboundEvent(
        external_id=f"loc-{at.timestamp()}",
        kind=kind,  # type: ignore[arg-type]
        sender=Sender("oFAN", namespace="wechat:wx1"),
        sent_at=at,
        msg_type="location" if kind == "message" else "event",
        location={"lat": lat, "lng": lng, "label": "人民广场"},
    )


def test_the_last_shared_location_is_kept_and_never_replaced_by_an_older_one(db, workspace) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    with db.transaction() as s:
        contact = Contact(workspace_id=workspace.id, name="粉丝", attributes={"vip": True}, tags=[])
        s.add(contact)
        s.flush()
        assert contact_service.last_location(contact) is None
        assert contact_service.record_location(contact, _located(31.2323, 121.4752, now))
        assert not contact_service.record_location(
            contact, _located(39.9, 116.4, now - dt.timedelta(minutes=5))
        )
        assert not contact_service.record_location(contact, _located(float("nan"), 116.4, now))
        assert not contact_service.record_location(contact, _located(120, 116.4, now))
        contact_id = contact.id
    with db.transaction() as s:
        contact = s.get(Contact, (workspace.id, contact_id))
        assert contact is not None
        where = contact_service.last_location(contact)
        assert where is not None and (where.lat, where.lng, where.label) == (31.2323, 121.4752, "人民广场")
        assert contact.attributes["vip"] is True  # the other attributes are kept
        later = _located(
            39.9087, 116.459, now + dt.timedelta(minutes=1), kind="location"
        )  # a LOCATION report
        assert contact_service.record_location(contact, later)
        assert contact.attributes["last_location"]["source"] == "report"
