"""Live events over SSE: an event emitted in a transaction and delivered by the app's
Dispatcher reaches a subscriber of the community's stream through the InProcessBus.

The stream is read from a real uvicorn server on a free port (test clients buffer whole
responses, which an endless stream never finishes). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from _speed import speed_ups  # noqa: F401
from conftest import login

from linli.core.events import Event, InProcessBus, emit


def _token(db, community_id, perms):
    from linli.core.models import ApiToken
    from linli.core.security import new_api_token

    raw, prefix, hashed = new_api_token()
    with db.session() as s:
        s.add(
            ApiToken(
                community_id=community_id,
                name="screen",
                prefix=prefix,
                token_hash=hashed,
                permissions=perms,
            )
        )
    return raw


def _wait_for(condition, what, limit=10.0):
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def server(app):
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=2
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    _wait_for(lambda: srv.started or not thread.is_alive(), "the server to start", 30)
    assert srv.started, "uvicorn did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _events(lines):
    """SSE events (dicts with id, event, data) from an iterator of lines."""
    current: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in current:
                yield current
            current = {}
        elif not line.startswith(":") and ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.lstrip(" ")


def test_stream_delivers_dispatched_events_of_its_community(app, db, world, server):
    token = _token(db, world.a, ["events.read"])
    bus: InProcessBus = app.state.bus
    url = f"{server}/api/v1/communities/{world.a}/events/stream"
    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        http.stream(
            "GET",
            url,
            params={"pattern": "test.sse.*"},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert next(lines) == "retry: 3000"  # the stream is open and subscribed
        assert bus.subscriber_count == 1

        with db.session() as s:
            emit(s, "test.sse.ping", {"n": 1}, community_id=world.b)  # another community
            emit(s, "other.sse.ping", {"n": 2}, community_id=world.a)  # not the pattern
            wanted = emit(s, "test.sse.ping", {"n": 3, "名": "值"}, community_id=world.a)
        assert app.state.dispatcher.run_once() == 3

        events = _events(lines)
        first = next(events)
        assert first["id"] == wanted
        assert first["event"] == "test.sse.ping"
        data = json.loads(first["data"])
        assert data["payload"] == {"n": 3, "名": "值"}
        assert data["community_id"] == world.a and data["id"] == wanted

        with db.session() as s:
            later = emit(s, "test.sse.pong", {"n": 4}, community_id=world.a)
        app.state.dispatcher.run_once()
        assert next(events)["id"] == later
    # the subscription goes away with the client
    _wait_for(lambda: bus.subscriber_count == 0, "the stream to unsubscribe")


def test_stream_with_a_session_cookie(app, client, db, world, server):
    login(client, "staff")
    cookies = {"linli_session": client.cookies.get("linli_session")}
    url = f"{server}/api/v1/communities/{world.a}/events/stream"
    with (
        httpx.Client(timeout=httpx.Timeout(10.0), cookies=cookies) as http,
        http.stream("GET", url) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines) == "retry: 3000"
        with db.session() as s:
            eid = emit(s, "people.resident.updated", {"id": 1}, community_id=world.a)
        app.state.dispatcher.run_once()
        assert next(_events(lines))["id"] == eid


def test_stream_holds_back_what_the_caller_may_not_see(app, db, world, server):
    """Who passed which gate is as sensitive live as in the access log: a token with
    events.read but not access.log_read gets the alarm, not the passage."""
    token = _token(db, world.a, ["events.read", "iot.read"])
    url = f"{server}/api/v1/communities/{world.a}/events/stream"
    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as http,
        http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        lines = r.iter_lines()
        assert next(lines) == "retry: 3000"
        with db.session() as s:
            emit(s, "access.entry.granted", {"identity_id": 1, "gate_id": 2}, community_id=world.a)
            emit(s, "safety.watchlist.matched", {"entry_id": 1}, community_id=world.a)
            emit(s, "safety.care.visited", {"person_id": 1}, community_id=world.a)
            shown = emit(s, "iot.alarm.raised", {"id": 7}, community_id=world.a)
        assert app.state.dispatcher.run_once() == 4
        assert next(_events(lines))["id"] == shown


def test_stream_requires_events_read_in_that_community(client, db, world):
    url = f"/api/v1/communities/{world.a}/events/stream"
    r = client.get(url)
    assert r.status_code == 401
    no_perm = _token(db, world.a, ["people.read"])
    r = client.get(url, headers={"Authorization": f"Bearer {no_perm}"})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    other = _token(db, world.b, ["events.read"])
    r = client.get(url, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404
    login(client, "resident")
    assert client.get(url).status_code == 403
    r = client.get(url, params={"pattern": "x" * 101}, headers={"Authorization": f"Bearer {other}"})
    assert 400 <= r.status_code < 500


def _event(n):
    return Event(
        event_id=str(n),
        name="test.bus.ping",
        community_id=1,
        payload={"n": n},
        created_at=datetime.now(UTC),
    )


def test_bus_hands_events_from_another_thread_to_an_asyncio_subscriber():
    bus = InProcessBus()

    async def main():
        sub = bus.subscribe()  # bound to this running loop
        threading.Thread(target=lambda: [bus.publish(_event(i)) for i in range(3)]).start()
        got = [await asyncio.wait_for(sub.queue.get(), timeout=5) for _ in range(3)]
        bus.unsubscribe(sub)
        return [e.event_id for e in got]

    assert asyncio.run(main()) == ["0", "1", "2"]
    assert bus.subscriber_count == 0


def test_slow_subscriber_loses_the_oldest_events_not_the_bus():
    bus = InProcessBus()
    slow = bus.subscribe()
    fast = bus.subscribe()
    size = slow.queue.maxsize
    for i in range(size + 5):
        bus.publish(_event(i))
    first = slow.queue.get_nowait()
    assert first.event_id == "5"  # the five oldest were dropped
    assert slow.queue.qsize() == size - 1
    bus.unsubscribe(fast)
    bus.publish(_event(-1))
    assert fast.queue.qsize() == size  # closed: no more events
