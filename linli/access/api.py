"""JSON API of access control: /api/v1/communities/{cid}/... (identities, credentials, consent,
enrollment, gates, the terminal decision, visitors, admissions, log, flow)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, File, Request, UploadFile
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload

from linli.access import service
from linli.access.schemas import (
    AccessEventOut,
    AdmitIn,
    ConsentIn,
    ConsentOut,
    CredentialIn,
    CredentialOut,
    DecideIn,
    Decision,
    GateIn,
    GateOut,
    IdentityIn,
    IdentityOut,
    VisitorIn,
    VisitorPassOut,
)
from linli.core.errors import NotFound, TooLarge, ValidationFailed
from linli.core.roles import Perm
from linli.core.web import Ctx, api_router, get_session, get_settings, require

router = api_router(prefix="/api/v1/communities/{cid}", tags=["access"])


def _files(request: Request) -> Any:
    return request.app.state.files


# -- identities, credentials, consent, enrollment ---------------------------------------------


@router.get("/access/identities", response_model=list[IdentityOut])
def list_identities(
    kind: str | None = None,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> list[IdentityOut]:
    return [service.identity_out(s, i) for i in service.list_identities(s, ctx, kind=kind)]


@router.post("/access/identities", response_model=IdentityOut, status_code=201)
def create_identity(
    data: IdentityIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> IdentityOut:
    i = service.create_identity(s, ctx, data)
    out = service.identity_out(s, i)
    s.commit()
    return out


@router.post("/access/residents/{resident_id}/identity", response_model=IdentityOut)
def resident_identity(
    resident_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> IdentityOut:
    i = service.identity_for_resident(s, ctx, resident_id)
    out = service.identity_out(s, i)
    s.commit()
    return out


@router.get("/access/identities/{identity_id}", response_model=IdentityOut)
def get_identity(
    identity_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> IdentityOut:
    return service.identity_out(s, service.get_identity(s, ctx, identity_id))


@router.post(
    "/access/identities/{identity_id}/credentials", response_model=CredentialOut, status_code=201
)
def add_credential(
    identity_id: int,
    data: CredentialIn,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> CredentialOut:
    c = service.add_credential(s, ctx, identity_id, data, get_settings(request))
    s.commit()
    return CredentialOut.model_validate(c)


@router.delete("/access/identities/{identity_id}/credentials/{credential_id}", status_code=204)
def remove_credential(
    identity_id: int,
    credential_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> Response:
    service.remove_credential(s, ctx, identity_id, credential_id)
    s.commit()
    return Response(status_code=204)


@router.post("/access/identities/{identity_id}/pin", status_code=201)
def issue_pin(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> dict[str, str]:
    """A new random PIN for the person (residents: their own), replacing any earlier PIN.
    The answer is the only time the PIN is shown."""
    pin = service.issue_pin(s, ctx, identity_id, get_settings(request))
    s.commit()
    return {"pin": pin}


@router.post("/access/identities/{identity_id}/consent", response_model=ConsentOut, status_code=201)
def give_consent(
    identity_id: int,
    data: ConsentIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> ConsentOut:
    c = service.record_consent(s, ctx, identity_id, data)
    s.commit()
    return ConsentOut.model_validate(c)


@router.delete("/access/identities/{identity_id}/consent")
def withdraw_consent(
    identity_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> dict[str, int]:
    n = service.withdraw_consent(s, ctx, identity_id, _files(request))
    s.commit()
    return {"templates_deleted": n}


@router.post("/access/identities/{identity_id}/face")
async def enroll_face(
    identity_id: int,
    request: Request,
    photo: UploadFile = File(...),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.SELF)),
) -> dict[str, Any]:
    settings = get_settings(request)
    data = await photo.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise TooLarge("The photo is too large.", field="photo", code="image_too_large")
    res = await run_in_threadpool(
        service.enroll_face, s, ctx, identity_id, data, settings, _files(request)
    )
    if not res.ok:
        s.rollback()
        raise ValidationFailed(
            res.message or "The photo cannot be enrolled.",
            field="photo",
            code=res.reason or "enrollment_refused",
        )
    s.commit()
    return {"enrolled": True, "template_id": res.template_id}


# -- gates ------------------------------------------------------------------------------------


@router.get("/gates", response_model=list[GateOut])
def list_gates(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.ACCESS_READ))
) -> list[GateOut]:
    return [GateOut.model_validate(g) for g in service.list_gates(s, ctx)]


@router.post("/gates", response_model=GateOut, status_code=201)
def create_gate(
    data: GateIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE))
) -> GateOut:
    g = service.save_gate(s, ctx, data)
    s.commit()
    return GateOut.model_validate(g)


@router.put("/gates/{gate_id}", response_model=GateOut)
def update_gate(
    gate_id: int,
    data: GateIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_MANAGE)),
) -> GateOut:
    g = service.save_gate(s, ctx, data, gate_id)
    s.commit()
    return GateOut.model_validate(g)


# -- the terminal decision --------------------------------------------------------------------


async def _presented(request: Request, max_bytes: int) -> service.Presented | str:
    """What the terminal sent, or a denial reason for input that cannot be used."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=service.MAX_FRAMES + 1, max_fields=20)
        except Exception:
            return "unreadable_file"
        frames: list[bytes] = []
        uploads = [v for k in ("image", "frames", "frame") for v in form.getlist(k)]
        qr_uploads = form.getlist("qr_image")
        if uploads and qr_uploads:
            raise ValidationFailed(
                "Send camera frames or a picture of a QR pass, not both.", code="invalid_request"
            )
        for up in uploads or qr_uploads[:1]:
            bad = None
            data = b""
            if not isinstance(up, StarletteUpload):
                bad = "not_an_image"
            else:
                data = await up.read(max_bytes + 1)
                if len(data) > max_bytes:
                    bad = "image_too_large"
                elif not data:
                    bad = "empty_image"
            if bad:
                return service.Presented(reject=bad, qr_image=b"") if qr_uploads else bad
            frames.append(data)
        if len(frames) > service.MAX_FRAMES:
            return "too_many_frames"
        d = form.get("direction")
        direction = d if isinstance(d, str) else None
        if qr_uploads:
            return service.Presented(qr_image=frames[0], direction=direction)
        return service.Presented(frames=frames, direction=direction)
    body = await request.body()
    try:
        raw = json.loads(body or b"{}")
        data_in = DecideIn.model_validate(raw)
    except (ValueError, ValidationError) as exc:
        raise ValidationFailed(
            "The request body is not a valid access request.", code="invalid_request"
        ) from exc
    return service.Presented(
        card=data_in.card, pin=data_in.pin, qr=data_in.qr, direction=data_in.direction
    )


