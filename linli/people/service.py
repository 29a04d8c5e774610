"""People registry logic: communities, grids, buildings, units, households, residents.

Every function takes the caller's ``Ctx`` and scopes each query to ``ctx.community_id``;
ids from another community behave exactly like ids that do not exist.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linli.core import audit, events
from linli.core.errors import (
    AppError,
    Conflict,
    InvalidValue,
    NotFound,
    ValidationFailed,
    pydantic_message,
)
from linli.core.i18n import gettext
from linli.core.roles import Perm
from linli.core.web import Ctx, Principal
from linli.people.models import (
    Building,
    Community,
    Grid,
    Household,
    Ownership,
    Professional,
    Resident,
    Unit,
)
from linli.people.schemas import (
    BuildingIn,
    CommunityIn,
    GridIn,
    ImportReport,
    ImportRowError,
    ProfessionalIn,
    ResidentIn,
    ResidentOut,
    UnitIn,
)

MAX_IMPORT_ROWS = 50_000


# -- communities ---------------------------------------------------------------------------


def communities_for(s: Session, p: Principal) -> list[Community]:
    q = select(Community).order_by(Community.id)
    if not p.is_platform_admin:
        if p.token is not None:
            q = q.where(Community.id == p.token.community_id)
        else:
            ids = [c for c in p.community_ids() if c is not None]
            q = q.where(Community.id.in_(ids))
    return list(s.scalars(q))


def create_community(s: Session, actor: audit.Actor, data: CommunityIn) -> Community:
    if s.scalar(select(Community.id).where(Community.code == data.code)) is not None:
        raise Conflict("A community with this code already exists.", field="code")
    c = Community(**data.model_dump())
    s.add(c)
    s.flush()
    audit.record(s, actor, "community.created", "community", c.id, community_id=c.id)
    events.emit(s, "people.community.created", {"id": c.id, "name": c.name}, community_id=c.id)
    return c


def get_community(s: Session, ctx: Ctx) -> Community:
    c = s.get(Community, ctx.community_id)
    if c is None:
        raise NotFound("Community not found.")
    return c


def overview(s: Session, ctx: Ctx) -> dict[str, Any]:
    cid = ctx.community_id

    def count(model: Any, *where: Any) -> int:
        return int(
            s.scalar(
                select(func.count()).select_from(model).where(model.community_id == cid, *where)
            )
            or 0
        )

    residents = list(s.scalars(select(Resident.tags).where(Resident.community_id == cid)))
    tag_counts: dict[str, int] = {}
    for tags in residents:
        for t in tags or []:
            tag_counts[t] = tag_counts.get(t, 0) + 1
    return {
        "buildings": count(Building),
        "units": count(Unit),
        "households": count(Household),
        "residents": len(residents),
        "grids": count(Grid),
        "professionals": count(Professional),
        "tags": tag_counts,
    }


# -- grids and buildings -------------------------------------------------------------------


def list_grids(s: Session, ctx: Ctx) -> list[Grid]:
    return list(
        s.scalars(select(Grid).where(Grid.community_id == ctx.community_id).order_by(Grid.name))
    )


def get_grid(s: Session, ctx: Ctx, grid_id: int) -> Grid:
    g = s.get(Grid, grid_id)
    if g is None or g.community_id != ctx.community_id:
        raise NotFound("Grid not found.", code="grid_not_found")
    return g


def _check_worker(s: Session, ctx: Ctx, user_id: int | None) -> None:
    if user_id is None:
        return
    from linli.core.models import RoleGrant

    ok = s.scalar(
        select(RoleGrant.id).where(
            RoleGrant.user_id == user_id,
            RoleGrant.community_id == ctx.community_id,
            RoleGrant.role == "grid_worker",
        )
    )
    if ok is None:
        raise ValidationFailed(
            "The worker must be a grid worker of this community.", field="worker_user_id"
        )


def save_grid(s: Session, ctx: Ctx, data: GridIn, grid_id: int | None = None) -> Grid:
    ctx.require(Perm.GRIDS_MANAGE)
    _check_worker(s, ctx, data.worker_user_id)
    dup = select(Grid.id).where(Grid.community_id == ctx.community_id, Grid.name == data.name)
    if grid_id is not None:
        dup = dup.where(Grid.id != grid_id)
    if s.scalar(dup) is not None:
        raise Conflict("A grid with this name already exists.", field="name")
    if grid_id is None:
        g = Grid(community_id=ctx.community_id, **data.model_dump())
        s.add(g)
    else:
        g = get_grid(s, ctx, grid_id)
        g.name, g.worker_user_id = data.name, data.worker_user_id
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "grid.saved",
        "grid",
        g.id,
        community_id=ctx.community_id,
        details=data.model_dump(),
    )
    return g


def list_buildings(s: Session, ctx: Ctx) -> list[Building]:
    q = select(Building).where(Building.community_id == ctx.community_id)
    if ctx.building_scope is not None:
        q = q.where(Building.id.in_(ctx.building_scope))
    return sorted(s.scalars(q), key=lambda b: _natural(b.name))


def _natural(text: str) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def get_building(s: Session, ctx: Ctx, building_id: int) -> Building:
    b = s.get(Building, building_id)
    if (
        b is None
        or b.community_id != ctx.community_id
        or (ctx.building_scope is not None and b.id not in ctx.building_scope)
    ):
        raise NotFound("Building not found.", code="building_not_found")
    return b


def save_building(
    s: Session, ctx: Ctx, data: BuildingIn, building_id: int | None = None
) -> Building:
    ctx.require(Perm.PEOPLE_WRITE)
    if data.grid_id is not None:
        get_grid(s, ctx, data.grid_id)
    dup = select(Building.id).where(
        Building.community_id == ctx.community_id, Building.name == data.name
    )
    if building_id is not None:
        dup = dup.where(Building.id != building_id)
    if s.scalar(dup) is not None:
        raise Conflict("A building with this name already exists.", field="name")
    if building_id is None:
        b = Building(community_id=ctx.community_id, **data.model_dump())
        s.add(b)
    else:
        b = get_building(s, ctx, building_id)
        for k, v in data.model_dump().items():
            setattr(b, k, v)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "building.saved",
        "building",
        b.id,
        community_id=ctx.community_id,
        details=data.model_dump(),
    )
    events.emit(
        s, "people.building.saved", {"id": b.id, "name": b.name}, community_id=ctx.community_id
    )
    return b


def list_units(s: Session, ctx: Ctx, building_id: int) -> list[Unit]:
    get_building(s, ctx, building_id)
    units = s.scalars(select(Unit).where(Unit.building_id == building_id))
    return sorted(units, key=lambda u: _natural(u.label))


def get_unit(s: Session, ctx: Ctx, unit_id: int) -> Unit:
    u = s.get(Unit, unit_id)
    if (
        u is None
        or u.community_id != ctx.community_id
        or (ctx.building_scope is not None and u.building_id not in ctx.building_scope)
    ):
        raise NotFound("Unit not found.", code="unit_not_found", field="unit_id")
    return u


def save_unit(s: Session, ctx: Ctx, data: UnitIn, unit_id: int | None = None) -> Unit:
    ctx.require(Perm.PEOPLE_WRITE)
    get_building(s, ctx, data.building_id)
    dup = select(Unit.id).where(Unit.building_id == data.building_id, Unit.label == data.label)
    if unit_id is not None:
        dup = dup.where(Unit.id != unit_id)
    if s.scalar(dup) is not None:
        raise Conflict("This unit already exists in the building.", field="label")
    if unit_id is None:
        u = Unit(community_id=ctx.community_id, **data.model_dump())
        s.add(u)
    else:
        u = get_unit(s, ctx, unit_id)
        for k, v in data.model_dump().items():
            setattr(u, k, v)
    s.flush()
    audit.record(
        s,
        ctx.actor,
        "unit.saved",
        "unit",
        u.id,
        community_id=ctx.community_id,
        details=data.model_dump(),
    )
    return u


def unit_residents(s: Session, ctx: Ctx, unit_id: int) -> list[Resident]:
    get_unit(s, ctx, unit_id)
    q = select(Resident).join(Household).where(Household.unit_id == unit_id).order_by(Resident.id)
    return list(s.scalars(q))


def _household_for_unit(s: Session, ctx: Ctx, unit: Unit) -> Household:
    h = s.scalar(select(Household).where(Household.unit_id == unit.id).order_by(Household.id))
    if h is None:
        h = Household(community_id=ctx.community_id, unit_id=unit.id)
        s.add(h)
        s.flush()
    return h


# -- residents -------------------------------------------------------------------------------


def _resident_query(ctx: Ctx) -> Any:
    q = select(Resident).where(Resident.community_id == ctx.community_id)
    if ctx.building_scope is not None:
        q = (
            q.join(Household, Resident.household_id == Household.id)
            .join(Unit, Household.unit_id == Unit.id)
            .where(Unit.building_id.in_(ctx.building_scope))
        )
    return q


def search_residents(
    s: Session,
    ctx: Ctx,
    *,
    q: str | None = None,
    building_id: int | None = None,
    tag: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[int, list[Resident]]:
    ctx.require(Perm.PEOPLE_READ)
    query = _resident_query(ctx)
    if q:
        like = f"%{q.strip()}%"
        query = query.where(or_(Resident.name.like(like), Resident.phone.like(like)))
    if building_id is not None:
        sub = (
            select(Household.id)
            .join(Unit, Household.unit_id == Unit.id)
            .where(Unit.building_id == building_id)
        )
        query = query.where(Resident.household_id.in_(sub))
    rows = list(s.scalars(query.order_by(Resident.id)))
    if tag:
        rows = [r for r in rows if tag in (r.tags or [])]
    return len(rows), rows[offset : offset + limit]


def get_resident(s: Session, ctx: Ctx, resident_id: int) -> Resident:
    r = s.scalar(_resident_query(ctx).where(Resident.id == resident_id))
    if r is None:
        raise NotFound("Resident not found.", code="resident_not_found")
    return r


def own_resident(s: Session, ctx: Ctx) -> Resident | None:
    """The caller's own registry record (resident logins)."""
    user = ctx.principal.user
    if user is None or user.resident_id is None:
        return None
    r = s.get(Resident, user.resident_id)
    return r if r is not None and r.community_id == ctx.community_id else None


