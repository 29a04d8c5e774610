"""Configuration: generated secrets, TOML file and environment precedence, and the schema
check that stops a server from starting on an outdated database."""

from __future__ import annotations

import stat

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from linli.core.config import Settings, make_settings
from linli.core.migrate import SchemaOutdated, check_schema, head_revisions, upgrade


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean environment: no LINLI_* variables, no linli.toml in the working directory."""
    import os

    for var in list(os.environ):
        if var.startswith("LINLI_") and var != "LINLI_TEST_DATABASE_URL":
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_secrets_are_generated_private_and_kept(env, tmp_path):
    data = tmp_path / "data"
    first = make_settings(data_dir=data)
    for name, value in (("secret_key", first.secret_key), ("encryption_key", first.encryption_key)):
        path = data / name
        assert path.is_file()
        assert _mode(path) == 0o600, oct(_mode(path))
        assert path.read_text().strip() == value
        assert len(value) == 64 and int(value, 16) >= 0
    assert first.secret_key != first.encryption_key
    second = make_settings(data_dir=data)  # next start: the same secrets
    assert (second.secret_key, second.encryption_key) == (first.secret_key, first.encryption_key)
    other = make_settings(data_dir=tmp_path / "other")  # another installation: its own
    assert other.secret_key != first.secret_key


def test_given_secrets_are_not_written(env, tmp_path):
    key = "ab" * 32
    env.setenv("LINLI_SECRET_KEY", "from-the-environment")
    settings = make_settings(data_dir=tmp_path / "data", encryption_key=key)
    assert settings.secret_key == "from-the-environment"
    assert settings.encryption_key == key
    assert not (tmp_path / "data" / "secret_key").exists()
    assert not (tmp_path / "data" / "encryption_key").exists()


def test_bad_encryption_key_is_refused(env, tmp_path):
    with pytest.raises(ValueError, match="64 hex"):
        make_settings(data_dir=tmp_path / "data", encryption_key="ab" * 16)


def test_encryption_key_round_trip(env, tmp_path):
    from linli.core.security import Cipher

    settings = make_settings(data_dir=tmp_path / "data")
    cipher = Cipher(settings.encryption_key)
    blob = cipher.encrypt(b"face template", b"resident:1")
    assert b"face template" not in blob
    assert cipher.decrypt(blob, b"resident:1") == b"face template"


def _write_toml(path, data_dir):
    path.write_text(
        f'data_dir = "{data_dir}"\n'
        'default_language = "en"\n'
        "session_max_age = 100\n"
        "max_upload_bytes = 5000\n"
        'default_timezone = "Asia/Urumqi"\n',
        encoding="utf-8",
    )


def test_toml_file_named_by_linli_config(env, tmp_path):
    cfg = tmp_path / "conf" / "site.toml"
    cfg.parent.mkdir()
    _write_toml(cfg, tmp_path / "toml-data")
    env.setenv("LINLI_CONFIG", str(cfg))
    settings = make_settings()
    assert settings.data_dir == tmp_path / "toml-data"
    assert settings.default_language == "en"
    assert settings.session_max_age == 100
    assert settings.max_upload_bytes == 5000
    assert settings.default_timezone == "Asia/Urumqi"
    assert settings.login_max_failures == Settings.model_fields["login_max_failures"].default
    assert (tmp_path / "toml-data" / "secret_key").exists()


def test_linli_toml_in_the_working_directory(env, tmp_path):
    _write_toml(tmp_path / "linli.toml", tmp_path / "cwd-data")
    settings = make_settings()
    assert settings.data_dir == tmp_path / "cwd-data"
    assert settings.session_max_age == 100


def test_environment_beats_toml_and_arguments_beat_both(env, tmp_path):
    _write_toml(tmp_path / "linli.toml", tmp_path / "cwd-data")
    env.setenv("LINLI_SESSION_MAX_AGE", "200")
    env.setenv("LINLI_DEFAULT_LANGUAGE", "zh_CN")
    env.setenv("LINLI_DATA_DIR", str(tmp_path / "env-data"))
    settings = make_settings()
    assert settings.session_max_age == 200  # env over TOML
    assert settings.default_language == "zh_CN"
    assert settings.max_upload_bytes == 5000  # TOML over default
    assert settings.data_dir == tmp_path / "env-data"
    explicit = make_settings(session_max_age=300, data_dir=tmp_path / "arg-data")
    assert explicit.session_max_age == 300  # arguments over env
    assert explicit.data_dir == tmp_path / "arg-data"
    assert explicit.default_language == "zh_CN"


def test_defaults_without_any_configuration(env, tmp_path):
    settings = make_settings(data_dir=tmp_path / "d")
    assert settings.default_language == "zh_CN"
    assert settings.default_timezone == "Asia/Shanghai"
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.resolved_database_url == f"sqlite:///{(tmp_path / 'd' / 'linli.db').resolve()}"
    env.setenv("LINLI_DATABASE_URL", "postgresql+psycopg://u@h/db")
    assert (
        make_settings(data_dir=tmp_path / "d").resolved_database_url
        == "postgresql+psycopg://u@h/db"
    )


def test_bad_values_are_refused_with_the_field_name(env, tmp_path):
    from pydantic import ValidationError

    env.setenv("LINLI_SESSION_MAX_AGE", "a while")
    with pytest.raises(ValidationError, match="session_max_age"):
        make_settings(data_dir=tmp_path / "d")


# -- schema check ---------------------------------------------------------------------------


def test_check_schema_refuses_an_empty_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SchemaOutdated) as info:
        check_schema(url)
    message = str(info.value)
    assert "not up to date" in message
    assert "database: empty" in message
    assert "linli db upgrade" in message
    for head in head_revisions(url):
        assert head in message


def test_check_schema_refuses_an_older_or_unknown_revision(tmp_path):
    from linli.core.db import make_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    check_schema(url)  # at the newest revision: no error
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    engine.dispose()
    with pytest.raises(SchemaOutdated, match="0000_older"):
        check_schema(url)


def test_check_schema_accepts_the_test_database(database_url):
    """The session database (SQLite or PostgreSQL) was migrated to the newest revision."""
    check_schema(database_url)


def test_serve_on_an_unmigrated_database_exits_2_before_starting(env, tmp_path):
    import uvicorn

    from linli.cli import app

    def must_not_start(*args, **kwargs):  # only a guard: the test must not hang on a server
        raise AssertionError("the server was started on an outdated database")

    env.setattr(uvicorn, "run", must_not_start)
    data = tmp_path / "fresh"
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(data), "--port", "0"])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, out
    assert "not up to date" in out and "linli db upgrade" in out
    # after the upgrade the check passes
    upgrade(f"sqlite:///{(data / 'linli.db').resolve()}")
    check_schema(f"sqlite:///{(data / 'linli.db').resolve()}")
