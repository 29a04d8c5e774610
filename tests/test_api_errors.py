"""Errors a user can cause: a JSON problem response with a clear message and a 4xx status
(never a 500), nothing half-saved; forms show the error next to the field in the user's
language."""

from __future__ import annotations

import re

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from linli.core import i18n

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _problem(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"].strip()
    if code is not None:
        assert body["code"] == code, body
    return body


def _residents(db):
    from linli.people.models import Resident

    with db.session() as s:
        return sorted((r.id, r.name, r.phone, r.household_id) for r in s.scalars(select(Resident)))


def _field_messages(body):
    return {e.get("field"): e["message"] for e in body.get("errors", [])}


@pytest.fixture
def staff(client, world):
    csrf = login(client, "staff")
    return {"X-CSRF-Token": csrf}


def test_malformed_json(client, world, db, staff):
    before = _residents(db)
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        headers={**staff, "content-type": "application/json"},
        content=b'{"name": "x",',
    )
    body = _problem(r, 400, "malformed_json")
    assert "JSON" in body["detail"]
    assert _residents(db) == before


def test_wrong_types_name_each_field(client, world, db, staff):
    before = _residents(db)
    url = f"/api/v1/communities/{world.a}/residents"
    r = client.post(
        url,
        headers=staff,
        json={"name": 5, "birth_year": "nineteen", "tags": "elderly", "owner": "perhaps"},
    )
    body = _problem(r, 422, "validation_failed")
    fields = _field_messages(body)
    assert fields["birth_year"] == "Must be a whole number."
    assert fields["name"] == "Must be text."
    assert fields["tags"] == "Must be a list."
    assert fields["owner"] == "Must be yes or no."
    r = client.post(url, headers=staff, json={"phone": "13900000000"})
    assert _field_messages(_problem(r, 422))["name"] == "This field is required."
    r = client.post(url, headers=staff, json=["not", "an", "object"])
    _problem(r, 422)
    r = client.post(url, headers=staff, json={"name": "x", "birth_year": 1800, "tags": ["spy"]})
    fields = _field_messages(_problem(r, 422))
    assert fields["birth_year"] == "Must be at least 1900."
    assert "spy" in fields["tags"]
    r = client.post(url, headers=staff, json={"name": "x" * 101})
    assert _field_messages(_problem(r, 422))["name"] == "Must have at most 100 characters."
    assert _residents(db) == before


def test_wrong_query_and_path_types(client, world, staff):
    base = f"/api/v1/communities/{world.a}"
    _problem(client.get(f"{base}/residents", params={"limit": "many"}), 422, "validation_failed")
    _problem(client.get(f"{base}/residents", params={"limit": 100000}), 422)
    _problem(client.get(f"{base}/residents", params={"offset": -1}), 422)
    body = _problem(client.get(f"{base}/residents/abc"), 422)
    assert _field_messages(body)["resident_id"] == "Must be a whole number."
    _problem(client.get("/api/v1/communities/a/residents"), 422)
    _problem(client.get(f"{base}/residents/1.5"), 422)


def test_unknown_and_other_community_ids_look_the_same(client, world, staff):
    base = f"/api/v1/communities/{world.a}"
    unknown = _problem(client.get(f"{base}/residents/987654"), 404, "resident_not_found")
    foreign = _problem(client.get(f"{base}/residents/{world.residents_b[0]}"), 404)
    assert unknown == foreign
    assert unknown["detail"] == "Resident not found."
    _problem(client.get(f"{base}/buildings/987654/units"), 404, "building_not_found")
    _problem(client.delete(f"{base}/tokens/987654", headers=staff), 404, "token_not_found")
    _problem(client.delete(f"{base}/grants/987654", headers=staff), 404, "grant_not_found")
    _problem(client.get("/api/v1/communities/987654"), 404, "community_not_found")
    _problem(client.get(f"/api/v1/communities/{world.b}"), 404, "community_not_found")
    _problem(client.get("/api/v1/communities/0/residents"), 404)
    _problem(client.get("/api/v1/communities/-3/residents"), 404)


