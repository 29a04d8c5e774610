"""Living environment: stations, bins, deposits, supervision, voice prompts

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

Tables of the waste domain (see linli/waste/models.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

import linli.core.db  # noqa: F401

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
