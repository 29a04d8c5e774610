"""Access control logic: identities, credentials, consent and face templates, gates and their
policies, the access decision, visitors, flow of people, retention.

Every function scopes its queries to one community. Face templates are encrypted at rest
(AES-256-GCM, AAD = identity id), decrypted only into the in-memory gallery of the decision
path and returned by no function that an API or page calls.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from linli.access.models import (
    CONSENT_SCOPE_FACE,
    AccessEvent,
    Consent,
    Credential,
    FaceTemplate,
    Gate,
    Identity,
    VisitorPass,
)
from linli.access.schemas import (
    ConsentIn,
    CredentialIn,
    Decision,
    GateIn,
    IdentityIn,
    IdentityOut,
    VisitorIn,
)
from linli.core import audit, events
from linli.core.config import Settings
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.files import FileStore
from linli.core.i18n import N_, gettext
from linli.core.roles import Perm
from linli.core.security import Cipher
from linli.core.web import Ctx

#: Refusal and grant codes of the access decision (face codes come from vision.faces.REASONS).
ACCESS_REASONS: dict[str, str] = {
    "granted": N_("Access granted"),
    "admitted_by_guard": N_("Admitted by hand by a guard"),
    "gate_disabled": N_("This gate is closed"),
    "not_allowed_here": N_("This person may not pass this gate"),
    "outside_hours": N_("Outside the hours allowed at this gate"),
    "anti_passback": N_("Already passed in this direction; pass the other way first"),
    "identity_inactive": N_("This person's access is suspended"),
    "unknown_card": N_("Unknown card"),
    "unknown_pin": N_("Unknown PIN"),
    "qr_invalid": N_("The QR pass is not valid"),
    "qr_expired": N_("The QR pass has expired"),
    "qr_not_yet_valid": N_("The QR pass is not valid yet"),
    "qr_used": N_("The QR pass has already been used"),
    "qr_revoked": N_("The QR pass was cancelled"),
    "no_visitor_pass": N_("The visitor has no pass valid now"),
    "no_credential": N_("No face, card, PIN or QR pass was presented"),
    "liveness_required": N_("This gate needs a burst of frames to check for a live person"),
    "too_many_frames": N_("Too many frames were sent"),
}

MAX_FRAMES = 15
MAX_MATCH_RATIO = 0.5  # a second face at least half as wide as the first: several faces
DEFAULT_GATE_PROFILE = "access_gate"


def reason_message(code: str) -> str:
    from linli.vision.faces import REASONS

    text = ACCESS_REASONS.get(code) or REASONS.get(code) or code
    return gettext(text)


def cipher(settings: Settings) -> Cipher:
    assert settings.encryption_key
    return Cipher(settings.encryption_key)


def _aad(identity_id: int) -> bytes:
    return f"access-identity:{identity_id}".encode()


def local_now(tz: str, now: datetime | None = None) -> datetime:
    return (now or utcnow()).astimezone(ZoneInfo(tz))


# -- identities --------------------------------------------------------------------------------


def get_identity(s: Session, ctx: Ctx, identity_id: int) -> Identity:
    i = s.get(Identity, identity_id)
    if i is None or i.community_id != ctx.community_id:
        raise NotFound("Person not found.", code="identity_not_found")
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise NotFound("Person not found.", code="identity_not_found")
    return i


def _is_own(s: Session, ctx: Ctx, i: Identity) -> bool:
    user = ctx.principal.user
    if user is None:
        return False
    return (i.user_id is not None and i.user_id == user.id) or (
        i.resident_id is not None and i.resident_id == user.resident_id
    )


def list_identities(
    s: Session, ctx: Ctx, kind: str | None = None, q: str | None = None, limit: int = 200
) -> list[Identity]:
    ctx.require(Perm.ACCESS_MANAGE)
    query = select(Identity).where(Identity.community_id == ctx.community_id)
    if kind:
        query = query.where(Identity.kind == kind)
    if q:
        query = query.where(Identity.name.contains(q))
    return list(s.scalars(query.order_by(Identity.id).limit(limit)))


def create_identity(s: Session, ctx: Ctx, data: IdentityIn) -> Identity:
    ctx.require(Perm.ACCESS_MANAGE)
    if data.resident_id is not None:
        from linli.people import service as people

        people.get_resident(s, ctx, data.resident_id)
        dup = s.scalar(
            select(Identity.id).where(
                Identity.community_id == ctx.community_id,
                Identity.resident_id == data.resident_id,
            )
        )
        if dup is not None:
            raise Conflict("This resident already has an access identity.", field="resident_id")
    i = Identity(community_id=ctx.community_id, **data.model_dump())
    s.add(i)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.identity.created",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"kind": i.kind},
    )
    return i


def identity_for_resident(s: Session, ctx: Ctx, resident_id: int) -> Identity:
    """The resident's identity, created on first use."""
    i = s.scalar(
        select(Identity).where(
            Identity.community_id == ctx.community_id, Identity.resident_id == resident_id
        )
    )
    if i is not None:
        return i
    from linli.people import service as people

    r = people.get_resident(s, ctx, resident_id)
    return create_identity(
        s, ctx, IdentityIn(kind="resident", name=r.name, phone=r.phone, resident_id=r.id)
    )


