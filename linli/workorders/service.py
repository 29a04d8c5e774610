"""Work orders: creation from alarms, demands or by hand; routing; SLA; escalation; KPIs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.db import utcnow
from linli.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from linli.core.models import RoleGrant, User
from linli.core.roles import Perm, Role
from linli.core.web import Ctx
from linli.people.models import Building, Grid
from linli.workorders.models import (
    CATEGORIES,
    SEVERITIES,
    RoutingRule,
    SlaPolicy,
    WorkOrder,
    WorkOrderNote,
)

#: hours to respond and to resolve, by severity (communities may override in SlaPolicy)
DEFAULT_SLA: dict[str, tuple[float, float]] = {
    "critical": (0.25, 4),
    "major": (1, 24),
    "minor": (4, 72),
    "warning": (8, 120),
    "info": (24, 168),
}

#: who handles a category when no routing rule says otherwise
DEFAULT_ROLE: dict[str, Role] = {
    "facility": Role.PROPERTY_MANAGER,
    "fire_safety": Role.PROPERTY_MANAGER,
    "water": Role.PROPERTY_MANAGER,
    "electric": Role.PROPERTY_MANAGER,
    "elevator": Role.PROPERTY_MANAGER,
    "lighting": Role.PROPERTY_MANAGER,
    "sanitation": Role.PROPERTY_MANAGER,
    "parking": Role.PROPERTY_MANAGER,
    "environment": Role.PROPERTY_MANAGER,
    "security": Role.SECURITY_GUARD,
    "wellbeing": Role.GRID_WORKER,
    "neighbourhood": Role.GRID_WORKER,
    "other": Role.STAFF,
}

#: allowed status changes
TRANSITIONS: dict[str, set[str]] = {
    "new": {"assigned", "in_progress", "resolved", "closed"},
    "assigned": {"assigned", "in_progress", "resolved", "closed"},
    "in_progress": {"assigned", "resolved", "closed"},
    "resolved": {"closed", "in_progress"},  # in_progress again = reopened
    "closed": {"in_progress"},  # reopen
}
OPEN_STATUSES = ("new", "assigned", "in_progress")


@dataclass
class NewOrder:
    category: str
    title: str
    severity: str = "minor"
    description: str | None = None
    building_id: int | None = None
    grid_id: int | None = None
    location: str | None = None
    source: str = "manual"
    source_ref: str | None = None
    requester_resident_id: int | None = None

    def validate(self) -> None:
        if self.category not in CATEGORIES:
            raise ValidationFailed("Unknown category.", field="category")
        if self.severity not in SEVERITIES:
            raise ValidationFailed("Unknown severity.", field="severity")
        if not self.title.strip():
            raise ValidationFailed("The title is empty.", field="title")
        if len(self.title) > 200:
            raise ValidationFailed("The title is too long (200 characters at most).", field="title")
        if self.description and len(self.description) > 5000:
            raise ValidationFailed(
                "The description is too long (5000 characters at most).", field="description"
            )


def sla_hours(s: Session, community_id: int, severity: str) -> tuple[float, float]:
    p = s.scalar(
        select(SlaPolicy).where(
            SlaPolicy.community_id == community_id, SlaPolicy.severity == severity
        )
    )
    if p is not None:
        return p.respond_hours, p.resolve_hours
    return DEFAULT_SLA.get(severity, DEFAULT_SLA["minor"])


def _users_with_role(s: Session, community_id: int, role: str) -> list[int]:
    q = select(RoleGrant.user_id).where(
        RoleGrant.community_id == community_id, RoleGrant.role == role
    )
    return sorted(set(s.scalars(q)))


def route(s: Session, wo: WorkOrder) -> None:
    """Pick the assignee: routing rule for (category, grid) → (category, any grid) → default
    role; for grid-bound roles the grid's worker, else the least-loaded holder of the role."""
    rules = list(
        s.scalars(
            select(RoutingRule).where(
                RoutingRule.community_id == wo.community_id, RoutingRule.category == wo.category
            )
        )
    )
    rule = next((r for r in rules if r.grid_id is not None and r.grid_id == wo.grid_id), None)
    rule = rule or next((r for r in rules if r.grid_id is None), None)
    if rule is not None and rule.user_id is not None:
        wo.assignee_user_id = rule.user_id
        wo.assignee_role = rule.role
        return
    role = (
        rule.role if rule is not None and rule.role else DEFAULT_ROLE.get(wo.category, Role.STAFF)
    )
    wo.assignee_role = str(role)
    if role == Role.GRID_WORKER and wo.grid_id is not None:
        g = s.get(Grid, wo.grid_id)
        if g is not None and g.worker_user_id is not None:
            wo.assignee_user_id = g.worker_user_id
            return
    candidates = _users_with_role(s, wo.community_id, str(role))
    if not candidates:
        return
    load = dict(
        s.execute(
            select(WorkOrder.assignee_user_id, func.count())
            .where(
                WorkOrder.community_id == wo.community_id,
                WorkOrder.assignee_user_id.in_(candidates),
                WorkOrder.status.in_(OPEN_STATUSES),
            )
            .group_by(WorkOrder.assignee_user_id)
        ).all()
    )
    wo.assignee_user_id = min(candidates, key=lambda u: (load.get(u, 0), u))


