"""The key-person watch list and its governance: reason, authorising staff member and expiry
required; templates encrypted; only holders of watchlist.read see entries and matches; every
entry, view and match audited; a match on a real photo becomes an alarm for the guards that
does not name the person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import pytest
from conftest import login
from sqlalchemy import select

from linli.core.models import AuditEntry
from linli.core.web import system_ctx
from linli.iot.models import Alarm
from linli.safety import service
from linli.safety.models import Camera, WatchMatch, WatchTemplate
from linli.safety.schemas import CameraIn, WatchEntryIn
from linli.workorders.models import WorkOrder


def _api(world: Any) -> str:
    return f"/api/v1/communities/{world.a}/safety"


def _future(days: int = 30) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def test_an_entry_needs_reason_authoriser_and_expiry(client: Any, world: Any) -> None:
    tok = login(client, "staff")
    h = {"X-CSRF-Token": tok}
    base = {
        "name": "张三",
        "reason": "Police request no. 2026-117: suspected burglar",
        "authorised_by_user_id": world.users["staff"],
        "expires_at": _future(),
    }
    cases = [
        ({"reason": ""}, "reason"),
        ({"reason": "because"}, "reason"),
        ({"authorised_by_user_id": None}, "authorised_by_user_id"),
        ({"authorised_by_user_id": world.users["guard"]}, "authorised_by_user_id"),  # no perm
        ({"authorised_by_user_id": world.users["staff_b"]}, "authorised_by_user_id"),  # other
        ({"expires_at": None}, "expires_at"),
        ({"expires_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}, "expires_at"),
        ({"expires_at": _future(400)}, "expires_at"),
    ]
    for change, field in cases:
        r = client.post(_api(world) + "/watchlist", json={**base, **change}, headers=h)
        assert r.status_code == 422, (change, r.text)
        body = r.json()
        assert body["detail"]
        fields = {e.get("field") or (e.get("loc") or [None])[-1] for e in body.get("errors", [])}
        assert field in fields or body.get("field") == field or field in r.text, (change, body)
    assert client.get(_api(world) + "/watchlist").json() == []  # nothing half-saved
    r = client.post(_api(world) + "/watchlist", json=base, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["authorised_by"] == "staff"


def test_only_holders_of_the_permission_see_the_list_and_views_are_audited(
    client: Any, world: Any, db: Any
) -> None:
    with db.session() as s:
        e = service.create_watch_entry(
            s,
            system_ctx(world.a),
            WatchEntryIn(
                name="李四",
                reason="Court order 2026-55: restraining order",
                authorised_by_user_id=world.users["staff"],
                expires_at=datetime.now(UTC) + timedelta(days=3),
            ),
        )
        eid = e.id
    # the guard may read; the property manager and the grid worker may not
    login(client, "guard")
    r = client.get(_api(world) + "/watchlist")
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [eid]
    assert client.get(f"/c/{world.a}/safety/watchlist").status_code == 200
    tok = login(client, "guard")
    r = client.post(
        _api(world) + "/watchlist",
        headers={"X-CSRF-Token": tok},
        json={
            "name": "x",
            "reason": "a long enough reason",
            "expires_at": _future(),
            "authorised_by_user_id": world.users["staff"],
        },
    )
    assert r.status_code == 403
    for who in ("property", "grid", "resident"):
        login(client, who)
        assert client.get(_api(world) + "/watchlist").status_code in (403, 404), who
        assert client.get(f"/c/{world.a}/safety/watchlist").status_code in (403, 404), who
    with db.session() as s:
        actions = [a.action for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert "safety.watchlist.entry_created" in actions
    assert actions.count("safety.watchlist.viewed") >= 2  # API and page views of the guard


def test_a_real_face_on_a_camera_frame_matches_and_raises_an_alarm(
    db: Any, world: Any, settings: Any, shared_data: Path, tmp_path: Path
) -> None:
    from linli.core.files import FileStore

    files = FileStore(tmp_path / "files")
    ctx = system_ctx(world.a)
    with db.session() as s:
        cam = service.save_camera(
            s, ctx, CameraIn(name="东门", url=str(tmp_path / "x.mp4"), face_watch=True)
        )
        e = service.create_watch_entry(
            s,
            ctx,
            WatchEntryIn(
                name="Obama (test)",
                reason="Test entry: identify a known face",
                authorised_by_user_id=world.users["staff"],
                expires_at=datetime.now(UTC) + timedelta(days=1),
            ),
        )
        photo = sorted((shared_data / "faces/gallery/obama").iterdir())[0].read_bytes()
        service.add_watch_face(s, ctx, e.id, photo, settings)
        eid, cam_id = e.id, cam.id
    with db.session() as s:
        (t,) = list(s.scalars(select(WatchTemplate)))
        # encrypted at rest: 128 float32 = 512 bytes of plain embedding would be shorter
        from linli.vision import faces

        assert len(t.template) > 512
        with pytest.raises(ValueError):
            faces.embedding_from_bytes(t.template)
    probe = cv2.imread(str(shared_data / "faces/probe/obama1.jpg"))
    other = cv2.imread(str(shared_data / "faces/probe/alex_lacamoire1.jpg"))
    with db.session() as s:
        hits = service.identify_watch_faces(s, settings, world.a, probe)
        assert [h[0] for h in hits] == [eid]
        assert all(0 <= v <= 1 for v in hits[0][2])
        assert service.identify_watch_faces(s, settings, world.a, other) == []
        cam = s.get(Camera, cam_id)
        assert cam is not None
        m = service.record_watch_match(s, cam, eid, hits[0][1], hits[0][2], files, probe)
        mid = m.id
    with db.session() as s:
        m2 = s.get(WatchMatch, mid)
        assert m2 is not None and m2.snapshot_sha256 and files.exists(m2.snapshot_sha256)
        a = s.get(Alarm, m2.alarm_id)
        assert a is not None and a.kind == "safety_watchlist_match"
        assert "Obama" not in a.message  # the alarm does not name the person
        wo = s.get(WorkOrder, a.work_order_id)
        assert wo is not None and wo.category == "security" and "Obama" not in wo.title
        actions = [x.action for x in s.scalars(select(AuditEntry))]
        assert "safety.watchlist.matched" in actions
    # the match is a video event too, hidden from safety.read holders without watchlist.read
    from linli.core.roles import Role, permissions_for
    from linli.core.web import Ctx, Principal

    def ctx_of(role: Role) -> Ctx:
        return Ctx(
            principal=Principal(user=None, token=None),
            community_id=world.a,
            roles={role},
            permissions=permissions_for({role}),
        )

    with db.session() as s:
        assert [e.kind for e in service.list_events(s, ctx_of(Role.SECURITY_GUARD))] == [
            "watchlist_match"
        ]
        assert service.list_events(s, ctx_of(Role.PROPERTY_MANAGER)) == []
        # ending the entry deletes its templates: nothing matches any more
    with db.session() as s:
        service.end_watch_entry(s, ctx, eid, "case closed")
    with db.session() as s:
        assert list(s.scalars(select(WatchTemplate))) == []
        assert service.identify_watch_faces(s, settings, world.a, probe) == []


def test_expired_entries_end_by_themselves(db: Any, world: Any) -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    with db.session() as s:
        service.create_watch_entry(
            s,
            system_ctx(world.a),
            WatchEntryIn(
                name="王五",
                reason="Police request, valid three days",
                authorised_by_user_id=world.users["staff"],
                expires_at=now + timedelta(days=3),
            ),
            now=now,
        )
    with db.session() as s:
        assert service.expire_watch_entries(s, now + timedelta(days=2)) == 0
        assert service.expire_watch_entries(s, now + timedelta(days=3, seconds=1)) == 1
        (e,) = service.list_watch_entries(s, system_ctx(world.a), include_ended=True)
        assert e.status == "ended" and e.end_reason == "expired"