def own_identity(s: Session, ctx: Ctx) -> Identity | None:
    """The caller's own identity (residents): created on first use from the registry."""
    from linli.people import service as people

    r = people.own_resident(s, ctx)
    if r is None:
        return None
    i = s.scalar(
        select(Identity).where(
            Identity.community_id == ctx.community_id, Identity.resident_id == r.id
        )
    )
    if i is None:
        i = Identity(
            community_id=ctx.community_id,
            kind="resident",
            name=r.name,
            phone=r.phone,
            resident_id=r.id,
            user_id=ctx.user_id,
        )
        s.add(i)
        s.flush()
        audit.record(
            s,
            ctx.actor,
            "access.identity.created",
            "access_identity",
            i.id,
            community_id=ctx.community_id,
            details={"kind": "resident", "self": True},
        )
    return i


def consents(s: Session, identity_id: int) -> list[Consent]:
    return list(
        s.scalars(
            select(Consent).where(Consent.identity_id == identity_id).order_by(Consent.id.desc())
        )
    )


def active_consent(s: Session, identity_id: int) -> Consent | None:
    return s.scalar(
        select(Consent)
        .where(
            Consent.identity_id == identity_id,
            Consent.scope == CONSENT_SCOPE_FACE,
            Consent.withdrawn_at.is_(None),
        )
        .order_by(Consent.id.desc())
    )


def identity_out(s: Session, i: Identity) -> IdentityOut:
    from linli.access.schemas import CredentialOut

    creds = s.scalars(
        select(Credential).where(Credential.identity_id == i.id).order_by(Credential.id)
    )
    has_face = (s.scalar(select(func.count()).where(FaceTemplate.identity_id == i.id)) or 0) > 0
    return IdentityOut(
        id=i.id,
        kind=i.kind,
        name=i.name,
        resident_id=i.resident_id,
        active=i.active,
        has_face=has_face,
        face_consent=active_consent(s, i.id) is not None,
        credentials=[CredentialOut.model_validate(c) for c in creds],
    )


def set_active(s: Session, ctx: Ctx, identity_id: int, active: bool) -> Identity:
    ctx.require(Perm.ACCESS_MANAGE)
    i = get_identity(s, ctx, identity_id)
    i.active = active
    audit.record(
        s,
        ctx.actor,
        "access.identity.active" if active else "access.identity.suspended",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
    )
    return i


# -- credentials ------------------------------------------------------------------------------


def pin_lookup(settings: Settings, community_id: int, pin: str) -> str:
    assert settings.secret_key
    msg = f"pin:{community_id}:{pin}".encode()
    return hmac.new(settings.secret_key.encode(), msg, hashlib.sha256).hexdigest()


def add_credential(
    s: Session, ctx: Ctx, identity_id: int, data: CredentialIn, settings: Settings
) -> Credential:
    ctx.require(Perm.ACCESS_MANAGE)
    i = get_identity(s, ctx, identity_id)
    value = data.value
    if data.kind == "pin":
        if not value.isdigit() or not 4 <= len(value) <= 8:
            raise ValidationFailed("A PIN has 4 to 8 digits.", field="value", code="bad_pin")
        lookup, label = pin_lookup(settings, ctx.community_id, value), "••••"
    else:
        if not value.isalnum() and data.kind == "card":
            raise ValidationFailed(
                "A card number has only letters and digits.", field="value", code="bad_card"
            )
        lookup, label = value, value
    taken = s.scalar(
        select(Credential.id).where(
            Credential.community_id == ctx.community_id,
            Credential.kind == data.kind,
            Credential.lookup == lookup,
        )
    )
    if taken is not None:
        raise Conflict("This credential is already in use.", field="value", code="in_use")
    c = Credential(
        community_id=ctx.community_id, identity_id=i.id, kind=data.kind, lookup=lookup, label=label
    )
    s.add(c)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.credential.added",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"kind": data.kind, "credential_id": c.id},
    )
    return c


def remove_credential(s: Session, ctx: Ctx, identity_id: int, credential_id: int) -> None:
    ctx.require(Perm.ACCESS_MANAGE)
    i = get_identity(s, ctx, identity_id)
    c = s.get(Credential, credential_id)
    if c is None or c.identity_id != i.id:
        raise NotFound("Credential not found.", code="credential_not_found")
    s.delete(c)
    audit.record(
        s,
        ctx.actor,
        "access.credential.removed",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"kind": c.kind, "credential_id": credential_id},
    )


# -- consent and face templates ---------------------------------------------------------------


def record_consent(s: Session, ctx: Ctx, identity_id: int, data: ConsentIn) -> Consent:
    """Record consent to face recognition (by staff, or by the person themself)."""
    i = get_identity(s, ctx, identity_id)
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    existing = active_consent(s, i.id)
    if existing is not None:
        return existing
    c = Consent(
        community_id=ctx.community_id,
        identity_id=i.id,
        scope=CONSENT_SCOPE_FACE,
        given_by=data.given_by,
        recorded_by=ctx.actor.name,
        note=data.note,
    )
    s.add(c)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.consent.given",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"consent_id": c.id, "given_by": data.given_by},
    )
    return c