@pytest.mark.parametrize("huge", ["99999999999999999999", "9223372036854775808", "2147483648"])
def test_ids_beyond_the_database_range_are_4xx(client, world, db, staff, huge):
    base = f"/api/v1/communities/{world.a}"
    before = _residents(db)
    for method, path, kwargs in (
        ("GET", f"/api/v1/communities/{huge}", {}),
        ("GET", f"{base}/residents/{huge}", {}),
        ("DELETE", f"{base}/residents/{huge}", {}),
        ("POST", f"{base}/residents", {"json": {"name": "x", "unit_id": int(huge)}}),
        ("POST", f"{base}/grants", {"json": {"user_id": int(huge), "role": "staff"}}),
        ("GET", f"/c/{world.a}/residents/{huge}", {}),
    ):
        r = client.request(method, path, headers=staff, **kwargs)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:300])
    r = client.get(f"{base}/residents", params={"building_id": huge})
    assert r.status_code < 500
    if r.status_code == 200:  # a filter that matches nothing is fine too
        assert r.json()["total"] == 0
    assert _residents(db) == before


def test_text_the_database_cannot_store_is_4xx(client, world, db, staff):
    """A NUL character is fine for SQLite but refused by PostgreSQL: a 4xx either way."""
    before = _residents(db)
    r = client.post(
        f"/api/v1/communities/{world.a}/residents", headers=staff, json={"name": "bad\u0000name"}
    )
    assert r.status_code in (201, 422), r.text[:300]
    if db.engine.dialect.name == "postgresql":
        assert r.status_code == 422
    if r.status_code == 422:
        _problem(r, 422)
        assert _residents(db) == before


def test_missing_permission(client, world, db):
    csrf = login(client, "guard")
    before = _residents(db)
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        headers={"X-CSRF-Token": csrf},
        json={"name": "x"},
    )
    body = _problem(r, 403, "permission_denied")
    assert body["detail"] == "You do not have permission to do this."
    _problem(client.get(f"/api/v1/communities/{world.a}/audit"), 403, "permission_denied")
    assert _residents(db) == before


def test_not_logged_in_and_bad_csrf(client, world, db):
    _problem(client.get(f"/api/v1/communities/{world.a}/residents"), 401, "login_required")
    login(client, "staff")
    before = _residents(db)
    r = client.post(f"/api/v1/communities/{world.a}/residents", json={"name": "x"})
    _problem(r, 403, "csrf_failed")
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        json={"name": "x"},
        headers={"X-CSRF-Token": "forged"},
    )
    _problem(r, 403, "csrf_failed")
    assert _residents(db) == before


def test_unknown_route_and_wrong_method(client, world, staff):
    _problem(client.get("/api/v1/no-such-thing"), 404)
    _problem(client.patch(f"/api/v1/communities/{world.a}/residents", headers=staff, json={}), 405)


def test_conflict_and_nothing_half_saved(client, world, db, staff):
    base = f"/api/v1/communities/{world.a}/residents"
    taken = "13900001100"  # the phone of the second resident of A
    before = _residents(db)
    body = _problem(
        client.post(base, headers=staff, json={"name": "x", "phone": taken}), 409, "conflict"
    )
    assert (
        _field_messages(body)["phone"] == "A resident with this phone number is already registered."
    )
    # the resident row is written before the unit is checked: the failure takes it back out
    _problem(
        client.post(base, headers=staff, json={"name": "半个人", "unit_id": 987654}),
        404,
        "unit_not_found",
    )
    rid = world.residents_a[0]
    _problem(
        client.put(f"{base}/{rid}", headers=staff, json={"name": "改了一半", "unit_id": 987654}),
        404,
        "unit_not_found",
    )
    _problem(
        client.put(f"{base}/{rid}", headers=staff, json={"name": "改了一半", "phone": taken}), 409
    )
    assert _residents(db) == before
    r = client.put(
        f"/api/v1/communities/{world.a}/grids/{world.grid_a}",
        headers=staff,
        json={"name": "改名网格", "worker_user_id": world.users["guard"]},
    )
    _problem(r, 422)
    from linli.people.models import Grid

    with db.session() as s:
        assert s.get(Grid, world.grid_a).name == "第一网格"


