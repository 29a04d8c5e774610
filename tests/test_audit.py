"""The tamper-evident audit chain: intact chains verify; edits, deletions in the middle and
deletion of the newest entries (by raw SQL, as an intruder with database access would) are
reported."""

from __future__ import annotations

import itertools
import re
import threading

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from sqlalchemy import select, text

from linli.core import audit
from linli.core.models import AuditEntry


def _write(db, n, community_id=None):
    ids = []
    for i in range(n):
        with db.session() as s:
            e = audit.record(
                s,
                audit.Actor(None, f"actor{i}", "10.0.0.1"),
                "thing.done",
                "thing",
                i,
                community_id=community_id,
                details={"i": i, "名字": "张三", "nested": {"ok": True, "x": 1.5, "l": [1, None]}},
            )
            ids.append(e.id)
    return ids


def _verify(db):
    with db.session() as s:
        return audit.verify(s)


def _sql(db, statement, **params):
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _set_details(db, entry_id, value):
    cast = "CAST(:d AS JSON)" if db.engine.dialect.name == "postgresql" else ":d"
    _sql(db, f"UPDATE audit_log SET details = {cast} WHERE id = :id", d=value, id=entry_id)


def test_empty_log_verifies(db):
    result = _verify(db)
    assert result.ok and result.checked == 0 and result.problems == []


def test_intact_chain_verifies(db):
    ids = _write(db, 5)
    result = _verify(db)
    assert result.ok, result.problems
    assert result.checked == 5
    with db.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    assert [r.id for r in rows] == ids
    assert rows[0].prev_hash == audit.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash


def test_entries_written_by_the_app_verify(client, world, db):
    """Real actions (log-ins, a failed log-in, a created resident, an import, a view) chain
    correctly on this backend, including JSON details read back from the database."""
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post(
        "/login", data={"username": "staff", "password": "wrong-pass-1", "csrf_token": token}
    )
    assert r.status_code == 422
    csrf = login(client, "staff")
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        headers=h,
        json={"name": "新人", "phone": "13911112222", "tags": ["elderly"]},
    )
    assert r.status_code == 201
    client.get(f"/api/v1/communities/{world.a}/residents/{r.json()['id']}")
    client.post(
        f"/api/v1/communities/{world.a}/residents/import",
        headers=h,
        files={"file": ("r.csv", "姓名,电话\n李四,13900000001\n".encode(), "text/csv")},
    )
    client.post(
        f"/api/v1/communities/{world.a}/buildings",
        headers=h,
        json={"name": "9号楼", "floors": 18, "map_x": 0.25},
    )
    result = _verify(db)
    assert result.ok, result.problems
    assert result.checked >= 6
    # the log is readable through the API, newest first
    items = client.get(f"/api/v1/communities/{world.a}/audit").json()["items"]
    assert items[0]["action"] == "building.saved"
    assert {"resident.created", "resident.viewed", "residents.imported"} <= {
        i["action"] for i in items
    }
    with db.session() as s:
        failed = s.scalar(select(AuditEntry).where(AuditEntry.action == "login.failed"))
    assert failed is not None and failed.actor == "staff"


def test_edited_details_are_detected(db):
    ids = _write(db, 5)
    _set_details(db, ids[2], '{"i": 99}')
    result = _verify(db)
    assert not result.ok
    assert any(f"entry {ids[2]}" in p and "edited" in p for p in result.problems), result.problems
    # the other entries are not blamed
    assert not any(f"entry {ids[1]}:" in p or f"entry {ids[3]}:" in p for p in result.problems)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "someone-else"),
        ("action", "nothing.happened"),
        ("target_id", "42"),
        ("ip", "127.0.0.1"),
    ],
)
def test_edited_columns_are_detected(db, column, value):
    ids = _write(db, 3)
    _sql(db, f"UPDATE audit_log SET {column} = :v WHERE id = :id", v=value, id=ids[1])
    result = _verify(db)
    assert not result.ok
    assert any(f"entry {ids[1]}" in p for p in result.problems)


def test_edited_entry_with_recomputed_hash_breaks_the_next_link(db):
    """An intruder who also recomputes the edited entry's hash is caught by the next entry."""
    ids = _write(db, 4)
    _set_details(db, ids[1], '{"i": 1000}')
    with db.session() as s:
        entry = s.get(AuditEntry, ids[1])
        new_hash = audit._digest(entry)
    _sql(db, "UPDATE audit_log SET hash = :h WHERE id = :id", h=new_hash, id=ids[1])
    result = _verify(db)
    assert not result.ok
    assert any(f"entry {ids[2]}" in p and "link" in p for p in result.problems), result.problems


def test_deleted_middle_entry_is_detected(db):
    ids = _write(db, 5)
    _sql(db, "DELETE FROM audit_log WHERE id = :id", id=ids[2])
    result = _verify(db)
    assert not result.ok
    assert result.checked == 4
    assert any(f"entry {ids[3]}" in p and "link" in p for p in result.problems), result.problems
    assert any("counted 5" in p for p in result.problems)


def test_deleted_newest_entry_is_detected(db):
    ids = _write(db, 5)
    _sql(db, "DELETE FROM audit_log WHERE id = :id", id=ids[-1])
    result = _verify(db)
    assert not result.ok
    assert any(str(ids[-1]) in p and "newest" in p for p in result.problems), result.problems


def test_deleted_oldest_entry_is_detected(db):
    ids = _write(db, 3)
    _sql(db, "DELETE FROM audit_log WHERE id = :id", id=ids[0])
    result = _verify(db)
    assert not result.ok
    assert any(f"entry {ids[1]}" in p for p in result.problems)


def test_wiping_the_whole_log_is_detected(db):
    _write(db, 3)
    _sql(db, "DELETE FROM audit_log")
    result = _verify(db)
    assert not result.ok and result.checked == 0


def test_entry_rolls_back_with_its_change(db):
    _write(db, 2)
    with pytest.raises(RuntimeError), db.session() as s:
        audit.record(s, audit.Actor.system(), "thing.done", "thing", 1)
        raise RuntimeError("the change failed")
    result = _verify(db)
    assert result.ok, result.problems
    assert result.checked == 2
    _write(db, 1)  # the chain continues from the last committed entry
    assert _verify(db).ok


def test_concurrent_writers_keep_one_chain(db):
    """Writers start together on an empty log (they race to create the head row too)."""
    errors = []
    start = threading.Barrier(4, timeout=30)

    def writer(k):
        try:
            start.wait()
            for i in range(5):
                with db.session() as s:
                    audit.record(s, audit.Actor(None, f"w{k}"), "thing.done", "thing", i)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    result = _verify(db)
    assert result.ok, result.problems
    assert result.checked == 20