def withdraw_consent(s: Session, ctx: Ctx, identity_id: int, files: FileStore | None) -> int:
    """Withdraw consent: every face template of the person is deleted at once. Returns how
    many templates were deleted."""
    i = get_identity(s, ctx, identity_id)
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    now = utcnow()
    for c in s.scalars(
        select(Consent).where(Consent.identity_id == i.id, Consent.withdrawn_at.is_(None))
    ):
        c.withdrawn_at, c.withdrawn_by = now, ctx.actor.name
    n = _delete_templates(s, i.id, files)
    audit.record(
        s,
        ctx.actor,
        "access.consent.withdrawn",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"templates_deleted": n},
    )
    events.emit(s, "access.face.withdrawn", {"identity_id": i.id}, community_id=ctx.community_id)
    return n


def _delete_templates(s: Session, identity_id: int, files: FileStore | None) -> int:
    rows = list(s.scalars(select(FaceTemplate).where(FaceTemplate.identity_id == identity_id)))
    for t in rows:
        if t.photo_sha256 and files is not None:
            files.delete(t.photo_sha256)
    s.execute(delete(FaceTemplate).where(FaceTemplate.identity_id == identity_id))
    s.flush()
    return len(rows)


def delete_face(s: Session, ctx: Ctx, identity_id: int, files: FileStore | None) -> int:
    """Delete the face templates but keep the consent record (e.g. to re-enroll)."""
    i = get_identity(s, ctx, identity_id)
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    n = _delete_templates(s, i.id, files)
    audit.record(
        s,
        ctx.actor,
        "access.face.deleted",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"templates_deleted": n},
    )
    events.emit(s, "access.face.withdrawn", {"identity_id": i.id}, community_id=ctx.community_id)
    return n


@dataclass
class EnrollResult:
    ok: bool
    reason: str | None
    template_id: int | None = None

    @property
    def message(self) -> str | None:
        return reason_message(self.reason) if self.reason else None


def enroll_face(
    s: Session,
    ctx: Ctx,
    identity_id: int,
    photo: bytes,
    settings: Settings,
    files: FileStore | None = None,
) -> EnrollResult:
    """Enroll a face photo. Needs recorded consent; the photo is not kept unless
    ``settings.keep_enrollment_photos``. Never raises for a bad photo: the result says why."""
    from linli.vision import faces

    i = get_identity(s, ctx, identity_id)
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    consent = active_consent(s, i.id)
    if consent is None:
        raise ValidationFailed(
            "Face recognition needs the person's recorded consent first.", code="no_consent"
        )
    check = faces.check_enrollment_photo(photo)
    if not check.ok or check.face is None:
        return EnrollResult(False, check.reason or "no_face")
    gallery = gallery_for(s, settings, ctx.community_id)
    ident = gallery.identify(check.face.embedding)
    if ident.person_id is not None and ident.person_id != i.id:
        return EnrollResult(False, "matches_other_person")
    blob = cipher(settings).encrypt(faces.embedding_to_bytes(check.face.embedding), _aad(i.id))
    sha = files.put(photo) if (files is not None and settings.keep_enrollment_photos) else None
    t = FaceTemplate(
        community_id=ctx.community_id,
        identity_id=i.id,
        consent_id=consent.id,
        template=blob,
        photo_sha256=sha,
        quality=check.face.quality.to_dict(),
    )
    s.add(t)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.face.enrolled",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"template_id": t.id},
    )
    events.emit(
        s,
        "access.face.enrolled",
        {"identity_id": i.id, "template_id": t.id},
        community_id=ctx.community_id,
    )
    return EnrollResult(True, None, t.id)


# -- the in-memory gallery ----------------------------------------------------------------------


@dataclass
class _CachedGallery:
    stamp: tuple[Any, ...]
    gallery: Any


_galleries: dict[tuple[str, int], _CachedGallery] = {}
_gallery_lock = threading.Lock()


def _stamp(s: Session, community_id: int) -> tuple[Any, ...]:
    row = s.execute(
        select(
            func.count(FaceTemplate.id),
            func.max(FaceTemplate.id),
            func.max(FaceTemplate.created_at),
        ).where(FaceTemplate.community_id == community_id)
    ).one()
    return (int(row[0] or 0), row[1], str(row[2]))


def gallery_for(s: Session, settings: Settings, community_id: int) -> Any:
    """The community's gallery of decrypted templates, rebuilt when templates were added or
    deleted (one cheap query per decision tells; works across processes)."""
    from linli.vision import faces

    key = (str(s.get_bind().engine.url), community_id)
    stamp = _stamp(s, community_id)
    cached = _galleries.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached.gallery
    with _gallery_lock:
        cached = _galleries.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached.gallery
        g = faces.Gallery()
        c = cipher(settings)
        rows = s.execute(
            select(FaceTemplate.id, FaceTemplate.identity_id, FaceTemplate.template).where(
                FaceTemplate.community_id == community_id
            )
        )
        for tid, iid, blob in rows:
            try:
                emb = faces.embedding_from_bytes(c.decrypt(blob, _aad(iid)))
            except Exception:  # a template that cannot be decrypted is skipped, not used
                continue
            g.add(int(iid), emb, template_id=str(tid))
        _galleries[key] = _CachedGallery(stamp, g)
        return g


