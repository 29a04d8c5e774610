"""Speed-ups for the foundation tests; they change no behaviour under test.

* argon2 with cheap parameters: the tests log in a lot and argon2's defaults cost about half a
  second per hash on a busy CI machine. The algorithm and the code paths stay the real ones.
* one compiled Jinja environment shared by the apps of all tests (templates are read-only).

Use it in a test module with ``from _speed import speed_ups  # noqa: F401`` (an autouse
fixture).
"""

from __future__ import annotations

from functools import cache

import pytest


@cache
def _templates():  # type: ignore[no-untyped-def]
    from linli.core.web import make_templates

    return make_templates()


@pytest.fixture(autouse=True)
def speed_ups(monkeypatch):  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    from linli import app as app_module
    from linli.admin import service
    from linli.core import security

    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(security, "_hasher", fast)
    monkeypatch.setattr(service, "DUMMY_HASH", _dummy_hash(), raising=False)
    monkeypatch.setattr(app_module, "make_templates", _templates, raising=False)


@cache
def _dummy_hash() -> str:
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("no-such-user-1")
