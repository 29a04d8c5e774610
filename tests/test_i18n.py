"""English and Simplified Chinese: complete catalogs, and the interface really switches."""

from __future__ import annotations

import re

import pytest
from conftest import login

from linli.core import i18n
from linli.core.i18n_extract import extract, load_po, problems

CJK = re.compile(r"[\u4e00-\u9fff]")


# -- (a) the catalogs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template():  # type: ignore[no-untyped-def]
    """Every message of the code and templates that exist now (new modules included)."""
    return extract()


def test_every_message_has_a_chinese_translation_with_the_same_placeholders(template) -> None:  # type: ignore[no-untyped-def]
    found = problems(template, load_po("zh_CN"))
    assert not found, (
        f"{len(found)} messages need a zh_CN translation (run `python scripts/i18n.py update`, "
        "translate linli/locale/zh_CN/LC_MESSAGES/messages.po, then `check`):\n" + "\n".join(found)
    )


def test_extraction_covers_code_templates_errors_and_reason_dicts(template) -> None:  # type: ignore[no-untyped-def]
    ids = {m.id for m in template if m.id}
    for expected in (
        "Log in",  # template
        "Wrong username or password.",  # error class keyword
        "The password must have at least 8 characters.",  # PASSWORD_REASONS
        "Must have at least %(min_length)s characters.",  # PYDANTIC_MESSAGES
        "Login required",  # _STATUS_TITLES
        "Not a valid phone number.",  # InvalidValue in a validator
        "Platform admin",  # N_() role label
        "%(column)s: %(problem)s",  # gettext() in a service
    ):
        assert expected in ids, expected
    assert template.get("Name", context="person") is not None


def test_validators_raise_translatable_errors() -> None:
    """A pydantic validator's message reaches users; ``InvalidValue`` makes it a msgid with
    parameters, where a bare ``ValueError`` (often an f-string) would stay English."""
    import ast
    from pathlib import Path

    root = Path(i18n.__file__).resolve().parent.parent
    bad = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "_validator" not in source:
            continue
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = {
                getattr(getattr(d, "func", d), "id", None)
                or getattr(getattr(d, "func", d), "attr", None)
                for d in fn.decorator_list
            }
            if not names & {"field_validator", "model_validator"}:
                continue
            for node in ast.walk(fn):
                if (
                    isinstance(node, ast.Raise)
                    and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name)
                    and node.exc.func.id in ("ValueError", "AssertionError")
                ):
                    bad.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not bad, "raise linli.core.errors.InvalidValue in validators: " + ", ".join(bad)


def test_placeholder_check_catches_mistakes() -> None:
    from babel.messages.catalog import Catalog

    tpl = Catalog()
    tpl.add("Hello %(name)s.")
    tpl.add("Plain")
    tpl.add("Missing")
    po = Catalog(locale="zh_CN")
    po.add("Hello %(name)s.", "你好 %(user)s。")
    po.add("Plain", "纯 %s")
    found = problems(tpl, po)
    assert len(found) == 3
    assert any("untranslated" in f and "Missing" in f for f in found)


def test_translations_load_at_run_time() -> None:
    assert i18n.translate_in("zh_CN", "Log in") == "登录"
    assert i18n.translate_in("en", "Log in") == "Log in"
    assert i18n.translate_in("zh_CN", "User %(name)s created.", name="li") == "已创建用户 li。"


# -- (b) pages -----------------------------------------------------------------------------------


def test_login_page_in_chinese_and_english(client) -> None:  # type: ignore[no-untyped-def]
    client.cookies.set("lang", "zh_CN")
    r = client.get("/login")
    assert r.status_code == 200
    assert "登录" in r.text and "用户名" in r.text
    assert 'lang="zh-CN"' in r.text
    assert "Log in" not in r.text

    client.cookies.set("lang", "en")
    r = client.get("/login")
    assert "Log in" in r.text and "Username" in r.text
    assert 'lang="en"' in r.text
    assert "登录" not in r.text


