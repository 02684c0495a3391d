from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scrm.channels.base import ChannelError, OutboundMessage, PermanentChannelError, RateLimitedError
from scrm.channels.wechat.client import WechatClient, in_service_window
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.errors import (
    RecipientUnsubscribedError,
    ServiceQuotaExceededError,
    ServiceWindowClosedError,
    SubscriptionRefusedError,
    WechatCredentialsError,
    WechatPermanentError,
    WechatRateLimitedError,
    WechatTokenError,
)
from scrm.channels.wechat.fake import FakeWechatServer
from scrm.channels.wechat.menu import MenuError
from scrm.channels.wechat.tokens import CachedToken, InMemoryTokenStore

SECRET = "s3cr3t-app-secret"
ACCOUNT = WechatAccountConfig(appid="wx_client_test", token="tok", secret=SECRET)
FAN = "oFAN000000000000000000000001"


@pytest.fixture
def fake() -> Iterator[FakeWechatServer]:
    with FakeWechatServer(appid=ACCOUNT.appid, secret=SECRET) as server:
        yield server


@pytest.fixture
def store() -> InMemoryTokenStore:
    return InMemoryTokenStore()


@pytest.fixture
def client(fake: FakeWechatServer, store: InMemoryTokenStore) -> Iterator[WechatClient]:
    with WechatClient(ACCOUNT, base_url=fake.base_url, token_store=store, timeout=2.0) as c:
        yield c


def text(body: str = "您好，已为您登记", recipient: str = FAN) -> OutboundMessage:
    return OutboundMessage(idempotency_key="k1", recipient=recipient, text=body)


# -- tokens -------------------------------------------------------------------------------


def test_send_text_uses_stable_token_once(client: WechatClient, fake: FakeWechatServer) -> None:
    client.send(text())
    client.send(text("第二条"))
    assert fake.token_fetches == 1
    token_request = fake.requests_to("/cgi-bin/stable_token")[0].json()
    assert token_request == {
        "grant_type": "client_credential",
        "appid": ACCOUNT.appid,
        "secret": SECRET,
        "force_refresh": False,
    }
    assert [m["text"]["content"] for m in fake.sent] == ["您好，已为您登记", "第二条"]
    assert fake.sent[0]["touser"] == FAN
    # Chinese goes out as UTF-8, not \\u escapes.
    assert "您好".encode() in fake.requests_to("/message/custom/send")[0].body


@pytest.mark.parametrize("errcode", [40001, 40014, 42001])
def test_invalid_token_refreshes_once_and_retries_once(
    client: WechatClient, fake: FakeWechatServer, errcode: int
) -> None:
    client.send(text())
    if errcode == 40001:
        fake.revoke_tokens()  # e.g. another process force-refreshed
    elif errcode == 42001:
        fake.expire_tokens()
    else:
        fake.errcode_next(errcode, path="/message/custom/send")
    client.send(text("again"))
    sends = fake.requests_to("/message/custom/send")
    assert len(sends) == 3
    assert sends[1].query["access_token"] != sends[2].query["access_token"]
    assert fake.sent[-1]["text"]["content"] == "again"
    assert fake.token_fetches in (2, 3)  # a normal fetch, plus a forced one if it was the same token


def test_token_refused_twice_is_a_token_error(client: WechatClient, fake: FakeWechatServer) -> None:
    fake.errcode_next(40001, n=2, path="/message/custom/send")
    with pytest.raises(WechatTokenError) as info:
        client.send(text())
    assert info.value.retryable
    assert len(fake.requests_to("/message/custom/send")) == 2  # never a third try


def test_refetch_forces_when_wechat_returns_the_refused_token(
    client: WechatClient, fake: FakeWechatServer
) -> None:
    client.send(text())
    fake.errcode_next(40001, path="/message/custom/send")  # token itself still "live" at the fake
    client.send(text())
    fetches = [r.json()["force_refresh"] for r in fake.requests_to("/cgi-bin/stable_token")]
    assert fetches == [False, False, True]


def test_token_refreshed_before_expiry(fake: FakeWechatServer, store: InMemoryTokenStore) -> None:
    now = [dt.datetime(2025, 1, 1, tzinfo=dt.UTC)]
    with WechatClient(ACCOUNT, base_url=fake.base_url, token_store=store, clock=lambda: now[0]) as c:
        first = c.access_token()
        now[0] += dt.timedelta(seconds=7200 - 200)  # inside the 5-minute margin
        fake.revoke_tokens()
        second = c.access_token()
    assert first != second
    assert fake.token_fetches == 2