def view_resident(s: Session, ctx: Ctx, resident_id: int) -> Resident:
    """A detail view of a person's record: audited, whether or not it shows sensitive fields."""
    r = get_resident(s, ctx, resident_id)
    audit.record(
        s,
        ctx.actor,
        "resident.viewed",
        "resident",
        r.id,
        community_id=ctx.community_id,
        details={"sensitive": ctx.can(Perm.PEOPLE_SENSITIVE)},
    )
    return r


def resident_out(
    s: Session, ctx: Ctx, r: Resident, *, sensitive: bool | None = None
) -> ResidentOut:
    return residents_out(s, ctx, [r], sensitive=sensitive)[0]


def residents_out(
    s: Session, ctx: Ctx, rows: Sequence[Resident], *, sensitive: bool | None = None
) -> list[ResidentOut]:
    """Residents as shown to ``ctx``: their unit, building and owned area loaded in three
    queries for the whole list (not three per resident)."""
    from linli.core.web import _mask_phone

    show = ctx.can(Perm.PEOPLE_SENSITIVE) if sensitive is None else sensitive
    household_ids = {r.household_id for r in rows if r.household_id is not None}
    places: dict[int, tuple[Unit, Building]] = {}
    if household_ids:
        q = (
            select(Household.id, Unit, Building)
            .join(Unit, Unit.id == Household.unit_id)
            .join(Building, Building.id == Unit.building_id)
            .where(Household.id.in_(household_ids))
        )
        places = {hid: (unit, building) for hid, unit, building in s.execute(q)}
    owned: dict[int, list[float | None]] = {}
    if rows:
        q2 = (
            select(Ownership.resident_id, Unit.area_m2)
            .join(Unit, Unit.id == Ownership.unit_id)
            .where(Ownership.resident_id.in_([r.id for r in rows]))
        )
        for rid, area in s.execute(q2):
            owned.setdefault(rid, []).append(area)
    out = []
    for r in rows:
        unit, building = (
            places.get(r.household_id, (None, None)) if r.household_id else (None, None)
        )
        areas = owned.get(r.id, [])
        out.append(
            ResidentOut(
                id=r.id,
                name=r.name,
                unit_id=unit.id if unit else None,
                unit_label=unit.label if unit else None,
                building=building.name if building else None,
                phone=r.phone if show else _mask_phone(r.phone),
                birth_year=r.birth_year,
                gender=r.gender,
                household_role=r.household_role,
                tags=list(r.tags or []),
                owner=bool(areas),
                owned_area_m2=round(sum(a or 0 for a in areas), 2),
                emergency_contact_name=r.emergency_contact_name if show else None,
                emergency_contact_phone=r.emergency_contact_phone if show else None,
                emergency_contact_relation=r.emergency_contact_relation if show else None,
                updated_at=r.updated_at,
            )
        )
    return out


