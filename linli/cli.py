"""The ``linli`` command."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import NoReturn

import typer

from linli.core.config import Settings, make_settings

app = typer.Typer(
    help="Linli (邻里) — community governance platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(import_app, name="import")
app.add_typer(audit_app, name="audit")


def _mount_domain_commands() -> None:
    """Each domain's own sub-commands (`linli faces …`, `linli plates …`, …)."""
    from linli.access.cli import access_app, faces_app
    from linli.consultation.cli import app as consultation_app
    from linli.vehicles.cli import plates_app, vehicles_app
    from linli.waste.cli import app as waste_app

    app.add_typer(faces_app, name="faces")
    app.add_typer(access_app, name="access")
    app.add_typer(plates_app, name="plates")
    app.add_typer(vehicles_app, name="vehicles")
    app.add_typer(consultation_app, name="consultation")
    app.add_typer(waste_app, name="waste")


_mount_domain_commands()

DataDir = typer.Option(None, "--data-dir", help="Data directory (default ./var or LINLI_DATA_DIR)")


def _settings(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        return make_settings(data_dir=data_dir)
    return make_settings()


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(data_dir: Path | None = DataDir) -> None:
    """Apply all database migrations."""
    from linli.core.migrate import upgrade

    settings = _settings(data_dir)
    upgrade(settings.resolved_database_url)
    typer.echo("database is up to date")


def _run_server(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from linli.app import create_app
    from linli.core.migrate import SchemaOutdated, check_schema

    try:
        check_schema(settings.resolved_database_url)
    except SchemaOutdated as exc:
        _fail(str(exc), 2)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", proxy_headers=False)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port"),
    data_dir: Path | None = DataDir,
) -> None:
    """Run the web server, the API and the event dispatcher."""
    _run_server(_settings(data_dir), host, port)


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(8000, help="Port"),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Data directory (default ./var/demo)"
    ),
    no_serve: bool = typer.Option(False, "--no-serve", help="Create the demo data and exit"),
) -> None:
    """Create a demo community (first run) and start the server with it."""
    from linli.access.demo import seed_access
    from linli.consultation.demo import seed_consultation
    from linli.core.db import Database
    from linli.core.files import FileStore
    from linli.core.migrate import upgrade
    from linli.core.web import system_ctx
    from linli.iot.simulator import seed_demo_devices
    from linli.people.demo import seed_demo
    from linli.vehicles.demo import seed_vehicles, start_demo_gate
    from linli.waste.demo import seed_waste

    settings = _settings(data_dir or Path(os.environ.get("LINLI_DATA_DIR", "./var/demo")))
    if not settings.mqtt_url and "LINLI_MQTT_LISTEN" not in os.environ:
        settings.mqtt_listen = f"127.0.0.1:{_free_port(1883, 11883)}"
    url = settings.resolved_database_url
    upgrade(url)
    logins_file = settings.data_dir / "demo-logins.json"
    devices_file = settings.data_dir / "demo-devices.json"
    db = Database(url)
    try:
        if not logins_file.exists():
            with db.session() as s:
                community, logins = seed_demo(s)
                fleet = seed_demo_devices(s, system_ctx(community.id, "demo"))
                seed_access(s, community.id, FileStore(settings.files_dir), settings)
                fleet += seed_vehicles(s, community.id, FileStore(settings.files_dir), settings)
                fleet += seed_waste(s, community.id, FileStore(settings.files_dir), settings)
                seed_consultation(s, community.id)
                from linli.safety.demo import seed_safety

                seed_safety(s, community.id, FileStore(settings.files_dir), settings)
            _write_private(logins_file, [vars(x) for x in logins])
            _write_private(devices_file, [vars(d) for d in fleet])
    finally:
        db.dispose()
    typer.echo("\nLinli demo — log in with / 演示账号:")
    for row in json.loads(logins_file.read_text()):
        typer.echo(
            f"  {row['username']:<14} {row['password']:<16} {row['role']:<18} {row['display_name']}"
        )
    typer.echo(f"\n  http://{host}:{port}/   (data in {settings.data_dir})")
    if not settings.mqtt_url:
        typer.echo(f"  MQTT broker: {settings.mqtt_listen}\n")
    if no_serve:
        return
    if devices_file.exists() and settings.mqtt_enabled:
        from linli.iot.simulator import SimDevice, Simulator

        fleet = [SimDevice(**d) for d in json.loads(devices_file.read_text())]
        if settings.mqtt_url:
            from linli.iot.mqtt import BrokerAddress

            addr = BrokerAddress.parse(settings.mqtt_url)
            mhost, mport = addr.host, addr.port
        else:
            mhost, _, p = settings.mqtt_listen.rpartition(":")
            mport = int(p)
        Simulator(fleet, mhost, mport).start()
        start_demo_gate(settings)
    # camera workers inside the server for the demo (production: python -m linli.safety.worker)
    if "LINLI_SAFETY_WORKERS" not in os.environ:
        settings.safety_workers = "inapp"
    _run_server(settings, host, port)


