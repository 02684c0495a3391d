"""Weibo end to end: fan-service pushes through the real endpoint, polling with persisted
cursors, public replies as comment replies on the fan's thread — against the fake Weibo API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from scrm.channels.weibo import simulate
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.fake import FakeWeiboServer
from scrm.config import Settings
from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.inbound.endpoints import router
from scrm.inbound.polling import enqueue_poll
from scrm.kit.time import utcnow
from scrm.models import ChannelAccount, Conversation, InboundEvent, Job, Message
from scrm.workspace import service
from tests.conftest import Workspace
from tests.helpers import run_jobs

UID = "1902538057"
APP_SECRET = "xyz123xyz"
ACCESS_TOKEN = "weibo-access-token-0001"
FAN = "2489518277"


@dataclass
class Weibo:
    id: int
    config: WeiboAccountConfig
    fake: FakeWeiboServer
    http: TestClient

    @property
    def url(self) -> str:
        return f"/hooks/weibo/{self.id}"

    def post(self, payload: dict[str, Any] | bytes, query: dict[str, str] | None = None) -> Any:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        return self.http.post(
            self.url,
            params=query or simulate.signed_query(self.config),
            content=body,
            headers={"content-type": "application/json"},
        )


@pytest.fixture
def weibo(db: Database, settings: Settings, workspace: Workspace) -> Iterator[Weibo]:
    with FakeWeiboServer(brand_uid=UID, access_token=ACCESS_TOKEN) as fake:
        settings.weibo_api_base = fake.base_url
        with db.transaction() as s:
            account = service.create_channel_account(
                s,
                workspace.id,
                "weibo",
                "官方微博",
                external_id=UID,
                secrets={"app_secret": APP_SECRET, "access_token": ACCESS_TOKEN},
            )
        app = FastAPI()
        app.include_router(router)
        app.state.db = db
        config = WeiboAccountConfig(uid=UID, app_secret=APP_SECRET, access_token=ACCESS_TOKEN)
        yield Weibo(account.id, config, fake, TestClient(app))


def count(db: Database, model: type, *where: Any) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def poll(db: Database, settings: Settings, ws: Workspace, weibo: Weibo, slot: str) -> None:
    with db.transaction() as s:
        enqueue_poll(s, ws.id, "weibo", weibo.id, slot)
    run_jobs(db, settings)


def cursors(db: Database, ws: Workspace, weibo: Weibo) -> dict[str, str]:
    with db.transaction(readonly=True) as s:
        account = s.get(ChannelAccount, (ws.id, weibo.id))
        assert account is not None
        return dict(account.state.get("cursors") or {})


def test_fan_service_text_push_becomes_a_private_conversation(
    weibo: Weibo, db: Database, settings: Settings
) -> None:
    echo = weibo.http.get(weibo.url, params={**simulate.signed_query(weibo.config), "echostr": "e123"})
    assert echo.status_code == 200 and echo.text == "e123"
    payload = simulate.build_payload(weibo.config, sender_id=FAN, text="我的订单还没发货")
    first, retry = weibo.post(payload), weibo.post(payload)
    assert (first.status_code, first.content) == (200, b"") == (retry.status_code, retry.content)
    assert count(db, InboundEvent) == 1
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        conv = s.execute(select(Conversation)).scalar_one()
        msg = s.execute(select(Message)).scalar_one()
    assert conv.visibility == "private" and conv.fan_external_id == FAN and conv.thread_key == ""
    assert msg.text == "我的订单还没发货"


@pytest.mark.parametrize(
    "case, status",
    [("bad_signature", 401), ("bad_json", 400), ("other_receiver", 403), ("ten_megabytes", 413)],
)
def test_hostile_pushes_store_nothing(weibo: Weibo, db: Database, case: str, status: int) -> None:
    payload: Any = simulate.build_payload(weibo.config, sender_id=FAN, text="hi")
    query = simulate.signed_query(weibo.config)
    if case == "bad_signature":
        query["signature"] = "0" * 40
    elif case == "bad_json":
        payload = b'{"type": "text", "type": "text"'
    elif case == "other_receiver":
        payload["receiver_id"] = 1234
    elif case == "ten_megabytes":
        payload = b'{"text": "' + b"A" * (10 * 1024 * 1024) + b'"}'
    assert weibo.post(payload, query).status_code == status
    assert count(db, InboundEvent) == 0


def test_poll_imports_mentions_and_comments_once_and_persists_the_cursor(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fake = weibo.fake
    fake.add_mention("@品牌官方微博 航班延误三个小时了", user_id="1404376560", name="zaku", followers=1204)
    fake.add_mention("@品牌官方微博 行李丢了", user_id=FAN)
    post = fake.add_brand_post("新品发布")
    comment = fake.add_comment("什么时候开售？", status_id=post, user_id="1722052204", mentions_brand=True)
    poll(db, settings, workspace, weibo, "slot-1")
    assert count(db, InboundEvent) == 3  # the comment came from two endpoints: one event
    saved = cursors(db, workspace, weibo)
    assert set(saved) == {"mentions", "comment_mentions", "comments"}
    assert saved["comments"] == comment

    poll(db, settings, workspace, weibo, "slot-2")  # nothing new
    assert count(db, InboundEvent) == 3
    since = [r.query.get("since_id") for r in fake.requests_to("/2/statuses/mentions.json")]
    assert since[-1] == saved["mentions"]

    # "Restart": a fresh Database, clients and process state; it continues from the cursor.
    fake.add_mention("@品牌官方微博 还有一件事", user_id=FAN)
    restarted = Database(db.url)
    try:
        poll(restarted, settings, workspace, weibo, "slot-3")
    finally:
        restarted.dispose()
    assert count(db, InboundEvent) == 4
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        convs = s.execute(select(Conversation)).scalars().all()
    assert {c.visibility for c in convs} == {"public"}
    assert post in {c.thread_key for c in convs}


def test_rate_limited_poll_imports_nothing_and_retries_later(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    weibo.fake.add_mention("@品牌官方微博 你好")
    weibo.fake.add_mention("@品牌官方微博 在吗")
    weibo.fake.rate_limit_next(path="/2/comments/mentions.json")
    poll(db, settings, workspace, weibo, "slot-1")
    assert count(db, InboundEvent) == 0 and cursors(db, workspace, weibo) == {}
    with db.transaction(readonly=True) as s:
        jobs = s.execute(select(Job).where(Job.kind == "weibo.poll_account").order_by(Job.id)).scalars().all()
    # Rescheduled after Weibo's retry_after without using an attempt; the periodic poll queued
    # behind it waits (polls of one account run in order).
    assert jobs[0].status == "queued" and jobs[0].attempts == 0 and "rate limit" in (jobs[0].last_error or "")
    assert all(j.status == "queued" for j in jobs)


def test_public_reply_goes_out_as_a_comment_reply_on_the_fans_thread(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    post = weibo.fake.add_brand_post("新品发布")
    comment = weibo.fake.add_comment("电池续航怎么样？", status_id=post, user_id=FAN)
    poll(db, settings, workspace, weibo, "slot-1")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        assert conv.thread_key == post and conv.visibility == "public"
        sent = conversation_service.send_reply(s, conv, "续航两天", author_id=workspace.agent_member_id)
        message_id = sent.id
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        out = s.get(Message, (workspace.id, message_id))
        assert out is not None and out.status == "sent", out.error if out else None
    (recorded,) = weibo.fake.replies
    assert recorded["id"] == post and recorded["cid"] == comment and recorded["comment"] == "续航两天"
    assert weibo.fake.requests_to("/2/comments/reply.json")


def test_pushed_mention_with_comment_dedups_with_the_poller_and_replies_to_the_comment(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """The demo path: a fan-service `mention` push naming its status and comment."""
    post = weibo.fake.add_brand_post("新品发布")
    comment = weibo.fake.add_comment("屏幕碎了能保修吗", status_id=post, user_id=FAN)
    payload = simulate.build_payload(weibo.config, sender_id=FAN, text="屏幕碎了能保修吗")
    payload.update(type="event", data={"subtype": "mention", "status_id": post, "comment_id": comment})
    assert weibo.post(payload).status_code == 200
    poll(db, settings, workspace, weibo, "slot-1")  # the poller finds the same comment
    assert count(db, InboundEvent) == 1
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        conversation_service.send_reply(s, conv, "可以保修", author_id=workspace.agent_member_id)
    run_jobs(db, settings)
    (recorded,) = weibo.fake.replies
    assert recorded["cid"] == comment and recorded["id"] == post


def _reply_on_a_comment(weibo: Weibo, db: Database, settings: Settings, workspace: Workspace) -> int:
    post = weibo.fake.add_brand_post("新品发布")
    weibo.fake.add_comment("电池续航怎么样？", status_id=post, user_id=FAN)
    poll(db, settings, workspace, weibo, "slot-1")
    run_jobs(db, settings)
    with db.transaction() as s:
        conv = s.execute(select(Conversation)).scalar_one()
        return conversation_service.send_reply(s, conv, "续航两天", author_id=workspace.agent_member_id).id


def _make_due(db: Database) -> None:
    with db.transaction() as s:
        s.execute(update(Job).where(Job.status == "queued").values(run_at=utcnow()))


def _retried_and_sent(db: Database, settings: Settings, workspace: Workspace, message_id: int) -> Message:
    """Run the reply's retry now; it must end sent."""
    _make_due(db)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        out = s.get(Message, (workspace.id, message_id))
        assert out is not None and out.status == "sent", out.error if out else None
        return out


