"""The ``linli`` command: db upgrade, user create, import residents, audit verify.

Each test uses its own data directory with an SQLite database (also when the rest of the
suite runs on PostgreSQL), so the commands run exactly as an operator would run them.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from _speed import speed_ups  # noqa: F401
from sqlalchemy import select
from typer.testing import CliRunner

from linli.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data directory; no configuration leaks in from the environment."""
    for var in ("LINLI_DATABASE_URL", "LINLI_DATA_DIR", "LINLI_SECRET_KEY", "LINLI_ENCRYPTION_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LINLI_CONFIG", str(tmp_path / "no-such-config.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _out(result):
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture
def migrated(data_dir):
    result = run("db", "upgrade", "--data-dir", data_dir)
    assert result.exit_code == 0, _out(result)
    return data_dir


def _db(data_dir):
    from linli.core.db import Database

    return Database(f"sqlite:///{(data_dir / 'linli.db').resolve()}")


@pytest.fixture
def community(migrated):
    from linli.people.models import Community

    db = _db(migrated)
    with db.session() as s:
        s.add(Community(code="a", name="甲社区"))
    db.dispose()
    return "a"


def test_db_upgrade_creates_the_schema_and_is_repeatable(data_dir):
    from linli.core.migrate import SchemaOutdated, check_schema

    url = f"sqlite:///{(data_dir / 'linli.db').resolve()}"
    result = run("db", "upgrade", "--data-dir", data_dir)
    assert result.exit_code == 0, _out(result)
    assert "up to date" in result.output
    check_schema(url)  # raises if not at the newest revision
    again = run("db", "upgrade", "--data-dir", data_dir)
    assert again.exit_code == 0, _out(again)
    check_schema(url)
    (data_dir / "linli.db").unlink()
    with pytest.raises(SchemaOutdated):
        check_schema(url)


def test_user_create_platform_admin(migrated):
    from linli.core.models import AuditEntry, RoleGrant, User
    from linli.core.security import verify_password

    result = run(
        "user",
        "create",
        "root",
        "--password",
        "abc12345x",
        "--name",
        "管理员",
        "--data-dir",
        migrated,
    )
    assert result.exit_code == 0, _out(result)
    assert "created user root" in result.output
    db = _db(migrated)
    try:
        with db.session() as s:
            user = s.scalar(select(User).where(User.username == "root"))
            assert user.display_name == "管理员"
            assert verify_password(user.password_hash, "abc12345x")
            grants = [(g.role, g.community_id) for g in s.scalars(select(RoleGrant))]
            assert grants == [("platform_admin", None)]
            assert s.scalar(select(AuditEntry.action)) == "user.created"
    finally:
        db.dispose()


def test_user_create_in_a_community(community, migrated):
    from linli.core.models import RoleGrant, User

    result = run(
        "user",
        "create",
        "wang",
        "--role",
        "staff",
        "--community",
        community,
        "--password",
        "abc12345x",
        "--data-dir",
        migrated,
    )
    assert result.exit_code == 0, _out(result)
    db = _db(migrated)
    try:
        with db.session() as s:
            user = s.scalar(select(User).where(User.username == "wang"))
            grant = s.scalar(select(RoleGrant).where(RoleGrant.user_id == user.id))
            assert grant.role == "staff" and grant.community_id is not None
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "janitor"], "unknown role"),
        (["--role", "staff"], "--community"),
        (["--role", "staff", "--community", "nowhere"], "nowhere"),
        (["--password", "abcdefghij"], "letters"),
        (["--password", "short1"], "password"),
    ],
)
def test_user_create_refusals_exit_1(community, migrated, args, message):
    from linli.core.models import User

    if "--password" not in args:
        args = [*args, "--password", "abc12345x"]
    result = run("user", "create", "lily", *args, "--data-dir", migrated)
    assert result.exit_code == 1, _out(result)
    assert message in _out(result)
    db = _db(migrated)
    try:
        with db.session() as s:
            assert s.scalar(select(User).where(User.username == "lily")) is None
    finally:
        db.dispose()


def test_user_create_duplicate_username_exits_1(migrated):
    assert (
        run("user", "create", "root", "--password", "abc12345x", "--data-dir", migrated).exit_code
        == 0
    )
    again = run("user", "create", "root", "--password", "abc12345x", "--data-dir", migrated)
    assert again.exit_code == 1
    assert "taken" in _out(again)


