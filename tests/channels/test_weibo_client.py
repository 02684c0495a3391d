from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest

from scrm.channels.base import ChannelError, OutboundMessage, PermanentChannelError, RateLimitedError
from scrm.channels.weibo.client import WeiboClient
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.errors import WeiboAuthError, WeiboPermanentError, WeiboRateLimitedError
from scrm.channels.weibo.fake import FakeWeiboServer

from .helpers import fixture_text

BRAND = "1902538057"
TOKEN = "2.00weibo_oauth_token"
ACCOUNT = WeiboAccountConfig(uid=BRAND, app_secret="sec", access_token=TOKEN)


@pytest.fixture
def fake() -> Iterator[FakeWeiboServer]:
    with FakeWeiboServer(brand_uid=BRAND, access_token=TOKEN) as server:
        yield server


@pytest.fixture
def client(fake: FakeWeiboServer) -> Iterator[WeiboClient]:
    with WeiboClient(ACCOUNT, base_url=fake.base_url, page_size=3, max_pages=10, timeout=2.0) as c:
        yield c


# -- recorded API payloads ------------------------------------------------------------------


def fixture_client(name: str) -> WeiboClient:
    payload = fixture_text("weibo", name)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"OAuth2 {TOKEN}"
        assert "access_token" not in str(request.url)
        return httpx.Response(200, content=payload)

    return WeiboClient(
        ACCOUNT, base_url="https://api.weibo.com", http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_fixture_api_statuses_mentions() -> None:
    events, cursor = fixture_client("api__statuses_mentions.json").fetch_mentions(None)
    assert cursor == "4901234567890123"
    old, new = events  # oldest first
    assert new.external_id == "status:4901234567890123"
    assert (new.kind, new.visibility, new.thread_key, new.msg_type) == (
        "mention",
        "public",
        "4901234567890123",
        "status",
    )
    assert new.sender.external_id == "1404376560" and new.sender.name == "zaku"
    assert new.sender.followers == 1204 and new.sender.namespace == "weibo"
    assert new.sender.attributes["location"] == "北京 朝阳区"
    assert new.text.startswith("@品牌官方微博 航班延误")
    assert new.media == [{"type": "image", "url": "http://ww1.sinaimg.cn/thumbnail/abc.jpg"}]
    assert new.sent_at == dt.datetime(2011, 5, 31, 9, 46, 55, tzinfo=dt.UTC)
    assert old.sender.followers == 2_300_000
    assert old.metadata["retweeted_status_id"] == "4901234567880000"


def test_fixture_api_comments_to_me() -> None:
    (event,), cursor = fixture_client("api__comments_to_me.json").fetch_comments("4901234567800001")
    assert cursor == "4901234567899999"
    assert event.external_id == "comment:4901234567899999"
    assert event.kind == "comment"  # on the brand's own post
    assert event.thread_key == "4901234567800000"
    assert event.metadata["comment_id"] == "4901234567899999"
    assert event.metadata["reply_to_comment_id"] == "4901234567899000"
    assert event.metadata["status_text"] == "618 大促开始啦"
    assert event.sender.followers == 1204


def test_fixture_api_comments_mentions() -> None:
    (event,), cursor = fixture_client("api__comments_mentions.json").fetch_comment_mentions(None)
    assert cursor == "4901234567912345"
    assert event.kind == "mention"  # someone else's post: a mention, answered by comment
    assert event.visibility == "public"
    assert event.thread_key == "4901234567900000"
    assert event.metadata["status_owner_id"] == "3300000001"


# -- polling against the fake -------------------------------------------------------------


def test_polling_pages_back_to_the_cursor(client: WeiboClient, fake: FakeWeiboServer) -> None:
    ids = [fake.add_mention(f"@品牌 第{i}条") for i in range(7)]
    events, cursor = client.fetch_mentions(None)
    assert [e.thread_key for e in events] == ids  # all 7, oldest first, over 3 pages of 3
    assert cursor == ids[-1]
    assert len(fake.requests_to("/statuses/mentions.json")) == 3
    assert "max_id" not in fake.requests_to("/statuses/mentions.json")[0].query
    assert fake.requests_to("/statuses/mentions.json")[1].query["max_id"] == str(int(ids[4]) - 1)

    newer = [fake.add_mention(f"@品牌 新{i}") for i in range(4)]
    events, cursor2 = client.fetch_mentions(cursor)
    assert [e.thread_key for e in events] == newer
    assert all(r.query.get("since_id") == cursor for r in fake.requests_to("/statuses/mentions.json")[3:])
    assert cursor2 == newer[-1]

    events, cursor3 = client.fetch_mentions(cursor2)
    assert events == [] and cursor3 == cursor2  # nothing new: cursor unchanged


def test_max_pages_bounds_one_poll(fake: FakeWeiboServer) -> None:
    for i in range(10):
        fake.add_mention(f"@品牌 {i}")
    with WeiboClient(ACCOUNT, base_url=fake.base_url, page_size=2, max_pages=2) as c:
        events, cursor = c.fetch_mentions(None)
    assert len(events) == 4 and len(fake.requests_to("/statuses/mentions.json")) == 2
    assert cursor == str(max(int(e.thread_key) for e in events))


def test_comments_on_brand_posts_and_mentions(client: WeiboClient, fake: FakeWeiboServer) -> None:
    post = fake.add_brand_post("新品发布")
    on_post = fake.add_comment("好看！", status_id=post, followers=5000)
    both = fake.add_comment("@品牌 有货吗", status_id=post, mentions_brand=True)
    elsewhere_post = fake.add_mention("别人的微博")
    elsewhere = fake.add_comment("@品牌 来看", status_id=elsewhere_post, mentions_brand=True)
    comments, _ = client.fetch_comments(None)
    mentions, _ = client.fetch_comment_mentions(None)
    assert [e.metadata["comment_id"] for e in comments] == [on_post, both]
    assert {e.kind for e in comments} == {"comment"}
    assert comments[0].sender.followers == 5000
    by_id = {e.external_id: e for e in mentions}
    # The same comment from two endpoints is one event: same key, same kind.
    same = by_id[f"comment:{both}"]
    assert (same.kind, same.thread_key, same.text) == (
        comments[1].kind,
        comments[1].thread_key,
        comments[1].text,
    )
    assert by_id[f"comment:{elsewhere}"].kind == "mention"


@pytest.mark.parametrize("error_code", [10022, 10023, 10024])
def test_rate_limits(client: WeiboClient, fake: FakeWeiboServer, error_code: int) -> None:
    fake.rate_limit_next(error_code=error_code)
    with pytest.raises(WeiboRateLimitedError) as info:
        client.fetch_mentions(None)
    assert isinstance(info.value, RateLimitedError)
    assert info.value.retry_after > 0 and info.value.error_code == error_code


def test_http_429_with_retry_after(client: WeiboClient, fake: FakeWeiboServer) -> None:
    fake.fail_next(status=429, headers={"Retry-After": "120"})
    with pytest.raises(RateLimitedError) as info:
        client.fetch_comments("1")
    assert info.value.retry_after == 120


def test_bad_token_is_an_auth_error(fake: FakeWeiboServer) -> None:
    bad = WeiboAccountConfig(uid=BRAND, app_secret="s", access_token="wrong")
    with WeiboClient(bad, base_url=fake.base_url) as c, pytest.raises(WeiboAuthError) as info:
        c.fetch_mentions(None)
    assert not info.value.retryable
    assert "wrong" not in str(info.value)


@pytest.mark.parametrize("fault", ["5xx", "reset", "timeout", "html"])
def test_transport_faults_are_retryable(fake: FakeWeiboServer, fault: str) -> None:
    if fault == "5xx":
        fake.fail_next(status=503)
    elif fault == "reset":
        fake.reset_next()
    elif fault == "timeout":
        fake.delay_next(1.0)
    else:
        fake.respond_next("<html>maintenance</html>")  # a JSON string, not an object
    with WeiboClient(ACCOUNT, base_url=fake.base_url, timeout=0.3) as c, pytest.raises(ChannelError) as info:
        c.fetch_mentions(None)
    assert info.value.retryable


# -- replies ------------------------------------------------------------------------------


def test_private_reply_goes_through_fan_service(client: WeiboClient, fake: FakeWeiboServer) -> None:
    client.send(OutboundMessage("k", "2489518277", text="您好，已为您查询"))
    assert fake.messages == [{"receiver_id": "2489518277", "type": "text", "text": "您好，已为您查询"}]
    form = fake.requests_to("/messages/reply.json")[0].form()
    assert json.loads(form["data"]) == {"text": "您好，已为您查询"}


def test_public_reply_to_a_comment(client: WeiboClient, fake: FakeWeiboServer) -> None:
    post = fake.add_brand_post("新品")
    cid = fake.add_comment("怎么买？", status_id=post)
    (event,), _ = client.fetch_comments(None)
    result = client.send(
        OutboundMessage(
            "k",
            event.sender.external_id,
            text="链接在主页哦",
            visibility="public",
            thread_key=event.thread_key,
            reply_to_external_id=event.external_id,
        )
    )
    reply = fake.replies[0]
    assert (reply["id"], reply["cid"], reply["comment"]) == (post, cid, "链接在主页哦")
    assert result.external_message_id == f"comment:{reply['idstr']}"
    assert fake.requests_to("/comments/reply.json")


def test_public_reply_to_a_mention_comments_on_the_post(client: WeiboClient, fake: FakeWeiboServer) -> None:
    sid = fake.add_mention("@品牌 行李丢了")
    (event,), _ = client.fetch_mentions(None)
    client.send(
        OutboundMessage(
            "k",
            event.sender.external_id,
            text="请私信航班号",
            visibility="public",
            thread_key=event.thread_key,
            reply_to_external_id=event.external_id,  # "status:…" → comment on the post
        )
    )
    assert fake.requests_to("/comments/create.json") and not fake.requests_to("/comments/reply.json")
    assert fake.replies[0]["id"] == sid


@pytest.mark.parametrize(
    "message",
    [
        OutboundMessage("k", "1", text=""),
        OutboundMessage("k", "1", text="x", visibility="public"),  # no thread_key
        OutboundMessage("k", "1", text="x", msg_type="template"),
    ],
)
def test_unsendable(client: WeiboClient, fake: FakeWeiboServer, message: OutboundMessage) -> None:
    with pytest.raises(PermanentChannelError):
        client.send(message)
    assert fake.requests == []


def test_deleted_post_is_permanent(client: WeiboClient, fake: FakeWeiboServer) -> None:
    with pytest.raises(WeiboPermanentError) as info:
        client.send(OutboundMessage("k", "1", text="hi", visibility="public", thread_key="123"))
    assert info.value.error_code == 20101


def test_messages_host_derivation() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.host))
        return httpx.Response(200, json={"result": True})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    WeiboClient(ACCOUNT, base_url="https://api.weibo.com", http=http).reply_private("1", "hi")
    assert seen == ["m.api.weibo.com"]