def create_order(
    s: Session, community_id: int, data: NewOrder, actor: audit.Actor, now: datetime | None = None
) -> WorkOrder:
    """Create (or return the existing order for the same source record) and route it."""
    data.validate()
    if data.source_ref:
        existing = s.scalar(
            select(WorkOrder).where(
                WorkOrder.source == data.source, WorkOrder.source_ref == data.source_ref
            )
        )
        if existing is not None:
            return existing
    now = now or utcnow()
    if data.building_id is not None:
        b = s.get(Building, data.building_id)
        if b is None or b.community_id != community_id:
            raise NotFound("Building not found.", field="building_id")
        if data.grid_id is None:
            data.grid_id = b.grid_id
    if data.grid_id is not None:
        g = s.get(Grid, data.grid_id)
        if g is None or g.community_id != community_id:
            raise NotFound("Grid not found.", field="grid_id")
    _, resolve_h = sla_hours(s, community_id, data.severity)
    count = s.scalar(select(func.count()).where(WorkOrder.community_id == community_id)) or 0
    wo = WorkOrder(
        community_id=community_id,
        number=f"WO-{now:%Y%m%d}-{count + 1:05d}",
        source=data.source,
        source_ref=data.source_ref,
        category=data.category,
        severity=data.severity,
        title=data.title.strip(),
        description=data.description,
        building_id=data.building_id,
        grid_id=data.grid_id,
        location=data.location,
        requester_resident_id=data.requester_resident_id,
        status="new",
        created_at=now,
        due_at=now + timedelta(hours=resolve_h),
    )
    s.add(wo)
    s.flush()
    route(s, wo)
    if wo.assignee_user_id is not None:
        wo.status = "assigned"
        wo.assigned_at = now
    s.add(
        WorkOrderNote(
            work_order_id=wo.id,
            at=now,
            author_user_id=actor.user_id,
            author=actor.name,
            kind="status",
            to_status=wo.status,
        )
    )
    s.flush()
    audit.record(
        s,
        actor,
        "workorder.created",
        "work_order",
        wo.id,
        community_id=community_id,
        details={"source": wo.source, "source_ref": wo.source_ref},
    )
    events.emit(s, "workorders.order.created", _payload(wo), community_id=community_id)
    return wo


def _payload(wo: WorkOrder) -> dict[str, Any]:
    return {
        "id": wo.id,
        "number": wo.number,
        "status": wo.status,
        "category": wo.category,
        "severity": wo.severity,
        "title": wo.title,
        "assignee_user_id": wo.assignee_user_id,
        "source": wo.source,
        "source_ref": wo.source_ref,
    }


