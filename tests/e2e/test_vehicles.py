"""End-to-end: a photo sent at the vehicle gate appears live in the guard's queue on a phone,
the guard corrects the plate and opens the barrier; the live vehicle log follows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import PHONE, Browsing

pytestmark = pytest.mark.e2e

XINGFULI = "/c/1"
SHARED = Path(
    os.environ.get("LINLI_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")
)


def test_guard_queue_updates_live_and_confirming_opens_the_barrier(web: Browsing) -> None:
    photo = SHARED / "plates" / "other" / "ccpd_demo_3.jpg"  # 皖AMK620: not registered
    if not photo.exists():
        pytest.skip(f"{photo} not found")
    guard = web.login("guard", viewport=PHONE)
    guard.goto(web.server.url(f"{XINGFULI}/vehicles/queue"))
    guard.evaluate("window.linliMarker = 1")
    before = guard.locator("#queue-items section.card").count()

    staff = web.login("staff")
    staff.goto(web.server.url(f"{XINGFULI}/vehicles/gates"))
    form = staff.locator("form[action$='/try']").first
    form.locator("input[type=file]").set_input_files(str(photo))
    with staff.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "waiting for a guard" in staff.inner_text("main")

    # the new car shows up in the guard's queue without a reload
    guard.locator("#queue-items section.card").nth(before).wait_for(timeout=15_000)
    assert guard.evaluate("window.linliMarker") == 1
    card = guard.locator("#queue-items section.card").first
    assert "皖A·MK620" in card.inner_text()
    width = guard.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    card.locator("input[name=plate]").fill("皖A·MK620")
    with guard.expect_navigation():
        card.locator("button[value=confirm]").click()
    assert "the barrier was told to open" in guard.inner_text("main")

    staff.goto(web.server.url(f"{XINGFULI}/vehicles/log"))
    assert "皖A·MK620" in staff.inner_text("#vehicle-log-rows")
    assert "Confirmed by a guard" in staff.inner_text("#vehicle-log-rows")