def test_concurrent_callers_refresh_once(fake: FakeWechatServer, store: InMemoryTokenStore) -> None:
    fake.delay_next(0.3, path="/cgi-bin/stable_token")
    clients = [WechatClient(ACCOUNT, base_url=fake.base_url, token_store=store) for _ in range(8)]
    tokens: list[str] = []
    barrier = threading.Barrier(len(clients))

    def worker(c: WechatClient) -> None:
        barrier.wait()
        tokens.append(c.access_token())

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    assert len(set(tokens)) == 1 and len(tokens) == 8
    assert fake.token_fetches == 1
    assert store.fetch_count == 1


def test_in_memory_store_single_flight_skips_fetch_when_already_refreshed() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    store = InMemoryTokenStore(clock=lambda: now)
    fresh = CachedToken("NEW", now + dt.timedelta(hours=2))
    store.refresh("k", lambda: fresh, None)
    calls: list[int] = []

    def fetch() -> CachedToken:
        calls.append(1)
        return CachedToken("NEWER", now + dt.timedelta(hours=2))

    assert store.refresh("k", fetch, "OLD").access_token == "NEW"  # someone refreshed already
    assert calls == []
    assert store.refresh("k", fetch, "NEW").access_token == "NEWER"
    assert calls == [1]


def test_wrong_secret_is_a_credentials_error(fake: FakeWechatServer, store: InMemoryTokenStore) -> None:
    bad = WechatAccountConfig(appid=ACCOUNT.appid, token="tok", secret="wrong")
    with (
        WechatClient(bad, base_url=fake.base_url, token_store=store) as c,
        pytest.raises(WechatCredentialsError),
    ):
        c.send(text())


def test_cached_token_repr_hides_secret() -> None:
    assert "SECRET_VALUE" not in repr(CachedToken("SECRET_VALUE", dt.datetime.now(dt.UTC)))


# -- typed errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errcode", "error_type", "base_type"),
    [
        (45015, ServiceWindowClosedError, PermanentChannelError),
        (45047, ServiceQuotaExceededError, PermanentChannelError),
        (43004, RecipientUnsubscribedError, PermanentChannelError),
        (40003, WechatPermanentError, PermanentChannelError),
        (45009, WechatRateLimitedError, RateLimitedError),
        (45011, WechatRateLimitedError, RateLimitedError),
    ],
)
def test_errcodes_become_typed_errors(
    client: WechatClient, fake: FakeWechatServer, errcode: int, error_type: type, base_type: type
) -> None:
    fake.errcode_next(errcode)
    with pytest.raises(error_type) as info:
        client.send(text())
    assert isinstance(info.value, base_type)
    assert getattr(info.value, "errcode") == errcode
    assert str(errcode) in str(info.value)


def test_window_closed_message_is_clear(client: WechatClient, fake: FakeWechatServer) -> None:
    fake.close_window(FAN)
    with pytest.raises(ServiceWindowClosedError) as info:
        client.send(text())
    assert not info.value.retryable
    assert "48-hour" in str(info.value) and "template" in str(info.value)


def test_rate_limit_has_retry_after(client: WechatClient, fake: FakeWechatServer) -> None:
    fake.errcode_next(45009)
    with pytest.raises(RateLimitedError) as info:
        client.send(text())
    assert info.value.retry_after >= 60


def test_http_5xx_is_retryable(client: WechatClient, fake: FakeWechatServer) -> None:
    client.access_token()
    fake.fail_next(status=502, path="/message/custom/send")
    with pytest.raises(ChannelError) as info:
        client.send(text())
    assert info.value.retryable and info.value.code == "http_5xx"
    assert not isinstance(info.value, PermanentChannelError)


def test_http_429_is_rate_limited(client: WechatClient, fake: FakeWechatServer) -> None:
    client.access_token()
    fake.fail_next(status=429, path="/message/custom/send", headers={"Retry-After": "17"})
    with pytest.raises(RateLimitedError) as info:
        client.send(text())
    assert info.value.retry_after == 17


def test_connection_reset_is_retryable(client: WechatClient, fake: FakeWechatServer) -> None:
    client.access_token()
    fake.reset_next(path="/message/custom/send")
    with pytest.raises(ChannelError) as info:
        client.send(text())
    assert info.value.retryable and info.value.code == "network"


