"""Weibo replies through the outbox, end to end: fan-service pushes into the real endpoint, the
worker, the per-account follow state and 48-hour window, and the fake Weibo API.

Two brand accounts in one workspace share the identity namespace "weibo" (one uid, one
person): following or unfollowing one of them says nothing about the other.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from scrm.channels.weibo import simulate
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.fake import FakeWeiboServer
from scrm.config import Settings
from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.inbound.endpoints import router
from scrm.inbound.polling import enqueue_poll
from scrm.models import ContactAccountState, ContactIdentity, Conversation, Message, OutboxMessage
from scrm.worker.service import enqueue
from scrm.workspace import service
from tests.conftest import Workspace
from tests.helpers import run_jobs
from tests.outbox.test_wechat_fallback import run_retries

FAN = "2489518277"
BRANDS = {
    "a": ("1902538057", "secret-brand-a", "token-brand-a"),
    "b": ("1902538058", "secret-brand-b", "token-b"),
}


@dataclass
class Brand:
    id: int
    config: WeiboAccountConfig


@dataclass
class Env:
    fake: FakeWeiboServer
    http: TestClient
    brands: dict[str, Brand]

    def push(
        self, brand: str, *, text: str | None = None, event: str | None = None, at: dt.datetime | None = None
    ) -> None:
        b = self.brands[brand]
        payload = simulate.build_payload(b.config, sender_id=FAN, text=text, event=event, created_at=at)
        response = self.http.post(
            f"/hooks/weibo/{b.id}",
            params=simulate.signed_query(b.config),
            content=json.dumps(payload, ensure_ascii=False).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text


@pytest.fixture
def env(db: Database, settings: Settings, workspace: Workspace) -> Iterator[Env]:
    uid_a = BRANDS["a"][0]
    with FakeWeiboServer(
        brand_uid=uid_a, access_token=BRANDS["a"][2], access_tokens={BRANDS["b"][2]}
    ) as fake:
        settings.weibo_api_base = fake.base_url
        brands = {}
        with db.transaction() as s:
            for key, (uid, secret, token) in BRANDS.items():
                account = service.create_channel_account(
                    s,
                    workspace.id,
                    "weibo",
                    f"品牌{key}",
                    external_id=uid,
                    secrets={"app_secret": secret, "access_token": token},
                )
                brands[key] = Brand(
                    account.id, WeiboAccountConfig(uid=uid, app_secret=secret, access_token=token)
                )
        app = FastAPI()
        app.include_router(router)
        app.state.db = db
        yield Env(fake, TestClient(app), brands)


def conversation(db: Database, account_id: int, visibility: str = "private") -> Conversation:
    with db.transaction(readonly=True) as s:
        return s.execute(
            select(Conversation).where(
                Conversation.channel_account_id == account_id, Conversation.visibility == visibility
            )
        ).scalar_one()


def reply(db: Database, ws: Workspace, conv_id: int, text: str, visibility: str | None = None) -> int:
    with db.transaction() as s:
        conv = conversation_service.get(s, ws.id, conv_id)
        return conversation_service.send_reply(
            s, conv, text, author_id=ws.agent_member_id, visibility=visibility
        ).id


def message(db: Database, ws: Workspace, message_id: int) -> Message:
    with db.transaction(readonly=True) as s:
        row = s.get(Message, (ws.id, message_id))
        assert row is not None
        return row


def state(db: Database, account_id: int) -> ContactAccountState | None:
    with db.transaction(readonly=True) as s:
        return s.execute(
            select(ContactAccountState).where(
                ContactAccountState.channel_account_id == account_id, ContactAccountState.external_id == FAN
            )
        ).scalar_one_or_none()


def private_replies(env: Env) -> list[dict[str, str]]:
    return [r.form() for r in env.fake.requests_to("/2/messages/reply.json")]


def test_unfollow_on_one_brand_does_not_block_the_other(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    env.push("a", text="A 店的订单还没发货")
    env.push("b", text="B 店能开发票吗")
    env.push("a", event="unfollow")
    run_jobs(db, settings)
    a, b = env.brands["a"], env.brands["b"]
    assert state(db, a.id).subscribed is False  # type: ignore[union-attr]
    assert state(db, b.id).subscribed is None  # type: ignore[union-attr]  # never unfollowed B
    with db.transaction(readonly=True) as s:
        identity = s.execute(select(ContactIdentity).where(ContactIdentity.namespace == "weibo")).scalar_one()
    assert identity.subscribed is True  # one person, still reachable through brand B

    refused = reply(db, workspace, conversation(db, a.id).id, "您好，A 店客服")
    allowed = reply(db, workspace, conversation(db, b.id).id, "可以开发票")
    run_jobs(db, settings)
    failed = message(db, workspace, refused)
    assert (
        failed.status == "failed"
        and "取消关注" in (failed.error or "")
        and "公开评论" in (failed.error or "")
    )
    assert message(db, workspace, allowed).status == "sent"
    assert [r["receiver_id"] for r in private_replies(env)] == [FAN]
    assert private_replies(env)[0]["access_token"] == BRANDS["b"][2]  # sent as brand B

    env.push("a", event="follow")  # following A again lifts the opt-out there
    run_jobs(db, settings)
    again = reply(db, workspace, conversation(db, a.id).id, "欢迎回来")
    run_jobs(db, settings)
    assert message(db, workspace, again).status == "sent"


def test_an_unfollow_processed_late_does_not_undo_a_newer_follow(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    now = dt.datetime.now(dt.UTC)
    env.push("a", text="你好")
    env.push("a", event="follow", at=now)
    run_jobs(db, settings)
    env.push("a", event="unfollow", at=now - dt.timedelta(minutes=5))  # older event, arrives late
    run_jobs(db, settings)
    assert state(db, env.brands["a"].id).subscribed is True  # type: ignore[union-attr]
    sent = reply(db, workspace, conversation(db, env.brands["a"].id).id, "在的")
    run_jobs(db, settings)
    assert message(db, workspace, sent).status == "sent"


def _backdate(db: Database, account_id: int, hours: float) -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    with db.transaction() as s:
        s.execute(
            update(ContactAccountState)
            .where(ContactAccountState.channel_account_id == account_id)
            .values(last_message_at=when, last_interaction_at=when)
        )


def test_private_reply_after_48_hours_is_refused_but_a_public_reply_still_goes_out(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    a = env.brands["a"]
    env.push("a", text="我的快递呢")
    run_jobs(db, settings)
    _backdate(db, a.id, 48.5)
    post = env.fake.add_brand_post("新品发布")
    comment = env.fake.add_comment("快递三天没到", status_id=post, user_id=FAN)
    with db.transaction() as s:
        enqueue_poll(s, workspace.id, "weibo", a.id, "slot-1")
    run_jobs(db, settings)  # a public comment: opens no private window

    private = reply(db, workspace, conversation(db, a.id).id, "抱歉，已为您催件")
    public = reply(db, workspace, conversation(db, a.id, "public").id, "已私信您处理进度")
    run_jobs(db, settings)
    failed = message(db, workspace, private)
    assert failed.status == "failed"
    assert "48" in (failed.error or "") and "私信窗口已关闭" in (failed.error or "")
    assert private_replies(env) == []  # refused before any call
    assert message(db, workspace, public).status == "sent"
    (recorded,) = env.fake.replies
    assert recorded["cid"] == comment and recorded["comment"] == "已私信您处理进度"


def test_within_48_hours_the_private_reply_goes_out(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    env.push("a", text="在吗")
    run_jobs(db, settings)
    _backdate(db, env.brands["a"].id, 47.5)
    sent = reply(db, workspace, conversation(db, env.brands["a"].id).id, "在的")
    run_jobs(db, settings)
    assert message(db, workspace, sent).status == "sent"


def test_a_follow_opens_the_window_for_a_private_reply_on_a_public_thread(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    a = env.brands["a"]
    post = env.fake.add_brand_post("活动")
    env.fake.add_comment("怎么参加", status_id=post, user_id=FAN)
    with db.transaction() as s:
        enqueue_poll(s, workspace.id, "weibo", a.id, "slot-1")
    run_jobs(db, settings)
    thread = conversation(db, a.id, "public").id
    refused = reply(db, workspace, thread, "私信您细节", visibility="private")
    run_jobs(db, settings)
    failed = message(db, workspace, refused)
    assert failed.status == "failed" and "从未" in (failed.error or "")
    env.push("a", event="follow")
    run_jobs(db, settings)
    sent = reply(db, workspace, thread, "私信您细节", visibility="private")
    run_jobs(db, settings)
    assert message(db, workspace, sent).status == "sent"
    (form,) = private_replies(env)
    assert form["receiver_id"] == FAN and json.loads(form["data"]) == {"text": "私信您细节"}
    assert env.fake.replies == []  # the agent chose private: no public comment


def test_private_reply_end_to_end_is_sent_once_even_when_the_job_is_retried(
    env: Env, db: Database, settings: Settings, workspace: Workspace
) -> None:
    env.push("a", text="订单 12345 什么时候发货")
    run_jobs(db, settings)
    env.fake.fail_next(status=502, path="/2/messages/reply.json")  # the first attempt fails
    message_id = reply(db, workspace, conversation(db, env.brands["a"].id).id, "今天发货")
    run_jobs(db, settings)
    assert message(db, workspace, message_id).status == "pending"
    run_retries(db, settings)
    sent = message(db, workspace, message_id)
    assert sent.status == "sent", sent.error
    assert len(env.fake.requests_to("/2/messages/reply.json")) == 2  # 502, then delivered
    assert env.fake.messages == [{"receiver_id": FAN, "type": "text", "text": "今天发货"}]
    form: dict[str, Any] = private_replies(env)[-1]
    assert form["type"] == "text" and form["access_token"] == BRANDS["a"][2]
    # The job delivered twice more (a duplicate claim, a replayed queue): nothing more goes out.
    with db.transaction(readonly=True) as s:
        row = s.execute(select(OutboxMessage).where(OutboxMessage.message_id == message_id)).scalar_one()
    with db.transaction() as s:
        enqueue(s, workspace.id, "outbox.send", {"outbox_id": row.id}, idempotency_key="dup-1")
    run_jobs(db, settings)
    assert len(env.fake.messages) == 1
