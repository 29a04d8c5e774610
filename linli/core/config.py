"""Configuration: ``LINLI_*`` environment variables and an optional TOML file.

Order of precedence (highest first): explicit keyword arguments, environment variables,
the TOML file named by ``LINLI_CONFIG`` (or ``linli.toml`` in the working directory),
then defaults. Secrets that are not given are generated on first start into the data
directory with 0600 permissions.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _toml_path() -> Path:
    return Path(os.environ.get("LINLI_CONFIG", "linli.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINLI_", extra="ignore")

    data_dir: Path = Field(
        default=Path("./var"), description="Where the database, files and secrets live"
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file"
    )
    secret_key: str | None = Field(default=None, description="Session signing key")
    encryption_key: str | None = Field(default=None, description="AES-256-GCM key, hex (64 chars)")
    default_timezone: str = "Asia/Shanghai"
    default_language: str = "zh_CN"
    cookie_secure: bool = Field(default=False, description="Send session cookies over HTTPS only")
    session_max_age: int = 8 * 3600
    max_upload_bytes: int = 20 * 1024 * 1024
    login_max_failures: int = 5
    login_window_seconds: int = 15 * 60
    mqtt_url: str | None = Field(default=None, description="External MQTT broker; default embedded")
    mqtt_enabled: bool = Field(default=True, description="Run MQTT ingestion in `linli serve`")
    mqtt_listen: str = Field(
        default="127.0.0.1:1883", description="host:port of the embedded broker"
    )
    event_bus: str = Field(default="inprocess", description="inprocess | nats")
    nats_url: str = "nats://127.0.0.1:4222"
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: no e-mail")
    smtp_port: int = 25
    smtp_from: str = "linli@localhost"
    smtp_user: str | None = Field(default=None, description="SMTP login (none: no login)")
    smtp_password: str | None = None
    smtp_starttls: bool = Field(default=False, description="STARTTLS before logging in")
    keep_enrollment_photos: bool = False
    snapshot_retention_days: int = 30
    telemetry_raw_days: int = Field(
        default=30, ge=1, description="days raw device samples are kept (roll-ups stay longer)"
    )
    telemetry_minute_days: int = Field(
        default=180, ge=1, description="days 1-minute roll-ups are kept"
    )
    telemetry_hour_days: int = Field(
        default=0, ge=0, description="days 1-hour roll-ups are kept (0: for ever)"
    )
    safety_workers: str = Field(
        default="process",
        description="process: cameras are sampled by `python -m linli.safety.worker`; "
        "inapp: by the web server itself (small sites, the demo)",
        pattern="^(process|inapp)$",
    )
    dead_letter_days: int = Field(
        default=30, ge=1, description="days rejected device messages are kept for inspection"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- derived values -------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'linli.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def prepare(self) -> Settings:
        """Create the data directory and generate missing secrets (0600), and make the default
        language the one texts written for everyone are stored in. Returns self."""
        from linli.core.i18n import set_platform_language

        set_platform_language(self.default_language)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.secret_key:
            self.secret_key = _load_or_create_secret(self.data_dir / "secret_key", 32)
        if not self.encryption_key:
            self.encryption_key = _load_or_create_secret(self.data_dir / "encryption_key", 32)
        key = bytes.fromhex(self.encryption_key)
        if len(key) != 32:
            raise ValueError("LINLI_ENCRYPTION_KEY must be 64 hex characters (32 bytes)")
        return self


def _load_or_create_secret(path: Path, nbytes: int) -> str:
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings().prepare()


def make_settings(**overrides: Any) -> Settings:
    """Fresh settings (tests, CLI options) without touching the cached instance."""
    return Settings(**overrides).prepare()