def test_timeout_is_retryable_and_hides_token(fake: FakeWechatServer, store: InMemoryTokenStore) -> None:
    with WechatClient(ACCOUNT, base_url=fake.base_url, token_store=store, timeout=0.3) as c:
        token = c.access_token()
        fake.delay_next(1.0, path="/message/custom/send")
        with pytest.raises(ChannelError) as info:
            c.send(text())
    assert info.value.code == "timeout"
    assert token not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_non_json_body_is_retryable(client: WechatClient, fake: FakeWechatServer) -> None:
    client.access_token()
    fake.fail_next(status=200, path="/message/custom/send")  # empty 200 body
    with pytest.raises(ChannelError) as info:
        client.send(text())
    assert info.value.code == "bad_response"


def test_token_never_logged(
    client: WechatClient, fake: FakeWechatServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.send(text())
    fake.errcode_next(45015)
    with pytest.raises(ServiceWindowClosedError):
        client.send(text())
    token = fake.tokens[0].value
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log the URL…
    assert all(token not in r.getMessage() for r in caplog.records)  # …but redacted
    assert all(SECRET not in r.getMessage() for r in caplog.records)


# -- message types, template, QR, menu, tags ----------------------------------------------


def test_send_image_news_and_voice(client: WechatClient, fake: FakeWechatServer) -> None:
    client.send(OutboundMessage("k", FAN, msg_type="image", payload={"media_id": "MEDIA1"}))
    articles = [
        {"title": "明日航班", "description": "北京 晴", "url": "https://x/1", "picurl": "https://x/1.jpg"}
    ]
    client.send(OutboundMessage("k", FAN, msg_type="news", payload={"articles": articles}))
    client.send(OutboundMessage("k", FAN, msg_type="voice", payload={"media_id": "V1", "kf_account": "a@kf"}))
    assert fake.sent[0] == {"touser": FAN, "msgtype": "image", "image": {"media_id": "MEDIA1"}}
    assert fake.sent[1]["news"] == {"articles": articles}
    assert fake.sent[2]["customservice"] == {"kf_account": "a@kf"}


def test_send_music_wire_format(client: WechatClient, fake: FakeWechatServer) -> None:
    """The customer-service music message (reference §1.5), from a rule's payload keys; the
    high-quality link defaults to the normal one (WeChat requires both)."""
    full = {
        "title": "雨天的拿铁",
        "description": "给难过的你",
        "music_url": "https://music.example.com/sad/rain-latte.mp3",
        "hq_music_url": "https://music.example.com/sad/rain-latte-hq.mp3",
        "thumb_media_id": "THUMB_SAD_1",
        "kf_account": "kf01@xingka",
    }
    client.send(OutboundMessage("k", FAN, msg_type="music", payload=full))
    client.send(
        OutboundMessage(
            "k", FAN, msg_type="music", payload={"title": "晴天", "music_url": "http://m.example.com/1.mp3"}
        )
    )
    assert fake.sent[0] == {
        "touser": FAN,
        "msgtype": "music",
        "music": {
            "title": "雨天的拿铁",
            "musicurl": "https://music.example.com/sad/rain-latte.mp3",
            "hqmusicurl": "https://music.example.com/sad/rain-latte-hq.mp3",
            "description": "给难过的你",
            "thumb_media_id": "THUMB_SAD_1",
        },
        "customservice": {"kf_account": "kf01@xingka"},
    }
    assert fake.sent[1]["music"] == {
        "title": "晴天",
        "musicurl": "http://m.example.com/1.mp3",
        "hqmusicurl": "http://m.example.com/1.mp3",
    }


def test_the_fake_refuses_a_music_message_wechat_would_refuse(
    client: WechatClient, fake: FakeWechatServer
) -> None:
    """The fake checks the wire format itself (a client bug would not slip through it)."""
    with pytest.raises(WechatPermanentError) as info:
        client.call(
            "message/custom/send",
            "/cgi-bin/message/custom/send",
            {"touser": FAN, "msgtype": "music", "music": {"title": "x", "musicurl": "ftp://m/1.mp3"}},
        )
    assert info.value.errcode == 47001
    assert fake.sent == []


@pytest.mark.parametrize(
    "payload",
    [
        {"music_url": "https://m.example.com/1.mp3"},  # no title
        {"title": " ", "music_url": "https://m.example.com/1.mp3"},
        {"title": "晴天"},  # no music_url
        {"title": "晴天", "music_url": "ftp://m.example.com/1.mp3"},
        {"title": "晴天", "music_url": "javascript:alert(1)"},
        {"title": "晴天", "music_url": "https://m.example.com/1.mp3", "hq_music_url": "file:///etc/passwd"},
    ],
)
def test_a_bad_music_payload_fails_permanently_without_a_call(
    client: WechatClient, fake: FakeWechatServer, payload: dict[str, Any]
) -> None:
    with pytest.raises(PermanentChannelError) as info:
        client.send(OutboundMessage("k", FAN, msg_type="music", payload=payload))
    assert info.value.code == "invalid_message"
    assert fake.requests_to("/cgi-bin/message/custom/send") == []


@pytest.mark.parametrize(
    "message",
    [
        OutboundMessage("k", FAN, text="public?", visibility="public"),
        OutboundMessage("k", FAN, msg_type="image"),  # no media_id
        OutboundMessage("k", FAN, msg_type="news", payload={"articles": []}),
        OutboundMessage("k", FAN, msg_type="sticker"),
        OutboundMessage("k", FAN, text=""),
    ],
)
def test_unsendable_messages_fail_permanently_without_a_call(
    client: WechatClient, fake: FakeWechatServer, message: OutboundMessage
) -> None:
    with pytest.raises(PermanentChannelError):
        client.send(message)
    assert fake.requests_to("/message/custom/send") == []


def test_template_message(client: WechatClient, fake: FakeWechatServer) -> None:
    message = OutboundMessage(
        "k",
        FAN,
        msg_type="template",
        payload={
            "template_id": "TPL1",
            "url": "https://brand.example/case/1",
            "data": {"first": "您的失物已找到", "keyword1": {"value": "黑色背包", "color": "#173177"}},
        },
    )
    result = client.send(message)
    sent = fake.templates_sent[0]
    assert result.external_message_id == str(sent["msgid"])
    assert sent["data"] == {
        "first": {"value": "您的失物已找到"},
        "keyword1": {"value": "黑色背包", "color": "#173177"},
    }
    assert sent["url"] == "https://brand.example/case/1"


def test_qrcodes(client: WechatClient, fake: FakeWechatServer) -> None:
    temp = client.create_qrcode(123, expire_seconds=3600)
    perm = client.create_qrcode("store_beijing_01", permanent=True)
    assert fake.qrcodes[0] == {
        "action_name": "QR_SCENE",
        "action_info": {"scene": {"scene_id": 123}},
        "expire_seconds": 3600,
    }
    assert fake.qrcodes[1] == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "store_beijing_01"}},
    }
    assert temp.expire_seconds == 3600 and perm.expire_seconds is None
    assert temp.image_url.startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=")
    assert "==" not in temp.image_url  # ticket is URL-encoded
    with pytest.raises(ValueError):
        client.create_qrcode(100_001, permanent=True)
    with pytest.raises(ValueError):
        client.create_qrcode(1, expire_seconds=3_000_000)