def invalidate_gallery(community_id: int | None = None) -> None:
    with _gallery_lock:
        for k in list(_galleries):
            if community_id is None or k[1] == community_id:
                del _galleries[k]


# -- gates ------------------------------------------------------------------------------------


def list_gates(s: Session, ctx: Ctx) -> list[Gate]:
    return list(
        s.scalars(select(Gate).where(Gate.community_id == ctx.community_id).order_by(Gate.name))
    )


def get_gate(s: Session, ctx: Ctx, gate_id: int) -> Gate:
    g = s.get(Gate, gate_id)
    if g is None or g.community_id != ctx.community_id:
        raise NotFound("Gate not found.", code="gate_not_found")
    return g


def save_gate(s: Session, ctx: Ctx, data: GateIn, gate_id: int | None = None) -> Gate:
    ctx.require(Perm.ACCESS_MANAGE)
    if data.device_id is not None:
        from linli.iot.models import Device

        d = s.get(Device, data.device_id)
        if d is None or d.community_id != ctx.community_id:
            raise NotFound("Device not found.", field="device_id", code="device_not_found")
    dup = select(Gate.id).where(Gate.community_id == ctx.community_id, Gate.name == data.name)
    if gate_id is not None:
        dup = dup.where(Gate.id != gate_id)
    if s.scalar(dup) is not None:
        raise Conflict("A gate with this name already exists.", field="name")
    g = Gate(community_id=ctx.community_id) if gate_id is None else get_gate(s, ctx, gate_id)
    g.name, g.direction, g.device_id = data.name, data.direction, data.device_id
    g.policy = data.policy_json()
    g.anti_passback, g.require_liveness, g.enabled = (
        data.anti_passback,
        data.require_liveness,
        data.enabled,
    )
    s.add(g)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.gate.saved",
        "access_gate",
        g.id,
        community_id=ctx.community_id,
        details={"name": g.name, "policy": g.policy, "anti_passback": g.anti_passback},
    )
    return g


def ensure_gate_device(s: Session, ctx: Ctx, gate: Gate) -> Any:
    """Give a gate an IoT device (community profile ``access_gate``) if it has none."""
    from linli.iot import service as iot
    from linli.iot.models import Device

    if gate.device_id is not None:
        return s.get(Device, gate.device_id)
    try:
        profile = iot.profile_by_key(s, ctx, DEFAULT_GATE_PROFILE)
    except NotFound:
        profile = iot.save_profile(
            s,
            ctx,
            key=DEFAULT_GATE_PROFILE,
            name="Pedestrian gate",
            name_zh="人行门禁",
            category="security",
            metrics=[{"key": "open", "unit": "", "kind": "bool"}],
            report_interval_s=600,
        )
    d, _secret = iot.create_device(
        s, ctx, name=gate.name, profile_id=profile.id, location=gate.name
    )
    gate.device_id = d.id
    s.flush()
    return d


# -- policy -----------------------------------------------------------------------------------


def _in_hours(hours: dict[str, Any], local: datetime) -> bool:
    start, end = hours.get("from"), hours.get("to")
    if not start and not end:
        return True
    hm = local.strftime("%H:%M")
    start, end = start or "00:00", end or "24:00"
    if start <= end:
        return bool(start <= hm < end)
    return bool(hm >= start or hm < end)  # over midnight, e.g. 22:00-06:00


def valid_pass_now(s: Session, identity_id: int, now: datetime) -> VisitorPass | None:
    return s.scalar(
        select(VisitorPass).where(
            VisitorPass.identity_id == identity_id,
            VisitorPass.revoked_at.is_(None),
            VisitorPass.valid_from <= now,
            VisitorPass.valid_until > now,
            VisitorPass.uses < VisitorPass.max_uses,
        )
    )


def policy_check(
    s: Session,
    gate: Gate,
    identity: Identity,
    direction: str,
    now: datetime,
    tz: str,
    *,
    via_pass: bool = False,
) -> str | None:
    """None when ``identity`` may pass ``gate`` now in ``direction``, else the reason code."""
    if not identity.active:
        return "identity_inactive"
    hours = (gate.policy or {}).get(identity.kind)
    if hours is None:
        return "not_allowed_here"
    if not _in_hours(hours, local_now(tz, now)):
        return "outside_hours"
    if identity.kind == "visitor" and not via_pass and valid_pass_now(s, identity.id, now) is None:
        return "no_visitor_pass"
    if gate.anti_passback and direction in ("in", "out"):
        last = s.scalar(
            select(AccessEvent.direction)
            .where(
                AccessEvent.identity_id == identity.id,
                AccessEvent.granted.is_(True),
                AccessEvent.direction.in_(("in", "out")),
            )
            .order_by(AccessEvent.at.desc(), AccessEvent.id.desc())
            .limit(1)
        )
        if last == direction:
            return "anti_passback"
    return None


# -- QR passes --------------------------------------------------------------------------------


def _serializer(settings: Settings) -> URLSafeSerializer:
    assert settings.secret_key
    return URLSafeSerializer(settings.secret_key, salt="linli.access.visitor-pass")


def pass_token(settings: Settings, p: VisitorPass) -> str:
    return str(_serializer(settings).dumps({"c": p.community_id, "p": p.id, "n": p.nonce}))


