"""WeChat end to end: real endpoint, real database, worker, outbox and the fake WeChat API."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import xmltodict
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, update
from wechatpy.crypto import WeChatCrypto

from scrm.channels.wechat import simulate
from scrm.channels.wechat.client import WechatClient
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.fake import FakeWechatServer
from scrm.channels.wechat.spec import account_config
from scrm.config import Settings
from scrm.conversation import service as conversation_service
from scrm.db import Database
from scrm.inbound import passive
from scrm.inbound.endpoints import router
from scrm.models import (
    ChannelToken,
    ContactAccountState,
    ContactIdentity,
    Conversation,
    InboundEvent,
    Message,
)
from scrm.workspace import service
from scrm.workspace.tokens import DbTokenStore
from tests.channels.helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN
from tests.conftest import Workspace
from tests.helpers import run_jobs

SECRET = "wechat-app-secret-0001"
FAN = "oFAN_integration_0000000000001"


@dataclass
class Wechat:
    id: int
    config: WechatAccountConfig
    fake: FakeWechatServer
    http: TestClient

    @property
    def url(self) -> str:
        return f"/hooks/wechat/{self.id}"

    def post(self, query: dict[str, str], body: bytes) -> Any:
        return self.http.post(self.url, params=query, content=body, headers={"content-type": "text/xml"})

    def push(self, *, create_time: int | None = None, **kw: Any) -> tuple[dict[str, str], bytes]:
        xml = simulate.build_message_xml(to_user=ORIGINAL_ID, from_user=FAN, create_time=create_time, **kw)
        return simulate.build_push(self.config, xml, encrypt=True, openid=FAN)


def make_app(db: Database) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    app.state.db = db
    return app


def make_account(db: Database, ws: Workspace, config: dict[str, Any] | None = None) -> int:
    with db.transaction() as s:
        account = service.create_channel_account(
            s,
            ws.id,
            "wechat",
            "公众号",
            external_id=APPID,
            config={"original_id": ORIGINAL_ID, **(config or {})},
            secrets={"token": TOKEN, "secret": SECRET, "encoding_aes_key": AES_KEY},
        )
        return account.id


@pytest.fixture
def wechat(db: Database, settings: Settings, workspace: Workspace) -> Iterator[Wechat]:
    with FakeWechatServer(appid=APPID, secret=SECRET) as fake:
        settings.wechat_api_base = fake.base_url
        account_id = make_account(db, workspace, {"fallback_template_id": "TPL_REPLY"})
        with db.transaction(readonly=True) as s:
            view = service.account_view(service.get_channel_account(s, workspace.id, account_id))
        yield Wechat(account_id, account_config(view), fake, TestClient(make_app(db)))


def count(db: Database, model: type, *where: Any) -> int:
    with db.transaction(readonly=True) as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def conversation(db: Database) -> Conversation:
    with db.transaction(readonly=True) as s:
        return s.execute(select(Conversation)).scalars().one()


def reply(db: Database, ws: Workspace, text: str) -> int:
    with db.transaction() as s:
        conv = conversation_service.get(s, ws.id, conversation(db).id)
        return conversation_service.send_reply(s, conv, text, author_id=ws.agent_member_id).id


def message(db: Database, ws: Workspace, message_id: int) -> Message:
    with db.transaction(readonly=True) as s:
        row = s.get(Message, (ws.id, message_id))
        assert row is not None
        return row


def fan_writes(wechat: Wechat, db: Database, settings: Settings, text: str = "我的行李丢了") -> None:
    assert wechat.post(*wechat.push(text=text)).content == b"success"
    run_jobs(db, settings)


# -- inbound --------------------------------------------------------------------------------------


def test_url_verification_answers_echostr_as_plain_text(wechat: Wechat) -> None:
    query = simulate.build_verification(wechat.config, "echo-1234567")
    response = wechat.http.get(wechat.url, params=query)
    assert response.status_code == 200 and response.text == "echo-1234567"
    assert response.headers["content-type"].startswith("text/plain")
    bad = {**query, "signature": "0" * 40}
    assert wechat.http.get(wechat.url, params=bad).status_code == 401


def test_safe_mode_text_once_despite_retries_and_concurrent_duplicates(
    wechat: Wechat, db: Database, settings: Settings
) -> None:
    query, body = wechat.push(text="航班延误了，行李怎么办？", msg_id=1234567890123456)
    answers = [wechat.post(query, body) for _ in range(4)]  # the original + WeChat's 3 retries
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers += list(pool.map(lambda _: wechat.post(query, body), range(6)))
    assert {(a.status_code, a.content) for a in answers} == {(200, b"success")}
    assert count(db, InboundEvent) == 1
    with db.transaction(readonly=True) as s:
        stored = s.execute(select(InboundEvent)).scalar_one()
    assert "<Content><![CDATA[航班延误了，行李怎么办？]]></Content>" in stored.raw  # decrypted plaintext
    assert "<Encrypt>" not in stored.raw
    run_jobs(db, settings)
    assert count(db, Message) == 1
    with db.transaction(readonly=True) as s:
        ident = s.execute(select(ContactIdentity).where(ContactIdentity.external_id == FAN)).scalar_one()
        state = s.execute(
            select(ContactAccountState).where(ContactAccountState.external_id == FAN)
        ).scalar_one()
    assert ident.namespace == f"wechat:{APPID}"
    assert state.last_message_at is not None  # the account's 48 h service window is open


def test_subscribe_with_qr_scene(wechat: Wechat, db: Database, settings: Settings) -> None:
    response = wechat.post(*wechat.push(event="subscribe", event_key="qrscene_store_42"))
    assert response.content == b"success"
    with db.transaction(readonly=True) as s:
        event = s.execute(select(InboundEvent)).scalar_one()
    assert event.kind == "subscribe" and event.event["scene"] == "store_42"
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        ident = s.execute(select(ContactIdentity).where(ContactIdentity.external_id == FAN)).scalar_one()
    assert ident.subscribed is True
    assert count(db, Message) == 0  # a follow is not a message


def test_unknown_event_is_stored_and_acknowledged(wechat: Wechat, db: Database, settings: Settings) -> None:
    response = wechat.post(*wechat.push(event="TEMPLATESENDJOBFINISH"))
    assert response.status_code == 200 and response.content == b"success"
    with db.transaction(readonly=True) as s:
        assert s.execute(select(InboundEvent.kind)).scalar_one() == "unknown"
    run_jobs(db, settings)


def test_passive_reply_is_encrypted_and_the_same_for_every_retry(
    wechat: Wechat, db: Database, settings: Settings
) -> None:
    def welcome(account: Any, event: Any) -> str | None:
        return "欢迎关注！" if event.kind == "subscribe" else None

    passive.register("test-welcome", welcome)
    try:
        query, body = wechat.push(event="subscribe", create_time=1_700_000_000)
        contents = []
        for _ in range(3):
            response = wechat.post(query, body)
            assert response.status_code == 200
            envelope = xmltodict.parse(response.text)["xml"]
            plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
                response.text, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
            )
            fields = xmltodict.parse(plain)["xml"]
            contents.append((fields["ToUserName"], fields["MsgType"], fields["Content"]))
        assert contents == [(FAN, "text", "欢迎关注！")] * 3
        assert count(db, InboundEvent) == 1
        # A text message has no replier here: plain acknowledgement.
        assert wechat.post(*wechat.push(text="你好")).content == b"success"
    finally:
        passive.unregister("test-welcome")


@pytest.mark.parametrize(
    "case, status",
    [("bad_signature", 401), ("wrong_token", 401), ("ten_megabytes", 413), ("xxe", 400), ("not_xml", 400)],
)
def test_hostile_requests_store_nothing_and_get_4xx(
    wechat: Wechat, db: Database, case: str, status: int
) -> None:
    query, body = wechat.push(text="hi")
    if case == "bad_signature":
        query["msg_signature"] = "f" * 40
    elif case == "wrong_token":
        other = wechat.config.model_copy(update={"token": SecretStr("not-the-token")})
        xml = simulate.build_message_xml(to_user=ORIGINAL_ID, from_user=FAN, text="hi")
        query, body = simulate.build_push(other, xml, encrypt=True)
    elif case == "ten_megabytes":
        body = b"<xml>" + b"A" * (10 * 1024 * 1024) + b"</xml>"
    elif case in ("xxe", "not_xml"):
        plain = (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<xml><ToUserName>&xxe;</ToUserName><Encrypt>x</Encrypt></xml>"
            if case == "xxe"
            else b'{"json": "is not XML"}'
        )
        query, body = simulate.build_push(wechat.config, "", encrypt=False)[0], plain
        query.update(encrypt_type="aes", msg_signature="0" * 40)
    response = wechat.post(query, body)
    assert response.status_code == status, response.text
    assert count(db, InboundEvent) == 0


def test_unknown_account_is_404(wechat: Wechat) -> None:
    query, body = wechat.push(text="hi")
    assert wechat.http.post("/hooks/wechat/999999", params=query, content=body).status_code == 404
    assert (
        wechat.http.post(f"/hooks/nosuchchannel/{wechat.id}", params=query, content=body).status_code == 404
    )


# -- outbound -------------------------------------------------------------------------------------


def test_agent_reply_goes_out_through_customer_service_api(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fan_writes(wechat, db, settings)
    message_id = reply(db, workspace, "您好，我们马上为您查询")
    run_jobs(db, settings)
    assert message(db, workspace, message_id).status == "sent"
    assert wechat.fake.sent == [
        {"touser": FAN, "msgtype": "text", "text": {"content": "您好，我们马上为您查询"}}
    ]
    assert wechat.fake.token_fetches == 1
    assert count(db, ChannelToken) == 1


def test_unsubscribed_fan_is_refused_without_calling_the_api(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fan_writes(wechat, db, settings)
    assert wechat.post(*wechat.push(event="unsubscribe")).content == b"success"
    run_jobs(db, settings)
    with db.transaction(readonly=True) as s:
        ident = s.execute(select(ContactIdentity).where(ContactIdentity.external_id == FAN)).scalar_one()
    assert ident.subscribed is False
    message_id = reply(db, workspace, "还在吗？")
    run_jobs(db, settings)
    sent = message(db, workspace, message_id)
    assert sent.status == "failed" and "取消关注" in (sent.error or "")
    assert wechat.fake.requests == []  # not even a token fetch


def test_closed_window_fails_clearly_and_sends_the_fallback_template(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fan_writes(wechat, db, settings)
    with db.transaction() as s:
        s.execute(  # the outbox reads the window of this account (contact_account_state)
            update(ContactAccountState)
            .where(ContactAccountState.external_id == FAN)
            .values(last_message_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=49))
        )
    message_id = reply(db, workspace, "抱歉久等了，行李已找到")
    run_jobs(db, settings)
    failed = message(db, workspace, message_id)
    assert failed.status == "failed"
    assert "窗口已关闭" in (failed.error or "") and "48" in (failed.error or "")
    assert wechat.fake.sent == []
    assert len(wechat.fake.templates_sent) == 1
    template = wechat.fake.templates_sent[0]
    assert template["touser"] == FAN and template["template_id"] == "TPL_REPLY"
    assert "抱歉久等了" in str(template["data"])


def test_sixth_reply_after_one_fan_message_is_refused(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fan_writes(wechat, db, settings)
    ids = [reply(db, workspace, f"第 {n} 条") for n in range(1, 7)]
    run_jobs(db, settings)
    statuses = [message(db, workspace, i).status for i in ids]
    assert statuses == ["sent"] * 5 + ["failed"]
    assert "5" in (message(db, workspace, ids[-1]).error or "")
    assert len(wechat.fake.sent) == 5
    fan_writes(wechat, db, settings, "还有问题")  # a new fan message reopens the window
    again = reply(db, workspace, "请讲")
    run_jobs(db, settings)
    assert message(db, workspace, again).status == "sent"


def test_refused_token_is_refreshed_once_and_the_send_retried_once(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    fan_writes(wechat, db, settings)
    first = reply(db, workspace, "一")
    run_jobs(db, settings)
    assert wechat.fake.token_fetches == 1
    wechat.fake.revoke_tokens()  # someone else's /token call killed ours: WeChat answers 40001
    second = reply(db, workspace, "二")
    run_jobs(db, settings)
    assert [message(db, workspace, i).status for i in (first, second)] == ["sent", "sent"]
    assert wechat.fake.token_fetches == 2
    sends = wechat.fake.requests_to("/cgi-bin/message/custom/send")
    assert len(sends) == 3  # first, second refused with 40001, second retried once


def test_db_token_store_is_single_flight_across_threads(
    db: Database, settings: Settings, workspace: Workspace
) -> None:
    """Eight "processes" (own store, own client, own connections) need a token at once."""
    with FakeWechatServer(appid=APPID, secret=SECRET) as fake:
        account_id = make_account(db, workspace)
        cfg = WechatAccountConfig(appid=APPID, token=TOKEN, secret=SECRET)
        fake.delay_next(0.2, path="/cgi-bin/stable_token")  # widen the race window
        barrier = threading.Barrier(8)

        def one(_: int) -> str:
            store = DbTokenStore(Database(db.url), workspace.id, account_id)
            with WechatClient(cfg, base_url=fake.base_url, token_store=store) as client:
                barrier.wait()
                return client.access_token()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            tokens = set(pool.map(one, range(8)))
        assert fake.token_fetches == 1
        assert len(tokens) == 1
        # A stale token is replaced once; callers holding the stale one get the new one.
        store = DbTokenStore(db, workspace.id, account_id)
        stale = tokens.pop()
        with WechatClient(cfg, base_url=fake.base_url, token_store=store) as client:
            fresh = client._refresh_invalid(stale)
            assert fresh != stale and client._refresh_invalid(stale) == fresh
        assert store.fetch_count == 1  # one refresh (stable_token, then force_refresh: same token back)
        assert fake.token_fetches == 3


def _rule(db: Database, ws: Workspace, **data: Any) -> None:
    from scrm.automation import service as automation

    with db.transaction() as s:
        automation.save_rule(s, ws.id, {"stop": False, "conditions": {}, **data})


def _decrypted_content(response: Any) -> str:
    envelope = xmltodict.parse(response.text)["xml"]
    plain = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        response.text, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
    )
    return str(xmltodict.parse(plain)["xml"]["Content"])


def test_rules_that_the_push_decides_answer_passively_and_are_not_sent_again(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    from scrm.automation import passive as rule_replies
    from scrm.models import OutboxMessage, RuleFiring

    _rule(db, workspace, name="欢迎", event="contact.subscribed", position=1,
          actions=[{"type": "reply", "text": "感谢关注！"}])  # fmt: skip
    _rule(db, workspace, name="营业时间", event="message.received", position=1,
          conditions={"all": [{"field": "text", "op": "contains_any", "value": ["营业时间"]}]},
          actions=[{"type": "reply", "text": "每天 9:00-21:00 在线"}])  # fmt: skip
    passive.register("rules", rule_replies.replier(db))
    try:
        # The welcome: the same encrypted answer for the push and its retries, stored once.
        query, body = wechat.push(event="subscribe", create_time=1_700_000_100)
        answers = [_decrypted_content(wechat.post(query, body)) for _ in range(3)]
        assert answers == ["感谢关注！"] * 3 and count(db, InboundEvent) == 1
        # A keyword the rule knows: answered in the response and recorded in the conversation.
        assert _decrypted_content(wechat.post(*wechat.push(text="请问营业时间？"))) == "每天 9:00-21:00 在线"
        # Anything else: plain acknowledgement.
        assert wechat.post(*wechat.push(text="航班延误了")).content == b"success"
        run_jobs(db, settings)
    finally:
        passive.unregister("rules")
    assert wechat.fake.sent == []  # nothing went out through the customer-service API
    assert count(db, OutboxMessage) == 0
    with db.transaction(readonly=True) as s:
        bot = s.execute(select(Message).where(Message.sender_type == "bot")).scalars().all()
        firings = s.execute(select(RuleFiring)).scalars().all()
    assert [(m.text, m.status, m.extra.get("passive")) for m in bot] == [
        ("每天 9:00-21:00 在线", "sent", True)
    ]
    assert sorted(f.actions[0].get("passive", False) for f in firings) == [True, True]
    assert conversation(db).first_response_at is None  # an automatic reply is not a first response


def test_a_rule_that_needs_triage_first_keeps_the_reply_in_the_outbox(
    wechat: Wechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    from scrm.automation import passive as rule_replies

    # An earlier rule reads the intent, which only the pipeline knows: no passive answer.
    _rule(db, workspace, name="投诉", event="message.received", position=1,
          conditions={"all": [{"field": "intent", "op": "eq", "value": "complaint"}]},
          actions=[{"type": "set_priority", "priority": "high"}], stop=True)  # fmt: skip
    _rule(db, workspace, name="营业时间", event="message.received", position=2,
          conditions={"all": [{"field": "text", "op": "contains_any", "value": ["营业时间"]}]},
          actions=[{"type": "reply", "text": "每天 9:00-21:00 在线"}])  # fmt: skip
    passive.register("rules", rule_replies.replier(db))
    try:
        assert wechat.post(*wechat.push(text="请问营业时间？")).content == b"success"
        run_jobs(db, settings)
    finally:
        passive.unregister("rules")
    assert [m["text"]["content"] for m in wechat.fake.sent] == ["每天 9:00-21:00 在线"]
