"""Tenant isolation: staff of community A can never read or change community B.

Through B's own paths (the community answers "not found", exactly like one that does not
exist) and by guessing B's ids inside A's paths, on the JSON API and on the pages.
"""

from __future__ import annotations

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import func, select


@pytest.fixture
def b_things(db, world):
    """Extra objects in B to aim at: a grid, a token, a grant, a professional, an audit entry."""
    from linli.core import audit
    from linli.core.models import ApiToken, RoleGrant
    from linli.core.security import new_api_token
    from linli.people.models import Grid, Household, Professional, Resident, Unit

    with db.session() as s:
        grid = Grid(community_id=world.b, name="乙网格")
        s.add(grid)
        _, prefix, hashed = new_api_token()
        tok = ApiToken(
            community_id=world.b,
            name="b-gate",
            prefix=prefix,
            token_hash=hashed,
            permissions=["people.read"],
        )
        s.add(tok)
        prof = Professional(community_id=world.b, name="乙律师", profession="lawyer")
        s.add(prof)
        s.flush()
        grant = s.scalar(select(RoleGrant).where(RoleGrant.user_id == world.users["staff_b"]))
        rb = s.get(Resident, world.residents_b[0])
        hh = s.get(Household, rb.household_id)
        unit_b = s.get(Unit, hh.unit_id)
        audit.record(
            s,
            audit.Actor(world.users["staff_b"], "staff_b"),
            "secret.b",
            "resident",
            rb.id,
            community_id=world.b,
        )
        return {
            "grid": grid.id,
            "token": tok.id,
            "professional": prof.id,
            "grant": grant.id,
            "unit": unit_b.id,
            "building": unit_b.building_id,
        }


def _snapshot(db, community_id):
    """Everything of one community that a request could change."""
    from linli.core.models import ApiToken, RoleGrant
    from linli.people.models import Building, Grid, Ownership, Professional, Resident, Unit

    with db.session() as s:
        out = {}
        for model in (Building, Unit, Grid, Ownership, Professional):
            rows = s.scalars(select(model).where(model.community_id == community_id))
            out[model.__name__] = sorted(
                tuple(sorted((c.key, repr(getattr(r, c.key))) for c in model.__table__.columns))
                for r in rows
            )
        residents = s.scalars(select(Resident).where(Resident.community_id == community_id))
        out["Resident"] = sorted(
            (r.id, r.name, r.phone, r.household_id, r.notes, tuple(r.tags or [])) for r in residents
        )
        toks = s.scalars(select(ApiToken).where(ApiToken.community_id == community_id))
        out["ApiToken"] = sorted((t.id, t.revoked_at is None) for t in toks)
        grants = s.scalars(select(RoleGrant).where(RoleGrant.community_id == community_id))
        out["RoleGrant"] = sorted((g.user_id, g.role) for g in grants)
        return out