def _free_port(*candidates: int) -> int:
    import socket

    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_private(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)


@user_app.command("create")
def user_create(
    username: str = typer.Argument(..., help="Log-in name"),
    display_name: str = typer.Option(None, "--name", help="Display name"),
    role: str = typer.Option("platform_admin", help="Role to grant"),
    community: str = typer.Option(None, help="Community code (not needed for platform_admin)"),
    password: str = typer.Option(None, help="Password (asked when not given)"),
    data_dir: Path | None = DataDir,
) -> None:
    """Create a user and grant a role."""
    from sqlalchemy import select

    from linli.admin.schemas import UserIn
    from linli.admin.service import create_user
    from linli.core import audit
    from linli.core.db import Database
    from linli.core.errors import AppError
    from linli.core.roles import Role
    from linli.people.models import Community

    if role not in Role._value2member_map_:
        _fail(f"unknown role {role!r}; choose one of: {', '.join(r.value for r in Role)}")
    settings = _settings(data_dir)
    pw = password or getpass.getpass("Password: ")
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            cid = None
            if role != Role.PLATFORM_ADMIN:
                if not community:
                    _fail("--community is needed for this role")
                cid = s.scalar(select(Community.id).where(Community.code == community))
                if cid is None:
                    _fail(f"no community with code {community!r}")
            try:
                data = UserIn(
                    username=username,
                    display_name=display_name or username,
                    password=pw,
                    role=Role(role),
                )
                user = create_user(s, audit.Actor.system("cli"), data, cid)
            except AppError as exc:
                _fail(exc.message)
            except ValueError as exc:
                _fail(str(exc))
            typer.echo(f"created user {user.username} (id {user.id}) with role {role}")
    finally:
        db.dispose()


@import_app.command("residents")
def import_residents(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    community: str = typer.Option(..., help="Community code"),
    strict: bool = typer.Option(False, help="Import nothing if any row is bad"),
    data_dir: Path | None = DataDir,
) -> None:
    """Import residents from a CSV file (see docs/operations.md for the columns)."""
    from sqlalchemy import select

    from linli.core.db import Database
    from linli.core.errors import AppError
    from linli.core.web import system_ctx
    from linli.people.models import Community
    from linli.people.service import import_residents as do_import

    settings = _settings(data_dir)
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            cid = s.scalar(select(Community.id).where(Community.code == community))
            if cid is None:
                _fail(f"no community with code {community!r}")
            ctx = system_ctx(cid, "cli")
            try:
                report = do_import(s, ctx, file.read_bytes(), strict=strict)
            except AppError as exc:
                _fail(exc.message % exc.params if exc.params else exc.message)
        typer.echo(report.model_dump_json(indent=1))
        if report.rejected:
            raise typer.Exit(1)
    finally:
        db.dispose()


@audit_app.command("verify")
def audit_verify(data_dir: Path | None = DataDir) -> None:
    """Check the audit log's hash chain; exit 1 if anything was edited or deleted."""
    from linli.core.audit import verify
    from linli.core.db import Database

    settings = _settings(data_dir)
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            result = verify(s)
    finally:
        db.dispose()
    if result.ok:
        typer.echo(f"audit log intact: {result.checked} entries verified")
        return
    typer.secho(f"AUDIT LOG TAMPERED: {len(result.problems)} problem(s)", fg=typer.colors.RED)
    for p in result.problems:
        typer.echo(f"  - {p}")
    raise typer.Exit(1)


def main() -> None:
    app(prog_name="linli")


if __name__ == "__main__":
    main()
