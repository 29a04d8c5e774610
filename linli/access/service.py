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
import time
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
from linli.core.files import FileStore, expire_media
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
    "qr_unreadable": N_("No QR code could be read in the picture"),
    "pin_locked": N_("Too many wrong PINs at this gate; PIN entry is locked for a few minutes"),
    "no_visitor_pass": N_("The visitor has no pass valid now"),
    "no_credential": N_("No face, card, PIN or QR pass was presented"),
    "liveness_required": N_("This gate needs a burst of frames to check for a live person"),
    "too_many_frames": N_("Too many frames were sent"),
}

MAX_FRAMES = 15
#: wrong PINs at one gate within PIN_WINDOW that lock PIN entry there (and raise an alarm):
#: against guessing the 6-digit PINs at a keypad or through a stolen terminal token
PIN_MAX_FAILURES = 10
PIN_WINDOW = timedelta(minutes=5)
#: a terminal frame above this many pixels (by its header) is refused before decoding: camera
#: frames are 0.3-8 MP (4K); a 50-megapixel upload is not a terminal frame
MAX_FRAME_PIXELS = 20_000_000
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


def plate_lookup(plate: str) -> str:
    """The normal form of a licence plate as stored and matched: separators and spaces
    removed, full-width forms folded, upper case (``皖a·12345`` -> ``皖A12345``)."""
    from linli.vision.plate_grammar import normalise_text

    return normalise_text(plate or "").upper()


def _valid_plate(plate: str) -> bool:
    from linli.vision.plate_grammar import validate

    return bool(plate) and len(plate) <= 16 and validate(plate) is not None


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
    elif data.kind == "plate":
        lookup = plate_lookup(value)
        if not _valid_plate(lookup):
            raise ValidationFailed(
                "This is not a valid licence plate.", field="value", code="bad_plate"
            )
        label = lookup
    else:
        if not value.isalnum():
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


PIN_DIGITS = 6


def issue_pin(s: Session, ctx: Ctx, identity_id: int, settings: Settings) -> str:
    """Give the person a new random PIN (replacing any PIN they had) and return it, to be
    shown once. Residents do this themselves, so every resident always has a way in without
    a face; staff can do it for anyone. The PIN is chosen by the server: letting people pick
    one would tell them which PINs are already someone else's."""
    i = get_identity(s, ctx, identity_id)
    if not ctx.can(Perm.ACCESS_MANAGE) and not _is_own(s, ctx, i):
        raise Forbidden("You do not have permission to do this.", code="permission_denied")
    for _ in range(50):
        pin = "".join(secrets.choice("0123456789") for _ in range(PIN_DIGITS))
        lookup = pin_lookup(settings, ctx.community_id, pin)
        taken = s.scalar(
            select(Credential.id).where(
                Credential.community_id == ctx.community_id,
                Credential.kind == "pin",
                Credential.lookup == lookup,
            )
        )
        if taken is None:
            break
    else:  # pragma: no cover - a million PINs per community
        raise Conflict("No free PIN could be found.", code="no_free_pin")
    s.execute(delete(Credential).where(Credential.identity_id == i.id, Credential.kind == "pin"))
    c = Credential(
        community_id=ctx.community_id, identity_id=i.id, kind="pin", lookup=lookup, label="••••"
    )
    s.add(c)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "access.credential.pin_issued",
        "access_identity",
        i.id,
        community_id=ctx.community_id,
        details={"credential_id": c.id, "self": _is_own(s, ctx, i)},
    )
    return pin


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


def _gallery_changed(s: Session, community_id: int) -> None:
    """Templates of ``community_id`` are deleted in this transaction: once it commits, this
    process compares its cached gallery with the database on the next decision, whatever
    the stamp says (other processes see the change through the stamp)."""
    from sqlalchemy import event as sa_event

    sa_event.listen(s, "after_commit", lambda _s: invalidate_gallery(community_id), once=True)


def _delete_templates(s: Session, identity_id: int, files: FileStore | None) -> int:
    rows = list(s.scalars(select(FaceTemplate).where(FaceTemplate.identity_id == identity_id)))
    if rows:
        _gallery_changed(s, rows[0].community_id)
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
    stamp: tuple[int, int | None] | None
    gallery: Any
    #: (template id, identity id) -> the gallery's template id
    keys: dict[tuple[int, int], str] = field(default_factory=dict)
    #: time.monotonic() of the last full check (count and newest id)
    checked: float = 0.0