def test_other_community_paths_answer_like_missing_ones(client, world, db, b_things):
    b, rb = world.b, world.residents_b[0]
    before = _snapshot(db, b)
    csrf = login(client, "staff")
    h = {"X-CSRF-Token": csrf}
    reads = [
        f"/api/v1/communities/{b}",
        f"/api/v1/communities/{b}/residents",
        f"/api/v1/communities/{b}/residents/{rb}",
        f"/api/v1/communities/{b}/residents.csv",
        f"/api/v1/communities/{b}/buildings",
        f"/api/v1/communities/{b}/buildings/{b_things['building']}/units",
        f"/api/v1/communities/{b}/grids",
        f"/api/v1/communities/{b}/professionals",
        f"/api/v1/communities/{b}/users",
        f"/api/v1/communities/{b}/tokens",
        f"/api/v1/communities/{b}/audit",
    ]
    writes = [
        ("POST", f"/api/v1/communities/{b}/residents", {"json": {"name": "闯入者"}}),
        ("PUT", f"/api/v1/communities/{b}/residents/{rb}", {"json": {"name": "改名"}}),
        ("DELETE", f"/api/v1/communities/{b}/residents/{rb}", {}),
        ("POST", f"/api/v1/communities/{b}/buildings", {"json": {"name": "新楼"}}),
        (
            "PUT",
            f"/api/v1/communities/{b}/buildings/{b_things['building']}",
            {"json": {"name": "x"}},
        ),
        (
            "POST",
            f"/api/v1/communities/{b}/units",
            {"json": {"building_id": b_things["building"], "label": "9-909"}},
        ),
        ("POST", f"/api/v1/communities/{b}/grids", {"json": {"name": "新网格"}}),
        ("PUT", f"/api/v1/communities/{b}/grids/{b_things['grid']}", {"json": {"name": "x"}}),
        (
            "POST",
            f"/api/v1/communities/{b}/professionals",
            {"json": {"name": "x", "profession": "lawyer"}},
        ),
        (
            "POST",
            f"/api/v1/communities/{b}/users",
            {
                "json": {
                    "username": "mole",
                    "display_name": "m",
                    "password": "abc12345x",
                    "role": "staff",
                }
            },
        ),
        (
            "POST",
            f"/api/v1/communities/{b}/grants",
            {"json": {"user_id": world.users["staff"], "role": "staff"}},
        ),
        ("DELETE", f"/api/v1/communities/{b}/grants/{b_things['grant']}", {}),
        (
            "POST",
            f"/api/v1/communities/{b}/tokens",
            {"json": {"name": "t", "permissions": ["people.read"]}},
        ),
        ("DELETE", f"/api/v1/communities/{b}/tokens/{b_things['token']}", {}),
        (
            "POST",
            f"/api/v1/communities/{b}/residents/import",
            {"files": {"file": ("r.csv", "name\n闯入者\n".encode(), "text/csv")}},
        ),
    ]
    missing = client.get("/api/v1/communities/987654").json()
    for path in reads:
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"] == "community_not_found", path
        # indistinguishable from a community that does not exist
        assert r.json() == missing, path
    for method, path, kwargs in writes:
        r = client.request(method, path, headers=h, **kwargs)
        assert r.status_code == 404, (method, path, r.text[:200])
        assert r.json()["code"] == "community_not_found"
    pages = [
        f"/c/{b}",
        f"/c/{b}/residents",
        f"/c/{b}/residents/{rb}",
        f"/c/{b}/buildings/{b_things['building']}",
        f"/c/{b}/users",
        f"/c/{b}/audit",
        f"/c/{b}/residents/export.csv",
    ]
    for path in pages:
        assert client.get(path).status_code == 404, path
    form = {"csrf_token": csrf, "name": "改名"}
    for path in (
        f"/c/{b}/residents/{rb}",
        f"/c/{b}/residents/new",
        f"/c/{b}/buildings",
        f"/c/{b}/grids",
        f"/c/{b}/tokens/{b_things['token']}/revoke",
        f"/c/{b}/grants/{b_things['grant']}/revoke",
    ):
        assert client.post(path, data=form).status_code == 404, path
    assert (
        client.post(
            f"/c/{b}/residents/{rb}", data={"csrf_token": csrf, "action": "delete"}
        ).status_code
        == 404
    )
    assert _snapshot(db, b) == before
    assert [c["id"] for c in client.get("/api/v1/communities").json()] == [world.a]


