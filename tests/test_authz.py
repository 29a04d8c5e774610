"""Authorization: every role against representative API routes and pages of community A.

The expected outcome of each (role, route) pair is written out here, not derived from
``linli.core.roles``, so that a changed permission shows up as a failing test.
"""

from __future__ import annotations

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import func, select

ROLES = ("admin", "staff", "grid", "property", "guard", "pro", "resident")
EVERYONE = frozenset(ROLES)
READERS = frozenset({"admin", "staff", "grid", "property", "guard"})  # people.read
WRITERS = frozenset({"admin", "staff"})  # people.write, people.import, users, audit, grids
TOKEN_MANAGERS = frozenset({"admin", "staff", "property"})


def _count(db, model, **where):
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def _api_routes(world, role):
    a = world.a
    return [
        # (name, method, path, kwargs, allowed roles, status when allowed)
        ("community", "GET", f"/api/v1/communities/{a}", {}, EVERYONE, 200),
        ("professionals", "GET", f"/api/v1/communities/{a}/professionals", {}, EVERYONE, 200),
        ("residents.list", "GET", f"/api/v1/communities/{a}/residents", {}, READERS, 200),
        (
            "resident.detail",
            "GET",
            f"/api/v1/communities/{a}/residents/{world.residents_a[0]}",
            {},
            READERS,
            200,
        ),
        ("buildings", "GET", f"/api/v1/communities/{a}/buildings", {}, READERS, 200),
        ("grids", "GET", f"/api/v1/communities/{a}/grids", {}, READERS, 200),
        ("export", "GET", f"/api/v1/communities/{a}/residents.csv", {}, READERS, 200),
        ("users", "GET", f"/api/v1/communities/{a}/users", {}, WRITERS, 200),
        ("audit", "GET", f"/api/v1/communities/{a}/audit", {}, WRITERS, 200),
        ("tokens", "GET", f"/api/v1/communities/{a}/tokens", {}, TOKEN_MANAGERS, 200),
        (
            "residents.create",
            "POST",
            f"/api/v1/communities/{a}/residents",
            {"json": {"name": f"新居民-{role}"}},
            WRITERS,
            201,
        ),
        (
            "buildings.create",
            "POST",
            f"/api/v1/communities/{a}/buildings",
            {"json": {"name": f"楼-{role}"}},
            WRITERS,
            201,
        ),
        (
            "grids.create",
            "POST",
            f"/api/v1/communities/{a}/grids",
            {"json": {"name": f"网格-{role}"}},
            WRITERS,
            201,
        ),
        (
            "import",
            "POST",
            f"/api/v1/communities/{a}/residents/import",
            {"files": {"file": ("r.csv", f"name\n导入-{role}\n".encode(), "text/csv")}},
            WRITERS,
            200,
        ),
        (
            "tokens.create",
            "POST",
            f"/api/v1/communities/{a}/tokens",
            {"json": {"name": f"tok-{role}", "permissions": ["community.read"]}},
            TOKEN_MANAGERS,
            201,
        ),
        (
            "resident.delete",
            "DELETE",
            f"/api/v1/communities/{a}/residents/{world.residents_a[1]}",
            {},
            WRITERS,
            204,
        ),
    ]