_RESIDENT_FIELDS = (
    "name",
    "phone",
    "birth_year",
    "gender",
    "household_role",
    "tags",
    "emergency_contact_name",
    "emergency_contact_phone",
    "emergency_contact_relation",
    "notes",
)


def _apply(s: Session, ctx: Ctx, r: Resident, data: ResidentIn) -> bool:
    """Copy fields, place in the unit's household, set ownership. True if anything changed."""
    changed = False
    for f in _RESIDENT_FIELDS:
        new = getattr(data, f)
        if f == "tags":
            new = list(new)
        if getattr(r, f) != new:
            setattr(r, f, new)
            changed = True
    if data.unit_id is not None:
        unit = get_unit(s, ctx, data.unit_id)
        h = _household_for_unit(s, ctx, unit)
        if r.household_id != h.id:
            r.household_id = h.id
            changed = True
        s.flush()
        has = s.scalar(
            select(Ownership.id).where(Ownership.resident_id == r.id, Ownership.unit_id == unit.id)
        )
        if data.owner and has is None:
            s.add(Ownership(community_id=ctx.community_id, resident_id=r.id, unit_id=unit.id))
            changed = True
        elif not data.owner and has is not None:
            s.execute(delete(Ownership).where(Ownership.id == has))
            changed = True
    elif r.household_id is not None:
        r.household_id = None
        changed = True
    return changed