def check_qr(
    s: Session, settings: Settings, community_id: int, token: str, now: datetime
) -> tuple[VisitorPass | None, str | None]:
    """(pass, None) when the QR pass may be used now, else (pass or None, reason)."""
    try:
        data = _serializer(settings).loads(token)
    except (BadSignature, ValueError, TypeError):
        return None, "qr_invalid"
    if not isinstance(data, dict) or data.get("c") != community_id:
        return None, "qr_invalid"
    p = s.get(VisitorPass, data.get("p")) if isinstance(data.get("p"), int) else None
    if (
        p is None
        or p.community_id != community_id
        or not hmac.compare_digest(p.nonce, str(data.get("n")))
    ):
        return None, "qr_invalid"
    if p.revoked_at is not None:
        return p, "qr_revoked"
    if now < p.valid_from:
        return p, "qr_not_yet_valid"
    if now >= p.valid_until:
        return p, "qr_expired"
    if p.uses >= p.max_uses:
        return p, "qr_used"
    return p, None


# -- the access decision ----------------------------------------------------------------------


@dataclass
class Presented:
    """What a terminal presents: frames of a camera, or a card, a PIN, a QR pass."""

    frames: list[bytes] = field(default_factory=list)
    card: str | None = None
    pin: str | None = None
    qr: str | None = None
    direction: str | None = None
    #: a reason the upload could not be used at all (too large, not a file...)
    reject: str | None = None


def _resolve_direction(gate: Gate, asked: str | None) -> str:
    if gate.direction in ("in", "out"):
        return gate.direction
    return asked if asked in ("in", "out") else "in"


def _face_identity(
    s: Session, settings: Settings, gate: Gate, frames: list[bytes]
) -> tuple[int | None, str, float | None, bytes | None]:
    """(identity id or None, reason, distance, snapshot frame) for a face decision."""
    from linli.vision import faces
    from linli.vision.images import ImageError

    if len(frames) > MAX_FRAMES:
        return None, "too_many_frames", None, None
    if gate.require_liveness and len(frames) < 2:
        return None, "liveness_required", None, None
    best = 0
    tracked: Any = None
    if len(frames) > 1:
        try:
            live = faces.check_liveness(frames)
        except ImageError as exc:
            return None, exc.code, None, None
        except Exception:  # any decoder failure on hostile input: a denial, never a 500
            return None, "corrupt_image", None, None
        if not live.ok:
            return None, live.reason or "face_lost", None, None
        best = int(live.details.get("best_frame", 0) or 0)
        tracked = live.details.get("box")
    frame = frames[best]
    try:
        found = faces.analyze_frame(frame)
    except ImageError as exc:
        return None, exc.code, None, None
    except Exception:
        return None, "corrupt_image", None, None
    if not found:
        return None, "no_face", None, None
    main = found[0]
    if tracked is not None and len(tracked) == 4:
        # the face that passed liveness is the face that opens the door
        box = faces.Box(*(float(v) for v in tracked))
        main = max(found, key=lambda f: f.box.iou(box))
        if main.box.iou(box) < 0.3:
            return None, "face_changed", None, frame
        found = [main, *(f for f in found if f is not main)]
    if any(f.box.width >= MAX_MATCH_RATIO * main.box.width for f in found[1:]):
        return None, "several_faces", None, frame
    if main.quality.problems:
        return None, main.quality.problems[0], None, frame
    gallery = gallery_for(s, settings, gate.community_id)
    ident = gallery.identify(main.embedding)
    if not ident.matched:
        return None, ident.reason, ident.distance, frame
    return int(ident.person_id), "match", ident.distance, frame


