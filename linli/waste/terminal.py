"""The terminal protocol, one request → one answer, shared by HTTP (api.py) and MQTT (mqtt.py).

A request is a JSON object ``{"op": ..., "lang": "zh"|"en", ...}``:

* ``identify`` ``{"method": "card"|"qr"|"face", "value": "...", "image_b64": "..."}``
* ``open`` ``{"session_id": n, "category": "kitchen", "wait_s": 5}`` — the lid command is
  sent; the answer comes when the lid confirms (``lid: "open"``), fails, or ``wait_s`` passes
* ``deposit`` ``{"session_id": n, "weight_kg": 1.2, "photo_b64": "..."}``
* ``guide`` ``{"item": "香蕉皮"}`` — sorting guidance
* ``prompt`` ``{"key": "welcome"}`` — a prompt's texts and audio URLs

The answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``
(message in the request's language). Every answer that speaks has ``prompts``: a list of
``{"key", "lang", "text", "url"}``, ``url`` being the WAV file on this server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from linli.core import i18n
from linli.core.config import Settings
from linli.core.db import Database, utcnow
from linli.core.errors import AppError, ValidationFailed
from linli.core.files import FileStore
from linli.waste import service
from linli.waste.models import Station, TerminalSession
from linli.waste.schemas import DepositIn, IdentifyIn, OpenIn

OPS = ("identify", "open", "deposit", "guide", "prompt")
_LID_FAILED = service.REASONS["lid_not_confirmed"]


def _error(
    code: str, message: str, lang: str, params: dict[str, Any] | None = None, status: int = 400
) -> dict[str, Any]:
    text = i18n.translate_in(_ui(lang), message, **(params or {}))
    return {"ok": False, "status": status, "error": {"code": code, "message": text}}


def _ui(lang: str) -> str:
    return "zh_CN" if lang == "zh" else "en"


def session_answer(
    s: Any,
    settings: Settings,
    station: Station,
    ts: TerminalSession,
    now: datetime,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "session_id": ts.id,
        "status": ts.status,
        "resident": service.resident_name(s, ts.resident_id),
        "method": ts.method,
        "expires_at": ts.expires_at.isoformat(),
        "bin_id": ts.bin_id,
        "command_id": ts.command_id,
        "lid": service.lid_state(s, ts, now) if ts.bin_id else None,
        "points": service.balance(s, station.community_id, ts.resident_id),
    }
    out.update(extra or {})
    return out


def handle(
    db: Database,
    settings: Settings,
    files: FileStore,
    station_id: int,
    req: Any,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Answer one terminal request of station ``station_id``. Never raises for bad input."""
    lang = "en"
    if isinstance(req, dict) and req.get("lang") in ("zh", "en"):
        lang = str(req["lang"])
    if not isinstance(req, dict) or req.get("op") not in OPS:
        return _error("bad_request", "Unknown terminal operation.", lang)
    try:
        return {"ok": True, **_dispatch(db, settings, files, station_id, req, now)}
    except AppError as exc:
        return _error(exc.code, exc.message, lang, exc.params, exc.status)
    except IntegrityError:  # the same session deposited twice at the same moment
        return _error("session_done", service.REASONS["session_done"], lang, None, 409)
    except ValidationError as exc:
        errs = exc.errors()
        field = ".".join(str(x) for x in errs[0]["loc"]) if errs else ""
        return {
            "ok": False,
            "status": 422,
            "error": {
                "code": "validation_failed",
                "message": i18n.translate_in(_ui(lang), "Some fields are missing or invalid."),
                "field": field,
            },
        }


