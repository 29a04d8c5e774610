"""CSV import of residents: bad rows with line and reason, good rows kept, atomicity,
idempotent re-imports, GB18030, header check, strict mode."""

from __future__ import annotations

import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login
from fastapi.testclient import TestClient
from sqlalchemy import func, select

MIXED = (
    "building,unit,name,phone,birth_year,gender,tags,owner\n"
    "3号楼,1-101,张三,13900000001,1950,男,老人、独居,是\n"  # 2 good
    "3号楼,1-102,李四,abc-123,1960,,,\n"  # 3 bad phone
    "3号楼,,王五,13900000003,,,,\n"  # 4 building without unit
    ",,赵六,13900000004,19x0,,,\n"  # 5 bad birth year
    ",,钱七,13900000001,,,,\n"  # 6 phone already used on line 2
    ",,孙八,,1975,女,志愿者,\n"  # 7 good: name only
    ",,周九,13900000009,,,未知标签,\n"  # 8 unknown tag
    ",,,13900000010,1980,,,\n"  # 9 no name
    "3号楼,1-103,吴十,13900000011,,,,maybe\n"  # 10 owner neither yes nor no
    "3号楼,1-102,郑十一,+86 139-0000-0012,1988,f,,no\n"  # 11 good
)


def _import(client, world, csrf, body, *, strict=False, filename="residents.csv"):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return client.post(
        f"/api/v1/communities/{world.a}/residents/import",
        params={"strict": "true"} if strict else None,
        headers={"X-CSRF-Token": csrf},
        files={"file": (filename, body, "text/csv")},
    )


def _state(db, community_id):
    from linli.people.models import Building, Household, Ownership, Resident, Unit

    with db.session() as s:

        def n(model):
            return s.scalar(
                select(func.count()).select_from(model).where(model.community_id == community_id)
            )

        names = sorted(
            s.scalars(select(Resident.name).where(Resident.community_id == community_id))
        )
        return {
            "names": names,
            "buildings": n(Building),
            "units": n(Unit),
            "households": n(Household),
            "ownerships": n(Ownership),
        }


def _resident(db, name):
    from linli.people.models import Resident

    with db.session() as s:
        return s.scalar(select(Resident).where(Resident.name == name))


def test_bad_rows_are_rejected_with_line_and_reason_good_rows_are_kept(client, world, db):
    csrf = login(client, "staff")
    r = _import(client, world, csrf, MIXED)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 3
    assert report["buildings_created"] == 1
    assert report["units_created"] == 2
    lines = {e["line"]: e["reason"] for e in report["rejected"]}
    assert sorted(lines) == [3, 4, 5, 6, 8, 9, 10]
    assert "phone" in lines[3]
    assert "unit" in lines[4]
    assert "birth_year" in lines[5] and "19x0" in lines[5]
    assert "13900000001" in lines[6] and "2" in lines[6]
    assert "未知标签" in lines[8]
    assert "name" in lines[9]
    assert "owner" in lines[10] and "maybe" in lines[10]
    for reason in lines.values():
        assert reason.strip() and "Traceback" not in reason

    state = _state(db, world.a)
    assert {"张三", "孙八", "郑十一"} <= set(state["names"])
    assert not {"李四", "王五", "赵六", "钱七", "周九", "吴十"} & set(state["names"])
    zhang = _resident(db, "张三")
    assert zhang.phone == "13900000001"
    assert zhang.birth_year == 1950 and zhang.gender == "male"
    assert sorted(zhang.tags) == ["elderly", "lives_alone"]
    zheng = _resident(db, "郑十一")
    assert zheng.phone == "13900000012"  # +86 and separators normalised
    assert zheng.gender == "female"
    # 张三 owns 1-101
    detail = client.get(f"/api/v1/communities/{world.a}/residents/{zhang.id}").json()
    assert (
        detail["owner"] is True
        and detail["building"] == "3号楼"
        and detail["unit_label"] == "1-101"
    )


def test_line_numbers_count_physical_lines(client, world):
    csrf = login(client, "staff")
    body = "name,phone\n甲,13900000001\n\n乙,not-a-phone\n\n\n丙,13900000003\n丁,x\n"
    report = _import(client, world, csrf, body).json()
    assert [e["line"] for e in report["rejected"]] == [4, 8]
    assert report["created"] == 2


