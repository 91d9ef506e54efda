"""The console's sign-in on a live server with PLINTH_AUTH=true (issue 16, ADR 0110): an
unauthenticated page load goes to the sign-in page and comes back; the form sets the same
session cookie as the API plus a readable CSRF cookie; a changing call made with the cookie
needs the token; the sign-in form resists cross-site posts and open redirects; the project
cookie cannot open another team's project; and a real Chromium signs in and out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.integration.test_deployments_auth import bootstrap_admin_key
from tests.support.live_server import LiveServer, start_server, stop_server

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("console-auth-home")
    root = bootstrap_admin_key(home)
    srv = start_server(
        home,
        PLINTH_AUTH="true",
        PLINTH_SESSION_COOKIE_SECURE="false",  # plain HTTP on 127.0.0.1 here
        PLINTH_PRELOAD_DEFAULT_MODEL="false",
        PLINTH_JOBS_LOCAL_WORKER="false",
        PLINTH_THREADS="1",
    )
    try:
        with httpx.Client(base_url=srv.url, timeout=60, headers={"Authorization": f"Bearer {root}"}) as c:
            for body in ({"name": "care"}, {"name": "sales"}, {"name": "labs"}):
                assert c.post("/api/v1/projects", json=body).status_code == 201
            for user in ("cora", "sid"):
                assert c.post("/api/v1/users", json={"name": user, "password": PASSWORD}).status_code == 201
            assert c.put("/api/v1/projects/care/members/cora", json={"role": "owner"}).status_code == 200
            assert c.put("/api/v1/projects/sales/members/sid", json={"role": "owner"}).status_code == 200
            assert c.put("/api/v1/projects/labs/members/cora", json={"role": "viewer"}).status_code == 200
        yield srv
    finally:
        stop_server(srv)
    assert "Traceback" not in srv.log_text(), srv.log_text()[-5000:]


def _sign_in(c: httpx.Client, user: str, password: str = PASSWORD, nxt: str = "/console/") -> httpx.Response:
    form = c.get("/console/login", params={"next": nxt})
    assert form.status_code == 200 and "text/html" in form.headers["content-type"]
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    return c.post(
        "/console/login",
        content=f"user={user}&password={quote(password)}&next={quote(nxt)}&login_csrf={token.group(1)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def test_an_unauthenticated_page_load_goes_to_sign_in_and_assets_stay_open(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/console/runs", params={"page": "2"})
        assert r.status_code == 303
        assert r.headers["location"] == "/console/login?next=" + quote("/console/runs?page=2", safe="")
        page = c.get(r.headers["location"])
        assert page.status_code == 200 and 'name="password"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/console/static/console.js").status_code == 200
        # the API itself still answers 401 in its JSON shape
        api = c.get("/api/v1/runs")
        assert api.status_code == 401 and api.json()["error"]["code"] == "unauthenticated"
        # a browser opening / is sent to the console; a client still gets the JSON index
        assert c.get("/", headers={"Accept": "text/html"}).headers["location"] == "/console/login?next=%2Fconsole%2F"
        assert c.get("/").status_code == 401


def test_the_sign_in_form_sets_the_session_and_csrf_cookies(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = _sign_in(c, "cora", nxt="/console/runs")
        assert r.status_code == 303 and r.headers["location"] == "/console/runs"
        cookies = r.headers.get_list("set-cookie")
        session = next(v for v in cookies if v.startswith("plinth_session="))
        csrf = next(v for v in cookies if v.startswith("plinth_csrf="))
        assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
        assert "HttpOnly" not in csrf  # the pages' scripts read it and repeat it in X-CSRF-Token
        me = c.get("/api/v1/auth/me").json()
        assert (me["user"], me["project"]) == ("cora", "care")
        page = c.get("/console/")
        assert page.status_code == 200 and "cora" in page.text
        # a changing call made with the session cookie needs the CSRF token
        refused = c.post("/api/v1/knowledge-bases", json={"name": "kb-no-csrf"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
        made = c.post("/api/v1/knowledge-bases", json={"name": "kb-with-csrf"}, headers={"X-CSRF-Token": c.cookies["plinth_csrf"]})
        assert made.status_code == 201, made.text
        out = c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": c.cookies["plinth_csrf"]})
        assert out.status_code == 200 and out.json()["logged_out"] is True
        assert c.get("/console/").status_code == 303  # the session is gone


def test_the_sign_in_form_refuses_bad_passwords_forged_posts_and_open_redirects(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        wrong = _sign_in(c, "cora", password="not the password at all")
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        assert "plinth_session" not in wrong.headers.get("set-cookie", "")
    with httpx.Client(base_url=server.url, timeout=30) as c:  # a cross-site form: no login_csrf cookie
        forged = c.post(
            "/console/login",
            content=f"user=cora&password={quote(PASSWORD)}&login_csrf=guess",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert forged.status_code == 403 and "plinth_session" not in forged.headers.get("set-cookie", "")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/api/v1/keys"):
        with httpx.Client(base_url=server.url, timeout=30) as c:
            r = _sign_in(c, "cora", nxt=target)
            assert r.status_code == 303 and r.headers["location"] == "/console/", target


def test_the_project_cookie_cannot_open_another_teams_project(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert _sign_in(c, "cora").status_code == 303
        c.cookies.set("plinth_project", "sales")
        hidden = c.get("/console/")
        assert hidden.status_code == 404 and "text/html" in hidden.headers["content-type"]
        assert "sales" in hidden.text and "<script" not in hidden.text.split("</head>")[1]
        assert c.get("/api/v1/auth/me").status_code == 404  # the browser's API calls follow the cookie too
        c.cookies.delete("plinth_project")  # (set by hand above; the server's own cookies follow)
        switched = c.get("/console/project", params={"name": "labs"})
        assert switched.status_code == 303
        assert c.get("/console/").status_code == 200
        # an EventSource or a page's fetch sends no X-Plinth-Project: the cookie names the project
        me = c.get("/api/v1/auth/me").json()
        assert (me["project"], me["role"]) == ("labs", "viewer")
        assert c.get("/api/v1/auth/me", headers={"X-Plinth-Project": "care"}).json()["project"] == "care"  # the header wins
        c.get("/console/project")  # no name: back to the default
        assert c.get("/api/v1/auth/me").json()["project"] == "care"


def test_a_real_browser_signs_in_and_out(server: LiveServer, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from tests.support.browser import console_errors, open_page, wait_for

    browser.delete_all_cookies()
    open_page(browser, server.url + "/console/")
    assert "/console/login" in browser.current_url
    browser.find_element(By.ID, "user").send_keys("cora")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: browser.current_url.rstrip("/").endswith("/console"), what="the overview after signing in")
    header = browser.find_element(By.CSS_SELECTOR, "header.top").text
    assert "cora" in header and "care" in header
    assert console_errors(browser) == []
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    wait_for(lambda: "/console/login" in browser.current_url, what="the sign-in page after signing out")
    open_page(browser, server.url + "/console/")
    assert "/console/login" in browser.current_url  # the session is gone server-side too
    assert console_errors(browser) == []