def test_menu(client: WechatClient, fake: FakeWechatServer) -> None:
    buttons: list[dict[str, Any]] = [
        {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
        {"name": "服务", "sub_button": [{"type": "view", "name": "订单", "url": "https://brand.example/o"}]},
    ]
    client.create_menu(buttons)
    assert client.get_menu()["menu"]["button"] == buttons
    with pytest.raises(ValueError):
        client.create_menu([{"name": str(i)} for i in range(4)])
    with pytest.raises(ValueError):
        client.create_menu([{"name": "x", "sub_button": [{"name": "y"}] * 6}])
    client.delete_menu()
    with pytest.raises(WechatPermanentError) as info:
        client.get_menu()
    assert info.value.errcode == 46003


def test_tags(client: WechatClient, fake: FakeWechatServer) -> None:
    tag = client.create_tag("VIP会员")
    openids = [f"o{i:027d}" for i in range(120)]
    client.batch_tag(openids, tag.id)
    assert len(fake.requests_to("/tags/members/batchtagging")) == 3  # 50 + 50 + 20
    assert [(t.id, t.name, t.count) for t in client.get_tags()] == [(tag.id, "VIP会员", 120)]
    client.batch_untag(openids[:10], tag.id)
    assert client.get_tags()[0].count == 110
    with pytest.raises(WechatPermanentError):
        client.create_tag("VIP会员")  # duplicate name
    with pytest.raises(ValueError):
        client.create_tag("长" * 11)  # 33 bytes


def test_base_url_is_respected(store: InMemoryTokenStore) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.host == "wechat.internal"
        if request.url.path == "/cgi-bin/stable_token":
            return httpx.Response(200, json={"access_token": "T", "expires_in": 7200})
        return httpx.Response(200, json={"errcode": 0, "errmsg": "ok"})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    c = WechatClient(ACCOUNT, base_url="http://wechat.internal/", token_store=store, http=http)
    assert c.send(text()).raw == {"errcode": 0, "errmsg": "ok"}


# -- service window -----------------------------------------------------------------------

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("last_inbound", "sent", "now", "expected"),
    [
        (T0, 0, T0 + dt.timedelta(hours=47, minutes=59), True),
        (T0, 4, T0 + dt.timedelta(hours=1), True),
        (T0, 5, T0 + dt.timedelta(hours=1), False),
        (T0, 0, T0 + dt.timedelta(hours=48), False),
        (None, 0, T0, False),
    ],
)
def test_in_service_window(
    last_inbound: dt.datetime | None, sent: int, now: dt.datetime, expected: bool
) -> None:
    assert in_service_window(last_inbound, sent, now) is expected