def _residents(data_dir):
    from linli.people.models import Resident

    db = _db(data_dir)
    try:
        with db.session() as s:
            return sorted(s.scalars(select(Resident.name)))
    finally:
        db.dispose()


def test_import_residents_good_file(community, migrated, tmp_path):
    csv_file = tmp_path / "residents.csv"
    csv_file.write_bytes(
        "楼栋,房号,姓名,电话\n1号楼,1-101,张三,13900000001\n1号楼,1-102,李四,\n".encode("gb18030")
    )
    result = run("import", "residents", csv_file, "--community", community, "--data-dir", migrated)
    assert result.exit_code == 0, _out(result)
    report = json.loads(result.stdout)
    assert report["created"] == 2 and report["rejected"] == []
    assert _residents(migrated) == ["张三", "李四"]
    again = run("import", "residents", csv_file, "--community", community, "--data-dir", migrated)
    assert again.exit_code == 0
    assert json.loads(again.stdout)["unchanged"] == 2
    assert _residents(migrated) == ["张三", "李四"]


def test_import_residents_with_bad_rows_exits_1_and_reports_them(community, migrated, tmp_path):
    csv_file = tmp_path / "residents.csv"
    csv_file.write_text("name,phone\n好人,13900000001\n坏号码,xyz\n", encoding="utf-8")
    result = run("import", "residents", csv_file, "--community", community, "--data-dir", migrated)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [e["line"] for e in report["rejected"]] == [3]
    assert _residents(migrated) == ["好人"]


def test_import_residents_strict_writes_nothing(community, migrated, tmp_path):
    csv_file = tmp_path / "residents.csv"
    csv_file.write_text("name,phone\n好人,13900000001\n坏号码,xyz\n", encoding="utf-8")
    result = run(
        "import",
        "residents",
        csv_file,
        "--community",
        community,
        "--strict",
        "--data-dir",
        migrated,
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["created"] == 0
    assert _residents(migrated) == []


def test_import_residents_refusals(community, migrated, tmp_path):
    no_name = tmp_path / "no-name.csv"
    no_name.write_text("phone\n13900000001\n", encoding="utf-8")
    result = run("import", "residents", no_name, "--community", community, "--data-dir", migrated)
    assert result.exit_code == 1
    assert "name" in _out(result) and "姓名" in _out(result)
    ok = tmp_path / "ok.csv"
    ok.write_text("name\n甲\n", encoding="utf-8")
    result = run("import", "residents", ok, "--community", "nowhere", "--data-dir", migrated)
    assert result.exit_code == 1
    assert "nowhere" in _out(result)
    result = run(
        "import",
        "residents",
        tmp_path / "missing.csv",
        "--community",
        community,
        "--data-dir",
        migrated,
    )
    assert result.exit_code == 2  # click's usage error: the file does not exist
    assert _residents(migrated) == []


def test_audit_verify_exit_codes(community, migrated, tmp_path):
    for name in ("user1", "user2", "user3"):
        assert (
            run("user", "create", name, "--password", "abc12345x", "--data-dir", migrated).exit_code
            == 0
        )
    result = run("audit", "verify", "--data-dir", migrated)
    assert result.exit_code == 0, _out(result)
    assert "intact" in result.output and "3 entries" in result.output

    conn = sqlite3.connect(migrated / "linli.db")
    with conn:
        conn.execute(
            "UPDATE audit_log SET actor = 'nobody' WHERE id = (SELECT min(id) FROM audit_log)"
        )
    conn.close()
    result = run("audit", "verify", "--data-dir", migrated)
    assert result.exit_code == 1
    assert "TAMPERED" in _out(result)
    assert "edited" in _out(result)


def test_audit_verify_detects_deleted_newest_entry(migrated):
    for name in ("user1", "user2"):
        assert (
            run("user", "create", name, "--password", "abc12345x", "--data-dir", migrated).exit_code
            == 0
        )
    conn = sqlite3.connect(migrated / "linli.db")
    with conn:
        conn.execute("DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)")
    conn.close()
    result = run("audit", "verify", "--data-dir", migrated)
    assert result.exit_code == 1
    assert "newest" in _out(result)


def test_audit_verify_on_a_fresh_database(migrated):
    result = run("audit", "verify", "--data-dir", migrated)
    assert result.exit_code == 0
    assert "0 entries" in result.output
