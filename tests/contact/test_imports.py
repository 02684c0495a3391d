"""Orders and contacts imports: validated per row, idempotent, linked, streamed."""

from __future__ import annotations

import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from scrm.app import create_app
from scrm.channels.base import Sender
from scrm.contact import imports
from scrm.contact import service as contact_service
from scrm.db import Database
from scrm.models import Contact, ContactIdentity, Membership, Order

ORDERS_CSV = """source,order_id,member_id,phone,weibo_uid,kind,status,amount_fen,currency,placed_at,flight_no,seat
booking,YC001,M1001,13800138000,,booking,ticketed,128000,CNY,2026-11-22T08:00:00+08:00,MU5137,32C
booking,YC002,,,1234567890,booking,ticketed,99000,CNY,2026-11-21T08:00:00+08:00,MU5401,12A
booking,YC003,,,,booking,ticketed,50000,CNY,2026-11-21T08:00:00+08:00,CZ3101,1A
"""

BAD_ROWS = [
    (",YCX1,M1,,,booking,x,100,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "source"),
    ("booking,,M1,,,booking,x,100,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "order_id"),
    ("booking,YCX3,M1,,,booking,x,-5,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "amount_fen"),
    ("booking,YCX4,M1,,,booking,x,100,CNY,yesterday,MU1,1A", "placed_at"),
    ("booking,YCX5,M1,,,teleport,x,100,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "kind"),
    ("booking,YCX6,M1,not-a-phone,,booking,x,100,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "phone"),
    ("booking,YCX7,M1,,,booking,x,100,CNY,2026-11-22T08:00:00,MU1,1A", "placed_at"),
    ("booking,YCX8,M1,,,booking,x,abc,CNY,2026-11-22T08:00:00+08:00,MU1,1A", "amount_fen"),
    ("booking,YCX9,M1,,,booking,x,100,CNY,2026-11-22T08:00:00+08:00,MU1,1A,extra", "more fields"),
]


def snapshot(db: Database) -> dict[str, int]:
    with db.transaction(readonly=True) as s:
        return {
            m.__name__: int(s.execute(select(func.count()).select_from(m)).scalar_one())
            for m in (Contact, ContactIdentity, Order, Membership)
        }


def run(db: Database, ws: int, kind: str, text: str, fmt: str = "csv") -> imports.ImportReport:
    return imports.run_import(db, ws, kind, io.BytesIO(text.encode()), fmt)  # type: ignore[arg-type]


def test_orders_import_links_contacts_and_is_idempotent(db, workspace) -> None:  # type: ignore[no-untyped-def]
    report = run(db, workspace.id, "orders", ORDERS_CSV)
    assert (report.rows, report.inserted, report.updated, report.rejected, report.linked) == (3, 3, 0, 0, 2)
    first = snapshot(db)
    again = run(db, workspace.id, "orders", ORDERS_CSV.replace("ticketed", "flown"))
    assert (again.inserted, again.updated) == (0, 3)
    assert snapshot(db) == first
    with db.transaction(readonly=True) as s:
        order = s.execute(select(Order).where(Order.external_id == "YC001")).scalar_one()
        assert order.status == "flown" and order.amount_fen == 128000
        assert order.details == {"flight_no": "MU5137", "seat": "32C"}
        # A Weibo fan who later writes in is recognised as the booking's passenger.
        resolved = contact_service.resolve(
            s, workspace.id, Sender(external_id="1234567890", namespace="weibo")
        )
        assert not resolved.created
        orders = contact_service.orders(s, workspace.id, resolved.contact.id)
        assert [o.external_id for o in orders] == ["YC002"]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS)
def test_each_bad_row_is_rejected_with_its_line_and_writes_nothing(db, workspace, row, reason) -> None:  # type: ignore[no-untyped-def]
    header = ORDERS_CSV.splitlines()[0]
    before = snapshot(db)
    report = run(db, workspace.id, "orders", f"{header}\n{row}\n")
    assert report.rejected == 1 and report.inserted == 0
    assert report.errors[0]["line"] == 2
    assert reason in report.errors[0]["reason"]
    assert snapshot(db) == before


def test_good_rows_around_bad_ones_still_import(db, workspace) -> None:  # type: ignore[no-untyped-def]
    lines = ORDERS_CSV.splitlines()
    text = "\n".join([lines[0], lines[1], BAD_ROWS[2][0], lines[2]]) + "\n"
    report = run(db, workspace.id, "orders", text)
    assert (report.inserted, report.rejected) == (2, 1) and report.errors[0]["line"] == 3


def test_jsonl_import_reports_malformed_lines(db, workspace) -> None:  # type: ignore[no-untyped-def]
    good = {
        "source": "shop",
        "order_id": "XM1",
        "phone": "13900001111",
        "amount_fen": 399900,
        "placed_at": "2026-11-20T10:00:00+08:00",
        "product": "小墨 13 Pro",
    }
    text = "\n".join(
        [json.dumps(good, ensure_ascii=False), "{oops", "[1,2]", "", json.dumps({"source": "shop"})]
    )
    report = run(db, workspace.id, "orders", text, "jsonl")
    assert report.inserted == 1 and report.rejected == 3
    assert [e["line"] for e in report.errors] == [2, 3, 5]


def test_non_utf8_file_is_refused_whole(db, workspace) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(db)
    with pytest.raises(imports.Invalid):
        imports.run_import(
            db, workspace.id, "orders", io.BytesIO("source,order_id\n测试,1\n".encode("gbk")), "csv"
        )
    assert snapshot(db) == before


def test_contacts_import_joins_identities_and_membership(db, workspace) -> None:  # type: ignore[no-untyped-def]
    text = (
        "name,phone,member_id,weibo_uid,wechat_openid,wechat_appid,gender,city,tier,points\n"
        "张伟,13800138000,M1001,1234567890,oYC_abc,wx123,男,上海,gold,12000\n"
        "李娜,13900139000,,,,,女,成都,,\n"
    )
    report = run(db, workspace.id, "contacts", text)
    assert (report.inserted, report.rejected) == (2, 0)
    again = run(db, workspace.id, "contacts", text)
    assert (again.inserted, again.updated) == (0, 2)
    with db.transaction(readonly=True) as s:
        resolved = contact_service.resolve(
            s, workspace.id, Sender(external_id="oYC_abc", namespace="wechat:wx123")
        )
        assert resolved.contact.name == "张伟" and not resolved.created
        ms = contact_service.memberships(s, workspace.id, resolved.contact.id)
        assert [(m.tier, m.points_balance) for m in ms] == [("gold", 12000)]
        namespaces = {i.namespace for i in contact_service.identities(s, workspace.id, resolved.contact.id)}
        assert namespaces == {"member", "phone", "weibo", "wechat:wx123"}


def test_wechat_openid_without_an_account_is_rejected(db, workspace) -> None:  # type: ignore[no-untyped-def]
    report = run(db, workspace.id, "contacts", "name,wechat_openid\n王,oYC_x\n")
    assert report.rejected == 1 and "wechat_appid" in report.errors[0]["reason"]


def test_import_endpoint_needs_a_supervisor_and_reports_rows(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(settings, db))
    files = {"file": ("orders.csv", ORDERS_CSV.encode(), "text/csv")}
    agent = client.post(
        "/api/v1/imports/orders", files=files, headers={"authorization": f"Bearer {workspace.agent_token}"}
    )
    assert agent.status_code == 403
    admin = {"authorization": f"Bearer {workspace.admin_token}"}
    ok = client.post("/api/v1/imports/orders", files=files, headers=admin)
    assert ok.status_code == 200 and ok.json()["inserted"] == 3
    bad = client.post("/api/v1/imports/orders", files={"file": ("orders.xlsx", b"PK", "x")}, headers=admin)
    assert bad.status_code == 422 and bad.json()["field"] == "file"


def test_large_import_streams_in_batches(db, workspace) -> None:  # type: ignore[no-untyped-def]
    n = 5000
    rows = "".join(
        f"shop,O{i},,,{1000000000 + i % 50},order,paid,{i},CNY,2026-11-20T10:00:00+08:00,,\n"
        for i in range(n)
    )
    batches: list[int] = []
    report = imports.run_import(
        db,
        workspace.id,
        "orders",
        io.BytesIO((ORDERS_CSV.splitlines()[0] + "\n" + rows).encode()),
        "csv",
        progress=batches.append,
    )
    assert report.inserted == n and report.linked == n
    assert batches == [1000] * 5
    assert snapshot(db)["Contact"] == 50