def decide(
    s: Session,
    ctx: Ctx,
    gate_id: int,
    presented: Presented,
    settings: Settings,
    files: FileStore | None = None,
    now: datetime | None = None,
) -> tuple[Decision, AccessEvent]:
    """Decide whether the person at ``gate_id`` may pass; record the event; open the gate on a
    grant. Bad input is a denial with its reason, never an exception."""
    now = now or utcnow()
    gate = get_gate(s, ctx, gate_id)
    direction = _resolve_direction(gate, presented.direction)
    identity: Identity | None = None
    distance: float | None = None
    snapshot: bytes | None = None
    via_pass: VisitorPass | None = None
    method = "face"
    if presented.reject:
        reason = presented.reject
    elif presented.frames:
        iid, reason, distance, snapshot = _face_identity(s, settings, gate, presented.frames)
        if iid is not None:
            identity = s.get(Identity, iid)
            if identity is None or identity.community_id != ctx.community_id:
                identity, reason = None, "unknown_person"
    elif presented.card:
        method = "card"
        cred = _credential(s, ctx.community_id, "card", presented.card.strip().upper())
        identity = s.get(Identity, cred.identity_id) if cred else None
        reason = "match" if identity else "unknown_card"
    elif presented.pin:
        method = "pin"
        pin = presented.pin.strip()
        cred = _credential(s, ctx.community_id, "pin", pin_lookup(settings, ctx.community_id, pin))
        identity = s.get(Identity, cred.identity_id) if cred else None
        reason = "match" if identity else "unknown_pin"
    elif presented.qr:
        method = "qr"
        via_pass, qr_reason = check_qr(s, settings, ctx.community_id, presented.qr.strip(), now)
        if qr_reason is None and via_pass is not None:
            identity, reason = s.get(Identity, via_pass.identity_id), "match"
        else:
            reason = qr_reason or "qr_invalid"
    else:
        reason = "no_credential"
    if not gate.enabled and reason == "match":
        reason = "gate_disabled"
    if identity is not None and reason == "match":
        refused = policy_check(
            s, gate, identity, direction, now, ctx.timezone, via_pass=via_pass is not None
        )
        reason = refused or "granted"
    granted = reason == "granted"
    if granted and via_pass is not None:
        via_pass.uses += 1
    snap_sha = files.put(snapshot) if (files is not None and snapshot) else None
    ev = AccessEvent(
        community_id=ctx.community_id,
        gate_id=gate.id,
        identity_id=identity.id if identity is not None else None,
        at=now,
        method=method,
        direction=direction,
        granted=granted,
        reason=reason,
        distance=distance,
        snapshot_sha256=snap_sha,
        actor=ctx.actor.name,
    )
    s.add(ev)
    s.flush()
    payload = {
        "access_event_id": ev.id,
        "gate_id": gate.id,
        "identity_id": ev.identity_id,
        "method": method,
        "direction": direction,
        "reason": reason,
    }
    ev.event_id = events.emit(
        s,
        "access.entry.granted" if granted else "access.entry.denied",
        payload,
        community_id=ctx.community_id,
    )
    if granted:
        _open_gate(s, gate, direction, ev.id)
    person = None
    if identity is not None:
        person = {"id": identity.id, "name": identity.name, "kind": identity.kind}
    return (
        Decision(
            granted=granted,
            reason=reason,
            message=reason_message(reason),
            person=person,
            direction=direction,
            method=method,
            event_id=ev.id,
        ),
        ev,
    )


def _credential(s: Session, community_id: int, kind: str, lookup: str) -> Credential | None:
    if not lookup or len(lookup) > 128:
        return None
    return s.scalar(
        select(Credential).where(
            Credential.community_id == community_id,
            Credential.kind == kind,
            Credential.lookup == lookup,
            Credential.active.is_(True),
        )
    )


def _open_gate(s: Session, gate: Gate, direction: str, event_id: int) -> None:
    if gate.device_id is None:
        return
    from linli.iot import service as iot
    from linli.iot.models import Device

    d = s.get(Device, gate.device_id)
    if d is None or not d.enabled:
        return
    iot.issue_command(
        s,
        d,
        "open",
        {"direction": direction, "access_event_id": event_id},
        audit.Actor.system("access"),
        timeout_s=5,
    )


# -- visitors ---------------------------------------------------------------------------------


def create_visitor(
    s: Session, ctx: Ctx, data: VisitorIn, settings: Settings
) -> tuple[VisitorPass, Identity, str]:
    """Register a visitor (or delivery worker) and issue a signed QR pass. Residents register
    their own visitors (host = themselves); staff may name any host."""
    ctx.require(Perm.VISITORS_MANAGE)
    from linli.people import service as people

    host_id = data.host_resident_id
    if not ctx.can(Perm.ACCESS_MANAGE):
        own = people.own_resident(s, ctx)
        if own is None:
            raise Forbidden(
                "Only residents linked to the registry can register visitors.",
                code="no_resident_record",
            )
        host_id = own.id
    elif host_id is not None:
        people.get_resident(s, ctx, host_id)
    vf, vu = _utc(data.valid_from, ctx.timezone), _utc(data.valid_until, ctx.timezone)
    if vu <= vf:
        raise ValidationFailed("The end must be after the start.", field="valid_until")
    if vu - vf > timedelta(days=31):
        raise ValidationFailed("A pass is valid for 31 days at most.", field="valid_until")
    if vu <= utcnow():
        raise ValidationFailed("The end is in the past.", field="valid_until")
    i = Identity(community_id=ctx.community_id, kind=data.kind, name=data.name, phone=data.phone)
    s.add(i)
    s.flush()
    p = VisitorPass(
        community_id=ctx.community_id,
        identity_id=i.id,
        host_resident_id=host_id,
        created_by=ctx.user_id,
        purpose=data.purpose,
        valid_from=vf,
        valid_until=vu,
        max_uses=data.max_uses,
        nonce=secrets.token_hex(8),
    )
    s.add(p)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.visitor.registered",
        "access_visitor_pass",
        p.id,
        community_id=ctx.community_id,
        details={"host_resident_id": host_id},
    )
    events.emit(
        s,
        "access.visitor.registered",
        {"pass_id": p.id, "host_resident_id": host_id},
        community_id=ctx.community_id,
    )
    return p, i, pass_token(settings, p)


