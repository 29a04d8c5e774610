"""The access demo seed (real gallery photos) and the terminal simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select


def test_seed_and_simulate(
    db: Any,
    world: Any,
    app: Any,
    shared_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from linli.access.cli import access_app
    from linli.access.demo import seed_access
    from linli.access.models import Consent, FaceTemplate, Gate

    settings = app.state.settings
    gallery = shared_data / "faces" / "gallery"
    with db.session() as s:
        seed_access(s, world.a, app.state.files, settings, gallery_dir=gallery)
    with db.session() as s:
        gates = list(s.scalars(select(Gate).where(Gate.community_id == world.a)))
        assert len(gates) == 2 and all(g.device_id for g in gates)
        n_templates = s.scalar(select(func.count(FaceTemplate.id)))
        n_consents = s.scalar(select(func.count(Consent.id)))
        assert n_templates and n_consents
        # every template belongs to someone with recorded consent
        assert (
            s.scalar(
                select(func.count(FaceTemplate.id)).where(
                    FaceTemplate.consent_id.not_in(select(Consent.id))
                )
            )
            == 0
        )
        gate_id = gates[0].id
    # seeding again does nothing
    with db.session() as s:
        seed_access(s, world.a, app.state.files, settings, gallery_dir=gallery)
        assert s.scalar(select(func.count(Gate.id))) == 2

    monkeypatch.setenv("LINLI_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("LINLI_ENCRYPTION_KEY", settings.encryption_key or "")
    monkeypatch.setenv("LINLI_SECRET_KEY", settings.secret_key or "")
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("obama1.jpg", "alex_lacamoire1.jpg"):
        (frames / name).write_bytes((shared_data / "faces" / "probe" / name).read_bytes())
    (frames / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    r = CliRunner().invoke(
        access_app,
        ["simulate", "--gate", str(gate_id), str(frames), "--data-dir", str(tmp_path / "d")],
    )
    lines = [json.loads(x) for x in r.output.strip().splitlines()]
    assert len(lines) == 3, r.output
    by = {Path(x["frames"][0]).name: x for x in lines}
    assert by["broken.jpg"]["granted"] is False
    # the demo maps gallery folders (sorted) onto the first residents; community A has two
    # residents, so alex_lacamoire and biden are enrolled and obama is nobody here
    assert by["alex_lacamoire1.jpg"]["granted"] is True, by
    assert by["obama1.jpg"]["granted"] is False
    assert by["obama1.jpg"]["reason"] == "unknown_person"
    assert r.exit_code == 0