_galleries: dict[tuple[str, int], _CachedGallery] = {}
_gallery_lock = threading.Lock()
_SYNC_CHUNK = 500
#: the decision path checks only the newest template id (an index seek) and, at least this
#: often, the full stamp; a matched template is verified against its row in any case
FULL_CHECK_SECONDS = 30.0


def _stamp(s: Session, community_id: int) -> tuple[int, int | None]:
    """How many templates the community has and the newest id: answered from the index on
    ``community_id`` alone (no table scan), so it is cheap enough to ask on every decision."""
    row = s.execute(
        select(func.count(FaceTemplate.id), func.max(FaceTemplate.id)).where(
            FaceTemplate.community_id == community_id
        )
    ).one()
    return (int(row[0] or 0), None if row[1] is None else int(row[1]))


def _newest_id(s: Session, community_id: int) -> int | None:
    """The newest template id of the community: one seek in the ``community_id`` index."""
    v = s.scalar(select(func.max(FaceTemplate.id)).where(FaceTemplate.community_id == community_id))
    return None if v is None else int(v)


def gallery_for(s: Session, settings: Settings, community_id: int, *, thorough: bool = True) -> Any:
    """The community's gallery of decrypted templates.

    A stamp of the community's templates (count and newest id) tells whether templates were
    added or deleted, in this process or any other; the gallery is then brought up to date
    *incrementally*: templates no longer in the database are removed, new ones are decrypted
    and added. Only the first use in a process decrypts the whole gallery.

    ``thorough=False`` (the decision path) looks only at the newest id, an index seek, and
    at the full stamp (a count over the index: ~10 ms at 100,000 templates) when the last
    full check is older than :data:`FULL_CHECK_SECONDS`. A deletion is then seen by that
    check; the decision itself verifies that the matched template still exists (see
    :func:`_template_current`), so a withdrawn face never opens a gate."""
    key = (str(s.get_bind().engine.url), community_id)
    cached = _galleries.get(key)
    if (
        not thorough
        and cached is not None
        and cached.stamp is not None
        and time.monotonic() - cached.checked < FULL_CHECK_SECONDS
        and _newest_id(s, community_id) == cached.stamp[1]
    ):
        return cached.gallery
    stamp = _stamp(s, community_id)
    if cached is not None and cached.stamp == stamp:
        cached.checked = time.monotonic()
        return cached.gallery
    with _gallery_lock:
        cached = _galleries.get(key)
        if cached is not None and cached.stamp == stamp:
            return cached.gallery
        if cached is None:
            from linli.vision import faces

            cached = _CachedGallery(None, faces.Gallery())
        if not _append_new(s, settings, community_id, cached, stamp):
            _sync_gallery(s, settings, community_id, cached)
        cached.stamp = stamp
        cached.checked = time.monotonic()
        _galleries[key] = cached
        return cached.gallery


def _template_current(s: Session, template_id: str) -> bool:
    """Whether the gallery template ``"<row id>:<identity id>"`` is still that row."""
    try:
        tid, iid = (int(x) for x in template_id.split(":", 1))
    except ValueError:
        return False
    return (
        s.scalar(
            select(FaceTemplate.id).where(FaceTemplate.id == tid, FaceTemplate.identity_id == iid)
        )
        is not None
    )


def _append_new(
    s: Session,
    settings: Settings,
    community_id: int,
    cached: _CachedGallery,
    stamp: tuple[int, int | None],
) -> bool:
    """The common case after an enrollment: only templates newer than the cached ones were
    added. True when that explains the new stamp (and they were added)."""
    old = cached.stamp
    if old is None or old[1] is None or stamp[1] is None or stamp[1] <= old[1]:
        return False
    added = stamp[0] - old[0]
    if added <= 0 or added > 10_000:
        return False
    rows = s.execute(
        select(FaceTemplate.id, FaceTemplate.identity_id, FaceTemplate.template)
        .where(FaceTemplate.community_id == community_id, FaceTemplate.id > old[1])
        .order_by(FaceTemplate.id)  # a short walk of the primary key from the cached newest
        .limit(added + 1)
    ).all()
    if len(rows) != added:
        return False  # deletions too: compare everything
    _add_rows(settings, cached, rows)
    return True