def test_guessing_other_community_ids_inside_own_paths(client, world, db, b_things):
    a, b, rb = world.a, world.b, world.residents_b[0]
    before_b = _snapshot(db, b)
    csrf = login(client, "staff")
    h = {"X-CSRF-Token": csrf}

    def expect_404(method, path, code, **kwargs):
        r = client.request(method, path, headers=h, **kwargs)
        assert r.status_code == 404, (method, path, r.status_code, r.text[:300])
        assert r.json()["code"] == code, (method, path, r.json())
        return r

    expect_404("GET", f"/api/v1/communities/{a}/residents/{rb}", "resident_not_found")
    expect_404(
        "PUT",
        f"/api/v1/communities/{a}/residents/{rb}",
        "resident_not_found",
        json={"name": "改名"},
    )
    expect_404("DELETE", f"/api/v1/communities/{a}/residents/{rb}", "resident_not_found")
    expect_404(
        "GET",
        f"/api/v1/communities/{a}/buildings/{b_things['building']}/units",
        "building_not_found",
    )
    expect_404(
        "PUT",
        f"/api/v1/communities/{a}/buildings/{b_things['building']}",
        "building_not_found",
        json={"name": "偷来的楼"},
    )
    expect_404(
        "POST",
        f"/api/v1/communities/{a}/units",
        "building_not_found",
        json={"building_id": b_things["building"], "label": "1-1"},
    )
    expect_404(
        "PUT",
        f"/api/v1/communities/{a}/grids/{b_things['grid']}",
        "grid_not_found",
        json={"name": "偷来的网格"},
    )
    expect_404(
        "POST",
        f"/api/v1/communities/{a}/buildings",
        "grid_not_found",
        json={"name": "新楼", "grid_id": b_things["grid"]},
    )
    expect_404("DELETE", f"/api/v1/communities/{a}/grants/{b_things['grant']}", "grant_not_found")
    expect_404("DELETE", f"/api/v1/communities/{a}/tokens/{b_things['token']}", "token_not_found")
    # a resident of A cannot be moved into B's unit; a user cannot be linked to B's resident
    expect_404(
        "POST",
        f"/api/v1/communities/{a}/residents",
        "unit_not_found",
        json={"name": "新人", "unit_id": b_things["unit"]},
    )
    expect_404(
        "PUT",
        f"/api/v1/communities/{a}/residents/{world.residents_a[0]}",
        "unit_not_found",
        json={"name": "居民10", "unit_id": b_things["unit"]},
    )
    expect_404(
        "POST",
        f"/api/v1/communities/{a}/users",
        "resident_not_found",
        json={
            "username": "linked",
            "display_name": "l",
            "password": "abc12345x",
            "role": "resident",
            "resident_id": rb,
        },
    )
    # B's staff member cannot be made the worker of A's grid
    r = client.put(
        f"/api/v1/communities/{a}/grids/{world.grid_a}",
        headers=h,
        json={"name": "第一网格", "worker_user_id": world.users["staff_b"]},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "worker_user_id"

    # filters with B's ids find nothing
    r = client.get(
        f"/api/v1/communities/{a}/residents", params={"building_id": b_things["building"]}
    )
    assert r.json()["total"] == 0
    # pages
    assert client.get(f"/c/{a}/residents/{rb}").status_code == 404
    assert client.get(f"/c/{a}/buildings/{b_things['building']}").status_code == 404
    assert (
        client.post(f"/c/{a}/residents/{rb}", data={"csrf_token": csrf, "name": "改"}).status_code
        == 404
    )
    assert (
        client.post(
            f"/c/{a}/residents/{rb}", data={"csrf_token": csrf, "action": "delete"}
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/c/{a}/tokens/{b_things['token']}/revoke", data={"csrf_token": csrf}
        ).status_code
        == 404
    )
    r = client.post(
        f"/c/{a}/residents/new",
        data={"csrf_token": csrf, "name": "新人", "unit_id": str(b_things["unit"])},
    )
    assert r.status_code == 422
    r = client.post(
        f"/c/{a}/grids",
        data={"csrf_token": csrf, "grid_id": str(b_things["grid"]), "name": "偷来的网格"},
    )
    assert r.status_code in (404, 422)
    r = client.post(
        f"/c/{a}/users/{world.users['staff_b']}/grants", data={"csrf_token": csrf, "role": "staff"}
    )
    assert r.status_code == 404

    assert _snapshot(db, b) == before_b
    from linli.people.models import Resident

    with db.session() as s:  # nothing half-created in A either
        assert (
            s.scalar(select(func.count()).select_from(Resident).where(Resident.name == "新人")) == 0
        )


def test_own_lists_never_include_the_other_community(client, world, b_things):
    a = world.a
    login(client, "staff")
    residents = client.get(f"/api/v1/communities/{a}/residents").json()
    assert {r["id"] for r in residents["items"]} == set(world.residents_a)
    assert {r["name"] for r in residents["items"]}.isdisjoint({"居民20", "居民21"})
    users = {u["username"] for u in client.get(f"/api/v1/communities/{a}/users").json()}
    assert "staff_b" not in users and "staff" in users
    assert {b["id"] for b in client.get(f"/api/v1/communities/{a}/buildings").json()} == set(
        world.buildings_a
    )
    assert "乙网格" not in {g["name"] for g in client.get(f"/api/v1/communities/{a}/grids").json()}
    assert client.get(f"/api/v1/communities/{a}/professionals").json() == []
    assert client.get(f"/api/v1/communities/{a}/tokens").json() == []
    actions = {e["action"] for e in client.get(f"/api/v1/communities/{a}/audit").json()["items"]}
    assert "secret.b" not in actions
    csv_text = client.get(f"/api/v1/communities/{a}/residents.csv").text
    assert "居民20" not in csv_text and "居民21" not in csv_text
    # search by B's phone number finds nothing in A
    r = client.get(f"/api/v1/communities/{a}/residents", params={"q": "13900002000"})
    assert r.json()["total"] == 0


def test_community_b_staff_is_kept_out_of_a_too(client, world):
    login(client, "staff_b")
    assert client.get(f"/api/v1/communities/{world.a}/residents").status_code == 404
    assert client.get(f"/c/{world.a}").status_code == 404
    assert client.get(f"/api/v1/communities/{world.b}/residents").json()["total"] == 2


def test_api_token_is_confined_to_its_community(client, world, db):
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=world.a,
                name="gate",
                prefix=prefix,
                token_hash=hashed,
                permissions=["people.read", "people.write", "community.read"],
            )
        )
    h = {"Authorization": f"Bearer {raw}"}
    assert client.get(f"/api/v1/communities/{world.a}/residents", headers=h).status_code == 200
    assert client.get(f"/api/v1/communities/{world.b}/residents", headers=h).status_code == 404
    r = client.put(
        f"/api/v1/communities/{world.b}/residents/{world.residents_b[0]}",
        headers=h,
        json={"name": "x"},
    )
    assert r.status_code == 404
    r = client.get(f"/api/v1/communities/{world.a}/residents/{world.residents_b[0]}", headers=h)
    assert r.status_code == 404
    assert [c["id"] for c in client.get("/api/v1/communities", headers=h).json()] == [world.a]
