"""The work-order loop over HTTP: create by hand, route, filter, transitions with notes and
resolution photos, rating by the resident who asked, KPIs, the board and the pages."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import func, select

from linli.core.db import utcnow

PROBLEM = "application/problem+json"


def _problem(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body = r.json()
    if code is not None:
        assert body["code"] == code, body
    return body


def _orders(db):
    from linli.workorders.models import WorkOrder

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(WorkOrder))


def _png(w: int = 64, h: int = 48) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 80, 40)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def staff(client, world):
    return {"X-CSRF-Token": login(client, "staff")}


def _create(client, world, headers, **body):
    data = {
        "category": "facility",
        "severity": "major",
        "title": "3号楼门禁损坏",
        "building_id": world.buildings_a[0],
        **body,
    }
    r = client.post(f"/api/v1/communities/{world.a}/workorders", headers=headers, json=data)
    assert r.status_code == 201, r.text
    return r.json()


def test_create_by_hand_routes_and_validates(client, world, db, staff):
    wo = _create(client, world, staff, description="门禁读卡器不亮", location="3号楼一单元")
    # facility → the property manager; the grid comes from the building; SLA from severity
    assert wo["status"] == "assigned" and wo["assignee_user_id"] == world.users["property"]
    assert wo["assignee_name"] == "property" and wo["grid_id"] == world.grid_a
    assert wo["number"].startswith("WO-") and wo["source"] == "manual"
    assert wo["notes"][0]["kind"] == "status" and wo["notes"][0]["to_status"] == "assigned"
    wellbeing = _create(client, world, staff, category="wellbeing", title="独居老人三天未出门")
    assert wellbeing["assignee_user_id"] == world.users["grid"]  # the grid's worker

    before = _orders(db)
    url = f"/api/v1/communities/{world.a}/workorders"
    for body, field in (
        ({"category": "spaceship", "title": "x"}, "category"),
        ({"category": "facility", "title": "   "}, "title"),
        ({"category": "facility", "title": "x" * 201}, "title"),
        ({"category": "facility", "title": "x", "severity": "huge"}, "severity"),
        ({"category": "facility"}, "title"),
    ):
        problem = _problem(client.post(url, headers=staff, json=body), 422)
        assert any(e["field"] == field for e in problem["errors"]), (field, problem)
    _problem(
        client.post(
            url, headers=staff, json={"category": "facility", "title": "x", "building_id": 987654}
        ),
        404,
    )
    _problem(
        client.post(
            url,
            headers=staff,
            json={
                "category": "facility",
                "title": "x",
                "requester_resident_id": world.residents_b[0],
            },
        ),
        404,
    )
    _problem(
        client.post(url, headers={**staff, "content-type": "application/json"}, content=b"{"), 400
    )
    assert _orders(db) == before
    # handlers cannot create; residents cannot see the board
    csrf = login(client, "grid")
    _problem(
        client.post(
            url, headers={"X-CSRF-Token": csrf}, json={"category": "facility", "title": "x"}
        ),
        403,
    )
    login(client, "resident")
    _problem(client.get(url), 403)


def test_list_filters_and_visibility(client, world, staff):
    a = world.a
    _create(client, world, staff)
    _create(
        client,
        world,
        staff,
        category="lighting",
        title="路灯不亮",
        building_id=world.buildings_a[1],
    )
    _create(
        client, world, staff, category="wellbeing", title="探访", building_id=world.buildings_a[0]
    )
    url = f"/api/v1/communities/{a}/workorders"
    assert len(client.get(url).json()) == 3
    assert [o["title"] for o in client.get(url, params={"category": "lighting"}).json()] == [
        "路灯不亮"
    ]
    by_grid = client.get(url, params={"grid_id": world.grid_a}).json()
    assert {o["title"] for o in by_grid} == {"3号楼门禁损坏", "探访"}
    mine = client.get(url, params={"assignee_user_id": world.users["grid"]}).json()
    assert [o["title"] for o in mine] == ["探访"]
    assert len(client.get(url, params={"status": "assigned"}).json()) == 3
    assert client.get(url, params={"status": "closed"}).json() == []
    _problem(client.get(url, params={"status": "lost"}), 422)
    _problem(client.get(url, params={"category": "x"}), 422)
    _problem(client.get(url, params={"limit": 0}), 422)
    # the grid worker sees only orders for them
    login(client, "grid")
    assert [o["title"] for o in client.get(url).json()] == ["探访"]
    other = client.get(url, params={"category": "lighting"}).json()
    assert other == []
    # community B's staff: A's orders do not exist
    login(client, "staff_b")
    _problem(client.get(f"{url}/1"), 404)
    assert client.get(f"/api/v1/communities/{world.b}/workorders").json() == []


def test_transitions_notes_photo_and_rating(client, world, db, staff, shared_data):
    a = world.a
    wo = _create(client, world, staff, requester_resident_id=world.residents_a[0])
    url = f"/api/v1/communities/{a}/workorders/{wo['id']}"
    photo = (shared_data / "plates" / "other" / "ccpd_demo_1.jpg").read_bytes()

    # the assignee works on it
    pm = {"X-CSRF-Token": login(client, "property")}
    _problem(client.post(f"{url}/reopen", headers=pm, json={"text": "x"}), 409, "bad_transition")
    r = client.post(f"{url}/start", headers=pm)
    assert r.status_code == 200 and r.json()["status"] == "in_progress" and r.json()["started_at"]
    _problem(client.post(f"{url}/start", headers=pm), 409)
    r = client.post(f"{url}/notes", headers=pm, json={"text": "已到现场，读卡器进水"})
    assert r.status_code == 201 and r.json()["notes"][-1]["text"] == "已到现场，读卡器进水"
    _problem(client.post(f"{url}/notes", headers=pm, json={"text": "  "}), 422)

    # resolving needs a note; a photo must be a real image of at most 10 MB; nothing half-saved
    _problem(client.post(f"{url}/resolve", headers=pm, json={}), 422)
    _problem(client.post(f"{url}/resolve", headers=pm, json={"text": ""}), 422)
    fake = client.post(
        f"{url}/resolve",
        headers=pm,
        data={"text": "换了读卡器"},
        files={"photo": ("p.jpg", b"not an image at all", "image/jpeg")},
    )
    assert _problem(fake, 422, "not_an_image")["errors"][0]["field"] == "photo"
    truncated = client.post(
        f"{url}/resolve",
        headers=pm,
        data={"text": "换了读卡器"},
        files={"photo": ("p.jpg", photo[: len(photo) // 2], "image/jpeg")},
    )
    _problem(truncated, 422, "not_an_image")
    big = client.post(
        f"{url}/resolve",
        headers=pm,
        data={"text": "换了读卡器"},
        files={"photo": ("p.png", b"\x89PNG" + b"0" * (10 * 1024 * 1024 + 10), "image/png")},
    )
    _problem(big, 413)
    assert client.get(url).json()["status"] == "in_progress"
    assert not [p for p in app_files(client).root.rglob("*") if p.is_file()]  # no orphan file

    r = client.post(
        f"{url}/resolve",
        headers=pm,
        data={"text": "更换读卡器，测试正常"},
        files={"photo": ("after.jpg", photo, "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "resolved" and done["resolution"] == "更换读卡器，测试正常"
    digest = done["resolution_photo"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and app_files(client).exists(digest)
    assert done["notes"][-1]["photo"] == digest and done["notes"][-1]["to_status"] == "resolved"
    img = client.get(f"{url}/photos/{digest}")
    assert (
        img.status_code == 200
        and img.headers["content-type"] == "image/jpeg"
        and img.content == photo
    )
    _problem(client.get(f"{url}/photos/{'0' * 64}"), 404)
    _problem(client.get(f"{url}/photos/nothex"), 404)

    # only a manager closes; the requester rates; then a reopen
    csrf = {"X-CSRF-Token": login(client, "resident")}
    assert client.get(f"{url}/photos/{digest}").status_code == 200  # the requester sees the result
    mine = client.get(f"/api/v1/communities/{a}/workorders/requested").json()
    assert [o["id"] for o in mine] == [wo["id"]]
    _problem(client.post(f"{url}/rate", headers=csrf, json={"rating": 6}), 422)
    r = client.post(f"{url}/rate", headers=csrf, json={"rating": 4, "comment": "修得快"})
    assert r.status_code == 200 and r.json()["rating"] == 4
    _problem(client.get(url), 403)  # residents do not read the board
    csrf_g = {"X-CSRF-Token": login(client, "guard")}
    _problem(client.post(f"{url}/rate", headers=csrf_g, json={"rating": 1}), 403)

    staff = {"X-CSRF-Token": login(client, "staff")}
    r = client.post(f"{url}/close", headers=staff, json={"text": "验收通过"})
    assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["closed_at"]
    r = client.post(f"{url}/reopen", headers=staff, json={"text": "又坏了"})
    assert (
        r.status_code == 200
        and r.json()["status"] == "in_progress"
        and r.json()["reopen_count"] == 1
    )
    _problem(client.post(f"{url}/reopen", headers=staff, json={"text": "x"}), 409)
    kinds = [n["kind"] for n in client.get(url).json()["notes"]]
    assert kinds == ["status", "status", "note", "status", "status", "reopen"]


def app_files(client):
    return client.app.state.files


def test_assign_and_rating_rules(client, world, staff):
    a = world.a
    wo = _create(client, world, staff)
    url = f"/api/v1/communities/{a}/workorders/{wo['id']}"
    r = client.post(f"{url}/assign", headers=staff, json={"assignee_user_id": world.users["guard"]})
    assert r.status_code == 200 and r.json()["assignee_user_id"] == world.users["guard"]
    assert r.json()["notes"][-1]["kind"] == "assign"
    _problem(
        client.post(
            f"{url}/assign", headers=staff, json={"assignee_user_id": world.users["staff_b"]}
        ),
        422,
    )
    _problem(client.post(f"{url}/assign", headers=staff, json={"assignee_user_id": "x"}), 422)
    _problem(client.post(f"{url}/assign", headers=staff, json={}), 422)
    # the property manager is no longer the assignee but manages orders; the grid worker is not
    csrf = {"X-CSRF-Token": login(client, "grid")}
    _problem(client.post(f"{url}/start", headers=csrf), 404)  # not even visible to them
    csrf = {"X-CSRF-Token": login(client, "guard")}
    assert client.post(f"{url}/start", headers=csrf).status_code == 200
    _problem(client.post(f"{url}/close", headers=csrf), 403)
    # a resident who did not raise it cannot rate it; not before it is resolved either
    csrf = {"X-CSRF-Token": login(client, "resident")}
    _problem(client.post(f"{url}/rate", headers=csrf, json={"rating": 5}), 403)
    staff = {"X-CSRF-Token": login(client, "staff")}
    asked = _create(client, world, staff, requester_resident_id=world.residents_a[0])
    csrf = {"X-CSRF-Token": login(client, "resident")}
    _problem(
        client.post(
            f"/api/v1/communities/{a}/workorders/{asked['id']}/rate",
            headers=csrf,
            json={"rating": 5},
        ),
        409,
        "not_resolved",
    )
    _problem(
        client.post(
            f"/api/v1/communities/{a}/workorders/987654/rate", headers=csrf, json={"rating": 5}
        ),
        404,
    )


def test_kpis(client, world, db, staff):
    from linli.workorders.models import WorkOrder

    a = world.a
    fast = _create(client, world, staff, severity="major")
    slow = _create(
        client,
        world,
        staff,
        category="lighting",
        severity="critical",
        building_id=world.buildings_a[1],
    )
    now = utcnow()
    with db.session() as s:
        w = s.get(WorkOrder, fast["id"])
        w.created_at, w.started_at, w.resolved_at = (
            now - timedelta(hours=5),
            now - timedelta(hours=4),
            now - timedelta(hours=2),
        )
        w.status, w.due_at = "resolved", w.created_at + timedelta(hours=24)
        w2 = s.get(WorkOrder, slow["id"])
        w2.created_at, w2.due_at = now - timedelta(hours=10), now - timedelta(hours=6)
    k = client.get(f"/api/v1/communities/{a}/workorders/kpis").json()
    assert k["total"]["count"] == 2 and k["total"]["open"] == 1
    assert k["by_category"]["facility"]["avg_hours_to_respond"] == pytest.approx(1.0)
    assert k["by_category"]["facility"]["avg_hours_to_resolve"] == pytest.approx(3.0)
    assert k["by_category"]["lighting"]["overdue_rate"] == 1.0
    assert k["total"]["overdue_rate"] == 0.5
    assert set(k["by_grid"]) == {"第一网格", "—"}
    since = (now - timedelta(hours=7)).isoformat()
    assert (
        client.get(f"/api/v1/communities/{a}/workorders/kpis", params={"since": since}).json()[
            "total"
        ]["count"]
        == 1
    )
    _problem(
        client.get(f"/api/v1/communities/{a}/workorders/kpis", params={"since": "last week"}), 422
    )
    for lang, words in (
        ("en", ("Time to respond", "By grid", "lighting")),
        ("zh_CN", ("响应时长", "按网格", "照明")),
    ):
        client.cookies.set("lang", lang)
        page = client.get(f"/c/{a}/workorders/kpis?period=all")
        assert page.status_code == 200
        for w in words:
            assert w in page.text, (lang, w)


def test_board_and_pages(client, world, db, staff, shared_data):
    a = world.a
    wo = _create(client, world, staff)
    _create(
        client,
        world,
        staff,
        category="lighting",
        title="路灯不亮",
        building_id=world.buildings_a[1],
    )
    for lang, words in (
        ("en", ("Work order board", "assigned", "in progress", "New work order")),
        ("zh_CN", ("工单看板", "已派单", "处理中", "新建工单")),
    ):
        client.cookies.set("lang", lang)
        board = client.get(f"/c/{a}/workorders")
        assert board.status_code == 200
        for w in words:
            assert w in board.text, (lang, w)
    assert "3号楼门禁损坏" in board.text and "路灯不亮" in board.text
    filtered = client.get(
        f"/c/{a}/workorders", params={"category": "lighting", "grid_id": "", "assignee": ""}
    )
    assert "路灯不亮" in filtered.text and "3号楼门禁损坏" not in filtered.text
    junk = client.get(
        f"/c/{a}/workorders", params={"category": "x", "grid_id": "abc", "assignee": "99999999999"}
    )
    assert junk.status_code == 200
    fragment = client.get(f"/c/{a}/workorders", params={"fragment": "columns"})
    assert "<html" not in fragment.text and "board-col" in fragment.text
    assert "events/stream?pattern=workorders.*" in board.text

    # new order form: errors next to fields, then success
    r = client.post(
        f"/c/{a}/workorders/new",
        data={
            "csrf_token": staff["X-CSRF-Token"],
            "title": "",
            "category": "facility",
            "severity": "minor",
        },
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/workorders/new",
        data={
            "csrf_token": staff["X-CSRF-Token"],
            "title": "井盖松动",
            "category": "facility",
            "severity": "major",
            "building_id": str(world.buildings_a[0]),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    # detail page and its forms: start, resolve with a photo, note errors
    pm = login(client, "property")
    page = client.get(f"/c/{a}/workorders/{wo['id']}")
    assert page.status_code == 200 and "3号楼门禁损坏" in page.text and 'name="photo"' in page.text
    r = client.post(
        f"/c/{a}/workorders/{wo['id']}",
        data={"csrf_token": pm, "action": "start"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    r = client.post(
        f"/c/{a}/workorders/{wo['id']}", data={"csrf_token": pm, "action": "resolve", "text": ""}
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/workorders/{wo['id']}",
        data={"csrf_token": pm, "action": "resolve", "text": "修好了"},
        files={"photo": ("x.png", b"GIF89a-broken", "image/png")},
    )
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/workorders/{wo['id']}",
        data={"csrf_token": pm, "action": "resolve", "text": "修好了"},
        files={"photo": ("x.png", _png(), "image/png")},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"/c/{a}/workorders/{wo['id']}").text
    assert "修好了" in page and f"/api/v1/communities/{a}/workorders/{wo['id']}/photos/" in page
    r = client.post(f"/c/{a}/workorders/{wo['id']}", data={"csrf_token": pm, "action": "fly"})
    assert r.status_code == 404
    assert client.get(f"/c/{a}/workorders/987654").status_code == 404
    login(client, "staff_b")
    assert client.get(f"/c/{a}/workorders/{wo['id']}").status_code == 404


def test_resident_requests_page_and_rating(client, world, staff):
    a = world.a
    wo = _create(
        client,
        world,
        staff,
        requester_resident_id=world.residents_a[0],
        title="楼道灯坏了",
        category="lighting",
    )
    pm = {"X-CSRF-Token": login(client, "property")}
    r = client.post(
        f"/api/v1/communities/{a}/workorders/{wo['id']}/resolve",
        headers=pm,
        data={"text": "已更换灯泡"},
        files={"photo": ("a.png", _png(), "image/png")},
    )
    assert r.status_code == 200, r.text
    csrf = login(client, "resident")
    client.cookies.set("lang", "zh_CN")
    page = client.get(f"/c/{a}/workorders/requested")
    assert page.status_code == 200 and "楼道灯坏了" in page.text and "已更换灯泡" in page.text
    assert "我的诉求" in page.text and 'name="rating"' in page.text
    nav = client.get(f"/c/{a}").text
    assert f'href="/c/{a}/workorders/requested"' in nav and f'href="/c/{a}/workorders"' not in nav
    r = client.post(f"/c/{a}/workorders/{wo['id']}/rate", data={"csrf_token": csrf, "rating": "9"})
    assert r.status_code == 422 and "has-error" in r.text
    r = client.post(
        f"/c/{a}/workorders/{wo['id']}/rate",
        data={"csrf_token": csrf, "rating": "5"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "★★★★★" in client.get(f"/c/{a}/workorders/requested").text


WO_PAGES = {
    "admin": (200, 200),
    "staff": (200, 200),
    "property": (200, 200),
    "grid": (200, 403),
    "guard": (200, 403),
    "resident": (403, 403),
    "pro": (403, 403),
}


@pytest.mark.parametrize("role", sorted(WO_PAGES))
def test_workorder_pages_by_role(client, world, role):
    login(client, role)
    read, manage = WO_PAGES[role]
    a = world.a
    assert client.get(f"/c/{a}/workorders").status_code == read
    assert client.get(f"/c/{a}/workorders/kpis").status_code == read
    assert client.get(f"/c/{a}/workorders/new").status_code == manage
    assert client.get(f"/c/{a}/workorders/requested").status_code == 200


@pytest.mark.parametrize("huge", ["99999999999999999999", "9223372036854775808", "2147483648"])
def test_ids_beyond_the_database_range_and_nul_are_4xx(client, world, db, staff, huge):
    a = world.a
    before = _orders(db)
    for method, path, kwargs in (
        ("GET", f"/api/v1/communities/{a}/workorders/{huge}", {}),
        ("POST", f"/api/v1/communities/{a}/workorders/{huge}/start", {}),
        (
            "POST",
            f"/api/v1/communities/{a}/workorders/{huge}/assign",
            {"json": {"assignee_user_id": int(huge)}},
        ),
        ("GET", f"/api/v1/communities/{a}/workorders?grid_id={huge}", {}),
        (
            "POST",
            f"/api/v1/communities/{a}/workorders",
            {"json": {"category": "facility", "title": "x", "grid_id": int(huge)}},
        ),
        ("GET", f"/c/{a}/workorders/{huge}", {}),
        ("GET", f"/c/{a}/workorders?assignee={huge}", {}),
    ):
        r = client.request(method, path, headers=staff, **kwargs)
        assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
    r = client.post(
        f"/api/v1/communities/{a}/workorders",
        headers=staff,
        json={"category": "facility", "title": "bad\u0000title"},
    )
    assert r.status_code in (201, 422), r.text[:300]
    assert _orders(db) - before in (0, 1) and (r.status_code == 201) == (_orders(db) == before + 1)
