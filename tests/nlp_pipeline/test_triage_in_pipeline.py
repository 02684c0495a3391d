"""Triage runs in the pipeline before routing, is stored, filterable and correctable."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.app import create_app
from scrm.models import TriageCorrection
from scrm.pipeline import PipelineContext, register_step, steps
from tests.helpers import run_jobs, signed_headers, webhook_event

LOST_BAG = "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！"


@pytest.fixture
def client(db, settings):  # type: ignore[no-untyped-def]
    return TestClient(create_app(settings, db))


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def deliver(client, ws, event_id: str, text: str, sender: str = "fan-1") -> None:  # type: ignore[no-untyped-def]
    body = webhook_event(event_id, text, sender=sender)
    r = client.post(
        f"/hooks/webhook/{ws.channel_id}", content=body, headers=signed_headers(ws.channel_secret, body)
    )
    assert r.status_code == 202


def test_lost_item_is_labelled_with_its_flight_before_routing_runs(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, object] = {}

    def spy(ctx: PipelineContext) -> None:  # a stand-in for the routing step, which runs after triage
        seen.update(ctx.facts.get("triage", {}))

    register_step(150, "test-spy")(spy)
    try:
        assert [name for _, name, _ in steps()].index("triage") < [n for _, n, _ in steps()].index("test-spy")
        deliver(client, workspace, "lb-1", LOST_BAG)
        run_jobs(db, settings)
    finally:
        from scrm import pipeline

        pipeline._STEPS[:] = [s for s in pipeline._STEPS if s[1] != "test-spy"]
    assert seen["intent"] == "lost_item" and seen["sentiment"] == "neg"
    flights = [e["value"] for e in seen["entities"] if e["type"] == "flight_no"]  # type: ignore[union-attr]
    assert flights == ["MU5137"]
    conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
    assert conv["intent"] == "lost_item" and conv["sentiment"] == "neg" and "lost_item" in conv["labels"]
    filtered = client.get(
        "/api/v1/conversations", params={"intent": "lost_item"}, headers=auth(workspace.agent_token)
    )
    assert [c["id"] for c in filtered.json()["items"]] == [conv["id"]]
    assert (
        client.get(
            "/api/v1/conversations", params={"intent": "praise"}, headers=auth(workspace.agent_token)
        ).json()["items"]
        == []
    )
    msg = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()["items"][0]
    assert msg["triage"]["intent"] == "lost_item" and msg["triage"]["model_version"]


def test_an_agents_correction_is_stored_and_applied(client, workspace, db, settings) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "c-1", "你们的服务真的太好了，下次还坐云程！")
    run_jobs(db, settings)
    conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
    msg = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()["items"][0]
    url = f"/api/v1/messages/{msg['id']}/triage"
    r = client.patch(url, json={"task": "intent", "label": "inquiry"}, headers=auth(workspace.agent_token))
    assert r.status_code == 200 and r.json()["triage"]["intent"] == "inquiry"
    assert (
        client.get(f"/api/v1/conversations/{conv['id']}", headers=auth(workspace.agent_token)).json()[
            "intent"
        ]
        == "inquiry"
    )
    with db.transaction(readonly=True) as s:
        (row,) = s.execute(select(TriageCorrection)).scalars().all()
    assert (row.task, row.label, row.previous_label) == ("intent", "inquiry", msg["triage"]["intent"])
    for bad in (
        {"task": "intent", "label": "not-a-label"},
        {"task": "mood", "label": "x"},
        {"task": "intent"},
    ):
        assert client.patch(url, json=bad, headers=auth(workspace.agent_token)).status_code == 422
    assert (
        client.patch(
            "/api/v1/messages/1/triage",
            json={"task": "intent", "label": "praise"},
            headers=auth(workspace.agent_token),
        ).status_code
        == 404
    )


def test_corrections_of_another_workspace_are_invisible(
    client, workspace, other_workspace, db, settings
) -> None:  # type: ignore[no-untyped-def]
    deliver(client, workspace, "x-1", "航班延误了")
    run_jobs(db, settings)
    conv = client.get("/api/v1/conversations", headers=auth(workspace.agent_token)).json()["items"][0]
    msg = client.get(
        f"/api/v1/conversations/{conv['id']}/messages", headers=auth(workspace.agent_token)
    ).json()["items"][0]
    r = client.patch(
        f"/api/v1/messages/{msg['id']}/triage",
        json={"task": "intent", "label": "praise"},
        headers=auth(other_workspace.agent_token),
    )
    assert r.status_code == 404