def test_problem_detail_in_the_callers_language(client, world):
    token = _token(client.app.state.db, world.a, ["people.read"])
    h = {"Authorization": f"Bearer {token}", "Accept-Language": "zh-CN,zh;q=0.9"}
    body = _problem(client.get(f"/api/v1/communities/{world.a}/residents/987654", headers=h), 404)
    assert body["detail"] == i18n.translate_in("zh_CN", "Resident not found.")
    h["Accept-Language"] = "en-US"
    body = _problem(client.get(f"/api/v1/communities/{world.a}/residents/987654", headers=h), 404)
    assert body["detail"] == "Resident not found."


def _token(db, community_id, perms):
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=community_id,
                name="t",
                prefix=prefix,
                token_hash=hashed,
                permissions=perms,
            )
        )
    return raw


# -- uploads over the size limit --------------------------------------------------------


@pytest.fixture
def small_app(settings, world):
    from linli.app import create_app

    application = create_app(
        settings.model_copy(update={"max_upload_bytes": 2048}), run_dispatcher=False
    )
    yield application
    application.state.db.dispose()


def test_oversized_uploads_are_413_and_save_nothing(small_app, world, db):
    token = _token(db, world.a, ["people.write", "people.import", "people.read"])
    h = {"Authorization": f"Bearer {token}"}
    before = _residents(db)
    big_csv = ("name,phone\n" + "".join(f"人{i},1390000{i:04d}\n" for i in range(200))).encode()
    assert len(big_csv) > 2048
    with TestClient(small_app, raise_server_exceptions=False) as c:
        r = c.post(
            f"/api/v1/communities/{world.a}/residents/import",
            headers=h,
            files={"file": ("big.csv", big_csv, "text/csv")},
        )
        body = _problem(r, 413, "too_large")
        assert "limit" in body["detail"]
        r = c.post(
            f"/api/v1/communities/{world.a}/residents",
            headers=h,
            json={"name": "x", "notes": "n" * 4000},
        )
        _problem(r, 413, "too_large")

        # no Content-Length (chunked): the limit holds while reading
        def chunks():
            yield b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            yield b"Content-Type: text/csv\r\n\r\nname\n"
            for i in range(100):
                yield f"人{i}\n".encode() * 10
            yield b"\r\n--XyZ--\r\n"

        r = c.post(
            f"/api/v1/communities/{world.a}/residents/import",
            headers={**h, "content-type": "multipart/form-data; boundary=XyZ"},
            content=chunks(),
        )
        assert 400 <= r.status_code < 500, r.text[:300]
        assert r.headers["content-type"].startswith("application/problem+json")
        # a small request still works on the same app
        r = c.post(
            f"/api/v1/communities/{world.a}/residents/import",
            headers=h,
            files={"file": ("ok.csv", "name\n小文件\n".encode(), "text/csv")},
        )
        assert r.status_code == 200
    after = _residents(db)
    assert [x for x in after if x not in before] and all(
        x[1] == "小文件" for x in after if x not in before
    )


def test_oversized_page_upload_is_refused(small_app, world, db):
    before = _residents(db)
    with TestClient(small_app, raise_server_exceptions=False) as c:
        csrf = login(c, "staff")
        r = c.post(
            f"/c/{world.a}/residents/import",
            data={"csrf_token": csrf},
            files={"file": ("big.csv", b"name\n" + "人\n".encode() * 2000, "text/csv")},
        )
        assert r.status_code == 413
    assert _residents(db) == before


# -- forms --------------------------------------------------------------------------------