def test_reimporting_the_same_file_does_not_duplicate_people(client, world, db):
    csrf = login(client, "staff")
    first = _import(client, world, csrf, MIXED).json()
    after_first = _state(db, world.a)
    second = _import(client, world, csrf, MIXED).json()
    assert second["created"] == 0
    assert second["updated"] == 0
    assert second["unchanged"] == first["created"]
    assert second["buildings_created"] == 0 and second["units_created"] == 0
    assert [e["line"] for e in second["rejected"]] == [e["line"] for e in first["rejected"]]
    assert _state(db, world.a) == after_first


def test_reimport_updates_changed_rows_in_place(client, world, db):
    csrf = login(client, "staff")
    _import(
        client,
        world,
        csrf,
        "building,unit,name,phone,tags\n9号楼,1-1,甲,,\n9号楼,1-1,乙,13900000077,\n",
    )
    changed = "building,unit,name,phone,tags\n9号楼,1-1,甲,,老人\n9号楼,1-2,乙,13900000077,\n"
    report = _import(client, world, csrf, changed).json()
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 2, 0)
    assert _resident(db, "甲").tags == ["elderly"]  # matched by name within the unit
    state = _state(db, world.a)
    assert state["names"].count("甲") == 1 and state["names"].count("乙") == 1


def test_exported_file_reimports_without_changes(client, world, db):
    csrf = login(client, "staff")
    _import(client, world, csrf, MIXED)
    before = _state(db, world.a)
    exported = client.get(f"/api/v1/communities/{world.a}/residents.csv")
    assert exported.status_code == 200
    report = _import(client, world, csrf, exported.content).json()
    assert report["rejected"] == []
    assert report["created"] == 0 and report["updated"] == 0
    assert report["unchanged"] == len(before["names"])
    assert _state(db, world.a) == before