def _utc(value: datetime, tz: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def list_passes(
    s: Session, ctx: Ctx, *, own_only: bool = False, expected_on: datetime | None = None
) -> list[tuple[VisitorPass, Identity]]:
    q = (
        select(VisitorPass, Identity)
        .join(Identity, Identity.id == VisitorPass.identity_id)
        .where(VisitorPass.community_id == ctx.community_id)
    )
    if own_only or not ctx.can(Perm.ACCESS_READ):
        from linli.people import service as people

        own = people.own_resident(s, ctx)
        q = q.where(
            (VisitorPass.created_by == ctx.user_id)
            | (VisitorPass.host_resident_id == (own.id if own else -1))
        )
    if expected_on is not None:
        q = q.where(
            VisitorPass.valid_until > expected_on,
            VisitorPass.valid_from < expected_on + timedelta(days=1),
            VisitorPass.revoked_at.is_(None),
        )
    rows = s.execute(q.order_by(VisitorPass.valid_from.desc()).limit(300)).all()
    return [(p, i) for p, i in rows]


def get_pass(s: Session, ctx: Ctx, pass_id: int) -> VisitorPass:
    for p, _i in list_passes(s, ctx):
        if p.id == pass_id:
            return p
    raise NotFound("Visitor pass not found.", code="pass_not_found")


def revoke_pass(s: Session, ctx: Ctx, pass_id: int) -> VisitorPass:
    p = get_pass(s, ctx, pass_id)
    if p.revoked_at is None:
        p.revoked_at = utcnow()
        audit.record(
            s,
            ctx.actor,
            "access.visitor.revoked",
            "access_visitor_pass",
            p.id,
            community_id=ctx.community_id,
        )
    return p


def admit(
    s: Session,
    ctx: Ctx,
    gate_id: int,
    reason: str,
    *,
    pass_id: int | None = None,
    name: str | None = None,
    direction: str = "in",
) -> AccessEvent:
    """A guard admits a person by hand: recorded with the reason, the gate is opened."""
    ctx.require(Perm.ACCESS_ADMIT)
    gate = get_gate(s, ctx, gate_id)
    identity_id = None
    if pass_id is not None:
        p = get_pass(s, ctx, pass_id)
        identity_id = p.identity_id
        p.uses = min(p.uses + 1, p.max_uses)
    ev = AccessEvent(
        community_id=ctx.community_id,
        gate_id=gate.id,
        identity_id=identity_id,
        at=utcnow(),
        method="manual",
        direction=_resolve_direction(gate, direction),
        granted=True,
        reason="admitted_by_guard",
        actor=ctx.actor.name,
        note=(f"{name}: " if name else "") + reason,
    )
    s.add(ev)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.admitted",
        "access_gate",
        gate.id,
        community_id=ctx.community_id,
        details={"access_event_id": ev.id, "reason": reason, "pass_id": pass_id},
    )
    ev.event_id = events.emit(
        s,
        "access.entry.granted",
        {
            "access_event_id": ev.id,
            "gate_id": gate.id,
            "identity_id": identity_id,
            "method": "manual",
            "direction": ev.direction,
            "reason": ev.reason,
        },
        community_id=ctx.community_id,
    )
    _open_gate(s, gate, ev.direction, ev.id)
    return ev


# -- the access log (audited) -----------------------------------------------------------------


def access_log(
    s: Session,
    ctx: Ctx,
    *,
    gate_id: int | None = None,
    identity_id: int | None = None,
    granted: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AccessEvent]:
    """Who passed where: every look-up is written to the audit log."""
    ctx.require(Perm.ACCESS_LOG_READ)
    q = select(AccessEvent).where(AccessEvent.community_id == ctx.community_id)
    if gate_id is not None:
        q = q.where(AccessEvent.gate_id == gate_id)
    if identity_id is not None:
        q = q.where(AccessEvent.identity_id == identity_id)
    if granted is not None:
        q = q.where(AccessEvent.granted.is_(granted))
    rows = list(
        s.scalars(
            q.order_by(AccessEvent.at.desc(), AccessEvent.id.desc()).offset(offset).limit(limit)
        )
    )
    audit.record(
        s,
        ctx.actor,
        "access.log.viewed",
        "access_log",
        None,
        community_id=ctx.community_id,
        details={"gate_id": gate_id, "identity_id": identity_id, "rows": len(rows)},
    )
    return rows


def snapshot(s: Session, ctx: Ctx, event_id: int, files: FileStore) -> bytes:
    ctx.require(Perm.ACCESS_LOG_READ)
    ev = s.get(AccessEvent, event_id)
    if ev is None or ev.community_id != ctx.community_id or not ev.snapshot_sha256:
        raise NotFound("Snapshot not found.", code="snapshot_not_found")
    try:
        data = files.get(ev.snapshot_sha256)
    except (FileNotFoundError, ValueError) as exc:
        raise NotFound("Snapshot not found.", code="snapshot_not_found") from exc
    audit.record(
        s,
        ctx.actor,
        "access.snapshot.viewed",
        "access_event",
        ev.id,
        community_id=ctx.community_id,
    )
    return data


