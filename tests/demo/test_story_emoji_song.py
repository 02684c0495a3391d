"""Acceptance story 4, "Emoji in, song out" [S8], in the demo's coffee brand 星咖咖啡 (xingka):
through the demo WeChat account's real signed, encrypted callback, the pipeline (triage, rules,
SLA), the outbox and the fake WeChat API speaking the wire format.

A fan who sends only a mood emoji gets a song that fits it (a customer-service music
message); "营业时间" gets the hours; "门店" the store nearest to the location the fan shared;
a complaint, even with an angry face, goes to a human and gets no song; and no automatic
reply counts as the human first response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.app import create_app
from scrm.channels.wechat import simulate
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.fake import FakeWechatServer
from scrm.channels.wechat.spec import account_config, appid_of
from scrm.config import Settings
from scrm.db import Database
from scrm.demo import loader
from scrm.models import Contact, ContactIdentity, Conversation, Message, SlaTimer
from scrm.workspace import repository, service
from tests.helpers import run_jobs

PEOPLES_SQUARE = (31.2323, 121.4752, "上海市黄浦区人民广场")  # nearest: 新天地店 (~1.5 km)
WANGJING = (39.9980, 116.4790)  # nearest: 望京店


@dataclass
class Coffee:
    workspace_id: int
    account_id: int
    config: WechatAccountConfig
    fake: FakeWechatServer
    http: TestClient
    db: Database
    settings: Settings

    def push(self, fan: str, *, text: str | None = None, **kw: Any) -> bytes:
        xml = simulate.build_message_xml(
            to_user=self.config.original_id or "", from_user=fan, text=text, **kw
        )
        query, body = simulate.build_push(self.config, xml, encrypt=True, openid=fan)
        response = self.http.post(
            f"/hooks/wechat/{self.account_id}",
            params=query,
            content=body,
            headers={"content-type": "text/xml"},
        )
        assert response.status_code == 200, response.text
        return response.content

    def says(self, fan: str, text: str | None = None, **kw: Any) -> None:
        """The fan writes; the worker runs until nothing is left (pipeline, outbox)."""
        assert self.push(fan, text=text, **kw) == b"success"  # answered through the outbox
        run_jobs(self.db, self.settings)

    def sent_to(self, fan: str) -> list[dict[str, Any]]:
        return [m for m in self.fake.sent if m["touser"] == fan]

    def conversation(self, fan: str) -> Conversation:
        with self.db.transaction(readonly=True) as s:
            return s.execute(
                select(Conversation).where(
                    Conversation.workspace_id == self.workspace_id, Conversation.fan_external_id == fan
                )
            ).scalar_one()

    def messages(self, fan: str) -> list[Message]:
        conv = self.conversation(fan)
        with self.db.transaction(readonly=True) as s:
            return list(
                s.execute(
                    select(Message)
                    .where(Message.workspace_id == self.workspace_id, Message.conversation_id == conv.id)
                    .order_by(Message.created_at, Message.id)
                ).scalars()
            )


@pytest.fixture
def coffee(db: Database, settings: Settings) -> Iterator[Coffee]:
    loader.load(db, only=("xingka",))
    with db.transaction(readonly=True) as s:
        ws = service.get_workspace(s, "xingka")
        row = repository.channel_account_by_name(s, ws.id, loader.DEMO_WECHAT_NAME)
        assert row is not None
        view = service.account_view(row)
    with FakeWechatServer(appid=appid_of(view), secret=view.secrets["secret"]) as fake:
        settings.wechat_api_base = fake.base_url
        settings.weibo_api_base = "http://127.0.0.1:9"  # the demo's Weibo poller: refused at once, locally
        yield Coffee(
            ws.id, view.id, account_config(view), fake, TestClient(create_app(settings, db)), db, settings
        )


def songs(coffee: Coffee, fan: str) -> list[dict[str, Any]]:
    return [m["music"] for m in coffee.sent_to(fan) if m["msgtype"] == "music"]


def texts(coffee: Coffee, fan: str) -> list[str]:
    return [m["text"]["content"] for m in coffee.sent_to(fan) if m["msgtype"] == "text"]


def test_a_mood_emoji_alone_gets_a_matching_song(coffee: Coffee) -> None:
    for fan, text in [
        ("oXK_sad_code", "/::<"),
        ("oXK_sad_unicode", "😭😭"),
        ("oXK_sad_named", " [流泪] "),
        ("oXK_happy", "/::D"),
        ("oXK_tired", "🥱"),
    ]:
        coffee.says(fan, text)
    sad = songs(coffee, "oXK_sad_code")
    assert sad == [
        {
            "title": "雨天的拿铁",
            "musicurl": "https://music.xingka.example/moods/sad/rainy-day-latte.mp3",
            "hqmusicurl": "https://music.xingka.example/moods/sad/rainy-day-latte-hq.mp3",
            "description": "星咖电台 · 给有点难过的你：慢一点，会好的",
            "thumb_media_id": "XK_THUMB_MOOD_SAD",
        }
    ]
    assert songs(coffee, "oXK_sad_unicode") == sad and songs(coffee, "oXK_sad_named") == sad
    assert [s["title"] for s in songs(coffee, "oXK_happy")] == ["晴天气泡"]
    assert [s["title"] for s in songs(coffee, "oXK_tired")] == ["双份浓缩"]
    # Recorded in the conversation as the bot's music message, delivered; self-service: the
    # conversation waits on the fan, out of the agents' queue, and nobody "answered" it.
    msgs = coffee.messages("oXK_sad_code")
    song = next(m for m in msgs if m.direction == "out")
    assert (song.kind, song.sender_type, song.status) == ("music", "bot", "sent")
    assert song.text == "送你一首《雨天的拿铁》"
    conv = coffee.conversation("oXK_sad_code")
    assert conv.status == "pending" and conv.first_response_at is None


def test_an_emoji_inside_words_is_not_a_mood_message(coffee: Coffee) -> None:
    """Only a message that is nothing but emoji gets a song: words go to a human as usual."""
    coffee.says("oXK_words", "今天加班到很晚，有推荐的提神饮品吗/::<")
    assert coffee.sent_to("oXK_words") == []
    conv = coffee.conversation("oXK_words")
    assert conv.status == "open" and conv.first_response_at is None


def test_opening_hours_and_the_store_nearest_to_the_shared_location(coffee: Coffee) -> None:
    coffee.says("oXK_hours", "请问营业时间是几点到几点？")
    assert len(texts(coffee, "oXK_hours")) == 1 and "7:00–22:00" in texts(coffee, "oXK_hours")[0]

    fan = "oXK_shanghai"
    coffee.says(fan, "附近门店在哪")  # no location on file yet: asked to share it
    assert (
        len(texts(coffee, fan)) == 1
        and "位置" in texts(coffee, fan)[0]
        and "公里" not in texts(coffee, fan)[0]
    )
    coffee.says(fan, location=PEOPLES_SQUARE)  # the fan shares a location message
    with coffee.db.transaction(readonly=True) as s:
        ident = s.execute(select(ContactIdentity).where(ContactIdentity.external_id == fan)).scalar_one()
        contact = s.get(Contact, (coffee.workspace_id, ident.contact_id))
        assert contact is not None
        where = contact.attributes["last_location"]
        assert (where["lat"], where["lng"], where["label"]) == PEOPLES_SQUARE
    assert "新天地店" in texts(coffee, fan)[1] and "收到您的位置" in texts(coffee, fan)[1]
    coffee.says(fan, "附近门店")
    answer = texts(coffee, fan)[2]
    assert answer.startswith("离您最近的星咖咖啡：星咖咖啡 新天地店（约 1.5 公里）"), answer
    assert "上海市黄浦区马当路245号" in answer and "08:00-23:00" in answer
    assert coffee.conversation(fan).status == "pending"  # self-service answer: waits on the fan

    # A LOCATION report (the account's periodic location event) counts as a shared location too.
    beijing = "oXK_beijing"
    xml = (
        f"<xml><ToUserName><![CDATA[{coffee.config.original_id}]]></ToUserName>"
        f"<FromUserName><![CDATA[{beijing}]]></FromUserName><CreateTime>{1_900_000_000}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[LOCATION]]></Event>"
        f"<Latitude>{WANGJING[0]}</Latitude><Longitude>{WANGJING[1]}</Longitude><Precision>65.0</Precision></xml>"
    )
    query, body = simulate.build_push(coffee.config, xml, encrypt=True, openid=beijing)
    assert (
        coffee.http.post(f"/hooks/wechat/{coffee.account_id}", params=query, content=body).content
        == b"success"
    )
    run_jobs(coffee.db, coffee.settings)
    assert coffee.sent_to(beijing) == []  # a report opens no conversation and is not answered
    coffee.says(beijing, "最近的店怎么走")
    assert "望京店" in texts(coffee, beijing)[0]


def test_a_complaint_with_an_angry_face_goes_to_a_human_without_a_song(coffee: Coffee) -> None:
    fan = "oXK_complaint"
    coffee.says(fan, "你们南京西路店的拿铁里有头发，太恶心了 /::@ 门店也不管")
    assert coffee.sent_to(fan) == []  # no song, no hours, no store: nothing automatic at all
    conv = coffee.conversation(fan)
    with coffee.db.transaction(readonly=True) as s:
        team = service.get_team_by_key(s, coffee.workspace_id, "service")
    assert conv.team_id == team.id and conv.status == "open" and conv.priority == "high"
    assert "投诉" in conv.labels and conv.first_response_at is None
    assert [m.sender_type for m in coffee.messages(fan)] == ["contact"]


def test_a_song_for_an_angry_face_is_not_the_human_first_response(coffee: Coffee) -> None:
    """An angry face alone may be a complaint without words: a calming song now, and the case
    stays with the humans, whose SLA clock the song does not stop."""
    fan = "oXK_angry"
    coffee.says(fan, "/::@/::@")
    assert [s["title"] for s in songs(coffee, fan)] == ["深呼吸"]
    conv = coffee.conversation(fan)
    assert conv.status == "open" and conv.priority == "high" and "情绪:生气" in conv.labels
    assert conv.first_response_at is None

    def first_response_timer() -> SlaTimer:
        with coffee.db.transaction(readonly=True) as s:
            return s.execute(
                select(SlaTimer).where(
                    SlaTimer.workspace_id == coffee.workspace_id,
                    SlaTimer.conversation_id == conv.id,
                    SlaTimer.metric == "first_response",
                )
            ).scalar_one()

    assert first_response_timer().status == "running" and first_response_timer().met_at is None
    with coffee.db.transaction() as s:
        agent = next(m for m in repository.members(s, coffee.workspace_id) if m.role == "agent")
        token, _ = service.create_api_token(s, coffee.workspace_id, agent.id, "story 4")
    r = coffee.http.post(
        f"/api/v1/conversations/{conv.id}/messages",
        json={"text": "您好，是哪里让您不开心了？我们马上处理。"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code in (200, 201), r.text
    run_jobs(coffee.db, coffee.settings)
    assert coffee.conversation(fan).first_response_at is not None
    assert first_response_timer().status == "met"
    assert texts(coffee, fan) == ["您好，是哪里让您不开心了？我们马上处理。"]


def test_the_demo_rules_load_idempotently(db: Database, coffee: Coffee) -> None:
    """A second `scrm demo load` changes nothing for the coffee brand (rules by name, stores by code)."""
    from scrm.automation import service as automation
    from scrm.store import service as store_service

    def snapshot() -> tuple[list[Any], list[Any]]:
        with db.transaction(readonly=True) as s:
            rules = [
                (r.name, json.dumps(r.actions, ensure_ascii=False))
                for r in automation.list_rules(s, coffee.workspace_id)
            ]
            stores = [(x.code, x.name, x.latitude) for x in store_service.list_stores(s, coffee.workspace_id)]
            return rules, stores

    before = snapshot()
    assert len(before[1]) == 11 and any(name.startswith("表情·难过") for name, _ in before[0])
    lines = loader.load(db, only=("xingka",))
    assert "xingka: already loaded, refreshed (星咖咖啡)" in lines
    assert "xingka: stores 11 rows, 0 new, 11 updated, 0 rejected" in lines
    assert snapshot() == before


def test_make_runs_fake_wechat_serves_the_coffee_account(db: Database, coffee: Coffee) -> None:
    """`make run` (`scrm serve --demo-fakes`) starts one fake WeChat API for every demo account:
    the coffee brand's AppID and AppSecret get a token there, so its songs are delivered."""
    import socket

    from scrm.demo import fakes

    with socket.socket() as sock:  # a free port, not the demo's usual 9101 (a running demo may want it)
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = fakes.start_fake(db, "wechat", port=port)
    try:
        assert server.apps.get(coffee.config.appid) == coffee.config.secret.get_secret_value()
    finally:
        server.stop()


@pytest.mark.parametrize("location", ["31.2", "nan,121.4", "91,121.4", "31.2,北京", "31.2,-181"])
def test_simulate_refuses_a_bad_location_cleanly(location: str) -> None:
    from typer.testing import CliRunner

    from scrm.cli import app as cli

    r = CliRunner().invoke(cli, ["channels", "simulate", "wechat", "--account", "1", "--location", location])
    assert r.exit_code == 2 and "--location must be" in r.output and "Traceback" not in r.output