def _dispatch(
    db: Database,
    settings: Settings,
    files: FileStore,
    station_id: int,
    req: dict[str, Any],
    now: datetime | None,
) -> dict[str, Any]:
    op = req["op"]
    if op == "guide":
        answer = guide(req.get("item"))
        with db.session() as s:
            st = s.get(Station, station_id)
            assert st is not None
            answer["prompts"] = guide_prompts(s, settings, st, answer)
        return answer
    t = now or utcnow()
    if op == "prompt":
        with db.session() as s:
            st = s.get(Station, station_id)
            assert st is not None
            key = str(req.get("key") or "")
            return {"prompts": service.prompts_both(s, settings, st.community_id, st.id, key)}
    if op == "identify":
        data = IdentifyIn.model_validate(req)
        image = service.decode_b64(data.image_b64, "image_b64") if data.image_b64 else None
        with db.session() as s:
            st = s.get(Station, station_id)
            assert st is not None
            ts = service.identify(s, settings, st, data.method, data.value, image, t)
            said = service.prompts_both(s, settings, st.community_id, st.id, "welcome")
            return session_answer(s, settings, st, ts, t, {"prompts": said})
    if op == "open":
        data_o = OpenIn.model_validate(req)
        sid = _session_id(req)
        with db.session() as s:
            st = s.get(Station, station_id)
            assert st is not None
            ts = service.get_session(s, st, sid, t)
            opened = service.open_lid(s, settings, st, ts, data_o.category, t)
            extra = {
                "category": data_o.category,
                "outside_hours": opened["outside_hours"],
                "next_open": opened["next_open"].isoformat() if opened["next_open"] else None,
                "prompts": opened["prompts"],
            }
        lid = service.wait_for_lid(db, sid, data_o.wait_s) if data_o.wait_s else None
        with db.session() as s:
            st = s.get(Station, station_id)
            ts2 = s.get(TerminalSession, sid)
            assert st is not None and ts2 is not None
            ans = session_answer(s, settings, st, ts2, utcnow() if now is None else t, extra)
        if lid in ("failed", "timeout"):
            raise ValidationFailed(_LID_FAILED, code="lid_not_confirmed", status=409)
        return ans
    # deposit
    data_d = DepositIn.model_validate(req)
    sid = _session_id(req)
    photo = service.decode_b64(data_d.photo_b64, "photo_b64")
    with db.session() as s:
        st = s.get(Station, station_id)
        assert st is not None
        ts = service.get_session(s, st, sid, t)
        dep, awarded = service.record_deposit(
            s, settings, files, st, ts, data_d.weight_kg, photo, t
        )
        dep_id, status = dep.id, dep.status
        thanks = (
            service.prompts_both(s, settings, st.community_id, st.id, "thank_you")
            if status == "valid"
            else []
        )
        bal = service.balance(s, st.community_id, ts.resident_id)
    if status != "valid":
        raise ValidationFailed(_LID_FAILED, code="lid_not_confirmed", status=409)
    return {
        "deposit_id": dep_id,
        "status": status,
        "points_awarded": awarded,
        "points": bal,
        "prompts": thanks,
    }


def _session_id(req: dict[str, Any]) -> int:
    sid = req.get("session_id")
    if isinstance(sid, bool) or not isinstance(sid, int) or not 0 < sid < 2**31:
        raise ValidationFailed("A session_id is required.", field="session_id")
    return sid


def guide_prompts(
    s: Any, settings: Settings, st: Station, answer: dict[str, Any]
) -> list[dict[str, str]]:
    """What the terminal says about a looked-up item: which bin (in both languages, the
    English query spoken as understood in English), and "ask the staff" when unsure."""
    from linli.waste import voice

    cat = answer["category"]
    item = {"zh": str(answer.get("matched") or answer["item"]), "en": str(answer["item"])}
    if not any("a" <= ch.lower() <= "z" for ch in item["en"]):
        item["en"] = "This item"
    said = service.prompts_both(
        s,
        settings,
        st.community_id,
        st.id,
        "which_bin",
        item=item,
        category=voice.CATEGORY[cat],
        bin=voice.BIN[cat],
    )
    if answer.get("ask_staff"):
        said += service.prompts_both(s, settings, st.community_id, st.id, "ask_staff")
    return said


def guide(item: Any) -> dict[str, Any]:
    """Sorting guidance for the terminal and the resident page (errors as AppError)."""
    from linli.waste import guidance as g

    try:
        answer = g.default_guide().guide(item)
    except g.GuidanceInputError as exc:
        raise ValidationFailed(
            g.REASONS.get(exc.code, exc.code),
            code=exc.code,
            field="item",
            params={"max": g.MAX_QUERY_CHARS},
        ) from None
    return answer.to_dict()
