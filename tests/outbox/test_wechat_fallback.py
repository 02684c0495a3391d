"""WeChat refuses a customer-service message at send time (45015 / 45047): the reply fails with
a clear reason and the account's fallback (template and/or subscription message) goes out
once, however often the send is retried. Real database, worker and the fake WeChat API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from scrm.channels.wechat.fake import FakeWechatServer
from scrm.channels.wechat.spec import account_config
from scrm.config import Settings
from scrm.db import Database
from scrm.kit.time import utcnow
from scrm.models import ContactIdentity, Job, OutboxMessage
from scrm.worker.service import enqueue
from scrm.workspace import service
from tests.channels.helpers import APPID
from tests.channels.test_integration_wechat import (
    FAN,
    SECRET,
    Wechat,
    fan_writes,
    make_account,
    make_app,
    message,
    reply,
)
from tests.conftest import Workspace
from tests.helpers import run_jobs

TEMPLATE = {"fallback_template_id": "TPL_REPLY"}
SUBSCRIBE = {
    "fallback_subscribe_template_id": "SUB_REPLY",
    "fallback_subscribe_page": "https://brand.example/kf",
}

MakeWechat = Callable[[dict[str, Any]], Wechat]


@pytest.fixture
def make_wechat(db: Database, settings: Settings, workspace: Workspace) -> Iterator[MakeWechat]:
    with FakeWechatServer(appid=APPID, secret=SECRET) as fake:
        settings.wechat_api_base = fake.base_url

        def make(config: dict[str, Any]) -> Wechat:
            account_id = make_account(db, workspace, config)
            with db.transaction(readonly=True) as s:
                view = service.account_view(service.get_channel_account(s, workspace.id, account_id))
            return Wechat(account_id, account_config(view), fake, TestClient(make_app(db)))

        yield make


def outbox_rows(db: Database) -> list[OutboxMessage]:
    with db.transaction(readonly=True) as s:
        return list(s.execute(select(OutboxMessage).order_by(OutboxMessage.created_at)).scalars())


def run_retries(db: Database, settings: Settings) -> None:
    """Make the queued (backed-off) jobs due now and run them."""
    with db.transaction() as s:
        s.execute(update(Job).where(Job.status == "queued").values(run_at=utcnow()))
    run_jobs(db, settings)


def send_again(db: Database, ws: Workspace, outbox_id: int) -> None:
    """The worst case of a retry: the original send runs once more as if never finished."""
    with db.transaction() as s:
        s.execute(update(OutboxMessage).where(OutboxMessage.id == outbox_id).values(status="pending"))
        enqueue(s, ws.id, "outbox.send", {"outbox_id": outbox_id}, idempotency_key=f"again:{outbox_id}")


@pytest.mark.parametrize(("errcode", "words"), [(45015, "48 小时"), (45047, "上限")])
def test_wechat_refusal_at_send_time_fails_clearly_and_sends_the_template_once(
    make_wechat: MakeWechat,
    db: Database,
    settings: Settings,
    workspace: Workspace,
    errcode: int,
    words: str,
) -> None:
    wechat = make_wechat(TEMPLATE)
    fan_writes(wechat, db, settings)  # our own window check passes: WeChat itself says no
    wechat.fake.errcode_next(errcode, path="/message/custom/send")
    message_id = reply(db, workspace, "抱歉久等了，行李已找到")
    run_jobs(db, settings)
    failed = message(db, workspace, message_id)
    assert failed.status == "failed"
    assert str(errcode) in (failed.error or "") and words in (failed.error or "")
    assert "已改发模板消息" in (failed.error or "")
    assert "已送达" in (failed.error or "")  # the agent also sees that the fallback went out
    assert wechat.fake.sent == []
    (template,) = wechat.fake.templates_sent
    assert template["touser"] == FAN and template["template_id"] == "TPL_REPLY"
    assert "抱歉久等了" in str(template["data"])
    # Retried (the original runs again, WeChat refuses again): still one fallback.
    original = next(r for r in outbox_rows(db) if r.message_id == message_id)
    assert original.status == "failed" and words in (original.last_error or "")
    wechat.fake.errcode_next(errcode, path="/message/custom/send")
    send_again(db, workspace, original.id)
    run_jobs(db, settings)
    assert len(wechat.fake.templates_sent) == 1
    assert len(wechat.fake.requests_to("/message/template/send")) == 1
    fallbacks = [r for r in outbox_rows(db) if r.payload.get("fallback_for") == original.id]
    assert len(fallbacks) == 1 and fallbacks[0].status == "sent"


def test_a_transient_failure_then_45015_still_sends_one_fallback(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat(TEMPLATE)
    fan_writes(wechat, db, settings)
    wechat.fake.fail_next(status=502, path="/message/custom/send")
    wechat.fake.close_window(FAN)  # the retry meets a closed window
    message_id = reply(db, workspace, "您好")
    run_jobs(db, settings)
    assert message(db, workspace, message_id).status == "pending"  # 502: retried later
    assert wechat.fake.templates_sent == []
    run_retries(db, settings)
    assert message(db, workspace, message_id).status == "failed"
    assert len(wechat.fake.templates_sent) == 1
    assert len(wechat.fake.requests_to("/message/custom/send")) == 2


def test_subscription_message_is_the_fallback_when_configured(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat(SUBSCRIBE)
    wechat.fake.grant_subscription(FAN, "SUB_REPLY")  # the fan accepted it once
    fan_writes(wechat, db, settings)
    wechat.fake.errcode_next(45015, path="/message/custom/send")
    message_id = reply(db, workspace, "您的行李已送达酒店前台，请查收")
    run_jobs(db, settings)
    failed = message(db, workspace, message_id)
    assert failed.status == "failed" and "已改发订阅消息" in (failed.error or "")
    assert wechat.fake.templates_sent == []
    (sent,) = wechat.fake.subscriptions_sent
    assert sent["touser"] == FAN and sent["template_id"] == "SUB_REPLY"
    assert sent["page"] == "https://brand.example/kf"
    assert sent["data"] == {"thing1": {"value": "您的行李已送达酒店前台，请查收"[:20]}}


def test_subscription_fallback_without_consent_tells_the_agent(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat(SUBSCRIBE)
    fan_writes(wechat, db, settings)
    wechat.fake.errcode_next(45047, path="/message/custom/send")
    message_id = reply(db, workspace, "第六条")
    run_jobs(db, settings)
    error = message(db, workspace, message_id).error or ""
    assert "45047" in error and "未送达" in error and "43101" in error
    assert wechat.fake.subscriptions_sent == []
    assert len(wechat.fake.requests_to("/message/subscribe/bizsend")) == 1  # refused for good: once


def test_refused_template_hands_on_to_the_subscription_message(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat({**TEMPLATE, **SUBSCRIBE})
    wechat.fake.grant_subscription(FAN, "SUB_REPLY")
    fan_writes(wechat, db, settings)
    wechat.fake.errcode_next(45015, path="/message/custom/send")
    wechat.fake.errcode_next(40037, path="/message/template/send")  # the template was deleted
    message_id = reply(db, workspace, "已为您改签")
    run_jobs(db, settings)
    error = message(db, workspace, message_id).error or ""
    assert "40037" in error and "订阅消息" in error and error.rstrip().endswith("已送达 (delivered)")
    assert wechat.fake.templates_sent == [] and len(wechat.fake.subscriptions_sent) == 1
    kinds = [r.payload["msg_type"] for r in outbox_rows(db)]
    assert kinds == ["text", "template", "subscribe"]


def test_fallback_order_subscription_first(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat({**TEMPLATE, **SUBSCRIBE, "fallback_order": ["subscribe", "template"]})
    wechat.fake.grant_subscription(FAN, "SUB_REPLY")
    fan_writes(wechat, db, settings)
    wechat.fake.close_window(FAN)
    reply(db, workspace, "您好")
    run_jobs(db, settings)
    assert len(wechat.fake.subscriptions_sent) == 1 and wechat.fake.templates_sent == []


def test_no_fallback_configured_says_so(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    wechat = make_wechat({})
    fan_writes(wechat, db, settings)
    wechat.fake.errcode_next(45015, path="/message/custom/send")
    message_id = reply(db, workspace, "您好")
    run_jobs(db, settings)
    failed = message(db, workspace, message_id)
    assert failed.status == "failed" and "45015" in (failed.error or "")
    assert "未配置备用" in (failed.error or "")
    assert wechat.fake.templates_sent == [] and wechat.fake.subscriptions_sent == []
    assert [r.payload["msg_type"] for r in outbox_rows(db)] == ["text"]


def test_precheck_refusal_uses_the_subscription_fallback_too(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """Six replies to one fan message: the sixth is refused by our own count, before WeChat."""
    wechat = make_wechat(SUBSCRIBE)
    wechat.fake.grant_subscription(FAN, "SUB_REPLY")
    fan_writes(wechat, db, settings)
    ids = [reply(db, workspace, f"第 {n} 条") for n in range(1, 7)]
    run_jobs(db, settings)
    assert [message(db, workspace, i).status for i in ids] == ["sent"] * 5 + ["failed"]
    assert len(wechat.fake.sent) == 5 and len(wechat.fake.subscriptions_sent) == 1
    assert len(wechat.fake.requests_to("/message/custom/send")) == 5  # the sixth never went


def test_43004_at_send_time_opts_the_fan_out_without_a_fallback(
    make_wechat: MakeWechat, db: Database, settings: Settings, workspace: Workspace
) -> None:
    """The unsubscribe event never reached us, but WeChat says the fan left: no fallback, and
    nothing more is tried on this account."""
    wechat = make_wechat(TEMPLATE)
    fan_writes(wechat, db, settings)
    wechat.fake.errcode_next(43004, path="/message/custom/send")
    first = reply(db, workspace, "您好")
    run_jobs(db, settings)
    assert message(db, workspace, first).status == "failed"
    assert "43004" in (message(db, workspace, first).error or "")
    assert wechat.fake.templates_sent == []
    with db.transaction(readonly=True) as s:
        identity = s.execute(select(ContactIdentity).where(ContactIdentity.external_id == FAN)).scalar_one()
    assert identity.subscribed is False
    calls = len(wechat.fake.requests)
    second = reply(db, workspace, "还在吗")
    run_jobs(db, settings)
    assert "取消关注" in (message(db, workspace, second).error or "")
    assert len(wechat.fake.requests) == calls  # refused before any call


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({**TEMPLATE, **SUBSCRIBE}, "template"),
        ({**TEMPLATE, **SUBSCRIBE, "fallback_order": "subscribe, template"}, "subscribe"),
        ({**TEMPLATE, "fallback_order": 5}, "template"),  # not a list: the default order
        ({**TEMPLATE, "fallback_order": ["teleport"]}, None),  # nothing known: no fallback
        ({**SUBSCRIBE, "fallback_subscribe_data": "not an object"}, "subscribe"),
        ({"fallback_template_id": ""}, None),
        ({}, None),
    ],
)
def test_fallback_choice_survives_odd_config(config: dict[str, Any], kind: str | None) -> None:
    from scrm.channels.base import OutboundMessage
    from scrm.channels.registry import AccountView
    from scrm.channels.wechat.spec import fallback_message

    view = AccountView(
        id=1, workspace_id=1, kind="wechat", name="n", external_id=APPID, config=config, secrets={}
    )
    fallback = fallback_message(view, OutboundMessage(idempotency_key="msg:1", recipient=FAN, text="你好"))
    assert (fallback.msg_type if fallback else None) == kind
    if fallback is not None:
        assert fallback.idempotency_key == f"msg:1:fallback:{kind}"
        assert fallback.payload["fallback_for_key"] == "msg:1" and fallback.payload["data"]
