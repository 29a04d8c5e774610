"""Access control: identities, consent, encrypted templates, the terminal decision, visitors."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from linli.access import service
from linli.access.models import AccessEvent, FaceTemplate, Gate
from linli.access.schemas import ConsentIn, CredentialIn, GateIn, Hours, IdentityIn, VisitorIn
from linli.core.db import utcnow
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


def _gate(db: Any, cid: int, **kw: Any) -> int:
    with db.session() as s:
        g = service.save_gate(s, system_ctx(cid), GateIn(name=kw.pop("name", "North"), **kw))
        return g.id


def _identity(db: Any, cid: int, name: str, kind: str = "resident") -> int:
    with db.session() as s:
        return service.create_identity(s, system_ctx(cid), IdentityIn(kind=kind, name=name)).id


@pytest.fixture
def faces_dir(shared_data: Path) -> Path:
    return shared_data / "faces"


@pytest.fixture
def enrolled(db: Any, world: Any, app: Any, faces_dir: Path) -> dict[str, int]:
    """Every gallery person of the shared data enrolled (with consent) in community A."""
    settings = app.state.settings
    ids: dict[str, int] = {}
    with db.session() as s:
        ctx = system_ctx(world.a)
        for person in sorted(p.name for p in (faces_dir / "gallery").iterdir() if p.is_dir()):
            i = service.create_identity(s, ctx, IdentityIn(kind="resident", name=person))
            service.record_consent(s, ctx, i.id, ConsentIn(given_by=person))
            photo = sorted((faces_dir / "gallery" / person).iterdir())[0]
            res = service.enroll_face(s, ctx, i.id, photo.read_bytes(), settings)
            assert res.ok, (person, res.reason)
            ids[person] = i.id
    return ids


def _decide_image(
    client: Any, cid: int, gate: int, token: str, data: bytes, name: str = "f.jpg"
) -> Any:
    return client.post(
        f"/api/v1/communities/{cid}/gates/{gate}/decide",
        files={"image": (name, data, "image/jpeg")},
        headers={"Authorization": f"Bearer {token}"},
    )


def _crop(path: Path, box: tuple[int, int, int, int]) -> bytes:
    from PIL import Image

    im = Image.open(path).convert("RGB").crop(box)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=92)
    return buf.getvalue()


# -- face decisions on the shared probes --------------------------------------------------------


def test_probe_decisions(
    client: Any, db: Any, world: Any, enrolled: dict[str, int], faces_dir: Path
) -> None:
    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    probe = faces_dir / "probe"
    for name, who in (
        ("obama1.jpg", "obama"),
        ("alex_lacamoire1.jpg", "alex_lacamoire"),
        ("johnsnow_test1.jpg", "kit_harington"),
    ):
        r = _decide_image(client, world.a, gate, tok, (probe / name).read_bytes())
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["granted"] is True, (name, body)
        assert body["person"]["id"] == enrolled[who]
        assert body["event_id"]
    # several faces in one frame: a clear refusal, never a grant
    r = _decide_image(client, world.a, gate, tok, (probe / "obama_and_biden.jpg").read_bytes())
    assert r.json()["granted"] is False and r.json()["reason"] == "several_faces"
    # the unknown child alone: denied
    from linli.vision import faces

    found = faces.analyze_image(probe / "obama_and_biden.jpg")
    child = min(found, key=lambda f: f.box.width)
    b = child.box
    pad = b.width * 0.8
    crop = _crop(
        probe / "obama_and_biden.jpg",
        (int(max(b.x1 - pad, 0)), int(max(b.y1 - pad, 0)), int(b.x2 + pad), int(b.y2 + pad)),
    )
    r = _decide_image(client, world.a, gate, tok, crop)
    # (the child is seen almost in profile: refused as not frontal before any match)
    assert r.json()["granted"] is False
    assert r.json()["reason"] in ("unknown_person", "face_not_frontal")
    assert r.json()["person"] is None
    # every decision is an access event and an outbox event
    with db.session() as s:
        rows = list(s.scalars(select(AccessEvent).order_by(AccessEvent.id)))
        assert len(rows) == 5
        assert all(e.event_id for e in rows)


def test_no_impostor_granted(
    client: Any, db: Any, world: Any, enrolled: dict[str, int], faces_dir: Path
) -> None:
    """Remove each probe person from the gallery: their face must then be denied."""
    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    probe = faces_dir / "probe"
    for name, who in (("obama1.jpg", "obama"), ("johnsnow_test1.jpg", "kit_harington")):
        with db.session() as s:
            service.withdraw_consent(s, system_ctx(world.a), enrolled[who], None)
        r = _decide_image(client, world.a, gate, tok, (probe / name).read_bytes())
        assert r.json()["granted"] is False, name
        assert r.json()["reason"] in ("unknown_person", "ambiguous_match")


def test_policy_excludes_kind_and_hours(
    client: Any, db: Any, world: Any, enrolled: dict[str, int], faces_dir: Path
) -> None:
    staff_only = _gate(db, world.a, name="Staff door", policy={"staff": Hours()})
    tok = _token(db, world.a, ["access.decide"])
    r = _decide_image(
        client, world.a, staff_only, tok, (faces_dir / "probe" / "obama1.jpg").read_bytes()
    )
    assert r.json()["granted"] is False
    assert r.json()["reason"] == "not_allowed_here"


def test_consent_withdrawal_deletes_template_and_encrypted_at_rest(
    db: Any, world: Any, app: Any, enrolled: dict[str, int]
) -> None:
    from linli.vision import faces

    obama = enrolled["obama"]
    with db.session() as s:
        t = s.scalar(select(FaceTemplate).where(FaceTemplate.identity_id == obama))
        assert t is not None
        assert len(t.template) == 512 + 12 + 16  # nonce + ciphertext + tag, not raw floats
        raw = service.cipher(app.state.settings).decrypt(t.template, service._aad(obama))
        emb = faces.embedding_from_bytes(raw)
        assert faces.embedding_to_bytes(emb) not in t.template
        # bound to the identity: decrypting as another person fails
        with pytest.raises(Exception):  # noqa: B017
            service.cipher(app.state.settings).decrypt(t.template, service._aad(obama + 1))
        n = service.withdraw_consent(s, system_ctx(world.a), obama, None)
        assert n == 1
    with db.session() as s:
        assert s.scalar(select(FaceTemplate).where(FaceTemplate.identity_id == obama)) is None
        g = service.gallery_for(s, app.state.settings, world.a)
        assert obama not in g


def test_enrollment_needs_consent(db: Any, world: Any, app: Any, faces_dir: Path) -> None:
    from linli.core.errors import ValidationFailed

    iid = _identity(db, world.a, "no consent")
    photo = sorted((faces_dir / "gallery" / "obama").iterdir())[0].read_bytes()
    with db.session() as s, pytest.raises(ValidationFailed):
        service.enroll_face(s, system_ctx(world.a), iid, photo, app.state.settings)
    with db.session() as s:
        assert s.scalar(select(FaceTemplate)) is None


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        b"this is not an image",
        b"",
        b"\xff\xd8\xff\xe0" + b"\x00" * 200,  # truncated JPEG
    ],
)
def test_bad_images_denied(client: Any, db: Any, world: Any, payload: bytes) -> None:
    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    r = _decide_image(client, world.a, gate, tok, payload)
    assert r.status_code == 200, r.text
    assert r.json()["granted"] is False
    assert r.json()["reason"]


def test_huge_and_faceless_images_denied(client: Any, db: Any, world: Any) -> None:
    from PIL import Image

    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    buf = io.BytesIO()
    Image.new("RGB", (640, 480), (120, 120, 120)).save(buf, "PNG")
    r = _decide_image(client, world.a, gate, tok, buf.getvalue(), "grey.png")
    assert r.json() | {} and r.json()["reason"] == "no_face"
    buf = io.BytesIO()
    Image.new("L", (10000, 5000), 0).save(buf, "PNG")  # 50 megapixels
    r = _decide_image(client, world.a, gate, tok, buf.getvalue(), "big.png")
    assert r.status_code == 200
    assert r.json()["granted"] is False


# -- cards, PINs, QR passes ----------------------------------------------------------------------


def test_card_and_pin(client: Any, db: Any, world: Any, app: Any) -> None:
    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    iid = _identity(db, world.a, "张三")
    with db.session() as s:
        ctx = system_ctx(world.a)
        service.add_credential(
            s, ctx, iid, CredentialIn(kind="card", value="ab12cd"), app.state.settings
        )
        c = service.add_credential(
            s, ctx, iid, CredentialIn(kind="pin", value="482913"), app.state.settings
        )
        assert "482913" not in c.lookup and c.label == "••••"
    url = f"/api/v1/communities/{world.a}/gates/{gate}/decide"
    h = {"Authorization": f"Bearer {tok}"}
    assert client.post(url, json={"card": "AB12CD"}, headers=h).json()["granted"] is True
    assert client.post(url, json={"pin": "482913"}, headers=h).json()["granted"] is True
    r = client.post(url, json={"card": "nope"}, headers=h).json()
    assert r["granted"] is False and r["reason"] == "unknown_card"
    r = client.post(url, json={"pin": "000000"}, headers=h).json()
    assert r["reason"] == "unknown_pin"
    assert client.post(url, json={}, headers=h).json()["reason"] == "no_credential"


def test_qr_pass_forgery_expiry_and_uses(client: Any, db: Any, world: Any, app: Any) -> None:
    gate = _gate(db, world.a)
    tok = _token(db, world.a, ["access.decide"])
    now = utcnow()
    with db.session() as s:
        _p, _i, qr = service.create_visitor(
            s,
            system_ctx(world.a),
            VisitorIn(
                name="访客",
                valid_from=now - timedelta(minutes=5),
                valid_until=now + timedelta(hours=2),
                max_uses=1,
            ),
            app.state.settings,
        )
    url = f"/api/v1/communities/{world.a}/gates/{gate}/decide"
    h = {"Authorization": f"Bearer {tok}"}
    forged = qr[:-2] + ("AA" if not qr.endswith("AA") else "BB")
    assert client.post(url, json={"qr": forged}, headers=h).json()["reason"] == "qr_invalid"
    assert client.post(url, json={"qr": "garbage"}, headers=h).json()["reason"] == "qr_invalid"
    assert client.post(url, json={"qr": qr}, headers=h).json()["granted"] is True
    assert client.post(url, json={"qr": qr}, headers=h).json()["reason"] == "qr_used"
    # expiry, checked at a later time
    with db.session() as s:
        _p2, _i, qr2 = service.create_visitor(
            s,
            system_ctx(world.a),
            VisitorIn(name="快递", valid_from=now, valid_until=now + timedelta(hours=1)),
            app.state.settings,
        )
        _v, reason = service.check_qr(s, app.state.settings, world.a, qr2, now + timedelta(hours=2))
        assert reason == "qr_expired"
        # a pass of community A is no pass in community B
        _v, reason = service.check_qr(s, app.state.settings, world.b, qr2, now)
        assert reason == "qr_invalid"


def test_delivery_hours_and_anti_passback(db: Any, world: Any, app: Any) -> None:
    settings = app.state.settings
    gate_id = _gate(
        db,
        world.a,
        name="Delivery",
        direction="in",
        anti_passback=True,
        policy={"resident": Hours(), "delivery": Hours(start="08:00", end="20:00")},
    )
    courier = _identity(db, world.a, "courier", kind="delivery")
    res = _identity(db, world.a, "resident")
    with db.session() as s:
        ctx = system_ctx(world.a)
        service.add_credential(s, ctx, courier, CredentialIn(kind="card", value="D1"), settings)
        service.add_credential(s, ctx, res, CredentialIn(kind="card", value="R1"), settings)
    noon = datetime(2026, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
    night = datetime(2026, 5, 1, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    with db.session() as s:
        ctx = system_ctx(world.a)
        d, _ = service.decide(s, ctx, gate_id, service.Presented(card="D1"), settings, now=noon)
        assert d.granted
        d, _ = service.decide(s, ctx, gate_id, service.Presented(card="D1"), settings, now=night)
        assert d.reason == "outside_hours"
        d, _ = service.decide(s, ctx, gate_id, service.Presented(card="R1"), settings, now=noon)
        assert d.granted
        d, _ = service.decide(
            s, ctx, gate_id, service.Presented(card="R1"), settings, now=noon + timedelta(minutes=1)
        )
        assert d.reason == "anti_passback"


def test_grant_opens_gate_device(db: Any, world: Any, app: Any) -> None:
    from linli.iot.models import Command

    settings = app.state.settings
    gate_id = _gate(db, world.a)
    iid = _identity(db, world.a, "resident")
    with db.session() as s:
        ctx = system_ctx(world.a)
        service.ensure_gate_device(s, ctx, s.get(Gate, gate_id))
        service.add_credential(s, ctx, iid, CredentialIn(kind="card", value="C9"), settings)
        d, _ = service.decide(s, ctx, gate_id, service.Presented(card="C9"), settings)
        assert d.granted
    with db.session() as s:
        cmd = s.scalar(select(Command))
        assert cmd is not None and cmd.name == "open"


# -- tenancy and permissions -----------------------------------------------------------------------


def test_decide_is_scoped_to_the_token_community(client: Any, db: Any, world: Any) -> None:
    gate_a = _gate(db, world.a)
    gate_b = _gate(db, world.b)
    tok_b = _token(db, world.b, ["access.decide"])
    h = {"Authorization": f"Bearer {tok_b}"}
    r = client.post(
        f"/api/v1/communities/{world.a}/gates/{gate_a}/decide", json={"card": "x"}, headers=h
    )
    assert r.status_code == 404
    # a gate of another community under the token's own community id
    r = client.post(
        f"/api/v1/communities/{world.b}/gates/{gate_a}/decide", json={"card": "x"}, headers=h
    )
    assert r.status_code == 404
    r = client.post(
        f"/api/v1/communities/{world.b}/gates/{gate_b}/decide", json={"card": "x"}, headers=h
    )
    assert r.status_code == 200
    # a token without the permission
    tok = _token(db, world.a, ["iot.read"])
    r = client.post(
        f"/api/v1/communities/{world.a}/gates/{gate_a}/decide",
        json={"card": "x"},
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert r.status_code in (403, 404)


def test_access_log_is_audited(db: Any, world: Any, app: Any) -> None:
    from linli.core.models import AuditEntry

    with db.session() as s:
        service.access_log(s, system_ctx(world.a))
    with db.session() as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "access.log.viewed"))


def test_snapshot_retention(db: Any, world: Any, app: Any) -> None:
    files = app.state.files
    sha = files.put(b"snapshot-bytes")
    with db.session() as s:
        gate = _gate(db, world.a)
        s.add(
            AccessEvent(
                community_id=world.a,
                gate_id=gate,
                at=utcnow() - timedelta(days=90),
                method="face",
                direction="in",
                granted=False,
                reason="no_face",
                snapshot_sha256=sha,
            )
        )
    with db.session() as s:
        assert service.purge_snapshots(s, app.state.settings, files) == 1
    assert not files.exists(sha)


def test_flow_alarm(db: Any, world: Any) -> None:
    from linli.iot.models import Alarm

    gate = _gate(db, world.a)
    now = datetime(2026, 5, 10, 2, 30, tzinfo=UTC)
    hour_start = now.replace(minute=0) - timedelta(hours=1)
    with db.session() as s:
        for d in range(1, 8):
            for k in range(5):
                s.add(
                    AccessEvent(
                        community_id=world.a,
                        gate_id=gate,
                        at=hour_start - timedelta(days=d) + timedelta(minutes=k),
                        method="card",
                        direction="in",
                        granted=True,
                        reason="granted",
                    )
                )
        for k in range(60):
            s.add(
                AccessEvent(
                    community_id=world.a,
                    gate_id=gate,
                    at=hour_start + timedelta(seconds=k * 50),
                    method="card",
                    direction="in",
                    granted=True,
                    reason="granted",
                )
            )
    with db.session() as s:
        out = service.check_flow(s, world.a, now=now)
        assert out is not None and out["kind"] == "high"
        assert s.scalar(select(Alarm).where(Alarm.kind == "access_flow")) is not None
        f = service.flow(s, system_ctx(world.a), now=now)
        assert sum(f["daily"].values()) >= 60


def test_liveness_burst(
    client: Any, db: Any, world: Any, enrolled: dict[str, int], faces_dir: Path
) -> None:
    """A gate that requires liveness refuses one frame, and a still burst (a photo held up)."""
    gate = _gate(db, world.a, name="Live", require_liveness=True)
    tok = _token(db, world.a, ["access.decide"])
    photo = (faces_dir / "probe" / "obama1.jpg").read_bytes()
    r = _decide_image(client, world.a, gate, tok, photo)
    assert r.json()["reason"] == "liveness_required"
    r = client.post(
        f"/api/v1/communities/{world.a}/gates/{gate}/decide",
        files=[("frames", (f"f{i}.jpg", photo, "image/jpeg")) for i in range(5)],
        headers={"Authorization": f"Bearer {tok}"},
    )
    assert r.status_code == 200
    assert r.json()["granted"] is False
    assert r.json()["reason"] in ("no_motion", "flat_motion")


def test_live_burst_from_real_video_opens(
    client: Any, db: Any, world: Any, enrolled: dict[str, int], faces_dir: Path
) -> None:
    """A real burst of the stage video (a live performer) passes liveness and is identified."""
    import cv2

    gate = _gate(db, world.a, name="Live", require_liveness=True)
    tok = _token(db, world.a, ["access.decide"])
    cap = cv2.VideoCapture(str(faces_dir / "video" / "short_hamilton_clip.mp4"))
    frames: list[bytes] = []
    index = 0
    while len(frames) < 8:
        ok, frame = cap.read()
        assert ok
        if index >= 96 and (index - 96) % 3 == 0:
            frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
        index += 1
    cap.release()
    r = client.post(
        f"/api/v1/communities/{world.a}/gates/{gate}/decide",
        files=[("frames", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)],
        headers={"Authorization": f"Bearer {tok}"},
    )
    body = r.json()
    assert body["granted"] is True, body
    assert body["person"]["id"] == enrolled["lin_manuel_miranda"]


def test_api_enrollment_never_returns_templates(
    client: Any, db: Any, world: Any, faces_dir: Path
) -> None:
    from conftest import login

    tok = login(client, "staff")
    h = {"x-csrf-token": tok}
    base = f"/api/v1/communities/{world.a}/access"
    r = client.post(f"{base}/residents/{world.residents_a[0]}/identity", headers=h)
    assert r.status_code == 200, r.text
    iid = r.json()["id"]
    photo = sorted((faces_dir / "gallery" / "biden").iterdir())[0].read_bytes()
    r = client.post(f"{base}/identities/{iid}/face", files={"photo": ("p.jpg", photo)}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "no_consent"
    r = client.post(f"{base}/identities/{iid}/consent", json={"given_by": "本人"}, headers=h)
    assert r.status_code == 201
    r = client.post(f"{base}/identities/{iid}/face", files={"photo": ("p.jpg", b"junk")}, headers=h)
    assert r.status_code == 422 and r.json()["code"] == "not_an_image"
    r = client.post(f"{base}/identities/{iid}/face", files={"photo": ("p.jpg", photo)}, headers=h)
    assert r.status_code == 200, r.text
    for url in (f"{base}/identities/{iid}", f"{base}/identities"):
        text = client.get(url).text
        assert "template" not in text and "embedding" not in text
    assert client.get(f"{base}/identities/{iid}").json()["has_face"] is True
    r = client.delete(f"{base}/identities/{iid}/consent", headers=h)
    assert r.json() == {"templates_deleted": 1}