def names_of(s: Session, ctx: Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = s.execute(
        select(Identity.id, Identity.name).where(
            Identity.community_id == ctx.community_id, Identity.id.in_(ids)
        )
    )
    return {int(i): str(n) for i, n in rows}


# -- flow of people ---------------------------------------------------------------------------


def flow(s: Session, ctx: Ctx, now: datetime | None = None, days: int = 14) -> dict[str, Any]:
    """Live counts per gate today, people estimated inside, hourly (today) and daily counts."""
    ctx.require(Perm.ACCESS_READ)
    now = now or utcnow()
    tz = ZoneInfo(ctx.timezone)
    local = now.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    since = (midnight - timedelta(days=days - 1)).astimezone(UTC)
    rows = s.execute(
        select(AccessEvent.at, AccessEvent.gate_id, AccessEvent.direction).where(
            AccessEvent.community_id == ctx.community_id,
            AccessEvent.granted.is_(True),
            AccessEvent.at >= since,
        )
    ).all()
    gates = {g.id: g.name for g in list_gates(s, ctx)}
    per_gate: dict[int, dict[str, int]] = {gid: {"in": 0, "out": 0} for gid in gates}
    hourly = [0] * 24
    daily: dict[str, int] = {
        (midnight - timedelta(days=d)).strftime("%Y-%m-%d"): 0 for d in range(days - 1, -1, -1)
    }
    for at, gid, direction in rows:
        la = at.astimezone(tz)
        day = la.strftime("%Y-%m-%d")
        if day in daily:
            daily[day] += 1
        if la >= midnight:
            hourly[la.hour] += 1
            if gid in per_gate and direction in ("in", "out"):
                per_gate[gid][direction] += 1
    ins = sum(v["in"] for v in per_gate.values())
    outs = sum(v["out"] for v in per_gate.values())
    return {
        "gates": [{"id": gid, "name": gates[gid], **per_gate[gid]} for gid in gates],
        "in": ins,
        "out": outs,
        "inside": max(ins - outs, 0),
        "hourly": hourly,
        "daily": daily,
    }


def check_flow(
    s: Session,
    community_id: int,
    tz: str = "Asia/Shanghai",
    now: datetime | None = None,
    history_days: int = 7,
) -> dict[str, Any] | None:
    """Compare the last complete hour with the same hour on past days; raise an alarm when it
    departs sharply. Returns the alarm details or None."""
    from linli.iot import service as iot

    now = now or utcnow()
    zone = ZoneInfo(tz)
    end = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)

    def count(a: datetime, b: datetime) -> int:
        return int(
            s.scalar(
                select(func.count(AccessEvent.id)).where(
                    AccessEvent.community_id == community_id,
                    AccessEvent.granted.is_(True),
                    AccessEvent.at >= a.astimezone(UTC),
                    AccessEvent.at < b.astimezone(UTC),
                )
            )
            or 0
        )

    current = count(start, end)
    past = [
        count(start - timedelta(days=d), end - timedelta(days=d))
        for d in range(1, history_days + 1)
    ]
    if sum(1 for p in past if p > 0) < 3:
        return None
    mean = sum(past) / len(past)
    std = math.sqrt(sum((p - mean) ** 2 for p in past) / len(past))
    high = current > mean + max(3 * std, 10) and current > 2 * mean
    low = mean >= 20 and current < mean - max(3 * std, 10) and current < 0.25 * mean
    if not (high or low):
        return None
    kind = "high" if high else "low"
    details = {
        "hour": start.strftime("%Y-%m-%d %H:00"),
        "count": current,
        "usual": round(mean, 1),
        "kind": kind,
    }
    _alarm, created = iot.raise_alarm(
        s,
        community_id=community_id,
        dedup_key=f"access.flow.{details['hour']}",
        kind="access_flow",
        severity="warning",
        message=N_(
            "Unusual flow of people at the gates %(hour)s: %(count)s passages, "
            "usually about %(usual)s"
        ),
        params={"hour": details["hour"], "count": current, "usual": f"{mean:.0f}"},
        source="access",
        value=float(current),
        details=details,
    )
    if created:
        events.emit(s, "access.flow.unusual", details, community_id=community_id)
    return details


# -- retention --------------------------------------------------------------------------------


def purge_snapshots(
    s: Session, settings: Settings, files: FileStore, now: datetime | None = None
) -> int:
    """Delete access snapshots older than ``settings.snapshot_retention_days``."""
    cutoff = (now or utcnow()) - timedelta(days=settings.snapshot_retention_days)
    rows = list(
        s.scalars(
            select(AccessEvent).where(
                AccessEvent.snapshot_sha256.is_not(None), AccessEvent.at < cutoff
            )
        )
    )
    old = {ev.snapshot_sha256 for ev in rows if ev.snapshot_sha256}
    for ev in rows:
        ev.snapshot_sha256 = None
    s.flush()
    # content-addressed: a file may also be the snapshot of a newer event
    still = (
        set(
            s.scalars(
                select(AccessEvent.snapshot_sha256).where(AccessEvent.snapshot_sha256.in_(old))
            )
        )
        if old
        else set()
    )
    for sha in old - still:
        files.delete(sha)
    if rows:
        audit.record(
            s,
            audit.Actor.system("retention"),
            "access.snapshots.purged",
            "access_event",
            None,
            details={"events": len(rows), "before": cutoff.isoformat()},
        )
    return len(rows)


def housekeeping(
    s: Session, settings: Settings, files: FileStore, now: datetime | None = None
) -> dict[str, Any]:
    """The periodic jobs of access control, safe to run often and from any replica: purge old
    snapshots, check the last hour's flow of every community (alarms are de-duplicated)."""
    from linli.people.models import Community

    purged = purge_snapshots(s, settings, files, now)
    unusual = {}
    for cid, tz in s.execute(select(Community.id, Community.timezone)).all():
        out = check_flow(s, int(cid), str(tz), now)
        if out:
            unusual[int(cid)] = out
    return {"purged": purged, "unusual": unusual}