def _page_routes(world):
    a = world.a
    return [
        ("overview", f"/c/{a}", EVERYONE),
        ("professionals", f"/c/{a}/professionals", EVERYONE),
        ("residents", f"/c/{a}/residents", READERS),
        ("resident", f"/c/{a}/residents/{world.residents_a[0]}", READERS),
        ("buildings", f"/c/{a}/buildings", READERS),
        ("grids", f"/c/{a}/grids", READERS),
        ("residents.new", f"/c/{a}/residents/new", WRITERS),
        ("residents.import", f"/c/{a}/residents/import", WRITERS),
        ("users", f"/c/{a}/users", WRITERS),
        ("audit", f"/c/{a}/audit", WRITERS),
        ("tokens", f"/c/{a}/tokens", TOKEN_MANAGERS),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_role_against_api_routes(client, world, db, role):
    from linli.people.models import Resident

    csrf = login(client, role)
    wrong = []
    for name, method, path, kwargs, allowed, ok_status in _api_routes(world, role):
        r = client.request(method, path, headers={"X-CSRF-Token": csrf}, **kwargs)
        if role in allowed:
            if r.status_code != ok_status:
                wrong.append(f"{name}: expected {ok_status}, got {r.status_code} {r.text[:200]}")
        else:
            body = r.json() if r.headers["content-type"].startswith("application/") else {}
            if r.status_code != 403 or body.get("code") != "permission_denied":
                wrong.append(f"{name}: expected 403 permission_denied, got {r.status_code}")
    assert wrong == [], f"{role}: " + "; ".join(wrong)
    # denied writes left nothing behind; allowed ones did what they said
    created = _count(db, Resident, name=f"新居民-{role}") + _count(
        db, Resident, name=f"导入-{role}"
    )
    assert created == (2 if role in WRITERS else 0)
    assert _count(db, Resident, id=world.residents_a[1]) == (0 if role in WRITERS else 1)


@pytest.mark.parametrize("role", ROLES)
def test_role_against_pages(client, world, role):
    login(client, role)
    wrong = []
    for name, path, allowed in _page_routes(world):
        r = client.get(path)
        expected = 200 if role in allowed else 403
        if r.status_code != expected:
            wrong.append(f"{name}: expected {expected}, got {r.status_code}")
        elif expected == 403:
            assert r.headers["content-type"].startswith("text/html"), name
    assert wrong == [], f"{role}: " + "; ".join(wrong)


def test_navigation_lists_only_permitted_pages(client, world):
    a = world.a
    login(client, "staff")
    staff_page = client.get(f"/c/{a}").text
    for href in ("residents", "users", "audit", "tokens"):
        assert f'href="/c/{a}/{href}"' in staff_page, href
    client.cookies.clear()
    login(client, "resident")
    resident_page = client.get(f"/c/{a}").text
    for href in ("residents", "users", "audit", "tokens", "buildings", "grids"):
        assert f'href="/c/{a}/{href}"' not in resident_page, href
    assert f'href="/c/{a}/professionals"' in resident_page


def test_anonymous_api_is_401_and_pages_redirect_to_login(client, world):
    a = world.a
    for method, path in (
        ("GET", f"/api/v1/communities/{a}"),
        ("GET", f"/api/v1/communities/{a}/residents"),
        ("GET", "/api/v1/communities"),
        ("GET", "/api/v1/me"),
    ):
        r = client.request(method, path)
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "login_required"
    for path in (f"/c/{a}", f"/c/{a}/residents", f"/c/{a}/residents/{world.residents_a[0]}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
    # writing anonymously changes nothing (CSRF refuses first, the login check would next)
    r = client.post(f"/api/v1/communities/{a}/residents", json={"name": "x"})
    assert r.status_code in (401, 403)


def test_platform_admin_sees_every_community(client, world):
    login(client, "admin")
    ids = {c["id"] for c in client.get("/api/v1/communities").json()}
    assert ids == {world.a, world.b}
    r = client.get(f"/api/v1/communities/{world.b}/residents/{world.residents_b[0]}")
    assert r.status_code == 200
    assert client.get(f"/c/{world.b}/residents").status_code == 200


def test_community_staff_lists_only_their_community(client, world):
    login(client, "staff")
    assert [c["id"] for c in client.get("/api/v1/communities").json()] == [world.a]


def test_resident_sees_own_household_and_cannot_list_residents(client, world, db):
    from linli.people.models import Resident

    with db.session() as s:
        me = s.get(Resident, world.residents_a[0])
        s.add(
            Resident(
                community_id=world.a,
                household_id=me.household_id,
                name="家人甲",
                phone="13811112222",
                tags=[],
            )
        )
    login(client, "resident")
    page = client.get(f"/c/{world.a}")
    assert page.status_code == 200
    html = page.text
    assert "居民10" in html  # myself
    assert "家人甲" in html  # my household
    assert "13811112222" in html  # my own household's phones are not masked for me
    assert "居民11" not in html  # another household
    assert "居民20" not in html  # another community
    # the registry itself stays closed
    r = client.get(f"/api/v1/communities/{world.a}/residents")
    assert r.status_code == 403
    assert r.json()["code"] == "permission_denied"
    assert (
        client.get(f"/api/v1/communities/{world.a}/residents/{world.residents_a[0]}").status_code
        == 403
    )
    assert client.get(f"/c/{world.a}/residents").status_code == 403
    assert client.get(f"/api/v1/communities/{world.a}/residents.csv").status_code == 403


def test_grid_worker_sees_only_residents_of_their_grid(client, world):
    a = world.a
    inside, outside = world.residents_a
    login(client, "grid")
    r = client.get(f"/api/v1/communities/{a}/residents")
    assert r.status_code == 200
    assert [x["id"] for x in r.json()["items"]] == [inside]
    assert r.json()["total"] == 1
    assert client.get(f"/api/v1/communities/{a}/residents/{inside}").status_code == 200
    r = client.get(f"/api/v1/communities/{a}/residents/{outside}")
    assert r.status_code == 404
    assert r.json()["code"] == "resident_not_found"
    # filtering by the other building does not open it either
    r = client.get(
        f"/api/v1/communities/{a}/residents", params={"building_id": world.buildings_a[1]}
    )
    assert r.json()["total"] == 0
    buildings = client.get(f"/api/v1/communities/{a}/buildings").json()
    assert [b["id"] for b in buildings] == [world.buildings_a[0]]
    assert (
        client.get(f"/api/v1/communities/{a}/buildings/{world.buildings_a[1]}/units").status_code
        == 404
    )
    # pages and the export show the same subset
    html = client.get(f"/c/{a}/residents").text
    assert "居民10" in html and "居民11" not in html
    assert client.get(f"/c/{a}/residents/{outside}").status_code == 404
    assert client.get(f"/c/{a}/buildings/{world.buildings_a[1]}").status_code == 404
    csv_text = client.get(f"/api/v1/communities/{a}/residents.csv").text
    assert "居民10" in csv_text and "居民11" not in csv_text


@pytest.mark.parametrize("role", ["staff", "grid", "guard"])
def test_viewing_a_resident_detail_is_audited(client, world, db, role):
    from linli.core.models import AuditEntry

    rid = world.residents_a[0]
    login(client, role)
    assert client.get(f"/api/v1/communities/{world.a}/residents/{rid}").status_code == 200
    assert client.get(f"/c/{world.a}/residents/{rid}").status_code == 200
    with db.session() as s:
        rows = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "resident.viewed")
                .order_by(AuditEntry.id)
            )
        )
    assert len(rows) == 2
    for row in rows:
        assert row.actor == role
        assert row.actor_user_id == world.users[role]
        assert row.target_type == "resident"
        assert row.target_id == str(rid)
        assert row.community_id == world.a
    # listing is not a detail view
    client.get(f"/api/v1/communities/{world.a}/residents")
    assert _count(db, AuditEntry, action="resident.viewed") == 2


