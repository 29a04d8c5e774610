"""Visitor passes as real QR images (rendered with segno, read back with OpenCV), licence-plate
credentials for the vehicles domain, the gallery kept in step with the database, and a
50-megapixel frame refused."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import login
from sqlalchemy import delete, select

from linli.access import service
from linli.access.models import FaceTemplate
from linli.access.qr import read_qr
from linli.access.schemas import ConsentIn, CredentialIn, GateIn, IdentityIn
from linli.core.db import utcnow
from linli.core.errors import Conflict, ValidationFailed
from linli.core.web import system_ctx


def _token(db: Any, cid: int, perms: list[str]) -> str:
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=cid,
                name="terminal",
                prefix=prefix,
                token_hash=hashed,
                permissions=perms,
            )
        )
    return raw


def _gate(db: Any, cid: int, name: str = "North") -> int:
    with db.session() as s:
        return service.save_gate(s, system_ctx(cid), GateIn(name=name)).id


def _read_png(png: bytes) -> str:
    """Decode a QR code the way a terminal's reader would (OpenCV's detectors; the classic
    one alone misses about one crisp code in a hundred)."""
    return read_qr(png)


def _photo_of(png: bytes) -> bytes:
    """The QR code as a terminal camera sees a phone screen: smaller, tilted, blurred, grey
    surroundings, JPEG."""
    im = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    im = cv2.GaussianBlur(cv2.resize(im, None, fx=0.7, fy=0.7), (3, 3), 0)
    h, w = im.shape
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = np.float32([[60, 30], [w + 50, 70], [w + 20, h + 60], [40, h + 20]])
    m = cv2.getPerspectiveTransform(src, dst)
    im = cv2.warpPerspective(im, m, (w + 120, h + 120), borderValue=150)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(im, cv2.COLOR_GRAY2BGR))
    assert ok
    return jpg.tobytes()


# -- QR passes as images ------------------------------------------------------------------------


def test_qr_pass_image_read_back_and_decided(client: Any, db: Any, world: Any, app: Any) -> None:
    gate = _gate(db, world.a)
    term = {"Authorization": f"Bearer {_token(db, world.a, ['access.decide'])}"}
    staff = {"Authorization": f"Bearer {_token(db, world.a, ['visitors.manage', 'access.manage'])}"}
    base = f"/api/v1/communities/{world.a}"
    now = utcnow()
    r = client.post(
        base + "/visitors",
        json={
            "name": "刘女士",
            "purpose": "送文件",
            "valid_from": (now - timedelta(minutes=5)).isoformat(),
            "valid_until": (now + timedelta(hours=2)).isoformat(),
            "max_uses": 2,
        },
        headers=staff,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    pid, text = created["id"], created["qr"]
    # the pass and its QR code, from the API
    r = client.get(f"{base}/visitors/{pid}", headers=staff)
    assert r.status_code == 200 and r.json()["qr"] == text
    r = client.get(f"{base}/visitors/{pid}/qr.png", headers=staff)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")
    png = r.content
    read = _read_png(png)
    assert read == text
    svg = client.get(f"{base}/visitors/{pid}/qr.svg", headers=staff)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    assert client.get(f"{base}/visitors/{pid}/qr.gif", headers=staff).status_code == 404
    # a terminal that reads the code itself sends the text...
    url = f"{base}/gates/{gate}/decide"
    d = client.post(url, json={"qr": read}, headers=term).json()
    assert d["granted"] is True and d["method"] == "qr" and d["person"]["name"] == "刘女士"
    # ...one that only has a camera sends the picture (here: a photo of the phone screen)
    d = client.post(
        url, files={"qr_image": ("qr.jpg", _photo_of(png), "image/jpeg")}, headers=term
    ).json()
    assert d["granted"] is True and d["method"] == "qr", d
    d = client.post(url, files={"qr_image": ("qr.png", png, "image/png")}, headers=term).json()
    assert d["granted"] is False and d["reason"] == "qr_used"
    # expired: the same code at a later time
    with db.session() as s:
        dec, _ = service.decide(
            s,
            system_ctx(world.a, "terminal"),
            gate,
            service.Presented(qr=read),
            app.state.settings,
            now=now + timedelta(hours=3),
        )
        assert not dec.granted and dec.reason == "qr_expired"


def test_forged_and_unreadable_qr_images_denied(
    client: Any, db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    from linli.access import qr

    gate = _gate(db, world.a)
    term = {"Authorization": f"Bearer {_token(db, world.a, ['access.decide'])}"}
    url = f"/api/v1/communities/{world.a}/gates/{gate}/decide"
    # a well-formed pass signed with another key: forged
    from itsdangerous import URLSafeSerializer

    forged = URLSafeSerializer("not-the-secret", salt="linli.access.visitor-pass").dumps(
        {"c": world.a, "p": 1, "n": "00" * 8}
    )
    for payload in (forged, "https://example.com/not-a-pass"):
        png = qr.render_png(str(payload))
        assert _read_png(png) == payload
        d = client.post(url, files={"qr_image": ("q.png", png, "image/png")}, headers=term)
        assert d.status_code == 200
        assert d.json()["granted"] is False and d.json()["reason"] == "qr_invalid"
    face = (shared_data / "faces" / "probe" / "obama1.jpg").read_bytes()
    for data, reason in ((face, "qr_unreadable"), (b"not an image", "not_an_image"), (b"", None)):
        r = client.post(url, files={"qr_image": ("q.jpg", data, "image/jpeg")}, headers=term)
        assert r.status_code == 200, r.text
        assert r.json()["granted"] is False and r.json()["method"] == "qr"
        if reason:
            assert r.json()["reason"] == reason
    # frames and a QR picture at once: a bad request, not a guess
    r = client.post(
        url,
        files=[
            ("image", ("f.jpg", face, "image/jpeg")),
            ("qr_image", ("q.jpg", face, "image/jpeg")),
        ],
        headers=term,
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


def test_pass_pages_show_the_qr_code_to_its_owner_only(client: Any, db: Any, world: Any) -> None:
    from linli.access.models import VisitorPass

    tok = login(client, "resident")
    base = f"/c/{world.a}/access"
    r = client.post(
        base + "/visitors", data={"csrf_token": tok, "name": "王阿姨", "purpose": "探亲"}
    )
    assert r.status_code == 200
    assert "<svg" in r.text and "王阿姨" in r.text
    with db.session() as s:
        p = s.scalar(select(VisitorPass))
        assert p is not None
        pid = p.id
    page = client.get(f"{base}/visitors/{pid}")
    assert page.status_code == 200 and "<svg" in page.text
    png = client.get(f"{base}/visitors/{pid}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    text = _read_png(png.content)
    assert text in page.text  # the same code, also shown as text
    zh = client.get(f"{base}/visitors/{pid}", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 200
    # another resident's session sees nothing of it
    client.cookies.clear()
    login(client, "pro")
    assert client.get(f"{base}/visitors/{pid}").status_code in (403, 404)
    assert client.get(f"{base}/visitors/{pid}/qr.png").status_code in (403, 404)
    # a cancelled pass says so instead of offering the code as valid
    client.cookies.clear()
    tok = login(client, "resident")
    client.post(base + "/visitors", data={"csrf_token": tok, "revoke": str(pid)})
    page = client.get(f"{base}/visitors/{pid}", headers={"Accept-Language": "en"})
    assert "The QR pass was cancelled" in page.text


# -- licence plates --------------------------------------------------------------------------------


def test_plate_credential_and_identity_for_plate(db: Any, world: Any, app: Any) -> None:
    settings = app.state.settings
    with db.session() as s:
        ctx = system_ctx(world.a)
        i = service.create_identity(s, ctx, IdentityIn(kind="resident", name="车主"))
        c = service.add_credential(
            s, ctx, i.id, CredentialIn(kind="plate", value="皖a·12345"), settings
        )
        assert (c.lookup, c.label) == ("皖A12345", "皖A12345")
        for typed in ("皖A12345", "皖a 12345", "皖Ａ·１２３４５"):
            found = service.identity_for_plate(s, world.a, typed)
            assert found is not None and found.id == i.id, typed
        assert service.identity_by_credential(s, world.a, "plate", "皖a·12345") is not None
        assert service.identity_for_plate(s, world.b, "皖A12345") is None  # other community
        assert service.identity_for_plate(s, world.a, "皖A54321") is None
        assert service.identity_for_plate(s, world.a, "") is None
        other = service.create_identity(s, ctx, IdentityIn(kind="staff", name="保安"))
        with pytest.raises(Conflict):  # unique per community
            service.add_credential(
                s, ctx, other.id, CredentialIn(kind="plate", value="皖A·12345"), settings
            )
        with pytest.raises(ValidationFailed) as exc:
            service.add_credential(
                s, ctx, other.id, CredentialIn(kind="plate", value="HELLO"), settings
            )
        assert exc.value.code == "bad_plate"
        # the same plate may belong to someone in another community
        bctx = system_ctx(world.b)
        j = service.create_identity(s, bctx, IdentityIn(kind="resident", name="乙"))
        service.add_credential(
            s, bctx, j.id, CredentialIn(kind="plate", value="皖A12345"), settings
        )
        found_b = service.identity_for_plate(s, world.b, "皖A12345")
        assert found_b is not None and found_b.id == j.id
        # a suspended person is still found (the caller says why it refuses)...
        service.set_active(s, ctx, i.id, False)
        found = service.identity_for_plate(s, world.a, "皖A12345")
        assert found is not None and found.active is False
        # ...a removed plate is not
        service.remove_credential(s, ctx, i.id, c.id)
        assert service.identity_for_plate(s, world.a, "皖A12345") is None


# -- the gallery follows the database --------------------------------------------------------


def _enroll(s: Any, cid: int, name: str, photo: Path, settings: Any) -> int:
    ctx = system_ctx(cid)
    i = service.create_identity(s, ctx, IdentityIn(kind="resident", name=name))
    service.record_consent(s, ctx, i.id, ConsentIn(given_by=name))
    res = service.enroll_face(s, ctx, i.id, photo.read_bytes(), settings)
    assert res.ok, res.reason
    return i.id


def test_gallery_follows_changes_made_elsewhere(
    db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    settings = app.state.settings
    gallery = shared_data / "faces" / "gallery"
    service.forget_galleries()
    with db.session() as s:
        obama = _enroll(s, world.a, "obama", sorted((gallery / "obama").iterdir())[0], settings)
    with db.session() as s:
        g = service.gallery_for(s, settings, world.a)
        assert obama in g and len(g) == 1
    with db.session() as s:  # added elsewhere: picked up incrementally
        biden = _enroll(s, world.a, "biden", sorted((gallery / "biden").iterdir())[0], settings)
    with db.session() as s:
        g2 = service.gallery_for(s, settings, world.a)
        assert g2 is g and biden in g and obama in g and len(g) == 2
    # deleted by another process (plain SQL, no hook of this process): gone at the next use
    with db.session() as s:
        s.execute(delete(FaceTemplate).where(FaceTemplate.identity_id == obama))
    with db.session() as s:
        g = service.gallery_for(s, settings, world.a)
        assert obama not in g and biden in g and len(g) == 1
    # withdrawal then another enrollment in this process (SQLite may then reuse the deleted
    # template's id, leaving count and newest id unchanged): the withdrawn face is gone
    with db.session() as s:
        service.withdraw_consent(s, system_ctx(world.a), biden, None)
    with db.session() as s:
        kit = _enroll(s, world.a, "kit", sorted((gallery / "kit_harington").iterdir())[0], settings)
    with db.session() as s:
        g = service.gallery_for(s, settings, world.a)
        assert biden not in g and kit in g and len(g) == 1
        ids = set(s.scalars(select(FaceTemplate.identity_id)))
        assert ids == {kit}


# -- bad input ----------------------------------------------------------------------------------


def test_fifty_megapixel_frame_is_a_clear_denial(
    client: Any, db: Any, world: Any, shared_data: Path
) -> None:
    """A real face photo scaled to 50 MP (JPEG, which the decoder could open at 1/4 scale)
    is refused by its header before any decoding: not a terminal frame."""
    from PIL import Image

    gate = _gate(db, world.a)
    term = {"Authorization": f"Bearer {_token(db, world.a, ['access.decide'])}"}
    im = Image.open(shared_data / "faces" / "probe" / "obama1.jpg").convert("RGB")
    big = im.resize((8660, 5774))  # 50.0 MP
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=40)
    url = f"/api/v1/communities/{world.a}/gates/{gate}/decide"
    r = client.post(
        url,
        files={"image": ("big.jpg", buf.getvalue(), "image/jpeg")},
        headers={**term, "Accept-Language": "en"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["granted"] is False and r.json()["reason"] == "image_too_large"
    assert re.search(r"too large", r.json()["message"])


def test_decision_never_grants_a_face_deleted_elsewhere(
    client: Any, db: Any, world: Any, app: Any, shared_data: Path
) -> None:
    """The decision path checks only the newest template id between full checks; a template
    deleted by another process (and its id reused for someone else) is caught when it
    matches."""
    settings = app.state.settings
    faces_dir = shared_data / "faces"
    service.forget_galleries()
    gate = _gate(db, world.a)
    with db.session() as s:
        obama = _enroll(
            s, world.a, "obama", faces_dir / "gallery" / "obama" / "obama.jpg", settings
        )
    probe = (faces_dir / "probe" / "obama1.jpg").read_bytes()

    def decide() -> Any:
        with db.session() as s:
            return service.decide(
                s, system_ctx(world.a, "t"), gate, service.Presented(frames=[probe]), settings
            )[0]

    assert decide().granted
    with db.session() as s:  # another process: the row goes, its id is given to someone else
        row = s.scalar(select(FaceTemplate).where(FaceTemplate.identity_id == obama))
        assert row is not None
        other = service.create_identity(
            s, system_ctx(world.a), IdentityIn(kind="resident", name="someone else")
        )
        s.flush()
        row.identity_id = other.id
    d = decide()
    # (the moved template does not even decrypt for its new owner: AAD = identity id)
    assert not d.granted and d.reason in ("unknown_person", "empty_gallery")
    with db.session() as s:
        s.execute(delete(FaceTemplate))
    d = decide()
    assert not d.granted and d.reason in ("unknown_person", "empty_gallery")