def test_in_service_window_requires_aware_datetimes() -> None:
    with pytest.raises(ValueError):
        in_service_window(dt.datetime(2025, 1, 1), 0, T0)


# -- subscription messages ----------------------------------------------------------------


def test_subscription_message_wire_format_and_consent(client: WechatClient, fake: FakeWechatServer) -> None:
    fake.grant_subscription(FAN, "SUB_TPL")
    message = OutboundMessage(
        idempotency_key="s1",
        recipient=FAN,
        msg_type="subscribe",
        payload={
            "template_id": "SUB_TPL",
            "data": {"thing1": "行李已找到"},
            "page": "https://brand.example/c/1",
        },
    )
    client.send(message)
    (request,) = fake.requests_to("/cgi-bin/message/subscribe/bizsend")
    assert request.json() == {
        "touser": FAN,
        "template_id": "SUB_TPL",
        "data": {"thing1": {"value": "行李已找到"}},
        "page": "https://brand.example/c/1",
    }
    # The one-time consent is used up: WeChat answers 43101, a typed, permanent error.
    with pytest.raises(SubscriptionRefusedError) as info:
        client.send(message)
    assert info.value.errcode == 43101 and "consent" in str(info.value)
    assert not info.value.retryable
    with pytest.raises(PermanentChannelError):  # no template id: refused before any call
        client.send(OutboundMessage(idempotency_key="s2", recipient=FAN, msg_type="subscribe"))
    assert len(fake.requests_to("/cgi-bin/message/subscribe/bizsend")) == 2


def test_subscription_message_with_bad_data_is_47003(client: WechatClient, fake: FakeWechatServer) -> None:
    fake.grant_subscription(FAN, "SUB_TPL")
    with pytest.raises(WechatPermanentError) as info:
        client.send_subscribe(FAN, "SUB_TPL", {"thing1": {"value": ""}})
    assert info.value.errcode == 47003
    assert fake.subscriptions_sent == []


# -- QR codes, menus, tags: hostile input and the new calls --------------------------------


@pytest.mark.parametrize(
    ("scene", "permanent", "expire"),
    [
        (0, False, 3600),
        (-5, False, 3600),
        (2**32, False, 3600),
        (100_001, True, 0),
        (True, False, 3600),
        ("", False, 3600),
        ("x" * 65, False, 3600),
        ("a\nb", True, 0),
        (" padded", True, 0),
        ("\ud800", True, 0),
        (1.5, False, 3600),
        (7, False, 59),
        (7, False, 2_592_001),
    ],
)
def test_bad_qrcode_requests_never_reach_wechat(
    client: WechatClient, fake: FakeWechatServer, scene: Any, permanent: bool, expire: int
) -> None:
    with pytest.raises(ValueError):
        client.create_qrcode(scene, permanent=permanent, expire_seconds=expire)
    assert fake.requests == []