# -- finding a reply an earlier attempt posted (comments/by_me) ----------------------------------


def _by_me_client(comments: list[dict[str, object]]) -> WeiboClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/2/comments/by_me.json"
        return httpx.Response(200, json={"comments": comments, "total_number": len(comments)})

    return WeiboClient(
        ACCOUNT, base_url="https://api.weibo.com", http=httpx.Client(transport=httpx.MockTransport(handler))
    )


def _mine(cid: str, text: str, status: str, at: str, reply_to: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {"idstr": cid, "text": text, "created_at": at, "status": {"idstr": status}}
    if reply_to:
        item["reply_comment"] = {"idstr": reply_to}
    return item


LATER = "Thu Dec 03 14:00:00 +0800 2026"  # 06:00 UTC
EARLIER = "Thu Dec 03 13:00:00 +0800 2026"  # 05:00 UTC
SINCE = dt.datetime(2026, 12, 3, 5, 30, tzinfo=dt.UTC)
REPLY = OutboundMessage(
    idempotency_key="k",
    recipient="2489518277",
    text="续航两天",
    visibility="public",
    thread_key="4100",
    reply_to_external_id="comment:4200",
)


@pytest.mark.parametrize(
    ("comments", "found"),
    [
        ([_mine("9", "回复@小林:续航两天", "4100", LATER, "4200")], "comment:9"),  # Weibo's prefix
        ([_mine("9", "续航两天", "4100", EARLIER, "4200")], None),  # before the reply was queued
        ([_mine("9", "续航两天", "4999", LATER, "4200")], None),  # another post
        ([_mine("9", "续航两天", "4100", LATER, "4201")], None),  # answers another comment
        ([_mine("9", "续航三天", "4100", LATER, "4200")], None),  # other text
        ([_mine("9", "续航两天", "4100", "not a date", "4200")], None),
        (["junk", {"status": "junk"}, _mine("8", "续航两天", "4100", LATER, "4200")], "comment:8"),
    ],
)
def test_find_sent_matches_only_this_reply(comments: list[dict[str, object]], found: str | None) -> None:
    with _by_me_client(comments) as client:
        result = client.find_sent(REPLY, not_before=SINCE)
    assert (result.external_message_id if result else None) == found


def test_find_sent_never_looks_for_private_replies() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    client = WeiboClient(
        ACCOUNT, base_url="https://api.weibo.com", http=httpx.Client(transport=httpx.MockTransport(handler))
    )
    private = OutboundMessage(idempotency_key="k", recipient="2489518277", text="您好")
    assert client.find_sent(private, not_before=SINCE) is None