def test_accept_language_chooses_chinese_without_a_cookie(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert "用户名" in r.text


def test_staff_pages_in_chinese_show_no_untranslated_labels(client, world) -> None:  # type: ignore[no-untyped-def]
    login(client, "staff")
    client.cookies.set("lang", "zh_CN")
    for path in (
        "",
        "/residents",
        "/buildings",
        "/grids",
        "/professionals",
        "/users",
        "/tokens",
        "/audit",
        "/residents/import",
        "/residents/new",
    ):
        r = client.get(f"/c/{world.a}{path}")
        assert r.status_code == 200, path
        assert "居民" in r.text, path  # the navigation
        # labels of the page chrome are translated
        for english in ("Log out", "Residents", "Save", "Name<", "Phone<", "Overview"):
            assert english not in r.text, (path, english)
    r = client.get(f"/c/{world.a}/residents")
    assert "老年人" in r.text  # a resident tag
    assert "业主" in r.text  # owner of the unit


def test_unknown_page_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    login(client, "staff")
    client.cookies.set("lang", "zh_CN")
    r = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert "未找到" in r.text
    assert "Not Found" not in r.text


# -- (c) JSON API errors -------------------------------------------------------------------------


def test_api_error_detail_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    client.cookies.set("lang", "zh_CN")
    r = client.get(f"/api/v1/communities/{world.a}/residents")
    assert r.status_code == 401
    body = r.json()
    assert body["detail"] == "请先登录。"
    assert body["title"] == "需要登录"

    client.cookies.set("lang", "en")
    r = client.get(f"/api/v1/communities/{world.a}/residents")
    assert r.json()["detail"] == "Please log in."


def test_api_validation_messages_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "staff")
    client.cookies.set("lang", "zh_CN")
    headers = {"X-CSRF-Token": csrf}
    r = client.post(f"/api/v1/communities/{world.a}/buildings", json={"name": ""}, headers=headers)
    assert r.status_code == 422
    body = r.json()
    assert CJK.search(body["detail"])
    assert {"field": "name", "message": "至少需要 1 个字符。"} in body["errors"]

    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        json={"name": "张三", "phone": "abc", "tags": ["elderly", "vip"], "gender": "x"},
        headers=headers,
    )
    assert r.status_code == 422
    messages = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert messages["phone"] == "电话号码无效。"
    assert messages["tags"].startswith("未知标签：vip。")
    assert messages["gender"] == "必须是以下之一：male, female, other。"

    client.cookies.set("lang", "en")
    r = client.post(
        f"/api/v1/communities/{world.a}/residents",
        json={"name": "张三", "phone": "abc"},
        headers=headers,
    )
    assert {"field": "phone", "message": "Not a valid phone number."} in r.json()["errors"]


def test_api_conflict_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "staff")
    client.cookies.set("lang", "zh_CN")
    r = client.post(
        f"/api/v1/communities/{world.a}/buildings",
        json={"name": "1号楼"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 409
    assert r.json()["detail"] == "已存在同名楼栋。"


# -- (d) form errors -----------------------------------------------------------------------------


def test_form_error_next_to_the_field_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "staff")
    client.cookies.set("lang", "zh_CN")
    r = client.post(
        f"/c/{world.a}/buildings",
        data={"name": "", "floors": "", "grid_id": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 422
    field = re.search(r'<label class="field has-error">.*?</label>', r.text, re.S)
    assert field is not None
    assert 'name="name"' in field.group(0)
    assert '<small class="error" role="alert">至少需要 1 个字符。</small>' in field.group(0)

    client.cookies.set("lang", "en")
    r = client.post(
        f"/c/{world.a}/buildings",
        data={"name": "", "floors": "", "grid_id": "", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert "Must have at least 1 characters." in r.text


def test_login_failure_in_chinese(client, world) -> None:  # type: ignore[no-untyped-def]
    client.cookies.set("lang", "zh_CN")
    r = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/login",
        data={"username": "staff", "password": "wrong-password-1", "csrf_token": token},
    )
    assert r.status_code == 422
    assert "用户名或密码错误。" in r.text


def test_csv_import_reasons_in_the_callers_language(client, world) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "staff")
    csv_zh = (
        "楼栋,房号,姓名,电话,出生年份,标签,业主\n"
        "3号楼,1-101,王五,abc,1950,,是\n"
        "3号楼,,赵六,13900000001,19x0,,\n"
        "3号楼,1-102,钱七,13900000002,1960,独居;外星人,也许\n"
    ).encode()
    client.cookies.set("lang", "zh_CN")
    r = client.post(
        f"/api/v1/communities/{world.a}/residents/import",
        files={"file": ("r.csv", csv_zh, "text/csv")},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    reasons = {e["line"]: e["reason"] for e in r.json()["rejected"]}
    assert reasons[2] == "电话：电话号码无效。"
    assert reasons[3] == "楼栋和房号须同时填写。"
    assert reasons[4] == "业主只能填“是”或“否”，不能是“也许”。"

    client.cookies.set("lang", "en")
    csv_en = b"building,unit,name,phone\nB3,1-101,Wang,abc\n"
    r = client.post(
        f"/api/v1/communities/{world.a}/residents/import",
        files={"file": ("r.csv", csv_en, "text/csv")},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.json()["rejected"] == [{"line": 2, "reason": "phone: Not a valid phone number."}]


def test_templates_translate_plurals_and_contexts(app) -> None:  # type: ignore[no-untyped-def]
    env = app.state.templates
    tpl = env.from_string(
        '{{ ngettext("%(num)s row for %(who)s", "%(num)s rows for %(who)s", n, who=who) }}|'
        '{{ pgettext("person", "Name") }}|{{ _("Name") }}'
    )
    i18n.set_language("en")
    assert tpl.render(n=2, who="li") == "2 rows for li|Name|Name"
    assert tpl.render(n=1, who="li").startswith("1 row for li|")
    i18n.set_language("zh_CN")
    assert tpl.render(n=2, who="li").endswith("|姓名|名称")
