"""Demo data of access control: residents enrolled with the real photos of
``../shared/data/faces/gallery`` (with recorded consent), cards and PINs, gates with gate
devices, a few visitors and a week of passages for the flow dashboard."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from linli.access import service
from linli.access.models import AccessEvent, Gate
from linli.access.schemas import ConsentIn, CredentialIn, GateIn, Hours, IdentityIn, VisitorIn
from linli.core.config import Settings, make_settings
from linli.core.db import utcnow
from linli.core.files import FileStore
from linli.core.web import system_ctx

REPO = Path(__file__).resolve().parent.parent.parent
SHARED_FACES = REPO.parent / "shared" / "data" / "faces" / "gallery"


def seed_access(
    s: Session,
    community_id: int,
    files: FileStore,
    settings: Settings | None = None,
    gallery_dir: Path | None = None,
) -> None:
    """Seed the community's access control (idempotent: does nothing if gates exist)."""
    if s.scalar(select(Gate.id).where(Gate.community_id == community_id)) is not None:
        return
    # the settings whose encryption key goes with this data directory (files live under it)
    settings = settings or make_settings(data_dir=files.root.parent)
    from linli.people.models import Community

    c = s.get(Community, community_id)
    ctx = system_ctx(community_id, "demo", c.timezone if c else "Asia/Shanghai")
    rng = random.Random(7)

    gates = []
    for name, direction, policy in (
        (
            "东门 East gate",
            "both",
            {
                "resident": Hours(),
                "staff": Hours(),
                "visitor": Hours(),
                "delivery": Hours(start="08:00", end="21:00"),
            },
        ),
        ("北门 North gate", "both", {"resident": Hours(), "staff": Hours()}),
    ):
        g = service.save_gate(s, ctx, GateIn(name=name, direction=direction, policy=policy))
        service.ensure_gate_device(s, ctx, g)
        gates.append(g)

    from linli.people import service as people

    _total, residents = people.search_residents(s, ctx, limit=40, offset=0)
    identities = []
    for i, r in enumerate(residents):
        ident = service.identity_for_resident(s, ctx, r.id)
        identities.append(ident)
        service.add_credential(
            s, ctx, ident.id, CredentialIn(kind="card", value=f"C{10000 + r.id}"), settings
        )
        if i % 3 == 0:
            service.add_credential(
                s, ctx, ident.id, CredentialIn(kind="pin", value=f"{1000 + r.id:06d}"), settings
            )

    folder = gallery_dir or SHARED_FACES
    if folder.is_dir():
        people_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
        for ident, person in zip(identities, people_dirs, strict=False):
            service.record_consent(s, ctx, ident.id, ConsentIn(given_by=ident.name, note="demo"))
            for photo in sorted(person.iterdir())[:2]:
                service.enroll_face(s, ctx, ident.id, photo.read_bytes(), settings, files)

    courier = service.create_identity(s, ctx, IdentityIn(kind="delivery", name="快递员 小刘"))
    service.add_credential(s, ctx, courier.id, CredentialIn(kind="card", value="D2001"), settings)
    now = utcnow()
    for name, purpose in (("王阿姨", "探亲"), ("维修师傅", "上门维修")):
        service.create_visitor(
            s,
            ctx,
            VisitorIn(
                name=name,
                purpose=purpose,
                valid_from=now,
                valid_until=now + timedelta(hours=6),
                max_uses=2,
            ),
            settings,
        )

    # a week of passages, busier in the morning and the evening
    if identities:
        for day in range(7, 0, -1):
            for hour in range(24):
                base = 2 if hour < 6 else 8 if hour in (7, 8, 17, 18, 19) else 4
                for _ in range(rng.randint(0, base)):
                    at = (now - timedelta(days=day)).replace(
                        hour=hour, minute=rng.randint(0, 59)
                    ) - timedelta(hours=8)
                    s.add(
                        AccessEvent(
                            community_id=community_id,
                            gate_id=rng.choice(gates).id,
                            identity_id=rng.choice(identities).id,
                            at=at,
                            method=rng.choice(("face", "card", "card", "pin")),
                            direction="in" if rng.random() < 0.5 else "out",
                            granted=True,
                            reason="granted",
                            actor="demo",
                        )
                    )
    s.flush()
