"""Shared set-up for the waste tests: a station with bins and devices, a resident with a
card, a terminal token, a real photo."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linli.core.web import system_ctx
from linli.waste import service
from linli.waste.schemas import BinIn, StationIn, Window


@dataclass
class Site:
    station: int
    bins: dict[str, int]
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    terminal_key: str = ""
    terminal_secret: str = ""


def make_site(
    db: Any,
    cid: int,
    name: str = "1号投放点",
    hours: list[tuple[str, str]] | None = None,
    building_id: int | None = None,
) -> Site:
    with db.session() as s:
        ctx = system_ctx(cid)
        st, secrets = service.create_station(
            s,
            ctx,
            StationIn(
                name=name,
                location="1号楼东侧",
                building_id=building_id,
                hours=[Window(start=a, end=b) for a, b in (hours or [])],
            ),
        )
        site = Site(station=st.id, bins={})
        term = next(d for d in secrets if d["role"] == "terminal")
        site.terminal_key, site.terminal_secret = term["key"], term["secret"]
        for cat in ("recyclable", "hazardous", "kitchen", "residual", "bulky"):
            b, devs = service.add_bin(s, ctx, st.id, BinIn(category=cat))
            site.bins[cat] = b.id
            for d in devs:
                site.devices[f"{cat}.{d['role']}"] = d
    return site


def resident_card(db: Any, settings: Any, cid: int, resident_id: int, card: str) -> int:
    from linli.access import service as access
    from linli.access.schemas import CredentialIn, IdentityIn

    with db.session() as s:
        ctx = system_ctx(cid)
        ident = access.create_identity(
            s, ctx, IdentityIn(kind="resident", name="居民", resident_id=resident_id)
        )
        access.add_credential(s, ctx, ident.id, CredentialIn(kind="card", value=card), settings)
        return ident.id


def token(db: Any, cid: int, perms: list[str]) -> str:
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


def photo(shared_data: Path) -> bytes:
    """A real JPEG photograph (a street scene from the shared data)."""
    return sorted((shared_data / "plates").glob("*.jpg"))[0].read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
