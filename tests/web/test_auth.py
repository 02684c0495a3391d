"""Login, logout, rate limiting, CSRF, cookies, security headers and the language switch."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Workspace
from tests.web.conftest import Browser, csrf_of


def _login(client: TestClient, email: str, password: str):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


def test_pages_need_a_session(client: TestClient, workspace: Workspace) -> None:
    for url in ("/inbox", "/department", "/dashboard", "/admin/channels", "/ui/inbox/list", "/contacts/1"):
        r = client.get(url, follow_redirects=False)
        assert r.status_code == 303, url
        assert r.headers["location"].startswith("/login?next="), url
    r = client.get("/ui/c/1", headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login"


def test_login_sets_a_safe_session_cookie_and_logout_ends_it(
    client: TestClient, workspace: Workspace
) -> None:
    r = _login(client, "agent@yuncheng.test", "password123")
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("scrm_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = client.get("/inbox")
    assert page.status_code == 200 and "客服小王" in page.text
    r = client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/inbox", follow_redirects=False).status_code == 303


def test_cookie_is_secure_when_configured(db, settings, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    from scrm.app import create_app

    client = TestClient(
        create_app(settings.model_copy(update={"cookie_secure": True}), db), base_url="https://testserver"
    )
    r = _login(client, "agent@yuncheng.test", "password123")
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("scrm_session="))
    assert "Secure" in cookie


def test_wrong_password_is_refused_and_repeated_failures_are_rate_limited(
    client: TestClient, workspace: Workspace
) -> None:
    for _ in range(5):
        r = _login(client, "agent@yuncheng.test", "wrong-password")
        assert r.status_code == 401 and "邮箱或密码错误" in r.text
    r = _login(client, "agent@yuncheng.test", "password123")  # even the right password now waits
    assert r.status_code == 429
    assert "登录失败次数过多" in r.text and int(r.headers["Retry-After"]) > 0
    # Another email from the same IP is not locked out by someone else's failures.
    assert _login(client, "admin@yuncheng.test", "password123").status_code == 303


def test_login_without_its_csrf_token_is_refused(client: TestClient, workspace: Workspace) -> None:
    r = client.post(
        "/login", data={"email": "agent@yuncheng.test", "password": "password123", "csrf_token": "x"}
    )
    assert r.status_code == 403


def test_open_redirect_after_login_is_refused(client: TestClient, workspace: Workspace) -> None:
    page = client.get("/login?next=//evil.example/x")
    r = client.post(
        "/login",
        data={
            "email": "agent@yuncheng.test",
            "password": "password123",
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/inbox"


def test_unsafe_requests_without_the_csrf_token_are_refused(agent: Browser) -> None:
    for url, data in (("/ui/locale", {"locale": "en"}), ("/logout", {})):
        assert agent.client.post(url, data=data, follow_redirects=False).status_code == 403
        assert agent.client.post(url, data=data, headers={"X-CSRF-Token": "nope"}).status_code == 403
    # Still logged in and still Chinese.
    assert "收件箱" in agent.get("/inbox").text


def test_security_headers(agent: Browser) -> None:
    r = agent.get("/inbox")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src-attr")[0]
    assert r.headers["x-frame-options"] == "DENY"
    assert "<script>" not in r.text  # no inline script anywhere
    assert 'src="/static/vendor/htmx-2.0.4.min.js"' in r.text
    assert agent.get("/static/vendor/htmx-2.0.4.min.js").status_code == 200


def test_language_switch_is_stored_on_the_user(agent: Browser, db, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    assert "收件箱" in agent.get("/inbox").text
    r = agent.post("/ui/locale", {"locale": "en"}, htmx=False)
    assert r.status_code == 303
    page = agent.get("/inbox").text
    assert "Inbox" in page and "收件箱" not in page and 'lang="en"' in page
    from scrm.workspace import service

    with db.transaction(readonly=True) as s:
        assert service.get_user_by_email(s, "agent@yuncheng.test").locale == "en"
    assert agent.post("/ui/locale", {"locale": "fr"}, htmx=False).status_code == 422
    agent.post("/ui/locale", {"locale": "zh-CN"}, htmx=False)
    assert "收件箱" in agent.get("/inbox").text


def test_login_page_language_links(client: TestClient) -> None:
    assert "登录" in client.get("/login").text
    assert "Log in" in client.get("/login?lang=en").text
    assert "Log in" in client.get("/login").text  # remembered in a cookie
