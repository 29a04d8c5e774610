"""End-to-end: the voice prompts page plays real audio in the browser, a staff edit changes
what is spoken, and a resident looks an item up on the sorting guide."""

from __future__ import annotations

import pytest

from .conftest import PHONE, Browsing

pytestmark = pytest.mark.e2e

XINGFULI = "/c/1"


def test_prompts_play_and_guide_answers(web: Browsing) -> None:
    staff = web.login("staff")
    staff.goto(web.server.url(f"{XINGFULI}/waste/prompts"))
    audio = staff.locator("#prompt-break_bag audio").first
    src = audio.get_attribute("src")
    assert src and src.startswith("/waste/audio/")
    # the browser loads and decodes the WAV: a real duration of a spoken sentence
    duration = staff.evaluate(
        """async (sel) => {
            const a = document.querySelector(sel);
            a.preload = "auto"; a.load();
            await new Promise((ok, bad) => {
                if (a.readyState >= 1) return ok();
                a.addEventListener("loadedmetadata", ok, {once: true});
                a.addEventListener("error", () => bad(new Error("audio error")), {once: true});
            });
            return a.duration;
        }""",
        "#prompt-break_bag audio",
    )
    assert 1.5 < duration < 15, duration
    # staff change the Chinese text: a new audio file is spoken for it
    form = staff.locator("#prompt-break_bag form").first
    form.locator("input[name=text]").fill("湿垃圾请破袋投放，谢谢配合。")
    with staff.expect_navigation():
        form.locator("button[type=submit]").first.click()
    new_src = staff.locator("#prompt-break_bag audio").first.get_attribute("src")
    assert new_src and new_src != src
    assert "湿垃圾请破袋投放，谢谢配合。" in staff.inner_text("#prompt-break_bag")

    # stations show bins with fill levels and the overflow prediction
    staff.goto(web.server.url(f"{XINGFULI}/waste"))
    assert staff.locator("meter").count() >= 8

    resident = web.login("resident", viewport=PHONE)
    resident.goto(web.server.url(f"{XINGFULI}/waste/guide"))
    resident.fill("input[name=item]", "香蕉皮")
    with resident.expect_navigation():
        resident.locator("form[role=search] button").click()
    assert "Kitchen (wet)" in resident.inner_text("#answer")
    width = resident.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