def create_resident(s: Session, ctx: Ctx, data: ResidentIn) -> Resident:
    ctx.require(Perm.PEOPLE_WRITE)
    if data.phone and s.scalar(
        select(Resident.id).where(
            Resident.community_id == ctx.community_id, Resident.phone == data.phone
        )
    ):
        raise Conflict("A resident with this phone number is already registered.", field="phone")
    r = Resident(community_id=ctx.community_id, name=data.name, tags=[])
    s.add(r)
    s.flush()
    _apply(s, ctx, r, data)
    s.flush()
    audit.record(s, ctx.actor, "resident.created", "resident", r.id, community_id=ctx.community_id)
    events.emit(s, "people.resident.created", {"id": r.id}, community_id=ctx.community_id)
    return r


def update_resident(s: Session, ctx: Ctx, resident_id: int, data: ResidentIn) -> Resident:
    ctx.require(Perm.PEOPLE_WRITE)
    r = get_resident(s, ctx, resident_id)
    if data.phone and s.scalar(
        select(Resident.id).where(
            Resident.community_id == ctx.community_id,
            Resident.phone == data.phone,
            Resident.id != r.id,
        )
    ):
        raise Conflict("A resident with this phone number is already registered.", field="phone")
    if _apply(s, ctx, r, data):
        s.flush()
        audit.record(
            s, ctx.actor, "resident.updated", "resident", r.id, community_id=ctx.community_id
        )
        events.emit(s, "people.resident.updated", {"id": r.id}, community_id=ctx.community_id)
    return r


def delete_resident(s: Session, ctx: Ctx, resident_id: int) -> None:
    ctx.require(Perm.PEOPLE_WRITE)
    r = get_resident(s, ctx, resident_id)
    s.execute(delete(Ownership).where(Ownership.resident_id == r.id))
    s.delete(r)
    s.flush()
    audit.record(
        s, ctx.actor, "resident.deleted", "resident", resident_id, community_id=ctx.community_id
    )
    events.emit(s, "people.resident.deleted", {"id": resident_id}, community_id=ctx.community_id)


# -- professionals ----------------------------------------------------------------------------


def list_professionals(s: Session, ctx: Ctx) -> list[Professional]:
    q = select(Professional).where(Professional.community_id == ctx.community_id)
    return list(s.scalars(q.order_by(Professional.profession, Professional.name)))


def create_professional(s: Session, ctx: Ctx, data: ProfessionalIn) -> Professional:
    ctx.require(Perm.PEOPLE_WRITE)
    p = Professional(community_id=ctx.community_id, **data.model_dump())
    s.add(p)
    s.flush()
    audit.record(
        s, ctx.actor, "professional.created", "professional", p.id, community_id=ctx.community_id
    )
    return p