def test_gb18030_file_with_chinese_headers(client, world, db):
    csrf = login(client, "staff")
    text = (
        "楼栋,房号,建筑面积,姓名,手机号,性别,户内关系,业主,标签,紧急联系人,紧急联系电话\n"
        "5号楼,2-201,88.5,欧阳娜娜,13912345678,女,户主,是,党员；志愿者,欧阳父,13700000001\n"
        "5号楼,2-201,,𠀀明,,男,子女,否,,,\n"  # U+20000: four bytes in GB18030, not in GBK
    )
    body = text.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    r = _import(client, world, csrf, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rejected"] == []
    assert report["created"] == 2
    person = _resident(db, "欧阳娜娜")
    assert person.phone == "13912345678"
    assert person.gender == "female" and person.household_role == "owner"
    assert sorted(person.tags) == ["party_member", "volunteer"]
    assert person.emergency_contact_name == "欧阳父"
    child = _resident(db, "𠀀明")
    assert child is not None and child.household_id == person.household_id
    detail = client.get(f"/api/v1/communities/{world.a}/residents/{person.id}").json()
    assert detail["owner"] is True and detail["owned_area_m2"] == 88.5


def test_utf8_with_bom_is_accepted(client, world, db):
    csrf = login(client, "staff")
    r = _import(client, world, csrf, "\ufeff姓名,电话\n带BOM,13900000055\n".encode())
    assert r.json()["created"] == 1
    assert _resident(db, "带BOM").phone == "13900000055"


def test_missing_name_column_is_refused_and_writes_nothing(client, world, db):
    csrf = login(client, "staff")
    before = _state(db, world.a)
    r = _import(client, world, csrf, "building,unit,phone\n1号楼,1-101,13900000001\n")
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "bad_header"
    assert "name" in body["detail"] and "姓名" in body["detail"]
    assert body["errors"][0]["field"] == "file"
    assert _state(db, world.a) == before


def test_undecodable_and_empty_files_are_refused(client, world, db):
    csrf = login(client, "staff")
    before = _state(db, world.a)
    r = _import(client, world, csrf, b"")
    assert r.status_code == 422 and r.json()["code"] == "empty_file"
    r = _import(client, world, csrf, b"name\n\x81\xff\xfe\x00\x81\n")
    assert 400 <= r.status_code < 500
    assert r.json()["code"] in ("bad_encoding", "validation_failed")
    assert _state(db, world.a) == before


def test_strict_mode_imports_nothing_when_a_row_is_bad(client, world, db):
    csrf = login(client, "staff")
    before = _state(db, world.a)
    r = _import(client, world, csrf, MIXED, strict=True)
    assert r.status_code == 200
    report = r.json()
    assert report["created"] == 0 and report["updated"] == 0
    assert [e["line"] for e in report["rejected"]] == [3, 4, 5, 6, 8, 9, 10]
    assert _state(db, world.a) == before
    # a clean file in strict mode goes in whole
    clean = "name,phone\n甲,13900000001\n乙,13900000002\n"
    report = _import(client, world, csrf, clean, strict=True).json()
    assert report["created"] == 2 and report["rejected"] == []


def test_a_failure_half_way_writes_nothing(app, world, db, monkeypatch):
    """The process fails on the third row: the rows before it are not left behind."""
    from linli.core.models import AuditEntry, OutboxEvent
    from linli.people import service

    real = service._match_existing
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "_match_existing", failing)
    before = _state(db, world.a)
    body = (
        "building,unit,name,phone\n"
        "7号楼,1-1,甲,13900000001\n"
        "7号楼,1-2,乙,13900000002\n"
        "8号楼,1-1,丙,13900000003\n"
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        csrf = login(c, "staff")
        r = c.post(
            f"/api/v1/communities/{world.a}/residents/import",
            headers={"X-CSRF-Token": csrf},
            files={"file": ("r.csv", body.encode(), "text/csv")},
        )
    assert r.status_code == 500
    assert calls["n"] == 3
    assert _state(db, world.a) == before
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        imported = select(func.count()).where(AuditEntry.action == "residents.imported")
        assert s.scalar(imported) == 0


def test_too_many_rows_is_refused_before_writing(client, world, db, monkeypatch):
    from linli.people import service

    monkeypatch.setattr(service, "MAX_IMPORT_ROWS", 3)
    csrf = login(client, "staff")
    before = _state(db, world.a)
    body = "name\n" + "".join(f"人{i}\n" for i in range(5))
    r = _import(client, world, csrf, body)
    assert r.status_code == 422
    assert r.json()["code"] == "too_many_rows"
    assert _state(db, world.a) == before


def test_import_page_shows_report_and_errors_next_to_the_file_field(client, world, db):
    csrf = login(client, "staff")
    url = f"/c/{world.a}/residents/import"
    r = client.post(
        url, data={"csrf_token": csrf}, files={"file": ("r.csv", MIXED.encode(), "text/csv")}
    )
    assert r.status_code == 200
    assert 'id="import-report"' in r.text
    for line in (3, 4, 5, 6, 8, 9, 10):
        assert f"<td>{line}</td>" in r.text
    # strict from the page: nothing new
    names_before = _state(db, world.a)["names"]
    r = client.post(
        url,
        data={"csrf_token": csrf, "strict": "on"},
        files={"file": ("r.csv", (MIXED + ",,新人,,,,,\n").encode(), "text/csv")},
    )
    assert r.status_code == 200
    assert _state(db, world.a)["names"] == names_before
    # a file without a name column: the message sits in the file field
    r = client.post(
        url,
        data={"csrf_token": csrf},
        files={"file": ("r.csv", b"phone\n13900000001\n", "text/csv")},
    )
    assert r.status_code == 422
    field = r.text.split('name="file"', 1)[1].split("</label>", 1)[0]
    assert 'class="error"' in field and "姓名" in field


def test_import_through_the_service_matches_the_api(db, world):
    """The service used by the CLI and the API keeps the same rules (no web involved)."""
    from linli.core.models import User
    from linli.core.web import _load_user_principal, build_ctx
    from linli.people import service

    with db.session() as s:
        staff = s.get(User, world.users["staff"])
        ctx = build_ctx(s, _load_user_principal(s, staff, None), world.a)
        report = service.import_residents(s, ctx, MIXED.encode(), strict=False)
    assert report.created == 3
    assert [e.line for e in report.rejected] == [3, 4, 5, 6, 8, 9, 10]
    with db.session() as s:
        staff = s.get(User, world.users["staff"])
        ctx = build_ctx(s, _load_user_principal(s, staff, None), world.a)
        again = service.import_residents(s, ctx, MIXED.encode(), strict=False)
    assert again.created == 0 and again.unchanged == 3


def test_names_longer_than_the_database_columns_are_rejected_per_row(client, world, db):
    """Building names (50) and unit labels (30) that PostgreSQL could not store are bad rows,
    not a failure of the whole file (and SQLite does not store them either)."""
    csrf = login(client, "staff")
    body = f"building,unit,name\n{'楼' * 51},1-1,甲\n1号楼,{'9' * 31},乙\n1号楼,1-9,丙\n"
    r = _import(client, world, csrf, body)
    assert r.status_code == 200, r.text
    report = r.json()
    assert [e["line"] for e in report["rejected"]] == [2, 3]
    assert "building" in report["rejected"][0]["reason"]
    assert "unit" in report["rejected"][1]["reason"]
    assert report["created"] == 1
    names = _state(db, world.a)["names"]
    assert "丙" in names and "甲" not in names and "乙" not in names
