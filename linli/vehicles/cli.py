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