def _add_rows(settings: Settings, cached: _CachedGallery, rows: Any) -> None:
    from linli.vision import faces

    c = cipher(settings)
    persons: list[int] = []
    embs: list[Any] = []
    tids: list[str] = []
    for tid, iid, blob in rows:
        k = (int(tid), int(iid))
        if k in cached.keys:
            continue
        try:
            emb = faces.embedding_from_bytes(c.decrypt(blob, _aad(int(iid))))
        except Exception:  # a template that cannot be decrypted is skipped, not used,
            cached.keys[k] = ""  # and not tried again at every sync
            continue
        gid = f"{k[0]}:{k[1]}"
        persons.append(k[1])
        embs.append(emb)
        tids.append(gid)
        cached.keys[k] = gid
    if embs:
        cached.gallery.add_many(persons, embs, tids)


def _sync_gallery(
    s: Session, settings: Settings, community_id: int, cached: _CachedGallery
) -> None:
    """Compare the cached templates with the database's list (ids only), remove what is gone,
    decrypt and add what is new. A template id reused for another person (SQLite reuses the
    highest id after a delete) is a different key, so the old template goes."""
    if not cached.keys:  # first use in this process: one pass over the table
        _add_rows(
            settings,
            cached,
            s.execute(
                select(FaceTemplate.id, FaceTemplate.identity_id, FaceTemplate.template).where(
                    FaceTemplate.community_id == community_id
                )
            ),
        )
        return
    rows = s.execute(
        select(FaceTemplate.id, FaceTemplate.identity_id).where(
            FaceTemplate.community_id == community_id
        )
    ).all()
    now_keys = {(int(tid), int(iid)) for tid, iid in rows}
    g = cached.gallery
    for k in [k for k in cached.keys if k not in now_keys]:
        gid = cached.keys.pop(k)
        if gid:
            g.remove(gid)
    wanted = {k[0]: k[1] for k in now_keys if k not in cached.keys}
    ids = sorted(wanted)
    for i in range(0, len(ids), _SYNC_CHUNK):
        chunk = ids[i : i + _SYNC_CHUNK]
        fetched = s.execute(
            select(FaceTemplate.id, FaceTemplate.identity_id, FaceTemplate.template).where(
                FaceTemplate.id.in_(chunk)
            )
        ).all()
        # a row changed since the list was read is left to the next sync
        _add_rows(settings, cached, [r for r in fetched if wanted.get(int(r[0])) == int(r[1])])


def invalidate_gallery(community_id: int | None = None) -> None:
    """Make the next decision re-check the gallery against the database."""
    with _gallery_lock:
        for k, cached in _galleries.items():
            if community_id is None or k[1] == community_id:
                cached.stamp = None


def forget_galleries() -> None:
    """Drop every cached gallery (tests, key rotation)."""
    with _gallery_lock:
        _galleries.clear()


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
    #: a picture of a QR pass (the server reads the code)
    qr_image: bytes | None = None
    direction: str | None = None
    #: a reason the upload could not be used at all (too large, not a file...)
    reject: str | None = None


def _resolve_direction(gate: Gate, asked: str | None) -> str:
    if gate.direction in ("in", "out"):
        return gate.direction
    return asked if asked in ("in", "out") else "in"