# -- CSV import and export ------------------------------------------------------------------

#: canonical column -> accepted header spellings (English and Chinese)
COLUMNS: dict[str, tuple[str, ...]] = {
    "building": ("building", "楼栋", "楼号"),
    "unit": ("unit", "房号", "单元房号", "门牌"),
    "area_m2": ("area_m2", "面积", "建筑面积"),
    "name": ("name", "姓名"),
    "phone": ("phone", "电话", "手机", "手机号"),
    "birth_year": ("birth_year", "出生年份"),
    "gender": ("gender", "性别"),
    "household_role": ("household_role", "户内关系", "与户主关系"),
    "owner": ("owner", "业主"),
    "tags": ("tags", "标签"),
    "emergency_contact_name": ("emergency_contact_name", "紧急联系人"),
    "emergency_contact_phone": ("emergency_contact_phone", "紧急联系电话"),
    "emergency_contact_relation": ("emergency_contact_relation", "紧急联系人关系"),
}
EXPORT_COLUMNS = list(COLUMNS)

_GENDER_WORDS = {"男": "male", "女": "female", "m": "male", "f": "female", "其他": "other"}
_ROLE_WORDS = {
    "户主": "owner",
    "业主": "owner",
    "配偶": "spouse",
    "子女": "child",
    "父母": "parent",
    "租户": "tenant",
    "亲属": "relative",
    "其他": "other",
}
_TAG_WORDS = {
    "老人": "elderly",
    "老年人": "elderly",
    "独居": "lives_alone",
    "残疾": "disabled",
    "残疾人": "disabled",
    "需照护": "needs_care",
    "党员": "party_member",
    "志愿者": "volunteer",
}
_YES = {"1", "yes", "y", "true", "是", "✓"}
_NO = {"", "0", "no", "n", "false", "否"}


def _split_tags(value: str) -> list[str]:
    for sep in ("；", "、", "，", ",", "|"):
        value = value.replace(sep, ";")
    return [_TAG_WORDS.get(t.strip(), t.strip()) for t in value.split(";") if t.strip()]


def _decode(data: bytes) -> str:
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise ValidationFailed(
        "The file is not UTF-8 or GB18030 text.", code="bad_encoding", field="file"
    )


def _parse_row(
    raw: dict[str, str], line: int, headers: dict[str, str] | None = None
) -> tuple[str | None, str | None, float | None, ResidentIn]:
    """One CSV row. Raises :class:`InvalidValue` or pydantic's ``ValidationError`` (both are
    ValueErrors; :func:`_row_reason` words them). ``headers`` maps a canonical column to the
    header the file used, so reasons name the column as the user wrote it."""
    names = headers or {}

    def get(col: str) -> str:
        return (raw.get(col) or "").strip()

    def column(col: str) -> str:
        return names.get(col, col)

    building, unit = get("building") or None, get("unit") or None
    if bool(building) != bool(unit):
        raise InvalidValue(
            "%(building)s and %(unit)s must be given together.",
            building=column("building"),
            unit=column("unit"),
        )
    for col, limit in (("building", 50), ("unit", 30)):  # the columns' sizes in the database
        if len(get(col)) > limit:
            raise InvalidValue(
                "%(column)s: %(problem)s",
                column=column(col),
                problem=gettext("Must have at most %(max_length)s characters.", max_length=limit),
            )
    area: float | None = None
    if get("area_m2"):
        try:
            area = float(get("area_m2"))
        except ValueError:
            raise InvalidValue(
                '%(column)s is not a number: "%(value)s".',
                column=column("area_m2"),
                value=get("area_m2"),
            ) from None
        if not 0 < area <= 10000:
            raise InvalidValue(
                "%(column)s must be more than 0 and at most 10000.", column=column("area_m2")
            )
    owner_word = get("owner").lower()
    if owner_word not in _YES | _NO:
        raise InvalidValue(
            '%(column)s must be yes or no, not "%(value)s".',
            column=column("owner"),
            value=get("owner"),
        )
    by = get("birth_year")
    if by and not by.isdigit():
        raise InvalidValue(
            '%(column)s is not a year: "%(value)s".', column=column("birth_year"), value=by
        )
    gender = get("gender")
    role = get("household_role")
    data = ResidentIn(
        name=get("name"),
        phone=get("phone") or None,
        birth_year=int(by) if by else None,
        gender=_GENDER_WORDS.get(gender.lower(), gender) or None,
        household_role=_ROLE_WORDS.get(role, role) or None,
        tags=_split_tags(get("tags")),
        owner=owner_word in _YES,
        emergency_contact_name=get("emergency_contact_name") or None,
        emergency_contact_phone=get("emergency_contact_phone") or None,
        emergency_contact_relation=get("emergency_contact_relation") or None,
    )
    return building, unit, area, data


