"""``linli plates ...``: read licence plates from photos on the command line.

The lead mounts :data:`plates_app` into the main ``linli`` command. Heavy libraries
(OpenCV, onnxruntime, rapidocr) are imported inside the commands so ``linli --help`` stays
fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

plates_app = typer.Typer(
    name="plates",
    help="Read Chinese licence plates from photos (offline PP-OCR models).",
    no_args_is_help=True,
    add_completion=False,
)


@plates_app.command("read")
def read_command(
    images: list[Path] = typer.Argument(..., help="Image files to read.", show_default=False),
    threads: int = typer.Option(1, "--threads", min=1, help="onnxruntime threads."),
    pretty: bool = typer.Option(False, "--pretty", help="Indent the JSON output."),
) -> None:
    """Print one JSON object per image per line:
    {"image": ..., "plates": [{"text", "color", "confidence", "box": [x1, y1, x2, y2]}], ...}.

    Bad input (missing file, not an image, corrupt, too large) gives an "error" field with a
    reason code instead of plates; the exit code is 1 when any image had an error (every
    image is still reported), 2 when the OCR models are missing.
    """
    from linli.vision.plates import REASONS, PlateModelMissing, PlateReader

    reader = PlateReader(threads=threads)
    failed = False
    for image in images:
        try:
            result = reader.read(image)
        except PlateModelMissing as exc:  # a broken installation, not a bad image
            out = {
                "image": str(image),
                "plates": [],
                "status": "models_missing",
                "error": "models_missing",
                "message": REASONS["models_missing"],
                "detail": str(exc),
            }
            typer.echo(json.dumps(out, ensure_ascii=False))
            raise typer.Exit(code=2) from exc
        failed = failed or not result.ok
        out = result.to_dict()
        out["image"] = str(image)
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2 if pretty else None))
    if failed:
        raise typer.Exit(code=1)


@plates_app.command("check")
def check_command(
    text: list[str] = typer.Argument(
        ..., help="Plate strings, e.g. 皖A·12345 or 粤B0D8Z5.", show_default=False
    ),
) -> None:
    """Validate plate strings against the plate grammar and show the position-rule fix."""
    from linli.vision.plate_grammar import correct_text, normalise_text, validate

    for t in text:
        fmt = validate(t)
        fix = correct_text(t) if fmt is None else None
        out = {
            "input": t,
            "valid": fmt is not None,
            "text": normalise_text(t) if fmt else (fix.text if fix else None),
            "format": fmt.name if fmt else (fix.format.name if fix else None),
            "corrected_positions": list(fix.changed) if fix else [],
        }
        typer.echo(json.dumps(out, ensure_ascii=False))


# --------------------------------------------------------------------------------------------
# ``linli vehicles ...``: play photos at a vehicle gate, the periodic jobs

vehicles_app = typer.Typer(
    name="vehicles",
    help="Vehicle access: simulate a gate camera, check overstaying visitor cars, purge.",
    no_args_is_help=True,
    add_completion=False,
)


@vehicles_app.command("simulate")
def simulate_command(
    images: list[Path] = typer.Argument(
        ..., help="Photos or folders of photos.", show_default=False
    ),
    gate: int = typer.Option(..., "--gate", help="Id of the vehicle gate to play against."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory."),
) -> None:
    """Send photos to a vehicle gate like its camera would: each goes through the real plate
    reader and barrier decision (logged; the barrier is told to open when it may). One JSON
    line per photo."""
    from linli import models_registry  # noqa: F401  (every table, for foreign keys)
    from linli.core.config import make_settings
    from linli.core.db import Database
    from linli.core.files import FileStore
    from linli.core.web import system_ctx
    from linli.vehicles import service
    from linli.vehicles.models import VehicleGate

    settings = make_settings(data_dir=data_dir) if data_dir else make_settings()
    files: list[Path] = []
    for p in images:
        files += sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    db = Database(settings.resolved_database_url)
    store = FileStore(settings.files_dir)
    opened = 0
    try:
        with db.session() as s:
            g = s.get(VehicleGate, gate)
            if g is None:
                typer.echo(json.dumps({"error": "gate_not_found", "gate": gate}), err=True)
                raise typer.Exit(2)
            ctx = system_ctx(g.community_id, "simulator")
        for f in files:
            try:
                data = f.read_bytes()
            except OSError:
                data = b""
            with db.session() as s:
                d, _ev = service.decide(s, ctx, gate, data, store)
            opened += d.decision == "open"
            typer.echo(json.dumps({"image": str(f), **d.model_dump()}, ensure_ascii=False))
    finally:
        db.dispose()
    raise typer.Exit(0 if opened else 1)


@vehicles_app.command("housekeeping")
def housekeeping_command(
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory."),
) -> None:
    """Run the periodic jobs once (``linli serve`` runs them every minute): alarms for
    visitor cars overstaying, expiry of unhandled queue entries, purge of old snapshots."""
    from linli import models_registry  # noqa: F401
    from linli.core.config import make_settings
    from linli.core.db import Database
    from linli.core.files import FileStore
    from linli.vehicles import service

    settings = make_settings(data_dir=data_dir) if data_dir else make_settings()
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            out = service.housekeeping(s, settings, FileStore(settings.files_dir))
    finally:
        db.dispose()
    typer.echo(json.dumps(out, ensure_ascii=False, default=str))
