"""End-to-end: the web pages in a real browser against a real ``linli serve``.

The demo community 幸福里 is community 1, 和平苑 community 2 (seeded in that order).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from linli.core.i18n import translate_in

from .conftest import PHONE, Browsing, set_language

pytestmark = pytest.mark.e2e

XINGFULI = "/c/1"
HEPING = "/c/2"


def no_horizontal_scroll(page: Any) -> None:
    """The page itself never scrolls sideways (wide tables scroll inside their own box)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{page.url} is {width}px wide in a {viewport}px viewport"


def field(page: Any, name: str) -> Any:
    return page.locator(f"label.field:has([name='{name}'])")


def test_staff_searches_opens_edits_and_sees_field_error(web: Browsing) -> None:
    page = web.login("staff")
    page.goto(web.server.url(f"{XINGFULI}/residents"))
    rows = page.locator("table tr:has(td a)")
    assert rows.count() == 50  # first page of 300
    first = rows.first.locator("td a").first
    name = first.inner_text().strip()
    # the live filter (HTMX): typing filters the table and updates the address, no reload
    page.evaluate("window.linliMarker = 1")
    page.fill("input[name=q]", name)
    page.wait_for_url(re.compile(r"[?&]q="))
    page.wait_for_function("document.querySelectorAll('table tr td a').length < 50")
    names = [n.strip() for n in rows.locator("td:first-child a").all_inner_texts()]
    assert names and all(name in n for n in names), names
    assert page.input_value("input[name=q]") == name  # the input survived the swap
    assert page.evaluate("window.linliMarker") == 1  # same document: swapped, not reloaded

    with page.expect_navigation():
        rows.locator(f"td a:text-is('{name}')").first.click()
    assert re.search(r"/c/1/residents/\d+$", page.url)
    assert page.inner_text("h1").strip() == name
    resident_url = page.url
    year = "1966" if page.input_value("input[name=birth_year]") != "1966" else "1967"

    # edit and save: back on the record with a flash and the new value
    page.fill("input[name=birth_year]", year)
    page.check("input[name=tags][value=volunteer]")
    with page.expect_navigation():
        page.click(".form-actions button.btn:not(.danger)")
    assert page.url == resident_url
    flash = page.locator(".flash[role=status]")
    assert flash.is_visible() and name in flash.inner_text()
    assert page.input_value("input[name=birth_year]") == year
    assert page.is_checked("input[name=tags][value=volunteer]")

    # a bad value: the field is marked with its message and nothing is saved
    page.fill("input[name=birth_year]", "1800")
    page.fill("input[name=phone]", "13700001111")
    with page.expect_navigation():
        page.click(".form-actions button.btn:not(.danger)")
    birth = field(page, "birth_year")
    assert "has-error" in (birth.get_attribute("class") or "")
    error = birth.locator("small.error[role=alert]")
    assert error.is_visible() and error.inner_text().strip()
    assert page.input_value("input[name=birth_year]") == "1800"  # what was typed is kept
    assert page.locator(".has-error").count() == 1
    page.goto(resident_url)
    assert page.input_value("input[name=birth_year]") == year
    assert page.input_value("input[name=phone]") != "13700001111"
    no_horizontal_scroll(page)


def test_language_switch_changes_the_navigation(web: Browsing) -> None:
    page = web.login("staff", lang="en")
    page.goto(web.server.url(f"{XINGFULI}/residents"))
    labels = ("Residents", "Buildings and units", "Grids", "Audit log")
    nav = page.locator("#sidenav")
    en = nav.inner_text()
    for label in labels:
        assert label in en
    zh = {label: translate_in("zh_CN", label) for label in labels}
    untranslated = [k for k, v in zh.items() if v == k]
    assert not untranslated, f"no Chinese in the catalog for {untranslated}"

    set_language(page, "zh_CN")
    assert page.url.endswith(f"{XINGFULI}/residents")  # the switch stays on the page
    text = nav.inner_text()
    for label, chinese in zh.items():
        assert chinese in text
        assert label not in text
    assert nav.locator("a.active").inner_text().strip() == zh["Residents"]

    set_language(page, "en")
    assert nav.inner_text() == en
    page.reload()
    assert page.get_attribute("html", "lang") == "en"  # remembered