def test_qrcode_scene_str_of_64_characters_is_fine(client: WechatClient, fake: FakeWechatServer) -> None:
    code = client.create_qrcode("场" * 64, expire_seconds=60)
    assert fake.qrcodes[0]["action_name"] == "QR_STR_SCENE" and code.expire_seconds == 60


@pytest.mark.parametrize(
    ("buttons", "path"),
    [
        ([], "button"),
        ("click", "button"),
        ([{"type": "click", "name": "一二三四五六", "key": "k"}], "button[0].name"),  # 18 bytes
        ([{"type": "click", "name": "ok"}], "button[0].key"),
        ([{"type": "click", "name": "ok", "key": "k" * 129}], "button[0].key"),
        ([{"type": "view", "name": "ok", "url": "javascript:alert(1)"}], "button[0].url"),
        ([{"type": "teleport", "name": "ok"}], "button[0].type"),
        ([{"type": "click", "name": "ok", "key": "k", "evil": 1}], "button[0].evil"),
        (
            [{"name": "p", "sub_button": [{"name": "s", "sub_button": [{"name": "t"}]}]}],
            "button[0].sub_button[0]",
        ),
        ([{"name": "p", "sub_button": "nope"}], "button[0].sub_button"),
        ([{"type": "click", "name": "a\x00", "key": "k"}], "button[0].name"),
        (
            [{"type": "miniprogram", "name": "mp", "url": "https://x.example", "appid": "wx1"}],
            "button[0].pagepath",
        ),
        ([1], "button[0]"),
    ],
)
def test_bad_menus_name_the_field_and_never_reach_wechat(
    client: WechatClient, fake: FakeWechatServer, buttons: Any, path: str
) -> None:
    with pytest.raises(MenuError) as info:
        client.create_menu(buttons)
    assert info.value.path.startswith(path)
    assert fake.requests == []


def test_tag_update_delete_getidlist_and_fans(client: WechatClient, fake: FakeWechatServer) -> None:
    vip = client.create_tag("VIP")
    new = client.create_tag("新客")
    client.batch_tag([FAN, "oOTHER"], vip.id)
    client.batch_tag([FAN], new.id)
    assert client.fan_tag_ids(FAN) == sorted([vip.id, new.id])
    fans, cursor = client.tag_fans(vip.id)
    assert sorted(fans) == sorted([FAN, "oOTHER"]) and cursor == ""
    client.update_tag(vip.id, "超级VIP")
    assert {t.id: t.name for t in client.get_tags()}[vip.id] == "超级VIP"
    with pytest.raises(WechatPermanentError) as info:
        client.update_tag(new.id, "超级VIP")  # the name is taken
    assert info.value.errcode == 45157
    client.batch_untag([FAN], vip.id)
    assert client.fan_tag_ids(FAN) == [new.id]
    client.delete_tag(new.id)
    assert client.fan_tag_ids(FAN) == []
    with pytest.raises(WechatPermanentError) as info:
        client.delete_tag(new.id)
    assert info.value.errcode == 45159
    assert "no such tag" in str(info.value)


@pytest.mark.parametrize("call", ["update", "delete"])
def test_reserved_tags_are_refused_before_any_call(
    client: WechatClient, fake: FakeWechatServer, call: str
) -> None:
    for tag_id in (0, 1, 2):
        with pytest.raises(ValueError, match="reserved"):
            client.update_tag(tag_id, "x") if call == "update" else client.delete_tag(tag_id)
    assert fake.requests == []


def test_bad_openids_and_tag_ids_are_refused_before_any_call(
    client: WechatClient, fake: FakeWechatServer
) -> None:
    for openids in ([], [""], ["o" * 65], ["o x"], [123], ["o\n"]):
        with pytest.raises(ValueError):
            client.batch_tag(openids, 100)
    for tag_id in (-1, True, "100", 2**31):
        with pytest.raises(ValueError):
            client.batch_tag([FAN], tag_id)
    with pytest.raises(ValueError):
        client.fan_tag_ids("")
    with pytest.raises(ValueError):
        client.create_tag("  ")
    assert fake.requests == []


def test_a_fan_with_twenty_tags_gets_no_more(client: WechatClient, fake: FakeWechatServer) -> None:
    tags = [client.create_tag(f"t{i}") for i in range(21)]
    for tag in tags[:20]:
        client.batch_tag([FAN], tag.id)
    with pytest.raises(WechatPermanentError) as info:
        client.batch_tag([FAN], tags[20].id)
    assert info.value.errcode == 45059
