"""Channel account administration: creating WeChat / Weibo / WeCom / webhook accounts through the
CLI and the REST API with their settings checked by the channel (a bad EncodingAESKey is refused
when entered, not on every push afterwards), secrets only ever shown masked, and updating
secrets with EncodingAESKey rotation that keeps pushes under either key verifying."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from scrm.app import create_app
from scrm.channels.wechat import simulate as wechat_sim
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.cli import app as cli
from scrm.config import Settings
from scrm.db import Database
from scrm.errors import Invalid
from scrm.inbound import committer
from scrm.models import AuditLog, ChannelAccount, InboundEvent
from scrm.workspace import service
from tests.channels.helpers import AES_KEY, APPID, OLD_AES_KEY, ORIGINAL_ID, TOKEN
from tests.conftest import Workspace

runner = CliRunner()
SECRET = "wechat-app-secret-0001"
NEW_AES_KEY = "NewKey0123456789abcdefghijklmnopqrstuvwxyz0"
WEIBO_UID = "1902538057"
WEIBO_SECRETS = {"app_secret": "weibo-app-secret-998877", "access_token": "2.00weibo_access_token_abcdef"}
WECHAT_SECRETS = {"token": TOKEN, "secret": SECRET, "encoding_aes_key": AES_KEY}
FAN = "oFAN_accounts_00000000000001"


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def api(db: Database, settings: Settings) -> TestClient:
    return TestClient(create_app(settings, db), raise_server_exceptions=False)


def rows(db: Database, kind: str | None = None) -> list[ChannelAccount]:
    with db.transaction(readonly=True) as s:
        stmt = select(ChannelAccount).order_by(ChannelAccount.id)
        if kind:
            stmt = stmt.where(ChannelAccount.kind == kind)
        return list(s.execute(stmt).scalars())


def secrets_of(db: Database, account_id: int) -> dict[str, str]:
    [row] = [r for r in rows(db) if r.id == account_id]
    return service.account_secrets(row)


def assert_masked(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def invoke(*args: str) -> Any:
    return runner.invoke(cli, list(args))


# -- creating through the API ---------------------------------------------------------------------


def test_api_creates_wechat_and_weibo_with_secrets_masked(
    api: TestClient, db: Database, workspace: Workspace
) -> None:
    r = api.post(
        "/api/v1/channels",
        headers=auth(workspace.admin_token),
        json={
            "kind": "wechat",
            "name": "公众号",
            "external_id": APPID,
            "config": {"original_id": ORIGINAL_ID, "require_encryption": True},
            "secrets": WECHAT_SECRETS,
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["config"] == {"appid": APPID, "original_id": ORIGINAL_ID, "require_encryption": True}
    assert set(body["secrets"]) == {"token", "secret", "encoding_aes_key"}
    assert body["secrets"]["encoding_aes_key"] == "abc••••••FG"
    assert body["inbound_url"].endswith(f"/hooks/wechat/{body['id']}")
    r = api.post(
        "/api/v1/channels",
        headers=auth(workspace.admin_token),
        json={"kind": "weibo", "name": "官方微博", "config": {"uid": WEIBO_UID}, "secrets": WEIBO_SECRETS},
    )
    assert r.status_code == 201, r.text
    assert r.json()["external_id"] == WEIBO_UID and r.json()["config"] == {"uid": WEIBO_UID}
    listing = api.get("/api/v1/channels", headers=auth(workspace.agent_token))
    assert listing.status_code == 200 and len(listing.json()) == 3  # + the workspace's webhook
    for text in (listing.text, body and json.dumps(body), r.text):
        assert_masked(text, SECRET, AES_KEY, *WEIBO_SECRETS.values())
    assert secrets_of(db, int(body["id"])) == WECHAT_SECRETS


BAD_WECHAT = [
    (
        {"secrets": {**WECHAT_SECRETS, "encoding_aes_key": "short"}},
        "encoding_aes_key",
        "43 letters or digits",
    ),
    ({"secrets": {**WECHAT_SECRETS, "encoding_aes_key": AES_KEY + "A"}}, "encoding_aes_key", "43"),
    ({"secrets": {**WECHAT_SECRETS, "encoding_aes_key": AES_KEY[:-1] + "+"}}, "encoding_aes_key", "43"),
    ({"secrets": {**WECHAT_SECRETS, "encoding_aes_key": AES_KEY[:-1] + "é"}}, "encoding_aes_key", "43"),
    (
        {"secrets": {**WECHAT_SECRETS, "previous_encoding_aes_key": "x" * 42}},
        "previous_encoding_aes_key",
        "previous EncodingAESKey",
    ),
    (
        {"secrets": {"token": TOKEN, "secret": SECRET, "previous_encoding_aes_key": OLD_AES_KEY}},
        "previous_encoding_aes_key",
        "needs a current one",
    ),
    ({"secrets": {**WECHAT_SECRETS, "token": "a b"}}, "token", "Token must be 3-32"),
    ({"secrets": {**WECHAT_SECRETS, "token": "t" * 33}}, "token", "Token must be 3-32"),
    ({"secrets": {"token": TOKEN, "encoding_aes_key": AES_KEY}}, "secret", "AppSecret is required"),
    ({"secrets": {**WECHAT_SECRETS, "aes_key": AES_KEY}}, "secrets", "unknown secret 'aes_key'"),
    ({"secrets": {**WECHAT_SECRETS, "secret": "a\x00b"}}, "secret", "control character"),
    ({"external_id": "wx<script>"}, "appid", "AppID must be"),
    ({"external_id": ""}, "appid", "AppID is required"),
    ({"config": {"appid": "wxOTHER00000000"}}, "appid", "differs"),
    ({"config": {"require_encryption": "yes"}}, "require_encryption", "true or false"),
    (
        {"config": {"require_encryption": True}, "secrets": {"token": TOKEN, "secret": SECRET}},
        "encoding_aes_key",
        "safe mode needs the EncodingAESKey",
    ),
    ({"config": {"original_id": "gh 1"}}, "original_id", "gh_0123456789ab"),
    ({"config": {"colour": "red"}}, "config", "unknown config field 'colour'"),
    ({"config": {"fallback_template_url": "javascript:alert(1)"}}, "fallback_template_url", "http"),
    ({"config": {"fallback_subscribe_template_id": "a b"}}, "fallback_subscribe_template_id", "letters"),
    ({"config": {"fallback_subscribe_page": "pages/a b"}}, "fallback_subscribe_page", "without spaces"),
    ({"config": {"fallback_subscribe_data": ["x"]}}, "fallback_subscribe_data", "an object"),
    ({"config": {"fallback_order": ["teleport"]}}, "fallback_order", "unknown fallback kind 'teleport'"),
    ({"config": {"fallback_order": ["template", "template"]}}, "fallback_order", "each once"),
    ({"config": {"fallback_order": 5}}, "fallback_order", "template and/or subscribe"),
    ({"name": "  "}, "name", "needs a name"),
]


@pytest.mark.parametrize(("change", "field", "reason"), BAD_WECHAT)
def test_api_refuses_bad_wechat_settings_with_the_field_and_stores_nothing(
    api: TestClient, db: Database, workspace: Workspace, change: dict[str, Any], field: str, reason: str
) -> None:
    body = {"kind": "wechat", "name": "公众号", "external_id": APPID, "secrets": WECHAT_SECRETS, **change}
    r = api.post("/api/v1/channels", headers=auth(workspace.admin_token), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and reason in r.json()["detail"], r.json()
    assert_masked(r.text, SECRET, AES_KEY)
    assert rows(db, "wechat") == []


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"kind": "weibo", "external_id": "abc", "secrets": WEIBO_SECRETS}, "uid", "uid is a number"),
        ({"kind": "weibo", "external_id": "١٢٣", "secrets": WEIBO_SECRETS}, "uid", "uid is a number"),
        (
            {"kind": "weibo", "external_id": WEIBO_UID, "secrets": {"app_secret": "s"}},
            "access_token",
            "access token is required",
        ),
        (
            {
                "kind": "weibo",
                "external_id": WEIBO_UID,
                "config": {"poll_max_pages": 0},
                "secrets": WEIBO_SECRETS,
            },
            "poll_max_pages",
            "1 to 1000",
        ),
        (
            {
                "kind": "wecom",
                "external_id": "ww1234",
                "secrets": {"token": TOKEN, "encoding_aes_key": "bad"},
            },
            "encoding_aes_key",
            "43 letters or digits",
        ),
        (
            {"kind": "wecom", "external_id": "ww1234", "secrets": {"token": TOKEN}},
            "encoding_aes_key",
            "required",
        ),
        (
            {
                "kind": "wecom",
                "external_id": "ww1234",
                "config": {"agent_id": "x"},
                "secrets": {"token": TOKEN, "encoding_aes_key": AES_KEY},
            },
            "agent_id",
            "AgentID",
        ),
        ({"kind": "webhook", "secrets": {"secret": "short"}}, "secret", "16-256"),
        (
            {"kind": "webhook", "config": {"callback_url": "ftp://x"}, "secrets": {"secret": "s" * 20}},
            "callback_url",
            "http",
        ),
        ({"kind": "fax", "secrets": {}}, "kind", "unknown channel kind"),
    ],
)
def test_api_refuses_bad_weibo_wecom_and_webhook_settings(
    api: TestClient, db: Database, workspace: Workspace, body: dict[str, Any], field: str, reason: str
) -> None:
    r = api.post("/api/v1/channels", headers=auth(workspace.admin_token), json={"name": "x", **body})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and reason in r.json()["detail"], r.json()
    assert len(rows(db)) == 1  # only the workspace's own webhook


def test_api_refuses_nan_in_config_and_duplicates(
    api: TestClient, db: Database, workspace: Workspace
) -> None:
    raw = (
        '{"kind":"weibo","name":"w","external_id":"1902538057","config":{"poll_max_pages":NaN},'
        '"secrets":{"app_secret":"a","access_token":"b"}}'
    )
    r = api.post(
        "/api/v1/channels",
        headers={**auth(workspace.admin_token), "content-type": "application/json"},
        content=raw,
    )
    assert r.status_code == 422, r.text
    body = {"kind": "weibo", "name": "官方微博", "external_id": WEIBO_UID, "secrets": WEIBO_SECRETS}
    assert api.post("/api/v1/channels", headers=auth(workspace.admin_token), json=body).status_code == 201
    again = api.post("/api/v1/channels", headers=auth(workspace.admin_token), json={**body, "name": "另一个"})
    assert again.status_code == 409 and "already connected" in again.json()["detail"]
    agent = api.post("/api/v1/channels", headers=auth(workspace.agent_token), json={**body, "name": "x"})
    assert agent.status_code == 403
    assert len(rows(db, "weibo")) == 1


# -- creating through the CLI ---------------------------------------------------------------------


def test_cli_creates_wechat_and_weibo_with_secrets_masked(
    db: Database, settings: Settings, workspace: Workspace
) -> None:
    r = invoke(
        "channels", "create", "wechat", "--workspace", workspace.slug, "--name", "公众号",
        "--external-id", APPID, "--config", json.dumps({"original_id": ORIGINAL_ID}),
        "--secrets", json.dumps(WECHAT_SECRETS),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout.strip().splitlines()[-1])
    assert created["secrets"] == {
        "token": "••••••",
        "secret": "wec••••••01",
        "encoding_aes_key": "abc••••••FG",
    }
    assert created["config"] == {"appid": APPID, "original_id": ORIGINAL_ID}
    assert_masked(r.output, SECRET, AES_KEY)
    r = invoke(
        "channels", "create", "weibo", "--workspace", workspace.slug, "--name", "官方微博",
        "--external-id", WEIBO_UID, "--secrets", json.dumps(WEIBO_SECRETS),
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    weibo = json.loads(r.stdout.strip().splitlines()[-1])
    assert weibo["external_id"] == WEIBO_UID and set(weibo["secrets"]) == set(WEIBO_SECRETS)
    assert_masked(r.output, *WEIBO_SECRETS.values())
    assert secrets_of(db, int(weibo["id"])) == WEIBO_SECRETS


@pytest.mark.parametrize(
    ("secrets", "reason"),
    [
        ({**WECHAT_SECRETS, "encoding_aes_key": "not-a-key"}, "EncodingAESKey must be 43 letters or digits"),
        ({**WECHAT_SECRETS, "token": "x"}, "Token must be 3-32"),
        ({"token": TOKEN}, "AppSecret is required"),
    ],
)
def test_cli_refuses_bad_wechat_secrets_clearly(
    db: Database, settings: Settings, workspace: Workspace, secrets: dict[str, str], reason: str
) -> None:
    r = invoke(
        "channels", "create", "wechat", "--workspace", workspace.slug, "--name", "公众号",
        "--external-id", APPID, "--secrets", json.dumps(secrets),
    )  # fmt: skip
    assert r.exit_code != 0 and "Traceback" not in r.output and reason in r.output, r.output
    assert rows(db, "wechat") == []


# -- updating and key rotation --------------------------------------------------------------------


def make_wechat(db: Database, ws: Workspace) -> int:
    with db.transaction() as s:
        return service.create_channel_account(
            s, ws.id, "wechat", "公众号", external_id=APPID,
            config={"original_id": ORIGINAL_ID}, secrets=WECHAT_SECRETS,
        ).id  # fmt: skip


def push(api: TestClient, account_id: int, key: str, text: str) -> Any:
    config = WechatAccountConfig(appid=APPID, token=TOKEN, encoding_aes_key=key, original_id=ORIGINAL_ID)
    xml = wechat_sim.build_message_xml(to_user=ORIGINAL_ID, from_user=FAN, text=text)
    query, body = wechat_sim.build_push(config, xml, encrypt=True)
    return api.post(f"/hooks/wechat/{account_id}", params=query, content=body)


def stored_texts(db: Database) -> list[str]:
    with db.transaction(readonly=True) as s:
        return sorted(e.event["text"] for e in s.execute(select(InboundEvent)).scalars())


def test_api_rotation_keeps_both_keys_working_until_the_previous_one_is_dropped(
    api: TestClient, db: Database, workspace: Workspace
) -> None:
    account_id = make_wechat(db, workspace)
    assert push(api, account_id, AES_KEY, "before").text == "success"  # the account is now cached
    assert push(api, account_id, NEW_AES_KEY, "too early").status_code == 400

    r = api.patch(
        f"/api/v1/channels/{account_id}",
        headers=auth(workspace.admin_token),
        json={"secrets": {"encoding_aes_key": NEW_AES_KEY}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["secrets"]["encoding_aes_key"] == "New••••••z0"
    assert r.json()["secrets"]["previous_encoding_aes_key"] == "abc••••••FG"
    assert_masked(r.text, NEW_AES_KEY, AES_KEY, SECRET)
    assert secrets_of(db, account_id) == {
        **WECHAT_SECRETS,
        "encoding_aes_key": NEW_AES_KEY,
        "previous_encoding_aes_key": AES_KEY,
    }
    # This process forgot its cached account at the commit: both keys verify at once.
    assert push(api, account_id, NEW_AES_KEY, "new key").text == "success"
    assert push(api, account_id, AES_KEY, "old key").text == "success"

    r = api.patch(
        f"/api/v1/channels/{account_id}",
        headers=auth(workspace.admin_token),
        json={"secrets": {"previous_encoding_aes_key": None}},
    )
    assert r.status_code == 200 and "previous_encoding_aes_key" not in r.json()["secrets"]
    assert push(api, account_id, AES_KEY, "old key, too late").status_code == 400
    assert push(api, account_id, NEW_AES_KEY, "new key again").text == "success"
    assert stored_texts(db) == sorted(["before", "new key", "old key", "new key again"])
    with db.transaction(readonly=True) as s:
        audits = [
            a.data for a in s.execute(select(AuditLog).where(AuditLog.action == "channel.updated")).scalars()
        ]
    assert audits[0]["aes_key_rotated"] is True and audits[0]["secrets"] == [
        "encoding_aes_key",
        "previous_encoding_aes_key",
    ]
    assert all(NEW_AES_KEY not in json.dumps(a) and AES_KEY not in json.dumps(a) for a in audits)


def test_api_update_name_and_config_and_refusals(
    api: TestClient, db: Database, workspace: Workspace, other_workspace: Workspace
) -> None:
    account_id = make_wechat(db, workspace)
    url = f"/api/v1/channels/{account_id}"
    admin = auth(workspace.admin_token)
    r = api.patch(
        url,
        headers=admin,
        json={"name": "新名字", "config": {"require_encryption": True, "original_id": None}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "新名字" and r.json()["config"] == {"appid": APPID, "require_encryption": True}
    before = secrets_of(db, account_id)
    for body, status, text in [
        ({"secrets": {"encoding_aes_key": "bad"}}, 422, "43 letters or digits"),
        ({"secrets": {"encoding_aes_key": None}}, 422, "safe mode needs the EncodingAESKey"),
        ({"secrets": {"token": ""}}, 422, "Token must be"),
        ({"config": {"appid": "wx0000000000000000"}}, 422, "differs"),
        ({"name": "App"}, 409, "exists"),  # the workspace's webhook
        ({"external_id": "wx1"}, 422, "Extra inputs"),
        ({"secrets": {"token": 5}}, 422, ""),
    ]:
        r = api.patch(url, headers=admin, json=body)
        assert r.status_code == status and text in r.text, (body, r.text)
    assert secrets_of(db, account_id) == before
    assert api.patch(url, headers=auth(workspace.agent_token), json={"name": "x"}).status_code == 403
    assert api.patch(url, headers=auth(other_workspace.admin_token), json={"name": "x"}).status_code == 404
    assert api.patch("/api/v1/channels/123", headers=admin, json={"name": "x"}).status_code == 404


def test_forgotten_account_is_read_again_by_this_process(
    db: Database, settings: Settings, workspace: Workspace
) -> None:
    account_id = make_wechat(db, workspace)
    view = committer.load_account(db, "wechat", account_id)
    assert committer.load_account(db, "wechat", account_id) is view  # cached for ACCOUNT_TTL
    with db.transaction() as s:
        service.update_channel_account(s, workspace.id, account_id, secrets={"encoding_aes_key": NEW_AES_KEY})
    fresh = committer.load_account(db, "wechat", account_id)
    assert fresh is not view and fresh.secrets["previous_encoding_aes_key"] == AES_KEY
    # A rolled-back update leaves the cache alone.
    with pytest.raises(RuntimeError), db.transaction() as s:
        service.update_channel_account(s, workspace.id, account_id, name="回滚")
        raise RuntimeError
    assert committer.load_account(db, "wechat", account_id) is fresh


def test_cli_update_rotates_generates_and_drops_keys(
    db: Database, settings: Settings, workspace: Workspace
) -> None:
    account_id = make_wechat(db, workspace)
    base = ("channels", "update", str(account_id), "--workspace", workspace.slug)
    r = invoke(*base, "--encoding-aes-key", NEW_AES_KEY)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["secrets"]["previous_encoding_aes_key"] == "abc••••••FG"
    assert "drop-previous-aes-key" in r.output
    assert_masked(r.output, NEW_AES_KEY, AES_KEY, SECRET)

    r = invoke(*base, "--generate-aes-key")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    generated = out["encoding_aes_key"]  # shown once, to paste into the platform
    assert len(generated) == 43 and generated.isalnum()
    assert secrets_of(db, account_id)["encoding_aes_key"] == generated
    assert secrets_of(db, account_id)["previous_encoding_aes_key"] == NEW_AES_KEY

    r = invoke(
        *base, "--drop-previous-aes-key", "--name", "改名", "--secrets", '{"secret": "rotated-app-secret"}'
    )
    assert r.exit_code == 0, r.output
    assert "previous_encoding_aes_key" not in secrets_of(db, account_id)
    assert secrets_of(db, account_id)["secret"] == "rotated-app-secret"
    assert rows(db, "wechat")[0].name == "改名"

    for args, reason in [
        (("--encoding-aes-key", "short"), "EncodingAESKey must be 43"),
        ((), "nothing to change"),
        (("--secrets", "[1]"), "JSON object"),
        (("--config", '{"colour": 1}'), "unknown config field"),
        (("--encoding-aes-key", NEW_AES_KEY, "--generate-aes-key"), "not both"),
    ]:
        r = invoke(*base, *args)
        assert r.exit_code != 0 and "Traceback" not in r.output and reason in r.output, (args, r.output)
    r = invoke("channels", "update", "42", "--workspace", workspace.slug, "--name", "x")
    assert r.exit_code != 0 and "no such channel account" in r.output


def test_rotation_works_for_wecom_too(db: Database, settings: Settings, workspace: Workspace) -> None:
    with db.transaction() as s:
        account = service.create_channel_account(
            s, workspace.id, "wecom", "企业微信", external_id="wx5823bf96d3bd56c7",
            secrets={"token": TOKEN, "encoding_aes_key": AES_KEY},
        )  # fmt: skip
        service.update_channel_account(s, workspace.id, account.id, secrets={"encoding_aes_key": NEW_AES_KEY})
        assert service.account_secrets(account) == {
            "token": TOKEN,
            "encoding_aes_key": NEW_AES_KEY,
            "previous_encoding_aes_key": AES_KEY,
        }


def test_secrets_are_never_logged(
    api: TestClient, db: Database, workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    account_id = make_wechat(db, workspace)
    api.patch(
        f"/api/v1/channels/{account_id}",
        headers=auth(workspace.admin_token),
        json={"secrets": {"encoding_aes_key": NEW_AES_KEY, "secret": "brand-new-app-secret"}},
    )
    api.patch(
        f"/api/v1/channels/{account_id}",
        headers=auth(workspace.admin_token),
        json={"secrets": {"encoding_aes_key": "bad"}},
    )
    assert_masked(caplog.text, NEW_AES_KEY, AES_KEY, "brand-new-app-secret", SECRET)
    with db.transaction(readonly=True) as s:
        assert s.execute(select(func.count()).select_from(AuditLog)).scalar_one() >= 2


def test_every_channel_takes_the_outbox_rate_limit_config(
    db: Database, settings: Settings, workspace: Workspace
) -> None:
    with db.transaction() as s:
        account = service.create_channel_account(
            s, workspace.id, "webhook", "限速", secrets={"secret": "s" * 20},
            config={"callback_url": "http://127.0.0.1:9/x", "rate_limit_per_second": 0.5, "rate_limit_burst": 2},
        )  # fmt: skip
        assert account.config["rate_limit_per_second"] == 0.5
    for value in (-1, "fast", True):
        with pytest.raises(Invalid) as err, db.transaction() as s:
            service.update_channel_account(s, workspace.id, account.id, config={"rate_limit_burst": value})
        assert err.value.field == "rate_limit_burst"


def test_api_keeps_a_good_fallback_config_with_the_order_as_a_list(
    api: TestClient, db: Database, workspace: Workspace
) -> None:
    config = {
        "fallback_template_id": "tpl_service_notice",
        "fallback_subscribe_template_id": "sub-123",
        "fallback_subscribe_page": "pages/service/index?from=scrm",
        "fallback_subscribe_data": {"thing1": {"value": "{text}"}},
        "fallback_order": "subscribe, template",
    }
    body = {
        "kind": "wechat",
        "name": "公众号",
        "external_id": APPID,
        "secrets": WECHAT_SECRETS,
        "config": config,
    }
    r = api.post("/api/v1/channels", headers=auth(workspace.admin_token), json=body)
    assert r.status_code == 201, r.text
    stored = r.json()["config"]
    assert stored["fallback_order"] == ["subscribe", "template"]
    assert stored["fallback_subscribe_page"] == "pages/service/index?from=scrm"
