"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linli import __version__
from linli.core import i18n
from linli.core.config import Settings, get_settings
from linli.core.db import Database
from linli.core.errors import AppError, problem, pydantic_message
from linli.core.events import Dispatcher, InProcessBus
from linli.core.files import FileStore
from linli.core.web import make_templates, render

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"

_STATUS_TITLES = {
    400: "Bad request",
    401: "Login required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
}


class BodyLimit:
    """Refuse request bodies over the configured size with 413 before reading them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await _too_large(scope, send, self.max_bytes)
            return
        if length is not None or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read up to the limit first, then replay the body.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                await self.app(scope, _replay([msg]), send)
                return
            body = msg.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _too_large(scope, send, self.max_bytes)
                return
            chunks.append(body)
            more = bool(msg.get("more_body"))
        await self.app(scope, _replay([{"type": "http.request", "body": b"".join(chunks)}]), send)


def _replay(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


def _size_text(limit: int) -> str:
    mb = limit / (1024 * 1024)
    return f"{mb:.0f}" if mb >= 10 else f"{mb:.2g}" if mb >= 0.01 else f"{mb:.4f}"


def _too_large_detail(scope: Scope, limit: int) -> str:
    lang = i18n.pick_language(_cookie(scope, "lang"), _header(scope, b"accept-language"), "en")
    return i18n.translate_in(
        lang, "The upload is larger than the limit of %(mb)s MB.", mb=_size_text(limit)
    )


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie") or ""
    for part in raw.split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    lang = i18n.pick_language(_cookie(scope, "lang"), _header(scope, b"accept-language"), "en")
    body = problem(
        413, "too_large", i18n.translate_in(lang, "Too large"), _too_large_detail(scope, limit)
    )
    resp = JSONResponse(body, status_code=413, media_type="application/problem+json")
    await resp(scope, _noop_receive, send)


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or []:
        if k == name:
            return str(v.decode("latin-1"))
    return None


def _reason_phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or (
        "application/json" in request.headers.get("accept", "")
        and "text/html" not in request.headers.get("accept", "")
    )


def _error_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    title = i18n.gettext(_STATUS_TITLES.get(status, i18n.N_("Error")))
    if _wants_json(request):
        return JSONResponse(
            problem(status, code, title, detail, errors),
            status_code=status,
            media_type="application/problem+json",
        )
    if status == 401:
        nxt = quote(str(request.url.path))
        return RedirectResponse(f"/login?next={nxt}", status_code=303)
    return render(
        request,
        "error.html",
        {"status": status, "title": title, "detail": detail, "errors": errors or []},
        status=status,
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        detail = (
            i18n.gettext(exc.message, **exc.params) if exc.params else i18n.gettext(exc.message)
        )
        errors = list(exc.errors)
        if exc.field and not errors:
            errors = [{"field": exc.field, "message": detail}]
        return _error_response(request, exc.status, exc.code, detail, errors)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = []
        for e in exc.errors():
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path", "form")]
            message = pydantic_message(dict(e), i18n.gettext)
            errors.append({"field": ".".join(loc) or None, "message": message})
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            detail = i18n.gettext("The request body is not valid JSON.")
            return _error_response(request, 400, "malformed_json", detail, errors)
        detail = i18n.gettext("Some fields are missing or invalid.")
        return _error_response(request, 422, "validation_failed", detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = _STATUS_TITLES.get(exc.status_code, i18n.N_("Error"))
        # Starlette's default detail is the English reason phrase ("Not Found"): use our title
        default = _reason_phrase(exc.status_code)
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in (title, default)
            else title
        )
        return _error_response(
            request, exc.status_code, f"http_{exc.status_code}", i18n.gettext(detail)
        )


async def _start_mqtt(settings: Settings, db: Database, ingestor: Any = None) -> tuple[Any, Any]:
    """The embedded broker (unless an external one is configured) and the ingestion client.
    The client uses the app's ingestor, the one HTTP ingestion uses too: one rule state per
    device whichever way its messages come (the ingestor serialises its batches)."""
    from linli.iot.broker import SERVICE_USER, service_password, start_broker
    from linli.iot.mqtt import BrokerAddress, MqttIngest

    broker = None
    if settings.mqtt_url:
        address = BrokerAddress.parse(settings.mqtt_url)
    else:
        host, _, port = settings.mqtt_listen.rpartition(":")
        try:
            broker = await start_broker(
                db, settings.secret_key or "", host or "127.0.0.1", int(port)
            )
        except OSError as exc:
            raise RuntimeError(
                f"The embedded MQTT broker cannot listen on {settings.mqtt_listen} ({exc}). "
                "Set LINLI_MQTT_LISTEN to a free host:port, or LINLI_MQTT_URL to use an "
                "external broker."
            ) from exc
        address = BrokerAddress(
            host or "127.0.0.1",
            int(port),
            SERVICE_USER,
            service_password(settings.secret_key or ""),
        )
    ingest = MqttIngest(db, address, ingestor=ingestor)
    ingest.start()
    return broker, ingest


async def _periodic(
    db: Database, settings: Settings, files: FileStore, every: float = 60.0
) -> None:
    """Housekeeping that any replica may do: escalate overdue work orders, purge old access
    snapshots, compare the flow of people with past days; hourly, the telemetry retention."""
    from linli.access.service import housekeeping
    from linli.iot.service import purge_telemetry
    from linli.workorders.service import escalate_overdue

    last_purge = 0.0

    def once() -> None:
        nonlocal last_purge
        with db.session() as s:
            escalate_overdue(s)
        with db.session() as s:
            housekeeping(s, settings, files)
        from linli.vehicles.service import housekeeping as vehicles_housekeeping

        with db.session() as s:
            vehicles_housekeeping(s, settings, files)
        from linli.waste.service import periodic as waste_periodic

        waste_periodic(db, settings, files)
        from linli.safety import service as safety
        from linli.safety import worker as safety_worker

        with db.session() as s:
            safety.periodic(s, settings, files)
        if safety_worker.inapp_enabled(settings):
            safety_worker.ensure_inapp(db, settings, files)
        if time.monotonic() - last_purge >= 3600:
            with db.session() as s:
                purge_telemetry(
                    s,
                    raw_days=settings.telemetry_raw_days,
                    minute_days=settings.telemetry_minute_days,
                    hour_days=settings.telemetry_hour_days,
                    dead_letter_days=settings.dead_letter_days,
                )
            last_purge = time.monotonic()

    while True:
        try:
            await asyncio.to_thread(once)
        except Exception:
            log.exception("periodic housekeeping failed")
        await asyncio.sleep(every)


def _warm_up_guidance() -> None:
    """Build the sorting guide (and train it on a community list the shipped model does not
    know) before the first resident asks."""
    from linli.waste import guidance

    try:
        guidance.warm_up()
    except Exception:  # the guide reports its own errors on use; start-up must not fail
        log.exception("could not prepare the waste-sorting guide at start-up")


def create_app(settings: Settings | None = None, *, run_dispatcher: bool = True) -> FastAPI:
    settings = settings or get_settings()
    settings.prepare()
    db = Database(settings.resolved_database_url)
    bus: Any
    if settings.event_bus == "nats":
        from linli.core.natsbus import NatsBus

        bus = NatsBus(settings.nats_url)
    else:
        bus = InProcessBus()
    dispatcher = Dispatcher(db, bus)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks = []
        broker = None
        ingest = None
        if run_dispatcher:
            threading.Thread(target=_warm_up_guidance, name="waste-guide", daemon=True).start()
            tasks.append(asyncio.create_task(dispatcher.run_forever()))
            tasks.append(asyncio.create_task(_periodic(db, settings, app.state.files)))
            if settings.mqtt_enabled:
                from linli.iot.api import get_ingestor

                broker, ingest = await _start_mqtt(settings, db, get_ingestor(app)[0])
                app.state.mqtt = ingest
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if ingest is not None:
                await asyncio.to_thread(ingest.stop)
            if broker is not None:
                # amqtt's shutdown can wait for ever on a client caught mid-packet: bounded
                try:
                    await asyncio.wait_for(broker.shutdown(), timeout=10)
                except TimeoutError:
                    log.warning("the embedded MQTT broker did not stop within 10 s")
            if hasattr(bus, "close"):
                await asyncio.to_thread(bus.close)
            db.dispose()

    app = FastAPI(
        title="Linli API",
        version=__version__,
        description="Linli (邻里) — community governance platform. JSON API.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.settings = settings
    app.state.db = db
    app.state.bus = bus
    app.state.dispatcher = dispatcher
    app.state.files = FileStore(settings.files_dir)
    app.state.templates = make_templates()

    @app.middleware("http")
    async def language_and_headers(request: Request, call_next: Any) -> Response:
        lang = i18n.pick_language(
            request.cookies.get("lang"),
            request.headers.get("accept-language"),
            settings.default_language,
        )
        i18n.set_language(lang)
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith("/api/docs"):
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self'; media-src 'self' blob:; frame-ancestors 'none'",
            )
        return response

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key or "",
        session_cookie="linli_session",
        max_age=settings.session_max_age,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    _install_error_handlers(app)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    from linli.routes import include_all

    include_all(app)
    return app
