"""A plausible demo community: buildings, households, about 300 residents, staff of every role."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.core import audit
from linli.core.models import RoleGrant, User
from linli.core.roles import Role
from linli.core.security import hash_password
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

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤"
)
GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建国志文博晨"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀玲桂英燕红梅琳雪倩婷慧颖洁琴云莉萍兰凤佳欣怡悦"
RELATIONS = ["子女", "女儿", "儿子", "侄子", "外甥女"]

ACTOR = audit.Actor.system("demo")


@dataclass
class DemoLogin:
    username: str
    password: str
    role: str
    display_name: str


def _name(rng: random.Random, gender: str, surname: str | None = None) -> str:
    s = surname or rng.choice(SURNAMES)
    pool = GIVEN_MALE if gender == "male" else GIVEN_FEMALE
    given = rng.choice(pool) + (rng.choice(pool) if rng.random() < 0.7 else "")
    return s + given


def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        p = rng.choice(["139", "138", "137", "136", "135", "150", "151", "158", "186", "188"])
        p += f"{rng.randrange(10**8):08d}"
        if p not in used:
            used.add(p)
            return p


def seed_community(
    s: Session,
    *,
    code: str,
    name: str,
    name_en: str,
    buildings: int,
    entrances: int,
    floors: int,
    rooms_per_floor: int,
    target_residents: int,
    seed: int,
) -> Community:
    rng = random.Random(seed)
    c = Community(
        code=code, name=name, name_en=name_en, address=f"{name}, 上海市", timezone="Asia/Shanghai"
    )
    s.add(c)
    s.flush()
    grids = [Grid(community_id=c.id, name=f"第{i + 1}网格") for i in range((buildings + 1) // 2)]
    s.add_all(grids)
    s.flush()
    units: list[Unit] = []
    for b in range(buildings):
        bld = Building(
            community_id=c.id,
            name=f"{b + 1}号楼",
            floors=floors,
            grid_id=grids[b // 2].id,
            map_x=0.15 + 0.25 * (b % 4),
            map_y=0.2 + 0.3 * (b // 4),
        )
        s.add(bld)
        s.flush()
        for e in range(1, entrances + 1):
            for f in range(1, floors + 1):
                for r in range(1, rooms_per_floor + 1):
                    u = Unit(
                        community_id=c.id,
                        building_id=bld.id,
                        label=f"{e}-{f}{r:02d}",
                        floor=f,
                        area_m2=rng.choice([58.6, 72.3, 89.5, 96.8, 112.4, 128.0]),
                    )
                    s.add(u)
                    units.append(u)
    s.flush()
    used: set[str] = set()
    count = 0
    rng.shuffle(units)
    for u in units:
        if count >= target_residents:
            break
        h = Household(community_id=c.id, unit_id=u.id)
        s.add(h)
        s.flush()
        surname = rng.choice(SURNAMES)
        kind = rng.random()
        members: list[tuple[str, int, str]] = []  # role, birth year, gender
        if kind < 0.12:  # an elderly person living alone
            members = [("owner", rng.randint(1936, 1956), rng.choice(["male", "female"]))]
        elif kind < 0.3:  # elderly couple
            y = rng.randint(1940, 1960)
            members = [("owner", y, "male"), ("spouse", y + rng.randint(-3, 3), "female")]
        elif kind < 0.45:  # tenants
            members = [("tenant", rng.randint(1985, 2000), rng.choice(["male", "female"]))]
            if rng.random() < 0.5:
                members.append(("tenant", rng.randint(1985, 2000), rng.choice(["male", "female"])))
        else:  # family
            y = rng.randint(1970, 1992)
            members = [("owner", y, "male"), ("spouse", y + rng.randint(-3, 3), "female")]
            for _ in range(rng.choice([0, 1, 1, 2])):
                members.append(
                    ("child", rng.randint(max(y + 22, 1995), 2022), rng.choice(["male", "female"]))
                )
            if rng.random() < 0.2:
                members.append(("parent", rng.randint(1940, 1955), rng.choice(["male", "female"])))
        alone = len(members) == 1
        for i, (role, by, gender) in enumerate(members):
            sn = (
                surname
                if role in ("owner", "child") or (role == "tenant" and i == 0)
                else rng.choice(SURNAMES)
            )
            tags: list[str] = []
            if by <= 1961:
                tags.append("elderly")
                if alone:
                    tags.append("lives_alone")
                if by <= 1945 and rng.random() < 0.4:
                    tags.append("needs_care")
            if rng.random() < 0.02:
                tags.append("disabled")
            if rng.random() < 0.06 and by < 2000:
                tags.append("volunteer")
            person = Resident(
                community_id=c.id,
                household_id=h.id,
                name=_name(rng, gender, sn),
                phone=_phone(rng, used) if by < 2008 else None,
                birth_year=by,
                gender=gender,
                household_role=role,
                tags=sorted(tags),
            )
            if "elderly" in tags:
                person.emergency_contact_name = _name(rng, rng.choice(["male", "female"]), surname)
                person.emergency_contact_phone = _phone(rng, used)
                person.emergency_contact_relation = rng.choice(RELATIONS)
            s.add(person)
            s.flush()
            if role == "owner":
                s.add(Ownership(community_id=c.id, resident_id=person.id, unit_id=u.id))
            count += 1
    s.flush()
    audit.record(
        s,
        ACTOR,
        "community.created",
        "community",
        c.id,
        community_id=c.id,
        details={"demo": True, "residents": count},
    )
    return c


STAFF = [
    ("admin", "平台管理员 Admin", Role.PLATFORM_ADMIN),
    ("staff", "居委会 王主任", Role.STAFF),
    ("grid1", "网格员 李晓", Role.GRID_WORKER),
    ("grid2", "网格员 陈静", Role.GRID_WORKER),
    ("grid3", "网格员 赵磊", Role.GRID_WORKER),
    ("property", "物业经理 周强", Role.PROPERTY_MANAGER),
    ("guard", "保安 孙军", Role.SECURITY_GUARD),
    ("lawyer", "律师 吴敏", Role.PROFESSIONAL),
    ("resident", "居民", Role.RESIDENT),
]


def seed_demo(s: Session, password: str | None = None) -> tuple[Community, list[DemoLogin]]:
    """Create the demo communities and users. Returns the main community and the log-ins."""
    existing = s.scalar(select(Community).where(Community.code == "xingfuli"))
    if existing is not None:
        raise RuntimeError("demo data already present")
    c = seed_community(
        s,
        code="xingfuli",
        name="幸福里社区",
        name_en="Xingfuli Community",
        buildings=6,
        entrances=2,
        floors=6,
        rooms_per_floor=2,
        target_residents=300,
        seed=2026,
    )
    other = seed_community(
        s,
        code="heping",
        name="和平苑社区",
        name_en="Heping Garden",
        buildings=2,
        entrances=1,
        floors=5,
        rooms_per_floor=2,
        target_residents=30,
        seed=7,
    )
    logins: list[DemoLogin] = []
    grids = list(s.scalars(select(Grid).where(Grid.community_id == c.id).order_by(Grid.id)))
    grid_workers = iter(grids)
    resident_record = s.scalar(
        select(Resident)
        .where(Resident.community_id == c.id, Resident.household_role == "owner")
        .order_by(Resident.id)
    )
    for username, display, role in STAFF:
        pw = password or secrets.token_urlsafe(9)
        user = User(
            username=username,
            display_name=display,
            password_hash=hash_password(pw),
            language="zh_CN",
        )
        if role == Role.RESIDENT and resident_record is not None:
            user.resident_id = resident_record.id
            user.display_name = resident_record.name
        s.add(user)
        s.flush()
        s.add(
            RoleGrant(
                user_id=user.id,
                community_id=None if role == Role.PLATFORM_ADMIN else c.id,
                role=role.value,
            )
        )
        if role == Role.GRID_WORKER:
            g = next(grid_workers, None)
            if g is not None:
                g.worker_user_id = user.id
        if role == Role.PROFESSIONAL:
            s.add(
                Professional(
                    community_id=c.id,
                    name="吴敏",
                    profession="lawyer",
                    organisation="上海明理律师事务所",
                    user_id=user.id,
                )
            )
        logins.append(DemoLogin(username, pw, role.value, user.display_name))
    # staff of the second community: shows that tenants are separated
    pw = password or secrets.token_urlsafe(9)
    u2 = User(
        username="heping_staff", display_name="和平苑 刘主任", password_hash=hash_password(pw)
    )
    s.add(u2)
    s.flush()
    s.add(RoleGrant(user_id=u2.id, community_id=other.id, role=Role.STAFF.value))
    logins.append(DemoLogin("heping_staff", pw, "staff (和平苑)", u2.display_name))
    for prof, nm, org in [
        ("teacher", "郑老师", "幸福里小学"),
        ("police_officer", "马警官", "幸福里派出所"),
        ("property_manager", "周强", "绿城物业"),
        ("doctor", "何医生", "社区卫生服务中心"),
        ("social_worker", "林社工", "阳光社工站"),
    ]:
        s.add(Professional(community_id=c.id, name=nm, profession=prof, organisation=org))
    s.flush()
    return c, logins