def test_a_reply_whose_answer_timed_out_is_found_on_retry_not_posted_twice(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """Weibo took the comment but answered after our timeout: the outcome was unknown, the outbox
    retried, and the retry found the comment in comments/by_me instead of posting it again."""
    settings.channel_api_timeout = 0.5
    weibo.fake.delay_next(1.5, path="/2/comments/reply.json")
    message_id = _reply_on_a_comment(weibo, db, settings, workspace)
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        out = s.get(Message, (workspace.id, message_id))
        assert out is not None and out.status != "sent"  # timed out: will be retried
    time.sleep(1.2)  # the fake finishes the slow request and stores the comment
    assert len(weibo.fake.replies) == 1
    out = _retried_and_sent(db, settings, workspace, message_id)
    assert out.channel_message_id == f"comment:{weibo.fake.replies[0]['idstr']}"
    assert len(weibo.fake.replies) == 1  # one comment on Weibo
    assert len(weibo.fake.requests_to("/2/comments/reply.json")) == 1
    assert weibo.fake.requests_to("/2/comments/by_me.json")


def test_a_retry_that_finds_nothing_posts_the_reply(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """The first attempt never reached Weibo (connection reset): the retry looks, finds no such
    comment, and posts it; an earlier comment with the same text on another post is no match."""
    other = weibo.fake.add_brand_post("旧帖")
    weibo.fake.replies.append(
        {
            "id": 1,
            "idstr": "1",
            "text": "续航两天",
            "status_id": other,
            "created_at": "Wed Dec 02 10:00:00 +0800 2026",
        }
    )
    weibo.fake.reset_next(path="/2/comments/reply.json")
    message_id = _reply_on_a_comment(weibo, db, settings, workspace)
    run_jobs(db, settings)
    _retried_and_sent(db, settings, workspace, message_id)
    assert len(weibo.fake.requests_to("/2/comments/reply.json")) == 2
    assert [r["text"] for r in weibo.fake.replies] == ["续航两天", "续航两天"]
    assert weibo.fake.replies[1]["status_id"] != other


def test_a_retry_whose_look_up_is_refused_for_good_still_posts_the_reply(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """comments/by_me refused for good (the app lacks that API): the retry sends, never loses."""
    weibo.fake.reset_next(path="/2/comments/reply.json")
    weibo.fake.respond_next(
        {"error": "Permission denied!", "error_code": 10014}, path="/2/comments/by_me.json", status=403
    )
    message_id = _reply_on_a_comment(weibo, db, settings, workspace)
    run_jobs(db, settings)
    _retried_and_sent(db, settings, workspace, message_id)
    assert len(weibo.fake.requests_to("/2/comments/by_me.json")) == 1
    assert [r["text"] for r in weibo.fake.replies] == ["续航两天"]


def test_a_rule_reply_threads_to_the_comment_it_answers(
    weibo: Weibo, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """The rule's reply goes to the comment that triggered it, each time: two comments of one
    fan on one post, one conversation, two replies to two different comments."""
    from scrm.automation import service as rules

    with db.transaction() as s:
        rules.save_rule(
            s,
            workspace.id,
            {
                "name": "续航 FAQ",
                "event": "message.received",
                "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["续航"]}]},
                "actions": [{"type": "reply", "text": "续航两天"}],
            },
        )
    post = weibo.fake.add_brand_post("新品发布")
    first = weibo.fake.add_comment("电池续航怎么样？", status_id=post, user_id=FAN)
    poll(db, settings, workspace, weibo, "slot-1")
    run_jobs(db, settings)
    second = weibo.fake.add_comment("续航真有两天吗", status_id=post, user_id=FAN)
    poll(db, settings, workspace, weibo, "slot-2")
    run_jobs(db, settings)
    assert count(db, Conversation) == 1
    assert [(r["id"], r["cid"], r["comment"]) for r in weibo.fake.replies] == [
        (post, first, "续航两天"),
        (post, second, "续航两天"),
    ]
