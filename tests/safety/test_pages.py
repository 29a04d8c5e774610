"""The safety forms as people use them: watch-list entry with a photo, enrolment in care, the
grid worker's visit on the care board; bad input comes back as form errors, nothing saved."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import login
from sqlalchemy import select

from linli.core.web import system_ctx
from linli.safety import service
from linli.safety.models import CarePerson, CareVisit, WatchEntry, WatchTemplate


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m
    return m.group(1)


def test_watchlist_form(client: Any, world: Any, db: Any, shared_data: Path) -> None:
    login(client, "staff")
    url = f"/c/{world.a}/safety/watchlist"
    page = client.get(url)
    assert page.status_code == 200
    tok = _csrf(page.text)
    exp = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%d")
    form = {
        "csrf_token": tok,
        "name": "赵六",
        "reason": "",
        "expires_on": exp,
        "authorised_by_user_id": str(world.users["staff"]),
    }
    r = client.post(url, data=form)
    assert r.status_code == 422 and "at least 10 characters" in r.text
    r = client.post(
        url,
        data={
            **form,
            "reason": "Police request 2026-9, theft suspect",
            "authorised_by_user_id": "",
        },
    )
    assert r.status_code == 422 and "authorised" in r.text
    r = client.post(
        url,
        data={**form, "reason": "Police request 2026-9, theft suspect", "expires_on": "2020-01-01"},
    )
    assert r.status_code == 422 and "future" in r.text
    with db.session() as s:
        assert list(s.scalars(select(WatchEntry))) == []
    photo = sorted((shared_data / "faces/gallery/biden").iterdir())[0]
    r = client.post(
        url,
        data={**form, "reason": "Police request 2026-9, theft suspect"},
        files={"photo": (photo.name, photo.read_bytes(), "image/jpeg")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    with db.session() as s:
        (e,) = list(s.scalars(select(WatchEntry)))
        assert e.authorised_by == "staff" and len(list(s.scalars(select(WatchTemplate)))) == 1
    page = client.get(url)
    assert "赵六" in page.text and "Police request 2026-9" in page.text


def test_care_forms_and_the_grid_workers_visit(client: Any, world: Any, db: Any) -> None:
    login(client, "staff")
    url = f"/c/{world.a}/safety/care"
    tok = _csrf(client.get(url).text)
    form = {
        "csrf_token": tok,
        "resident_id": str(world.residents_a[0]),
        "consent_by": "family",
        "consent_name": "女儿",
        "family_name": "女儿",
        "family_phone": "not a phone",
        "inactive_hours": "24",
    }
    r = client.post(url, data=form)
    assert r.status_code == 422 and "phone" in r.text
    r = client.post(url, data={**form, "family_phone": "13900002222", "inactive_hours": "0"})
    assert r.status_code == 422
    with db.session() as s:
        assert list(s.scalars(select(CarePerson))) == []
    r = client.post(url, data={**form, "family_phone": "13900002222"}, follow_redirects=False)
    assert r.status_code == 303
    with db.session() as s:
        (p,) = list(s.scalars(select(CarePerson)))
        p.enrolled_at = datetime.now(UTC) - timedelta(hours=30)
    with db.session() as s:
        assert service.evaluate_care(s, community_id=world.a) == [(p.id, "inactive")]
    # the grid worker sees her on the board with the visit to make, and records it
    login(client, "grid")
    page = client.get(url)
    assert page.status_code == 200 and "care-alarm" in page.text
    with db.session() as s:
        (v,) = list(s.scalars(select(CareVisit)))
    tok = _csrf(page.text)
    r = client.post(f"{url}/visits/{v.id}", data={"csrf_token": tok, "outcome": "maybe"})
    assert r.status_code == 422
    r = client.post(
        f"{url}/visits/{v.id}",
        data={"csrf_token": tok, "outcome": "well", "note": "在家看电视"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with db.session() as s:
        v2 = s.get(CareVisit, v.id)
        assert v2 is not None and v2.outcome == "well" and v2.note == "在家看电视"
        (p2,) = service.list_care(s, system_ctx(world.a))
        assert p2.last_activity_source == "visit"
    # the care board is not for guards or residents
    for who in ("guard", "resident"):
        login(client, who)
        assert client.get(url).status_code in (403, 404)