def test_resident_sees_own_household_and_no_registry(web: Browsing) -> None:
    page = web.login("resident")
    assert page.url.endswith(XINGFULI)
    household = page.locator("section.card:has(h2:text-is('My household'))")
    assert household.is_visible()
    assert household.locator("table tr:has(td)").count() >= 1
    assert page.locator("#sidenav a[href$='/residents']").count() == 0
    assert page.locator("a[href*='/residents']").count() == 0
    r = page.goto(web.server.url(f"{XINGFULI}/residents"))
    assert r is not None and r.status in (403, 404)


def test_other_communitys_staff_gets_404(web: Browsing) -> None:
    page = web.login("heping_staff")
    assert page.url.endswith(HEPING)
    for path in (XINGFULI, f"{XINGFULI}/residents", f"{XINGFULI}/residents/1"):
        r = page.goto(web.server.url(path))
        assert r is not None and r.status == 404, path
        assert page.locator("h1").inner_text().startswith("404")
        assert "幸福里" not in page.content()


def test_import_csv_reports_the_bad_line(web: Browsing, tmp_path: Any) -> None:
    page = web.login("staff")
    page.goto(web.server.url(f"{XINGFULI}/residents/import"))
    csv = (
        "building,unit,area_m2,name,phone,birth_year,gender\n"
        "9号楼,1-101,88.5,导入甲,13911112201,1980,male\n"
        "9号楼,1-102,88.5,导入乙,13911112202,not-a-year,female\n"
        "9号楼,1-103,88.5,导入丙,13911112203,1990,female\n"
    )
    path = tmp_path / "residents.csv"
    path.write_text(csv, encoding="utf-8")
    page.set_input_files("input[name=file]", str(path))
    with page.expect_navigation():
        page.click("form[enctype='multipart/form-data'] button[type=submit]")
    report = page.locator("#import-report")
    assert report.is_visible()
    counts = [int(b) for b in report.locator("p b").all_inner_texts()]
    assert counts == [2, 0, 0, 1]  # created, updated, unchanged, rejected
    bad = report.locator("table tr:has(td)")
    assert bad.count() == 1
    assert bad.locator("td").first.inner_text().strip() == "3"
    assert bad.locator("td").nth(1).inner_text().strip()
    # the good rows are in the registry
    page.goto(web.server.url(f"{XINGFULI}/residents?q=导入"))
    names = page.locator("table tr td:first-child a").all_inner_texts()
    assert sorted(names) == ["导入丙", "导入甲"]


def test_phone_menu_opens_the_side_navigation(web: Browsing) -> None:
    page = web.login("staff", viewport=PHONE)
    nav = page.locator("#sidenav")
    toggle = page.locator("[data-toggle-nav]")
    assert toggle.is_visible()
    assert not nav.is_visible()
    no_horizontal_scroll(page)
    toggle.click()
    assert nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "true"
    # the menu sits below the top bar, which stays usable
    top = page.locator(".topbar").bounding_box()
    box = nav.bounding_box()
    assert top is not None and box is not None and box["y"] >= top["y"] + top["height"] - 1
    with page.expect_navigation():
        nav.locator("a[href$='/residents']").click()
    assert page.url.endswith(f"{XINGFULI}/residents")
    assert not nav.is_visible()
    no_horizontal_scroll(page)  # the wide table scrolls in its own box
    # a tap outside closes the menu again
    toggle.click()
    assert nav.is_visible()
    page.mouse.click(370, 75)  # on the page title, right of the menu
    assert not nav.is_visible()
