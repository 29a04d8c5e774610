"""``linli faces ...``: identify faces in photos, enroll photos into a gallery folder, check
liveness of a burst of frames.

A gallery folder holds one sub-folder of photos per person (``DIR/<person>/*.jpg``). Every
command prints JSON, one object per line, so it can be piped into other tools. Heavy libraries
(dlib, OpenCV) are imported inside the commands so that ``linli --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import unicodedata
from pathlib import Path
from typing import Any

import typer

faces_app = typer.Typer(
    help="Face recognition: identify, enroll (gallery folders), liveness.",
    no_args_is_help=True,
)

#: Reasons specific to the command line (the others come from linli.vision.faces.REASONS).
CLI_REASONS = {
    "gallery_not_found": "The gallery folder does not exist",
    "gallery_empty": "The gallery folder has no usable photo",
    "video_unreadable": "The video cannot be read",
}


def _emit(obj: dict[str, Any], *, err: bool = False) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False), err=err)


def _reason(code: str) -> str:
    from linli.vision.faces import reason_text

    return CLI_REASONS.get(code) or reason_text(code)


def _error_exit(code: str, exit_code: int = 2, **extra: Any) -> None:
    _emit({"error": code, "message": _reason(code), **extra}, err=True)
    raise typer.Exit(exit_code)


def valid_person_name(name: str) -> bool:
    """A person name usable as a folder name: no separators, no control characters, not hidden,
    not '.'/'..', at most 100 characters. Any script (e.g. Chinese names) is fine."""
    if not name or name != name.strip() or len(name) > 100:
        return False
    if name in (".", "..") or name.startswith("."):
        return False
    if any(c in name for c in '/\\:*?"<>|'):
        return False
    return not any(unicodedata.category(c).startswith("C") for c in name)


@faces_app.command("identify")
def identify(
    images: list[Path] = typer.Argument(..., help="Photos to identify."),
    gallery: Path = typer.Option(..., "--gallery", help="Gallery folder: DIR/<person>/photos."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=2.0,
        help="Largest embedding distance accepted as a match (default: the operating "
        "threshold of linli.vision.faces, see docs/faces.md).",
    ),
    min_face: float = typer.Option(
        40.0, "--min-face", min=8.0, help="Smallest face to look for, in pixels."
    ),
) -> None:
    """Print, for every image, the faces found left to right and who they are.

    One JSON object per image and line with "image" and "faces"; each face has "box"
    (x1, y1, x2, y2 in pixels), "person" (the gallery sub-folder name, or null when the face
    matches nobody or is too close to two people) and "distance". Unusable images get "error"
    and "message". Exit status: 0 when every image could be read, 1 otherwise, 2 for a bad
    gallery.
    """
    from linli.vision.faces import Gallery, identify_image

    if not gallery.is_dir():
        _error_exit("gallery_not_found", gallery=str(gallery))
    g = Gallery.from_directory(gallery)
    for photo, check in g.report:
        if not check.ok:
            _emit(
                {"gallery_photo": str(photo), "skipped": check.reason, "message": check.message},
                err=True,
            )
    if len(g) == 0:
        _error_exit("gallery_empty", gallery=str(gallery))
    failed = False
    for image in images:
        result = identify_image(image, g, threshold=threshold, min_face=min_face)
        failed = failed or result.error is not None
        _emit({"image": str(image), **result.to_dict()})
    raise typer.Exit(1 if failed else 0)


def _same_file(a: Path, b: Path) -> bool:
    def digest(p: Path) -> str:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    return a.stat().st_size == b.stat().st_size and digest(a) == digest(b)


def _destination(folder: Path, photo: Path) -> tuple[Path, bool]:
    """Where to copy ``photo`` in ``folder``; second value True when an identical copy is
    already there."""
    suffix = photo.suffix.lower() or ".jpg"
    stem = photo.stem or "photo"
    candidate = folder / f"{stem}{suffix}"
    n = 1
    while candidate.exists():
        if _same_file(candidate, photo):
            return candidate, True
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate, False


@faces_app.command("enroll")
def enroll(
    photos: list[Path] = typer.Argument(..., help="Photos of the person."),
    gallery: Path = typer.Option(..., "--gallery", help="Gallery folder (created if needed)."),
    person: str = typer.Option(..., "--person", help="Name of the person (folder name)."),
) -> None:
    """Quality-check photos and copy the acceptable ones into DIR/NAME.

    One JSON object per photo and line with "photo", "person", "ok", "reason", "message" and
    "saved". Photos are refused with a reason: no face, several faces, face too small,
    blurred, not frontal, eyes closed, bad exposure, not an image, already enrolled under
    another person. Exit status: 0 when all were accepted, 1 when some were refused, 2 for an
    invalid person name.
    """
    from linli.vision.faces import Gallery, check_enrollment_photo

    if not valid_person_name(person):
        _error_exit("invalid_person_name", person=person)
    folder = gallery / person
    existing: Gallery | None = None
    refused = False
    for photo in photos:
        out: dict[str, Any] = {"photo": str(photo), "person": person}
        check = check_enrollment_photo(photo)
        out.update(
            {"ok": check.ok, "reason": check.reason, "message": check.message, "saved": None}
        )
        if check.face is not None:
            out["box"] = check.face.box.to_list()
            out["quality"] = check.face.quality.to_dict()
        if check.problems:
            out["problems"] = list(check.problems)
        if check.ok and check.face is not None:
            if existing is None:
                existing = Gallery.from_directory(gallery) if gallery.is_dir() else Gallery()
            assert check.face.embedding is not None
            ident = existing.identify(check.face.embedding)
            if ident.person_id is not None and ident.person_id != person:
                out.update(
                    {
                        "ok": False,
                        "reason": "matches_other_person",
                        "message": _reason("matches_other_person"),
                        "other_person": ident.person_id,
                        "distance": round(float(ident.distance or 0.0), 4),
                    }
                )
            else:
                folder.mkdir(parents=True, exist_ok=True)
                dest, duplicate = _destination(folder, photo)
                if not duplicate:
                    shutil.copyfile(photo, dest)
                    existing.add(person, check.face.embedding)
                out["saved"] = str(dest)
                out["duplicate"] = duplicate
        refused = refused or not out["ok"]
        _emit(out)
    raise typer.Exit(1 if refused else 0)


@faces_app.command("liveness")
def liveness(
    frames: list[Path] = typer.Argument(None, help="Frames of one burst, in order."),
    video: Path | None = typer.Option(None, "--video", help="Take the burst from a video."),
    start: int = typer.Option(0, "--start", min=0, help="First video frame."),
    count: int = typer.Option(8, "--count", min=1, max=200, help="Frames in the burst."),
    step: int = typer.Option(3, "--step", min=1, help="Take every STEP-th video frame."),
    challenge: str | None = typer.Option(
        None, "--challenge", help="Action requested: blink, turn_left or turn_right."
    ),
) -> None:
    """Check that a burst of frames shows a live face (not a photo or a still screen).

    Prints one JSON object with "ok", "reason", "message" and "details". Exit status 0 when
    live, 1 otherwise.
    """
    import cv2

    from linli.vision.faces import check_liveness

    burst: list[Any] = list(frames or [])
    if video is not None:
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            _error_exit("video_unreadable", video=str(video))
        index = 0
        try:
            while len(burst) < count:
                ok, frame = cap.read()
                if not ok:
                    break
                if index >= start and (index - start) % step == 0:
                    burst.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            cap.release()
    result = check_liveness(burst, challenge=challenge)
    _emit(
        {
            "ok": result.ok,
            "reason": result.reason,
            "message": _reason(result.reason) if result.reason else None,
            "details": result.details,
        }
    )
    raise typer.Exit(0 if result.ok else 1)


# --------------------------------------------------------------------------------------------
# ``linli access ...``: the terminal simulator and the housekeeping jobs of access control

access_app = typer.Typer(
    help="Access control: simulate a gate terminal, purge old snapshots, check the flow.",
    no_args_is_help=True,
)

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def _frames_of(source: Path, every: int, limit: int) -> Any:
    """JPEG bytes of the frames of a video (every EVERY-th) or of the photos of a folder."""
    import cv2

    from linli.vision.faces import iter_photos

    if source.is_dir():
        for n, photo in enumerate(iter_photos(source)):
            if n >= limit:
                return
            yield str(photo), photo.read_bytes()
        return
    if source.suffix.lower() not in VIDEO_EXTENSIONS:
        yield str(source), source.read_bytes()
        return
    cap = cv2.VideoCapture(str(source))
    if not cap.isOpened():
        _error_exit("video_unreadable", video=str(source))
    index = sent = 0
    try:
        while sent < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if index % every == 0:
                ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
                if ok:
                    sent += 1
                    yield f"{source.name}#{index}", buf.tobytes()
            index += 1
    finally:
        cap.release()


@access_app.command("simulate")
def simulate(
    source: Path = typer.Argument(..., help="A video file, an image folder or one image."),
    gate: int = typer.Option(..., "--gate", help="Id of the gate to play against."),
    every: int = typer.Option(5, "--every", min=1, help="Take every N-th video frame."),
    burst: int = typer.Option(
        1, "--burst", min=1, max=15, help="Frames per decision (2 or more: liveness check)."
    ),
    limit: int = typer.Option(200, "--limit", min=1, help="At most this many frames."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory."),
) -> None:
    """Play a video or an image folder against a gate, like its terminal would: every frame
    (or burst) goes through the real access decision; one JSON line per decision."""
    from linli import models_registry  # noqa: F401  (every table, for foreign keys)
    from linli.access import service
    from linli.access.models import Gate
    from linli.core.config import make_settings
    from linli.core.db import Database
    from linli.core.files import FileStore
    from linli.core.web import system_ctx

    if not source.exists():
        _error_exit("video_unreadable", video=str(source))
    settings = make_settings(data_dir=data_dir) if data_dir else make_settings()
    db = Database(settings.resolved_database_url)
    files = FileStore(settings.files_dir)
    granted = 0
    try:
        with db.session() as s:
            g = s.get(Gate, gate)
            if g is None:
                _emit({"error": "gate_not_found", "gate": gate}, err=True)
                raise typer.Exit(2)
            cid = g.community_id
        ctx = system_ctx(cid, "simulator")
        pending: list[tuple[str, bytes]] = []
        for name, data in _frames_of(source, every, limit):
            pending.append((name, data))
            if len(pending) < burst:
                continue
            with db.session() as s:
                decision, _ev = service.decide(
                    s,
                    ctx,
                    gate,
                    service.Presented(frames=[d for _n, d in pending]),
                    settings,
                    files,
                )
            granted += decision.granted
            _emit({"frames": [n for n, _d in pending], **decision.model_dump()})
            pending = []
    finally:
        db.dispose()
    raise typer.Exit(0 if granted else 1)


@access_app.command("purge-snapshots")
def purge_snapshots(
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory."),
) -> None:
    """Delete access snapshots older than the retention period (snapshot_retention_days)."""
    from linli import models_registry  # noqa: F401  (every table, for foreign keys)
    from linli.access import service
    from linli.core.config import make_settings
    from linli.core.db import Database
    from linli.core.files import FileStore

    settings = make_settings(data_dir=data_dir) if data_dir else make_settings()
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            n = service.purge_snapshots(s, settings, FileStore(settings.files_dir))
    finally:
        db.dispose()
    _emit({"purged": n, "retention_days": settings.snapshot_retention_days})


@access_app.command("check-flow")
def check_flow(
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory."),
) -> None:
    """Compare the last hour's flow of people with the same hour on past days (every
    community); raise an alarm where it departs sharply."""
    from sqlalchemy import select

    from linli import models_registry  # noqa: F401  (every table, for foreign keys)
    from linli.access import service
    from linli.core.config import make_settings
    from linli.core.db import Database
    from linli.people.models import Community

    settings = make_settings(data_dir=data_dir) if data_dir else make_settings()
    db = Database(settings.resolved_database_url)
    try:
        with db.session() as s:
            for c in s.scalars(select(Community)):
                out = service.check_flow(s, c.id, c.timezone)
                _emit({"community": c.id, "unusual": out})
    finally:
        db.dispose()
