"""Log-in, rate limiting, CSRF, password changes and API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import PASSWORD, login
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from linli.core.db import utcnow
from linli.core.models import ApiToken, AuditEntry, LoginAttempt, User

NEW_PASSWORD = "battery-staple-42"


def _form_token(client, path="/login"):
    page = client.get(path).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _try_login(client, username, password):
    token = _form_token(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )


def _me(client, **headers):
    return client.get("/api/v1/me", headers=headers)


def _audit_actions(db):
    with db.session() as s:
        return [a for (a,) in s.execute(select(AuditEntry.action).order_by(AuditEntry.id))]


# -- log-in --------------------------------------------------------------------------------


def test_login_opens_a_session_and_logout_closes_it(client, world, db):
    assert _me(client).status_code == 401
    r = _try_login(client, "staff", PASSWORD)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    me = _me(client).json()
    assert me["user"] == "staff"
    assert me["grants"] == {str(world.a): ["staff"]}
    assert "login.succeeded" in _audit_actions(db)
    csrf = _form_token(client, "/account")
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert _me(client).status_code == 401


def test_wrong_password_and_unknown_user_get_the_same_answer(client, world, db):
    bad = _try_login(client, "staff", "wrong-password-1")
    unknown = _try_login(client, "nobody-here", "wrong-password-1")
    for r in (bad, unknown):
        assert r.status_code == 422
        field = r.text.split('name="password"', 1)[1].split("</label>", 1)[0]
        assert "Wrong username or password." in field or "用户名或密码错误" in field
    assert _me(client).status_code == 401
    assert _audit_actions(db).count("login.failed") == 2
    empty = _try_login(client, "", "")
    assert empty.status_code == 422
    assert _me(client).status_code == 401


def test_inactive_user_cannot_log_in_and_loses_open_sessions(client, world, db):
    login(client, "guard")
    assert _me(client).status_code == 200
    with db.session() as s:
        s.execute(update(User).where(User.username == "guard").values(is_active=False))
    assert _me(client).status_code == 401
    assert _try_login(client, "guard", PASSWORD).status_code == 422


def test_next_parameter_cannot_redirect_off_site(client, world):
    token = _form_token(client)
    r = client.post(
        "/login",
        data={
            "username": "staff",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/steal",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    client.cookies.clear()
    token = _form_token(client)
    r = client.post(
        "/login",
        data={
            "username": "staff",
            "password": PASSWORD,
            "csrf_token": token,
            "next": f"/c/{world.a}/residents",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == f"/c/{world.a}/residents"


# -- rate limiting ---------------------------------------------------------------------------


def test_repeated_failures_lock_the_username(client, world, db, app):
    app.state.settings.login_max_failures = 3
    for _ in range(3):
        assert _try_login(client, "staff", "wrong-password-1").status_code == 422
    locked = _try_login(client, "staff", PASSWORD)  # even the right password
    assert locked.status_code == 429
    assert "Too many failed log-ins" in locked.text or "登录失败次数过多" in locked.text
    assert _me(client).status_code == 401
    # another user is not affected
    assert _try_login(client, "guard", PASSWORD).status_code == 303
    # once the window has passed, the name works again
    with db.session() as s:
        s.execute(update(LoginAttempt).values(at=utcnow() - timedelta(hours=1)))
    client.cookies.clear()
    assert _try_login(client, "staff", PASSWORD).status_code == 303


def test_repeated_failures_from_one_address_lock_every_name(client, world, app):
    app.state.settings.login_max_failures = 2  # the address allows four times as many
    for i in range(8):
        assert _try_login(client, f"guess{i}", "wrong-password-1").status_code == 422
    assert _try_login(client, "staff", PASSWORD).status_code == 429


def test_successful_logins_do_not_count_as_failures(client, world, app):
    app.state.settings.login_max_failures = 2
    for _ in range(4):
        client.cookies.clear()
        assert _try_login(client, "staff", PASSWORD).status_code == 303


# -- CSRF ----------------------------------------------------------------------------------


def test_login_form_needs_its_csrf_token(client, world):
    client.get("/login")
    r = client.post(
        "/login", data={"username": "staff", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 403
    other = TestClient(client.app)
    foreign = _form_token(other)
    r = client.post(
        "/login",
        data={"username": "staff", "password": PASSWORD, "csrf_token": foreign},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert _me(client).status_code == 401


def test_session_writes_need_the_csrf_token(client, world, db):
    from linli.people.models import Resident

    csrf = login(client, "staff")
    url = f"/api/v1/communities/{world.a}/residents"
    assert client.post(url, json={"name": "无令牌"}).status_code == 403
    assert (
        client.post(url, json={"name": "无令牌"}, headers={"X-CSRF-Token": "x" * 43}).status_code
        == 403
    )
    r = client.post(f"/c/{world.a}/residents/new", data={"name": "无令牌"})
    assert r.status_code == 403
    r = client.post(f"/c/{world.a}/residents/new", data={"name": "无令牌", "csrf_token": "nope"})
    assert r.status_code == 403
    # a Bearer header does not let a cookie session skip the check
    r = client.post(url, json={"name": "无令牌"}, headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    with db.session() as s:
        assert s.scalar(select(func.count()).where(Resident.name == "无令牌")) == 0
    assert (
        client.post(url, json={"name": "有令牌"}, headers={"X-CSRF-Token": csrf}).status_code == 201
    )


# -- password change -----------------------------------------------------------------------


def test_password_change_logs_out_other_sessions(app, client, world):
    other = TestClient(app)
    login(other, "staff")
    csrf = login(client, "staff")
    assert _me(other).status_code == 200
    r = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": PASSWORD, "new_password": NEW_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert _me(client).status_code == 200  # this session stays
    assert _me(other).status_code == 401  # the other one is gone
    r = other.get(f"/c/{world.a}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert _try_login(other, "staff", PASSWORD).status_code == 422
    assert _try_login(other, "staff", NEW_PASSWORD).status_code == 303


def test_password_change_through_the_api(app, client, world, db):
    other = TestClient(app)
    login(other, "grid")
    csrf = login(client, "grid")
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        "/api/v1/me/password",
        headers=h,
        json={"current_password": "not-it-123", "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "current_password"
    r = client.post(
        "/api/v1/me/password",
        headers=h,
        json={"current_password": PASSWORD, "new_password": "abcdefghij"},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "new_password"
    assert _me(other).status_code == 200  # failed attempts change nothing
    r = client.post(
        "/api/v1/me/password",
        headers=h,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 204
    assert _me(client).status_code == 200
    assert _me(other).status_code == 401
    assert "password.changed" in _audit_actions(db)


def test_password_form_errors_next_to_the_fields(client, world):
    csrf = login(client, "staff")
    r = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": "nope", "new_password": NEW_PASSWORD},
    )
    assert r.status_code == 422
    field = r.text.split('name="current_password"', 1)[1].split("</label>", 1)[0]
    assert 'class="error"' in field
    r = client.post(
        "/account/password",
        data={"csrf_token": csrf, "current_password": PASSWORD, "new_password": "short1"},
    )
    assert r.status_code == 422
    field = r.text.split('name="new_password"', 1)[1].split("</label>", 1)[0]
    assert 'class="error"' in field
    assert _me(client).status_code == 200


# -- API tokens -------------------------------------------------------------------------------


def _create_token(client, world, csrf, perms, **extra):
    r = client.post(
        f"/api/v1/communities/{world.a}/tokens",
        headers={"X-CSRF-Token": csrf},
        json={"name": "gate-1", "permissions": perms, **extra},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_api_token_is_scoped_to_one_community_and_its_permissions(app, client, world, db):
    csrf = login(client, "staff")
    created = _create_token(client, world, csrf, ["people.read", "community.read"], expires_days=30)
    raw = created["token"]
    assert raw.startswith("lnl_")
    with db.session() as s:
        tok = s.get(ApiToken, created["id"])
        assert tok.token_hash != raw and raw not in tok.token_hash
        assert tok.community_id == world.a
    listed = client.get(f"/api/v1/communities/{world.a}/tokens")
    assert raw not in listed.text and "token_hash" not in listed.text

    bearer = TestClient(app)  # no cookies: the token alone
    h = {"Authorization": f"Bearer {raw}"}
    a = f"/api/v1/communities/{world.a}"
    assert _me(bearer, **h).json()["token"] == "gate-1"
    assert bearer.get(f"{a}/residents", headers=h).status_code == 200
    assert bearer.get(f"{a}/residents/{world.residents_a[0]}", headers=h).status_code == 200
    assert bearer.post(f"{a}/residents", headers=h, json={"name": "x"}).status_code == 403
    assert bearer.get(f"{a}/users", headers=h).status_code == 403
    assert bearer.get(f"{a}/tokens", headers=h).status_code == 403
    assert bearer.get(f"/api/v1/communities/{world.b}/residents", headers=h).status_code == 404
    assert (
        bearer.post(
            "/api/v1/me/password",
            headers=h,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        ).status_code
        == 403
    )
    assert (
        bearer.post("/api/v1/communities", headers=h, json={"code": "c", "name": "丙"}).status_code
        == 403
    )
    with db.session() as s:
        assert s.get(ApiToken, created["id"]).last_used_at is not None


def test_api_token_writes_need_no_csrf(app, client, world):
    csrf = login(client, "staff")
    raw = _create_token(client, world, csrf, ["people.write"])["token"]
    bearer = TestClient(app)
    r = bearer.post(
        f"/api/v1/communities/{world.a}/residents",
        headers={"Authorization": f"Bearer {raw}"},
        json={"name": "设备登记"},
    )
    assert r.status_code == 201


def test_token_cannot_carry_permissions_its_creator_lacks(client, world):
    csrf = login(client, "property")  # may manage tokens, may not write people
    r = client.post(
        f"/api/v1/communities/{world.a}/tokens",
        headers={"X-CSRF-Token": csrf},
        json={"name": "sneaky", "permissions": ["people.read", "people.write"]},
    )
    assert r.status_code == 403
    assert "people.write" in r.json()["detail"]
    assert client.get(f"/api/v1/communities/{world.a}/tokens").json() == []
    r = client.post(
        f"/api/v1/communities/{world.a}/tokens",
        headers={"X-CSRF-Token": csrf},
        json={"name": "odd", "permissions": ["root.everything"]},
    )
    assert r.status_code == 422


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_revoked_and_expired_tokens_are_refused(app, client, world, db, how):
    csrf = login(client, "staff")
    created = _create_token(client, world, csrf, ["people.read"])
    h = {"Authorization": f"Bearer {created['token']}"}
    bearer = TestClient(app)
    url = f"/api/v1/communities/{world.a}/residents"
    assert bearer.get(url, headers=h).status_code == 200
    if how == "revoked":
        r = client.delete(
            f"/api/v1/communities/{world.a}/tokens/{created['id']}", headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 204
        assert "token.revoked" in _audit_actions(db)
    else:
        with db.session() as s:
            s.get(ApiToken, created["id"]).expires_at = utcnow() - timedelta(seconds=1)
    r = bearer.get(url, headers=h)
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"


def test_malformed_and_forged_tokens_are_refused(app, client, world):
    csrf = login(client, "staff")
    raw = _create_token(client, world, csrf, ["people.read"])["token"]
    bearer = TestClient(app)
    url = f"/api/v1/communities/{world.a}/residents"
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    for value in ("abc", "lnl_short_x", forged, "lnl_00000000_" + "x" * 43):
        r = bearer.get(url, headers={"Authorization": f"Bearer {value}"})
        assert r.status_code == 401, value
        assert r.json()["code"] == "invalid_token"


def test_token_created_on_the_page_is_shown_once(client, world, db):
    csrf = login(client, "staff")
    r = client.post(
        f"/c/{world.a}/tokens",
        data={"csrf_token": csrf, "name": "闸机", "permissions": ["people.read"]},
    )
    assert r.status_code == 200
    shown = re.findall(r"lnl_[0-9a-f]{8}_[A-Za-z0-9_-]+", r.text)
    assert len(set(shown)) == 1
    again = client.get(f"/c/{world.a}/tokens").text
    assert shown[0] not in again and "闸机" in again
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == 1