def _row_reason(exc: Exception, headers: dict[str, str]) -> str:
    """Why a row was rejected, in the caller's language."""
    if isinstance(exc, ValidationError):
        reasons = []
        for e in exc.errors():
            col = ".".join(str(x) for x in e["loc"])
            reasons.append(
                gettext(
                    "%(column)s: %(problem)s",
                    column=headers.get(col, col),
                    problem=pydantic_message(dict(e), gettext),
                )
            )
        return "; ".join(reasons)
    if isinstance(exc, InvalidValue | AppError):
        return gettext(exc.message, **exc.params)
    return str(exc)


def import_residents(s: Session, ctx: Ctx, data: bytes, *, strict: bool = False) -> ImportReport:
    """Import a residents CSV. Bad rows are reported with their line and reason; good rows are
    written in the caller's transaction, so an error half-way writes nothing. With ``strict``
    any bad row rejects the whole file. Re-importing the same file creates no duplicates:
    a row matches an existing resident by phone, or else by name within the same unit, or
    (a row with neither phone nor unit) by name among residents without either."""
    ctx.require(Perm.PEOPLE_IMPORT)
    text = _decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    mapping: dict[str, str] = {}
    for h in header:
        for col, names in COLUMNS.items():
            if h.lower() in names:
                mapping[h] = col
    headers = {col: h for h, col in reversed(mapping.items())}
    if "name" not in mapping.values():
        raise ValidationFailed(
            "The file has no 'name' (姓名) column. Expected columns: %(cols)s",
            params={"cols": ", ".join(EXPORT_COLUMNS)},
            code="bad_header",
            field="file",
        )
    report = ImportReport()
    parsed: list[tuple[int, str | None, str | None, float | None, ResidentIn]] = []
    seen_phones: dict[str, int] = {}
    for i, row in enumerate(reader):
        # the physical line where the row starts: blank lines and line breaks inside quoted
        # fields count, as in the user's editor (the header is line 1)
        line = reader.line_num - sum(v.count("\n") for v in row.values() if isinstance(v, str))
        if i >= MAX_IMPORT_ROWS:
            raise ValidationFailed(
                "The file has more than %(n)s rows.",
                params={"n": MAX_IMPORT_ROWS},
                code="too_many_rows",
                field="file",
            )
        if None in row:
            report.rejected.append(
                ImportRowError(line=line, reason=gettext("This row has too many fields."))
            )
            continue
        canon = {mapping[k.strip()]: v for k, v in row.items() if k and k.strip() in mapping}
        if not any((v or "").strip() for v in canon.values()):
            continue  # blank line
        try:
            b, u, area, rin = _parse_row(canon, line, headers)
        except ValueError as exc:
            report.rejected.append(ImportRowError(line=line, reason=_row_reason(exc, headers)))
            continue
        if rin.phone:
            if rin.phone in seen_phones:
                report.rejected.append(
                    ImportRowError(
                        line=line,
                        reason=gettext(
                            "The phone number %(phone)s is already used on line %(line)s.",
                            phone=rin.phone,
                            line=seen_phones[rin.phone],
                        ),
                    )
                )
                continue
            seen_phones[rin.phone] = line
        parsed.append((line, b, u, area, rin))
    if strict and report.rejected:
        return ImportReport(rejected=report.rejected)

    buildings = {
        b.name: b
        for b in s.scalars(select(Building).where(Building.community_id == ctx.community_id))
    }
    for line, bname, ulabel, area, rin in parsed:
        counts = {"buildings": 0, "units": 0}
        outcome = "unchanged"
        new_building: str | None = None
        try:
            with s.begin_nested():  # a row that fails in the database is undone alone
                unit: Unit | None = None
                if bname and ulabel:
                    bld = buildings.get(bname)
                    if bld is None:
                        bld = Building(community_id=ctx.community_id, name=bname)
                        s.add(bld)
                        s.flush()
                        buildings[bname] = bld
                        new_building = bname
                        counts["buildings"] += 1
                    unit = s.scalar(
                        select(Unit).where(Unit.building_id == bld.id, Unit.label == ulabel)
                    )
                    if unit is None:
                        unit = Unit(
                            community_id=ctx.community_id,
                            building_id=bld.id,
                            label=ulabel,
                            area_m2=area,
                        )
                        s.add(unit)
                        s.flush()
                        counts["units"] += 1
                    elif area is not None and unit.area_m2 != area:
                        unit.area_m2 = area
                    rin.unit_id = unit.id
                existing = _match_existing(s, ctx, rin, unit)
                if existing is None:
                    r = Resident(community_id=ctx.community_id, name=rin.name, tags=[])
                    s.add(r)
                    s.flush()
                    _apply(s, ctx, r, rin)
                    outcome = "created"
                elif _apply(s, ctx, existing, rin):
                    outcome = "updated"
                s.flush()
        except (NotFound, Conflict, ValidationFailed) as exc:
            report.rejected.append(ImportRowError(line=line, reason=_row_reason(exc, headers)))
            if new_building:
                buildings.pop(new_building, None)
            continue
        except IntegrityError:
            report.rejected.append(
                ImportRowError(line=line, reason=gettext("This row conflicts with existing data."))
            )
            if new_building:
                buildings.pop(new_building, None)
            continue
        report.buildings_created += counts["buildings"]
        report.units_created += counts["units"]
        setattr(report, outcome, getattr(report, outcome) + 1)
    report.rejected.sort(key=lambda e: e.line)
    audit.record(
        s,
        ctx.actor,
        "residents.imported",
        "resident",
        None,
        community_id=ctx.community_id,
        details=report.model_dump(exclude={"rejected"}) | {"rejected": len(report.rejected)},
    )
    events.emit(
        s,
        "people.residents.imported",
        report.model_dump(exclude={"rejected"}),
        community_id=ctx.community_id,
    )
    return report


