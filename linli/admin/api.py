"""JSON API: who am I, users and role grants, API tokens, audit log."""

from __future__ import annotations

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from linli.admin import service
from linli.admin.schemas import (
    AuditOut,
    AuditPage,
    GrantIn,
    GrantOut,
    PasswordChange,
    TokenCreated,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from linli.core.models import User
from linli.core.roles import Perm
from linli.core.web import (
    Ctx,
    Principal,
    api_router,
    client_ip,
    current_principal,
    current_user,
    get_session,
    require,
)

router = api_router(prefix="/api/v1", tags=["admin"])


@router.get("/me")
def me(p: Principal = Depends(current_principal)) -> dict[str, object]:
    return {
        "user": p.user.username if p.user else None,
        "token": p.token.name if p.token else None,
        "grants": {
            ("*" if cid is None else str(cid)): sorted(r.value for r in roles)
            for cid, roles in p.grants.items()
        },
    }


@router.post("/me/password", status_code=204)
def change_password(
    data: PasswordChange,
    request: Request,
    s: Session = Depends(get_session),
    user: User = Depends(current_user),
) -> Response:
    service.change_password(s, user, data.current_password, data.new_password, client_ip(request))
    s.commit()
    if request.session.get("uid") == user.id:
        request.session["sv"] = user.session_version
    return Response(status_code=204)


@router.get("/communities/{cid}/users", response_model=list[UserOut])
def list_users(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.USERS_MANAGE))
) -> list[UserOut]:
    out = []
    for u, grants in service.users_of(s, ctx):
        item = UserOut.model_validate(u)
        item.roles = sorted(g.role for g in grants)
        out.append(item)
    return out


@router.post("/communities/{cid}/users", response_model=UserOut, status_code=201)
def create_user(
    data: UserIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.USERS_MANAGE))
) -> UserOut:
    u = service.create_community_user(s, ctx, data)
    s.commit()
    out = UserOut.model_validate(u)
    out.roles = [data.role.value] if data.role else []
    return out


@router.post("/communities/{cid}/grants", response_model=GrantOut, status_code=201)
def grant(
    data: GrantIn, s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.USERS_MANAGE))
) -> GrantOut:
    g = service.grant_role(s, ctx, data)
    s.commit()
    return GrantOut.model_validate(g)


@router.delete("/communities/{cid}/grants/{grant_id}", status_code=204)
def revoke(
    grant_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.USERS_MANAGE)),
) -> Response:
    service.revoke_grant(s, ctx, grant_id)
    s.commit()
    return Response(status_code=204)


@router.get("/communities/{cid}/tokens", response_model=list[TokenOut])
def list_tokens(
    s: Session = Depends(get_session), ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE))
) -> list[TokenOut]:
    return [TokenOut.model_validate(t) for t in service.list_tokens(s, ctx)]


@router.post("/communities/{cid}/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    data: TokenIn,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE)),
) -> TokenCreated:
    raw, tok = service.create_token(s, ctx, data)
    s.commit()
    return TokenCreated(**TokenOut.model_validate(tok).model_dump(), token=raw)


@router.delete("/communities/{cid}/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: int,
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.TOKENS_MANAGE)),
) -> Response:
    service.revoke_token(s, ctx, token_id)
    s.commit()
    return Response(status_code=204)


@router.get("/communities/{cid}/audit", response_model=AuditPage)
def audit_log(
    action: str | None = Query(default=None, max_length=64),
    actor: str | None = Query(default=None, max_length=100),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=50, ge=1, le=500),
    s: Session = Depends(get_session),
    ctx: Ctx = Depends(require(Perm.AUDIT_READ)),
) -> AuditPage:
    total, rows = service.search_audit(
        s, ctx, action=action, actor=actor, offset=offset, limit=limit
    )
    return AuditPage(total=total, items=[AuditOut.model_validate(r) for r in rows])