def _frame_pixels(data: bytes) -> int:
    """Width × height from the image header (no pixels decoded); 0 when there is no readable
    header (the decoder then says what is wrong)."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        return int(w) * int(h)
    except Image.DecompressionBombError:
        return MAX_FRAME_PIXELS + 1
    except Exception:
        return 0


def _face_identity(
    s: Session, settings: Settings, gate: Gate, frames: list[bytes]
) -> tuple[int | None, str, float | None, bytes | None]:
    """(identity id or None, reason, distance, snapshot frame) for a face decision."""
    from linli.vision import faces
    from linli.vision.images import ImageError

    if len(frames) > MAX_FRAMES:
        return None, "too_many_frames", None, None
    if any(_frame_pixels(f) > MAX_FRAME_PIXELS for f in frames):
        return None, "image_too_large", None, None
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
    gallery = gallery_for(s, settings, gate.community_id, thorough=False)
    ident = gallery.identify(main.embedding)
    if ident.matched and not _template_current(s, ident.candidates[0].template_id):
        # deleted (or its id reused) since the gallery was checked: check fully, search again
        invalidate_gallery(gate.community_id)
        ident = gallery_for(s, settings, gate.community_id).identify(main.embedding)
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
    method = "qr" if presented.qr_image is not None else "face"
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
        if _pin_failures(s, gate, now) >= PIN_MAX_FAILURES:
            reason = "pin_locked"
        else:
            pin = presented.pin.strip()
            lookup = pin_lookup(settings, ctx.community_id, pin)
            cred = _credential(s, ctx.community_id, "pin", lookup)
            identity = s.get(Identity, cred.identity_id) if cred else None
            reason = "match" if identity else "unknown_pin"
    elif presented.qr or presented.qr_image:
        method = "qr"
        token, reason = _qr_text(presented)
        if token is not None:
            via_pass, qr_reason = check_qr(s, settings, ctx.community_id, token, now)
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
    elif reason == "unknown_pin" and _pin_failures(s, gate, now) >= PIN_MAX_FAILURES:
        _pin_alarm(s, gate, now)
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


def _pin_failures(s: Session, gate: Gate, now: datetime) -> int:
    """Wrong PINs entered at the gate within :data:`PIN_WINDOW` before ``now`` (a short range
    of the (community, time) index)."""
    return int(
        s.scalar(
            select(func.count(AccessEvent.id)).where(
                AccessEvent.community_id == gate.community_id,
                AccessEvent.gate_id == gate.id,
                AccessEvent.reason == "unknown_pin",
                AccessEvent.at > now - PIN_WINDOW,
                AccessEvent.at <= now,
            )
        )
        or 0
    )


def _pin_alarm(s: Session, gate: Gate, now: datetime) -> None:
    from linli.iot import service as iot

    minutes = int(PIN_WINDOW.total_seconds() // 60)
    _alarm, created = iot.raise_alarm(
        s,
        community_id=gate.community_id,
        dedup_key=f"access.pin_guessing.{gate.id}",
        kind="access_pin_guessing",
        severity="warning",
        message=N_(
            "%(count)s wrong PINs at gate %(gate)s within %(minutes)s minutes: PIN entry is "
            "locked there for now"
        ),
        params={"count": PIN_MAX_FAILURES, "gate": gate.name, "minutes": minutes},
        source="access",
        at=now,
        details={"gate_id": gate.id},
    )
    if created:
        events.emit(
            s,
            "access.pin.guessing",
            {"gate_id": gate.id, "failures": PIN_MAX_FAILURES},
            community_id=gate.community_id,
        )


def _qr_text(presented: Presented) -> tuple[str | None, str]:
    """The QR pass text as sent, or read from the picture; else (None, reason)."""
    if presented.qr:
        return presented.qr.strip(), ""
    from linli.access.qr import read_qr
    from linli.vision.images import ImageError

    try:
        return read_qr(presented.qr_image or b"").strip(), ""
    except ImageError as exc:
        return None, exc.code
    except Exception:  # any decoder failure on hostile input: a denial, never a 500
        return None, "qr_unreadable"


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


def identity_by_credential(
    s: Session, community_id: int, kind: str, lookup: str
) -> Identity | None:
    """The identity holding the active credential ``kind``/``lookup`` (e.g. a plate as read);
    used by the vehicles domain, where a plate is a credential of the person. Plates are
    normalised first (see :func:`identity_for_plate`)."""
    if kind == "plate":
        lookup = plate_lookup(lookup)
    cred = _credential(s, community_id, kind, lookup)
    return s.get(Identity, cred.identity_id) if cred else None


def identity_for_plate(s: Session, community_id: int, plate: str) -> Identity | None:
    """The person whose active ``plate`` credential is ``plate`` in ``community_id``, or None.

    ``plate`` may be as read or typed (``皖a·12345``, full-width forms, spaces): it is
    normalised like stored plates (:func:`plate_lookup`). The identity is returned even when
    it is suspended (``identity.active`` is False) so the caller can say why it refuses; no
    permission check and no audit entry (the caller decides and records)."""
    lookup = plate_lookup(plate)
    if not lookup:
        return None
    cred = _credential(s, community_id, "plate", lookup)
    if cred is None:
        return None
    i = s.get(Identity, cred.identity_id)
    return i if i is not None and i.community_id == community_id else None


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


def _passes_query(s: Session, ctx: Ctx, own_only: bool) -> Any:
    """Passes the caller may see: all of the community with ``access.read``, else the ones
    they created or host."""
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
    return q


def list_passes(
    s: Session, ctx: Ctx, *, own_only: bool = False, expected_on: datetime | None = None
) -> list[tuple[VisitorPass, Identity]]:
    q = _passes_query(s, ctx, own_only)
    if expected_on is not None:
        q = q.where(
            VisitorPass.valid_until > expected_on,
            VisitorPass.valid_from < expected_on + timedelta(days=1),
            VisitorPass.revoked_at.is_(None),
        )
    rows = s.execute(q.order_by(VisitorPass.valid_from.desc()).limit(300)).all()
    return [(p, i) for p, i in rows]


def _pass_and_visitor(s: Session, ctx: Ctx, pass_id: int) -> tuple[VisitorPass, Identity]:
    row = s.execute(_passes_query(s, ctx, False).where(VisitorPass.id == pass_id)).first()
    if row is None:
        raise NotFound("Visitor pass not found.", code="pass_not_found")
    return row[0], row[1]


def get_pass(s: Session, ctx: Ctx, pass_id: int) -> VisitorPass:
    return _pass_and_visitor(s, ctx, pass_id)[0]


def pass_with_token(
    s: Session, ctx: Ctx, pass_id: int, settings: Settings
) -> tuple[VisitorPass, Identity, str]:
    """A pass the caller may see (their own, or any with ``access.read``), its visitor and the
    signed text of its QR code."""
    ctx.require(Perm.VISITORS_MANAGE)
    p, i = _pass_and_visitor(s, ctx, pass_id)
    return p, i, pass_token(settings, p)


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
    visitors: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[AccessEvent]:
    """Who passed where: every look-up is written to the audit log. ``visitors`` keeps the
    visitor log: passages of visitors and delivery workers, and admissions by hand."""
    ctx.require(Perm.ACCESS_LOG_READ)
    q = select(AccessEvent).where(AccessEvent.community_id == ctx.community_id)
    if visitors:
        q = q.outerjoin(Identity, Identity.id == AccessEvent.identity_id).where(
            Identity.kind.in_(("visitor", "delivery")) | (AccessEvent.method == "manual")
        )
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
        details={
            "gate_id": gate_id,
            "identity_id": identity_id,
            "visitors": visitors,
            "rows": len(rows),
        },
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
    cameras = _camera_flow(s, ctx.community_id, tz, midnight, since, daily)
    return {
        "gates": [{"id": gid, "name": gates[gid], **per_gate[gid]} for gid in gates],
        "in": ins,
        "out": outs,
        "inside": max(ins - outs, 0),
        "hourly": hourly,
        "daily": daily,
        **cameras,
    }


def _camera_flow(
    s: Session,
    community_id: int,
    tz: ZoneInfo,
    midnight: datetime,
    since: datetime,
    days: dict[str, int],
) -> dict[str, Any]:
    """People counted by the cameras' counting lines (safety domain), beside the gates:
    per line today, per hour today and per day — the flow where no gate stands."""
    from linli.safety.service import line_counts_since

    rows = line_counts_since(s, community_id, since)
    lines: dict[tuple[str, str], dict[str, int]] = {}
    hourly = [0] * 24
    daily = dict.fromkeys(days, 0)
    for camera, line_id, hour, cin, cout in rows:
        local = hour.astimezone(tz)
        day = local.strftime("%Y-%m-%d")
        if day in daily:
            daily[day] += cin + cout
        if local >= midnight:
            hourly[local.hour] += cin + cout
            counts = lines.setdefault((camera, line_id), {"in": 0, "out": 0})
            counts["in"] += cin
            counts["out"] += cout
    return {
        "camera_lines": [
            {"camera": cam, "line": line, **counts} for (cam, line), counts in sorted(lines.items())
        ],
        "camera_hourly": hourly,
        "camera_daily": daily,
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
    n = expire_media(s, files, AccessEvent, cutoff=cutoff)
    if n:
        audit.record(
            s,
            audit.Actor.system("retention"),
            "access.snapshots.purged",
            "access_event",
            None,
            details={"events": n, "before": cutoff.isoformat()},
        )
    return n


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