def _match_existing(s: Session, ctx: Ctx, rin: ResidentIn, unit: Unit | None) -> Resident | None:
    base = select(Resident).where(Resident.community_id == ctx.community_id)
    if rin.phone:
        r = s.scalar(base.where(Resident.phone == rin.phone))
        if r is not None:
            return r
    if unit is not None:
        q = base.join(Household, Resident.household_id == Household.id).where(
            Household.unit_id == unit.id, Resident.name == rin.name
        )
        return s.scalar(q)
    if not rin.phone:
        q = base.where(
            Resident.name == rin.name, Resident.phone.is_(None), Resident.household_id.is_(None)
        )
        return s.scalar(q.order_by(Resident.id))
    return None


def export_residents(s: Session, ctx: Ctx) -> str:
    """CSV with the import's columns (UTF-8 with BOM so spreadsheet programs read Chinese)."""
    ctx.require(Perm.PEOPLE_READ)
    show = ctx.can(Perm.PEOPLE_SENSITIVE)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(EXPORT_COLUMNS)
    _, rows = search_residents(s, ctx, limit=10**9)
    for o in residents_out(s, ctx, rows, sensitive=show):
        unit = s.get(Unit, o.unit_id) if o.unit_id else None
        w.writerow(
            [
                o.building or "",
                o.unit_label or "",
                (unit.area_m2 if unit and unit.area_m2 else ""),
                o.name,
                o.phone or "",
                o.birth_year or "",
                o.gender or "",
                o.household_role or "",
                "yes" if o.owner else "no",
                ";".join(o.tags),
                o.emergency_contact_name or "",
                o.emergency_contact_phone or "",
                o.emergency_contact_relation or "",
            ]
        )
    audit.record(
        s,
        ctx.actor,
        "residents.exported",
        "resident",
        None,
        community_id=ctx.community_id,
        details={"rows": len(rows), "sensitive": show},
    )
    return "\ufeff" + buf.getvalue()


def residents_by_ids(s: Session, ctx: Ctx, ids: Iterable[int]) -> Sequence[Resident]:
    ids = list(ids)
    if not ids:
        return []
    return list(s.scalars(_resident_query(ctx).where(Resident.id.in_(ids))))