def get_order(s: Session, ctx: Ctx, order_id: int) -> WorkOrder:
    ctx.require(Perm.WORKORDERS_READ)
    wo = s.get(WorkOrder, order_id)
    if wo is None or wo.community_id != ctx.community_id or not _visible(s, ctx, wo):
        raise NotFound("Work order not found.", code="work_order_not_found")
    return wo


def _visible(s: Session, ctx: Ctx, wo: WorkOrder) -> bool:
    if ctx.can(Perm.WORKORDERS_MANAGE):
        return True
    if wo.assignee_user_id is not None and wo.assignee_user_id == ctx.user_id:
        return True
    if wo.assignee_role and wo.assignee_role in ctx.roles:
        return (
            ctx.building_scope is None
            or wo.building_id in ctx.building_scope
            or (wo.grid_id is not None and _grid_of_worker(s, ctx, wo.grid_id))
        )
    return False


def _grid_of_worker(s: Session, ctx: Ctx, grid_id: int) -> bool:
    g = s.get(Grid, grid_id)
    return g is not None and g.worker_user_id == ctx.user_id


def list_orders(
    s: Session,
    ctx: Ctx,
    *,
    status: str | None = None,
    category: str | None = None,
    grid_id: int | None = None,
    assignee_user_id: int | None = None,
    mine: bool = False,
    limit: int = 200,
) -> list[WorkOrder]:
    ctx.require(Perm.WORKORDERS_READ)
    q = select(WorkOrder).where(WorkOrder.community_id == ctx.community_id)
    if status:
        q = q.where(WorkOrder.status == status)
    if category:
        q = q.where(WorkOrder.category == category)
    if grid_id:
        q = q.where(WorkOrder.grid_id == grid_id)
    if assignee_user_id:
        q = q.where(WorkOrder.assignee_user_id == assignee_user_id)
    if mine or not ctx.can(Perm.WORKORDERS_MANAGE):
        roles = [str(r) for r in ctx.roles]
        q = q.where(
            or_(WorkOrder.assignee_user_id == ctx.user_id, WorkOrder.assignee_role.in_(roles))
        )
    rows = list(s.scalars(q.order_by(WorkOrder.id.desc()).limit(limit * 2)))
    return [w for w in rows if _visible(s, ctx, w)][:limit]


def _may_handle(ctx: Ctx, wo: WorkOrder) -> None:
    if ctx.can(Perm.WORKORDERS_MANAGE):
        return
    if ctx.can(Perm.WORKORDERS_HANDLE) and (
        wo.assignee_user_id == ctx.user_id
        or (wo.assignee_user_id is None and wo.assignee_role in ctx.roles)
    ):
        return
    raise Forbidden("This work order is not assigned to you.", code="not_your_order")


def _note(
    s: Session,
    wo: WorkOrder,
    ctx: Ctx,
    kind: str,
    text: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    photo: str | None = None,
) -> None:
    s.add(
        WorkOrderNote(
            work_order_id=wo.id,
            author_user_id=ctx.user_id,
            author=ctx.actor.name,
            kind=kind,
            text=text,
            from_status=from_status,
            to_status=to_status,
            photo=photo,
        )
    )