def test_phones_are_masked_without_people_sensitive(client, world, db):
    from linli.people.models import Resident

    rid = world.residents_a[0]
    with db.session() as s:
        r = s.get(Resident, rid)
        full = r.phone
        r.emergency_contact_name = "紧急人"
        r.emergency_contact_phone = "13766667777"
        r.notes = "私密备注"
    masked = full[:3] + "****" + full[-4:]
    detail = f"/api/v1/communities/{world.a}/residents/{rid}"

    for role in ("guard", "property"):
        client.cookies.clear()
        login(client, role)
        body = client.get(detail).json()
        assert body["phone"] == masked, role
        assert body["emergency_contact_phone"] is None
        assert body["emergency_contact_name"] is None
        html = client.get(f"/c/{world.a}/residents/{rid}").text
        assert full not in html and "13766667777" not in html and "私密备注" not in html, role
        assert full not in client.get(f"/c/{world.a}/residents").text
        assert full not in client.get(f"/api/v1/communities/{world.a}/residents.csv").text

    for role in ("staff", "grid"):
        client.cookies.clear()
        login(client, role)
        body = client.get(detail).json()
        assert body["phone"] == full, role
        assert body["emergency_contact_phone"] == "13766667777"
        # lists stay masked even for those who may open the detail
        items = client.get(f"/api/v1/communities/{world.a}/residents").json()["items"]
        assert {i["phone"] for i in items if i["id"] == rid} == {masked}
