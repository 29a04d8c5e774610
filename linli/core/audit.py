"""Tamper-evident audit log: append-only rows chained by SHA-256.

Each entry's hash covers its content and the previous entry's hash. A single-row head
table is updated first in the same transaction, which serialises writers on SQLite and
PostgreSQL alike and records the last hash, so deleting the newest entries is caught too.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from linli.core.db import Base, utcnow
from linli.core.models import AuditEntry

GENESIS = "0" * 64


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    count: Mapped[int] = mapped_column(Integer, default=0)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    name: str
    ip: str | None = None

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls(None, name, None)


def _canonical(entry: AuditEntry) -> bytes:
    at: datetime = entry.at
    doc = {
        "id": entry.id,
        "at": at.isoformat(timespec="microseconds"),
        "actor_user_id": entry.actor_user_id,
        "actor": entry.actor,
        "community_id": entry.community_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "details": entry.details,
        "ip": entry.ip,
        "prev_hash": entry.prev_hash,
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _digest(entry: AuditEntry) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


def _lock_head(session: Session) -> bool:
    res = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(count=AuditHead.count + 1)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    *,
    community_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry in the caller's transaction (it commits or rolls back with the change)."""
    # Lock the head row first: serialises concurrent writers on both backends.
    if not _lock_head(session):
        # The very first entry. Concurrent first writers race to create the head row: the
        # losers' insert fails against the winner's, and they then lock the winner's row.
        try:
            with session.begin_nested():
                session.add(AuditHead(id=1, last_id=0, last_hash=GENESIS, count=0))
        except IntegrityError:
            pass
        if not _lock_head(session):
            raise RuntimeError("audit head row missing")
    head = session.get(AuditHead, 1, populate_existing=True)
    assert head is not None
    at = utcnow()
    entry = AuditEntry(
        at=at,
        actor_user_id=actor.user_id,
        actor=actor.name,
        community_id=community_id,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=actor.ip,
        prev_hash=head.last_hash,
        hash=f"pending-{uuid.uuid4().hex}",
    )
    session.add(entry)
    session.flush()  # assigns the id, which the hash covers
    entry.hash = _digest(entry)
    head.last_id = entry.id
    head.last_hash = entry.hash
    session.flush()
    return entry


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problems: list[str]


def verify(session: Session) -> VerifyResult:
    """Walk the chain from the start; report every break."""
    problems: list[str] = []
    prev = GENESIS
    checked = 0
    last_id = 0
    for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000):
        checked += 1
        if entry.prev_hash != prev:
            problems.append(
                f"entry {entry.id}: previous-hash link broken (entry removed or reordered)"
            )
        if _digest(entry) != entry.hash:
            problems.append(f"entry {entry.id}: content does not match its hash (edited)")
        prev = entry.hash
        last_id = entry.id
    head = session.get(AuditHead, 1)
    if head is None:
        if checked:
            problems.append("audit head missing")
    else:
        if head.last_hash != prev or head.last_id != last_id:
            problems.append(
                f"head points at entry {head.last_id} but the chain ends at {last_id} "
                "(newest entries removed)"
            )
        if head.count != checked:
            problems.append(f"head counted {head.count} entries, found {checked}")
    return VerifyResult(ok=not problems, checked=checked, problems=problems)