def change_status(
    s: Session,
    ctx: Ctx,
    order_id: int,
    to: str,
    *,
    text: str | None = None,
    photo: str | None = None,
    assignee_user_id: int | None = None,
    now: datetime | None = None,
) -> WorkOrder:
    wo = get_order(s, ctx, order_id)
    now = now or utcnow()
    frm = wo.status
    if to not in TRANSITIONS.get(frm, set()):
        raise Conflict(
            "A work order that is %(frm)s cannot become %(to)s.",
            params={"frm": frm, "to": to},
            code="bad_transition",
        )
    if text is not None and len(text) > 5000:
        raise ValidationFailed("The note is too long (5000 characters at most).", field="text")
    if to == "assigned":
        ctx.require(Perm.WORKORDERS_MANAGE)
        if assignee_user_id is None:
            raise ValidationFailed("Choose who handles it.", field="assignee_user_id")
        if (
            s.scalar(
                select(RoleGrant.id).where(
                    RoleGrant.user_id == assignee_user_id,
                    RoleGrant.community_id == ctx.community_id,
                )
            )
            is None
        ):
            raise ValidationFailed(
                "That user has no role in this community.", field="assignee_user_id"
            )
        wo.assignee_user_id = assignee_user_id
        wo.assigned_at = wo.assigned_at or now
        kind = "assign"
    elif to == "closed":
        ctx.require(Perm.WORKORDERS_MANAGE)
        wo.closed_at = now
        kind = "status"
    else:
        _may_handle(ctx, wo)
        kind = "status"
        if to == "in_progress":
            if frm in ("resolved", "closed"):
                wo.reopen_count += 1
                wo.resolved_at = None
                wo.closed_at = None
                kind = "reopen"
            wo.started_at = wo.started_at or now
            if wo.assignee_user_id is None:
                wo.assignee_user_id = ctx.user_id
                wo.assigned_at = wo.assigned_at or now
        elif to == "resolved":
            if not (text or "").strip():
                raise ValidationFailed("Say how it was resolved.", field="text")
            wo.resolved_at = now
            wo.resolution = text
            wo.resolution_photo = photo
            wo.started_at = wo.started_at or now
    wo.status = to
    _note(s, wo, ctx, kind, text, frm, to, photo)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        f"workorder.{to}",
        "work_order",
        wo.id,
        community_id=ctx.community_id,
        details={"from": frm},
    )
    events.emit(s, f"workorders.order.{to}", _payload(wo), community_id=ctx.community_id)
    return wo


def add_note(s: Session, ctx: Ctx, order_id: int, text: str, photo: str | None = None) -> WorkOrder:
    wo = get_order(s, ctx, order_id)
    _may_handle(ctx, wo)
    if not text.strip():
        raise ValidationFailed("The note is empty.", field="text")
    if len(text) > 5000:
        raise ValidationFailed("The note is too long (5000 characters at most).", field="text")
    _note(s, wo, ctx, "note", text.strip(), photo=photo)
    s.flush()
    return wo


def rate(s: Session, ctx: Ctx, order_id: int, rating: int, comment: str | None) -> WorkOrder:
    """The resident who raised the order rates how it was handled (1–5) once resolved."""
    wo = s.get(WorkOrder, order_id)
    user = ctx.principal.user
    if wo is None or wo.community_id != ctx.community_id:
        raise NotFound("Work order not found.", code="work_order_not_found")
    if user is None or user.resident_id is None or user.resident_id != wo.requester_resident_id:
        raise Forbidden("Only the resident who raised it can rate this work order.")
    if wo.status not in ("resolved", "closed"):
        raise Conflict("A work order can be rated once it is resolved.", code="not_resolved")
    if not 1 <= rating <= 5:
        raise ValidationFailed("The rating is from 1 to 5.", field="rating")
    wo.rating = rating
    wo.rating_comment = (comment or "").strip()[:1000] or None
    s.flush()
    events.emit(
        s,
        "workorders.order.rated",
        _payload(wo) | {"rating": rating},
        community_id=ctx.community_id,
    )
    return wo


def notes(s: Session, ctx: Ctx, order_id: int) -> list[WorkOrderNote]:
    get_order(s, ctx, order_id)
    q = select(WorkOrderNote).where(WorkOrderNote.work_order_id == order_id)
    return list(s.scalars(q.order_by(WorkOrderNote.id)))