@router.post("/gates/{gate_id}/decide", response_model=Decision)
async def decide(
    gate_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_DECIDE)),
) -> Decision:
    """Access decision for a terminal: a camera frame (``image``), a burst of frames
    (``frames``, liveness checked), a picture of a QR pass (``qr_image``), or JSON
    ``{"card"|"pin"|"qr": ...}``."""
    settings = get_settings(request)
    service.get_gate(s, ctx, gate_id)
    presented = await _presented(request, settings.max_upload_bytes)
    if isinstance(presented, str):
        presented = service.Presented(reject=presented)
    decision, _ev = await run_in_threadpool(
        service.decide, s, ctx, gate_id, presented, settings, _files(request)
    )
    s.commit()
    return decision


# -- visitors and admissions ------------------------------------------------------------------


def _pass_out(p: Any, name: str, qr: str | None = None) -> VisitorPassOut:
    return VisitorPassOut(
        id=p.id,
        name=name,
        purpose=p.purpose,
        valid_from=p.valid_from,
        valid_until=p.valid_until,
        max_uses=p.max_uses,
        uses=p.uses,
        revoked=p.revoked_at is not None,
        qr=qr,
    )


@router.get("/visitors", response_model=list[VisitorPassOut])
def list_visitors(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE))
) -> list[VisitorPassOut]:
    return [_pass_out(p, i.name) for p, i in service.list_passes(s, ctx)]


@router.post("/visitors", response_model=VisitorPassOut, status_code=201)
def create_visitor(
    data: VisitorIn,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> VisitorPassOut:
    p, i, token = service.create_visitor(s, ctx, data, get_settings(request))
    s.commit()
    return _pass_out(p, i.name, token)


@router.get("/visitors/{pass_id}", response_model=VisitorPassOut)
def get_visitor(
    pass_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> VisitorPassOut:
    """A pass with the signed text of its QR code (``qr``)."""
    p, i, token = service.pass_with_token(s, ctx, pass_id, get_settings(request))
    return _pass_out(p, i.name, token)


@router.get("/visitors/{pass_id}/qr.{fmt}")
def visitor_qr(
    pass_id: int,
    fmt: str,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    """The pass as a QR code image: ``qr.png`` or ``qr.svg``."""
    from linli.access import qr

    if fmt not in ("png", "svg"):
        raise NotFound("Visitor pass not found.", code="pass_not_found")
    _p, _i, token = service.pass_with_token(s, ctx, pass_id, get_settings(request))
    headers = {"Cache-Control": "no-store"}
    if fmt == "png":
        return Response(qr.render_png(token), media_type="image/png", headers=headers)
    return Response(qr.render_svg(token), media_type="image/svg+xml", headers=headers)


@router.delete("/visitors/{pass_id}", status_code=204)
def revoke_visitor(
    pass_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.VISITORS_MANAGE)),
) -> Response:
    service.revoke_pass(s, ctx, pass_id)
    s.commit()
    return Response(status_code=204)


@router.post("/access/admit", response_model=AccessEventOut, status_code=201)
def admit(
    data: AdmitIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.ACCESS_ADMIT))
) -> AccessEventOut:
    ev = service.admit(
        s,
        ctx,
        data.gate_id,
        data.reason,
        pass_id=data.pass_id,
        name=data.name,
        direction=data.direction,
    )
    s.commit()
    return AccessEventOut.model_validate(ev)


# -- log and flow -----------------------------------------------------------------------------


@router.get("/access/events", response_model=list[AccessEventOut])
def access_log(
    gate_id: int | None = None,
    identity_id: int | None = None,
    visitors: bool = False,
    limit: int = 100,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_LOG_READ)),
) -> list[AccessEventOut]:
    """Who passed where (audited). ``visitors=true``: the visitor log (visitors, delivery
    workers, admissions by hand)."""
    rows = service.access_log(
        s,
        ctx,
        gate_id=gate_id,
        identity_id=identity_id,
        visitors=visitors,
        limit=max(1, min(limit, 500)),
    )
    out = [
        AccessEventOut.model_validate(e).model_copy(
            update={"has_snapshot": e.snapshot_sha256 is not None}
        )
        for e in rows
    ]
    s.commit()
    return out


@router.get("/access/events/{event_id}/snapshot")
def access_snapshot(
    event_id: int,
    request: Request,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.ACCESS_LOG_READ)),
) -> Response:
    data = service.snapshot(s, ctx, event_id, _files(request))
    s.commit()
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/access/flow")
def access_flow(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.ACCESS_READ))
) -> dict[str, Any]:
    return service.flow(s, ctx)
