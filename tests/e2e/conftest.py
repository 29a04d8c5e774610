"""A real Linli server in a subprocess, driven by Debian's chromium through Playwright.

The server always runs the SQLite demo in a temporary directory, also in the PostgreSQL
runs of the suite: it must never touch the shared test database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("LINLI_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LINLI = [sys.executable, "-m", "linli.cli"]
# Console messages a browser prints for error pages the tests open on purpose.
EXPECTED_CONSOLE = ("the server responded with a status of 4",)


def _need(condition: bool, why: str) -> None:
    """Skip when something outside the project is missing; in CI that is a failure."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (required in CI)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_env(data_dir: Path) -> dict[str, str]:
    """The environment of the server: no LINLI_* setting of the caller leaks in (in particular
    not a PostgreSQL URL), the database is an SQLite file in the data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINLI_")}
    env.update(
        LINLI_DATA_DIR=str(data_dir),
        LINLI_DATABASE_URL=f"sqlite:///{data_dir / 'linli.db'}",
        LINLI_CONFIG=str(data_dir / "no-such-linli.toml"),
        # the embedded MQTT broker on a port of its own (1883 is Mosquitto's on CI machines)
        LINLI_MQTT_LISTEN=f"127.0.0.1:{_free_port()}",
        PYTHONUNBUFFERED="1",
    )
    return env


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    """``linli demo --no-serve`` starts at once; ``ready()`` then runs ``linli serve`` and waits
    for it. In between chromium starts, while the demo is being seeded."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = _server_env(data_dir)
        self.log = data_dir / "server.log"
        self.logins: dict[str, str] = {}
        self.base_url = ""
        self._seed_log = data_dir / "seed.log"
        self._serve: subprocess.Popen[bytes] | None = None
        with self._seed_log.open("wb") as out:
            self._seed: subprocess.Popen[bytes] | None = subprocess.Popen(
                [*LINLI, "demo", "--data-dir", str(data_dir), "--no-serve"],
                env=self.env,
                cwd=data_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def url(self, path: str) -> str:
        return self.base_url + path

    def ready(self) -> Server:
        if self.base_url:
            return self
        assert self._seed is not None
        code = self._seed.wait(timeout=180)
        assert code == 0, f"linli demo failed ({code}):\n{self._seed_log.read_text()}"
        rows = json.loads((self.data_dir / "demo-logins.json").read_text())
        self.logins = {row["username"]: row["password"] for row in rows}
        port = _free_port()
        with self.log.open("wb") as out:
            self._serve = subprocess.Popen(
                [*LINLI, "serve", "--data-dir", str(self.data_dir), "--port", str(port)],
                env=self.env,
                cwd=self.data_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if self._serve.poll() is not None:
                raise RuntimeError(f"linli serve exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"linli serve did not answer in 90 s:\n{self.log.read_text()}"
                    ) from None
                time.sleep(0.2)
        self.base_url = base
        return self

    def stop(self) -> None:
        _stop(self._seed)
        _stop(self._serve)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The demo in a temporary data directory, served on a free port (``web`` waits for it)."""
    _need(CHROMIUM.exists(), f"{CHROMIUM} not found: `make system-deps` installs chromium")
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    data_dir.mkdir()
    srv = Server(data_dir)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="package")
def browser(server: Server) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "the playwright package is not installed (requirements.lock has it)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="package")
def login_states() -> dict[str, Any]:
    """The cookies of each demo user's first log-in; later tests reuse them."""
    return {}


class Browsing:
    """Opens pages in fresh browser contexts and checks none of them logged a browser error."""

    def __init__(self, browser: Any, server: Server, states: dict[str, Any]) -> None:
        self.browser = browser
        self.server = server
        self.states = states
        self.contexts: list[Any] = []
        self.problems: list[str] = []

    def page(self, viewport: dict[str, int] = DESKTOP, state: Any = None) -> Any:
        ctx = self.browser.new_context(viewport=viewport, locale="zh-CN", storage_state=state)
        ctx.set_default_timeout(10_000)
        self.contexts.append(ctx)
        page = ctx.new_page()

        def on_console(msg: Any) -> None:
            if msg.type == "error" and not any(e in msg.text for e in EXPECTED_CONSOLE):
                self.problems.append(f"console error on {page.url}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error on {page.url}: {exc}"))
        return page

    def login(self, username: str, viewport: dict[str, int] = DESKTOP, lang: str = "en") -> Any:
        """A page logged in as a demo user, on the page the log-in leads to, in ``lang``.

        A user's first log-in goes through the form; later ones reuse its cookies."""
        state = self.states.get(username)
        page = self.page(viewport, state)
        if state is None:
            page.goto(self.server.url("/login"))
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", self.server.logins[username])
            with page.expect_navigation():
                page.click("form[action='/login'] button[type=submit]")
            assert "/login" not in page.url, f"log-in as {username} failed"
            self.states[username] = page.context.storage_state()
        else:
            page.goto(self.server.url("/"))
            assert "/login" not in page.url, f"session of {username} not accepted"
        set_language(page, lang)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()


def set_language(page: Any, lang: str) -> None:
    """Pick a language with the switch in the top bar (a no-op when it is already chosen)."""
    want = "zh-CN" if lang == "zh_CN" else "en"
    if page.get_attribute("html", "lang") == want:
        return
    with page.expect_navigation():
        page.click(f"form.lang-form button[value='{lang}']")
    assert page.get_attribute("html", "lang") == want


@pytest.fixture
def web(
    browser: Any, server: Server, login_states: dict[str, Any], request: pytest.FixtureRequest
) -> Iterator[Browsing]:
    b = Browsing(browser, server.ready(), login_states)
    try:
        yield b
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            shots = Path(os.environ.get("LINLI_E2E_SHOTS", "/tmp/linli-e2e-shots"))
            shots.mkdir(parents=True, exist_ok=True)
            for i, ctx in enumerate(b.contexts):
                for j, pg in enumerate(ctx.pages):
                    pg.screenshot(path=str(shots / f"{request.node.name}-{i}-{j}.png"))
        assert not b.problems, "\n".join(b.problems)
    finally:
        b.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so ``web`` can screenshot the pages of a failure."""
    rep: pytest.TestReport = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