def escalate_overdue(s: Session, now: datetime | None = None) -> list[WorkOrder]:
    """Raise the escalation level of open orders past their due time (level 1), and past twice
    their SLA (level 2). Emits ``workorders.order.escalated`` for each. Any community."""
    now = now or utcnow()
    out = []
    q = select(WorkOrder).where(WorkOrder.status.in_(OPEN_STATUSES), WorkOrder.due_at < now)
    for wo in s.scalars(q):
        allowed = wo.due_at - wo.created_at
        level = 2 if now - wo.created_at >= 2 * allowed else 1
        if level <= wo.escalation_level:
            continue
        wo.escalation_level = level
        wo.escalated_at = now
        s.add(
            WorkOrderNote(
                work_order_id=wo.id,
                at=now,
                author="system",
                kind="escalate",
                text=f"overdue: escalation level {level}",
            )
        )
        events.emit(
            s,
            "workorders.order.escalated",
            _payload(wo) | {"level": level},
            community_id=wo.community_id,
        )
        out.append(wo)
    s.flush()
    return out


def kpis(
    s: Session, ctx: Ctx, since: datetime | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Time to respond and to resolve (hours), overdue rate, per category and per grid."""
    ctx.require(Perm.WORKORDERS_READ)
    now = now or utcnow()
    q = select(WorkOrder).where(WorkOrder.community_id == ctx.community_id)
    if since is not None:
        q = q.where(WorkOrder.created_at >= since)
    rows = list(s.scalars(q))
    grid_names = {
        g.id: g.name for g in s.scalars(select(Grid).where(Grid.community_id == ctx.community_id))
    }

    def summarise(items: list[WorkOrder]) -> dict[str, Any]:
        # responding = someone started working on it (auto-assignment is not a response)
        respond = [
            (w.started_at - w.created_at).total_seconds() / 3600 for w in items if w.started_at
        ]
        resolve = [
            (w.resolved_at - w.created_at).total_seconds() / 3600 for w in items if w.resolved_at
        ]
        overdue = [w for w in items if (w.resolved_at or now) > w.due_at]
        return {
            "count": len(items),
            "open": sum(1 for w in items if w.status in OPEN_STATUSES),
            "avg_hours_to_respond": round(sum(respond) / len(respond), 2) if respond else None,
            "avg_hours_to_resolve": round(sum(resolve) / len(resolve), 2) if resolve else None,
            "overdue_rate": round(len(overdue) / len(items), 3) if items else 0.0,
            "avg_rating": (
                round(
                    sum(w.rating for w in items if w.rating)
                    / max(1, sum(1 for w in items if w.rating)),
                    2,
                )
                if any(w.rating for w in items)
                else None
            ),
        }

    by_cat: dict[str, list[WorkOrder]] = {}
    by_grid: dict[str, list[WorkOrder]] = {}
    for w in rows:
        by_cat.setdefault(w.category, []).append(w)
        by_grid.setdefault(grid_names.get(w.grid_id, "—") if w.grid_id else "—", []).append(w)
    return {
        "total": summarise(rows),
        "by_category": {k: summarise(v) for k, v in sorted(by_cat.items())},
        "by_grid": {k: summarise(v) for k, v in sorted(by_grid.items())},
    }


def assignable_users(s: Session, ctx: Ctx) -> list[tuple[User, list[str]]]:
    grants = list(s.scalars(select(RoleGrant).where(RoleGrant.community_id == ctx.community_id)))
    roles: dict[int, list[str]] = {}
    for g in grants:
        if g.role not in (Role.RESIDENT, Role.PROFESSIONAL):
            roles.setdefault(g.user_id, []).append(g.role)
    users = s.scalars(select(User).where(User.id.in_(list(roles))).order_by(User.display_name))
    return [(u, roles[u.id]) for u in users]


def requested_by_me(s: Session, ctx: Ctx, limit: int = 200) -> list[WorkOrder]:
    """The orders raised by the calling resident (their own demands and reports)."""
    user = ctx.principal.user
    if user is None or user.resident_id is None:
        return []
    q = select(WorkOrder).where(
        WorkOrder.community_id == ctx.community_id,
        WorkOrder.requester_resident_id == user.resident_id,
    )
    return list(s.scalars(q.order_by(WorkOrder.id.desc()).limit(limit)))