def _field_html(html, name):
    """The <label> block that holds the input named ``name``."""
    m = re.search(
        r'<label class="field[^"]*">(?:(?!</label>).)*?name="'
        + name
        + r'"(?:(?!</label>).)*</label>',
        html,
        re.S,
    )
    assert m, f"no field {name}"
    return m.group(0)


def test_form_errors_sit_next_to_the_field_in_the_users_language(client, world, db):
    csrf = login(client, "staff")  # the staff user's language is English
    before = _residents(db)
    form = {"csrf_token": csrf, "name": "王小明", "phone": "call me", "birth_year": "1850"}
    r = client.post(f"/c/{world.a}/residents/new", data=form)
    assert r.status_code == 422
    phone = _field_html(r.text, "phone")
    assert "has-error" in phone and "Not a valid phone number." in phone
    birth = _field_html(r.text, "birth_year")
    assert "has-error" in birth and "Must be at least 1900." in birth
    name = _field_html(r.text, "name")
    assert "has-error" not in name and 'value="王小明"' in name  # the typed values are kept

    client.post("/lang", data={"csrf_token": csrf, "lang": "zh_CN", "next": "/"})
    r = client.post(f"/c/{world.a}/residents/new", data=form)
    assert r.status_code == 422
    assert '<html lang="zh-CN">' in r.text
    phone = _field_html(r.text, "phone")
    chinese = i18n.translate_in("zh_CN", "Not a valid phone number.")
    assert chinese != "Not a valid phone number."
    assert re.search(r"[\u4e00-\u9fff]", chinese)
    assert "has-error" in phone and chinese in phone
    assert _residents(db) == before


def test_users_form_error_next_to_the_username(client, world, db):
    from linli.core.models import User

    csrf = login(client, "staff")
    r = client.post(
        f"/c/{world.a}/users",
        data={
            "csrf_token": csrf,
            "username": "guard",
            "display_name": "dup",
            "password": "abc12345x",
            "role": "security_guard",
            "language": "en",
        },
    )
    assert r.status_code in (409, 422)
    field = _field_html(r.text, "username")
    assert "has-error" in field and "This username is taken." in field
    with db.session() as s:
        assert (
            s.scalar(select(func.count()).select_from(User).where(User.display_name == "dup")) == 0
        )


def test_community_with_an_unknown_time_zone_is_refused(client, world, db):
    """Every page shows times in the community's zone: an unknown zone must not get in."""
    from linli.people.models import Community

    csrf = login(client, "admin")
    h = {"X-CSRF-Token": csrf}
    for tz in ("Mars/Olympus_Mons", "../../etc/passwd", ""):
        r = client.post(
            "/api/v1/communities", headers=h, json={"code": "c", "name": "丙社区", "timezone": tz}
        )
        body = _problem(r, 422, "validation_failed")
        assert "timezone" in _field_messages(body), tz
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Community)) == 2
    r = client.post(
        "/api/v1/communities",
        headers=h,
        json={"code": "c", "name": "丙社区", "timezone": "Asia/Urumqi"},
    )
    assert r.status_code == 201
    cid = r.json()["id"]
    assert client.get(f"/c/{cid}/audit").status_code == 200
    r = client.post("/api/v1/communities", headers=h, json={"code": "c", "name": "重复"})
    assert _field_messages(_problem(r, 409, "conflict"))["code"]


def test_an_oversized_streamed_body_without_length_gets_413(tmp_path, db_url):
    """A chunked upload has no Content-Length: the limit is enforced while reading."""
    from fastapi.testclient import TestClient

    from linli.app import create_app
    from linli.core.config import make_settings

    settings = make_settings(data_dir=tmp_path / "d", database_url=db_url, max_upload_bytes=1000)
    app = create_app(settings, run_dispatcher=False)

    def chunks():
        for _ in range(10):
            yield b"x" * 500

    with TestClient(app) as c:
        r = c.post(
            "/api/v1/communities", content=chunks(), headers={"content-type": "application/json"}
        )
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "0.00095" in r.json()["detail"] or "MB" in r.json()["detail"]
    app.state.db.dispose()
