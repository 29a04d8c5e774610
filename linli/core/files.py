"""Content-addressed file store under the data directory (photos, snapshots, audio)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

_HEX = set("0123456789abcdef")


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or not set(digest) <= _HEX:
            raise ValueError("not a sha256 digest")
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        return digest

    def get(self, digest: str) -> bytes:
        return self._path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        try:
            return self._path(digest).exists()
        except ValueError:
            return False

    def delete(self, digest: str) -> bool:
        try:
            self._path(digest).unlink()
            return True
        except (FileNotFoundError, ValueError):
            return False


def expire_media(
    s: Session,
    files: FileStore,
    model: type[Any],
    *,
    cutoff: datetime,
    time_attr: str = "at",
    sha_attrs: Sequence[str] = ("snapshot_sha256",),
) -> int:
    """Retention of pictures kept by rows of ``model``: rows older than ``cutoff`` lose their
    file references (the rows stay), and each file goes from the store unless a newer row of
    the same columns still refers to it (the store is content-addressed: two events may share
    one picture). Returns the number of rows changed; the caller commits and audits."""
    when = getattr(model, time_attr)
    columns = [getattr(model, a) for a in sha_attrs]
    rows = list(
        s.scalars(select(model).where(when < cutoff, or_(*[c.is_not(None) for c in columns])))
    )
    old: set[str] = set()
    for row in rows:
        for attr in sha_attrs:
            digest = getattr(row, attr)
            if digest:
                old.add(digest)
                setattr(row, attr, None)
    s.flush()
    if old:
        still: set[str] = set()
        for col in columns:
            still.update(s.scalars(select(col).where(col.in_(old))))
        for digest in old - still:
            files.delete(digest)
    return len(rows)
