"""End-to-end: staff draw a restricted zone and a counting line on a camera in the browser's
canvas editor and save them; the care board shows the resident who stopped showing activity."""

from __future__ import annotations

import json

import pytest

from .conftest import Browsing

pytestmark = pytest.mark.e2e

XINGFULI = "/c/1"


def test_zone_editor_draws_and_saves_and_care_board_shows_the_alarm(web: Browsing) -> None:
    staff = web.login("staff")
    staff.goto(web.server.url(f"{XINGFULI}/safety/cameras"))
    tiles = staff.locator("a.cam-tile")
    assert tiles.count() >= 2
    href = tiles.first.get_attribute("href")
    assert href
    staff.goto(web.server.url(href))
    names = iter(["yard", "door"])
    staff.on("dialog", lambda d: d.accept(next(names)))
    canvas = staff.locator(".zone-editor canvas")
    box = canvas.bounding_box()
    assert box

    def at(x: float, y: float) -> dict[str, float]:
        return {"x": box["width"] * x, "y": box["height"] * y}

    staff.click("[data-mode=zone]")
    for x, y in ((0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)):
        canvas.click(position=at(x, y))
    staff.click("[data-action=close]")
    staff.click("[data-mode=line]")
    canvas.click(position=at(0.1, 0.5))
    canvas.click(position=at(0.9, 0.5))
    rows = staff.locator(".zone-list tbody tr")
    assert rows.count() >= 2
    yard = rows.filter(has_text="yard")
    yard.locator("[data-rule=intrusion]").check()
    yard.locator("[data-field=intrusion_hours]").fill("22:00-06:00")
    yard.locator("[data-field=intrusion_hours]").dispatch_event("change")
    staff.click("[data-action=save]")
    staff.locator(".zone-status").filter(has_text="Saved.").wait_for()

    cam_id = href.rstrip("/").rsplit("/", 1)[1]
    body = staff.evaluate(
        f"fetch('/api/v1/communities/1/safety/cameras/{cam_id}').then(r => r.text())"
    )
    analytics = json.loads(body)["analytics"]
    zone = next(z for z in analytics["zones"] if z["id"] == "yard")
    assert len(zone["polygon"]) == 4 and zone["intrusion"]["hours"] == ["22:00-06:00"]
    assert all(0 <= v <= 1 for p in zone["polygon"] for v in p)
    assert any(ln["id"] == "door" for ln in analytics["lines"])

    care = web.login("staff", lang="zh_CN")
    care.goto(web.server.url(f"{XINGFULI}/safety/care"))
    text = care.inner_text("main")
    assert "关爱看板" in text and "无活动迹象" in text
    assert care.locator("tr.care-alarm").count() == 1
