"""Shared fixtures for the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (../shared/data). Skip when absent, except in CI where it must exist."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data folder missing in CI: {SHARED_DATA}")
        pytest.skip(f"shared data folder not found: {SHARED_DATA}")
    return SHARED_DATA


# -- database and app fixtures ---------------------------------------------------------------

import re  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from sqlalchemy import text  # noqa: E402

TEST_DB_URL = os.environ.get("LINLI_TEST_DATABASE_URL")
PASSWORD = "correct-horse-9"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A freshly migrated database for the session: PostgreSQL when LINLI_TEST_DATABASE_URL is
    set (CI runs the suite on both), else an SQLite file."""
    from linli.core.db import make_engine
    from linli.core.migrate import upgrade

    if TEST_DB_URL:
        url = TEST_DB_URL
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'linli-test.db'}"
    upgrade(url)
    return url


def _clean(url: str) -> None:
    from linli.core.db import make_engine
    from linli.models_registry import metadata

    engine = make_engine(url)
    names = [t.name for t in metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # DELETE of a few rows is much faster than TRUNCATE of ~40 tables; foreign-key
            # triggers are skipped for the clean-up (the test database's owner is superuser).
            conn.execute(text("SET session_replication_role = replica"))
            for n in reversed(names):
                conn.execute(text(f"DELETE FROM {n}"))
            conn.execute(text("SET session_replication_role = DEFAULT"))
            seqs = conn.execute(
                text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            ).scalars()
            for seq in list(seqs):
                conn.execute(text(f'ALTER SEQUENCE "{seq}" RESTART WITH 1'))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for n in names:
                conn.execute(text(f"DELETE FROM {n}"))
            conn.execute(text("DELETE FROM sqlite_sequence")) if conn.execute(
                text("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")
            ).first() else None
            conn.execute(text("PRAGMA foreign_keys=ON"))
    engine.dispose()


@pytest.fixture
def db_url(database_url: str) -> Iterator[str]:
    """The session database, emptied after each test."""
    yield database_url
    _clean(database_url)


@pytest.fixture
def settings(tmp_path: Path, db_url: str):  # type: ignore[no-untyped-def]
    from linli.core.config import make_settings

    return make_settings(data_dir=tmp_path / "data", database_url=db_url)


@pytest.fixture
def app(settings):  # type: ignore[no-untyped-def]
    from linli.app import create_app

    application = create_app(settings, run_dispatcher=False)
    yield application
    application.state.db.dispose()


@pytest.fixture
def db(app):  # type: ignore[no-untyped-def]
    """The app's Database (engine + sessions)."""
    return app.state.db


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        # A test that sets a cookie means "the browser now has this value": drop the one the
        # server set (log-in sets `lang` for its own domain), as a browser would replace it.
        # Otherwise both are sent and which one the server reads depends on the jar's order.
        jar = c.cookies
        plain_set = jar.set

        def replace(name: str, value: str, domain: str = "", path: str = "/") -> None:
            jar.delete(name)
            plain_set(name, value, domain, path)

        jar.set = replace  # type: ignore[method-assign]
        yield c


@dataclass
class World:
    """Two communities, with a user of every role in the first and staff in the second."""

    a: int
    b: int
    users: dict[str, int] = field(default_factory=dict)
    residents_a: list[int] = field(default_factory=list)
    residents_b: list[int] = field(default_factory=list)
    buildings_a: list[int] = field(default_factory=list)
    grid_a: int = 0


@pytest.fixture
def world(db) -> World:  # type: ignore[no-untyped-def]
    from linli.core.models import RoleGrant, User
    from linli.core.security import hash_password
    from linli.people.models import (
        Building,
        Community,
        Grid,
        Household,
        Ownership,
        Resident,
        Unit,
    )

    pw = hash_password(PASSWORD)
    with db.session() as s:
        ca = Community(code="a", name="甲社区", name_en="Community A")
        cb = Community(code="b", name="乙社区", name_en="Community B")
        s.add_all([ca, cb])
        s.flush()
        w = World(a=ca.id, b=cb.id)
        grid = Grid(community_id=ca.id, name="第一网格")
        s.add(grid)
        s.flush()
        w.grid_a = grid.id
        for cid, store in ((ca.id, w.residents_a), (cb.id, w.residents_b)):
            for bi in range(2):
                b = Building(
                    community_id=cid,
                    name=f"{bi + 1}号楼",
                    grid_id=grid.id if cid == ca.id and bi == 0 else None,
                )
                s.add(b)
                s.flush()
                if cid == ca.id:
                    w.buildings_a.append(b.id)
                u = Unit(community_id=cid, building_id=b.id, label="1-101", area_m2=90.0)
                s.add(u)
                s.flush()
                h = Household(community_id=cid, unit_id=u.id)
                s.add(h)
                s.flush()
                r = Resident(
                    community_id=cid,
                    household_id=h.id,
                    name=f"居民{cid}{bi}",
                    phone=f"1390000{cid}{bi}00"[:11],
                    birth_year=1950,
                    tags=["elderly"],
                )
                s.add(r)
                s.flush()
                s.add(Ownership(community_id=cid, resident_id=r.id, unit_id=u.id))
                store.append(r.id)
        roles = {
            "admin": ("platform_admin", None),
            "staff": ("staff", ca.id),
            "grid": ("grid_worker", ca.id),
            "property": ("property_manager", ca.id),
            "guard": ("security_guard", ca.id),
            "pro": ("professional", ca.id),
            "resident": ("resident", ca.id),
            "staff_b": ("staff", cb.id),
        }
        for name, (role, cid) in roles.items():
            u = User(
                username=name,
                display_name=name,
                password_hash=pw,
                language="en",
                resident_id=w.residents_a[0] if role == "resident" else None,
            )
            s.add(u)
            s.flush()
            s.add(RoleGrant(user_id=u.id, community_id=cid, role=role))
            w.users[name] = u.id
        grid.worker_user_id = w.users["grid"]
    return w


def login(client, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Log in through the real form (CSRF included). Returns the CSRF token of the session."""
    r = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[:500]
    r = client.get("/account")
    return re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
