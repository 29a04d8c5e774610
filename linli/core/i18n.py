"""English and Simplified Chinese through gettext catalogs (``linli/locale``).

The catalogs are ``.po`` files (``messages.po`` plus one per domain that keeps its own, e.g.
``waste.po``) compiled in memory at start-up with Babel, so no binary
``.mo`` file has to be built or committed. The language of the current request lives in a
context variable; ``_()`` translates into it.
"""

from __future__ import annotations

import gettext as _gettext
import io
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}
DEFAULT_LANGUAGE = "zh_CN"

_current: ContextVar[str] = ContextVar("linli_language", default=DEFAULT_LANGUAGE)


def catalog_files(lang: str) -> list[Path]:
    """``messages.po`` first, then each domain's own catalog (``vehicles.po``, ``waste.po``…)."""
    folder = LOCALE_DIR / lang / "LC_MESSAGES"
    main = folder / "messages.po"
    extra = sorted(p for p in folder.glob("*.po") if p != main) if folder.is_dir() else []
    return ([main] if main.is_file() else []) + extra


def read_catalog(lang: str) -> Catalog:
    """All catalogs of ``lang`` merged; the first non-empty, non-fuzzy translation wins."""
    merged = Catalog(locale=lang, domain="messages")
    for path in catalog_files(lang):
        with path.open("rb") as fh:
            part = read_po(fh, locale=lang)
        for msg in part:
            if not msg.id or msg.fuzzy:
                continue
            strings = msg.string if isinstance(msg.string, tuple) else (msg.string,)
            if not all(strings):
                continue
            have = merged.get(msg.id, context=msg.context)
            if have is None or not have.string:
                merged.add(msg.id, msg.string, context=msg.context, flags=msg.flags)
    return merged


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    if lang == "en" or not catalog_files(lang):
        return _gettext.NullTranslations()
    catalog = read_catalog(lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def normalise(lang: str | None) -> str | None:
    if not lang:
        return None
    lang = lang.strip().replace("-", "_")
    low = lang.lower()
    if low.startswith("zh"):
        return "zh_CN"
    if low.startswith("en"):
        return "en"
    return None


def pick_language(cookie: str | None, accept: str | None, default: str) -> str:
    chosen = normalise(cookie)
    if chosen:
        return chosen
    for part in (accept or "").split(","):
        chosen = normalise(part.split(";")[0])
        if chosen:
            return chosen
    return normalise(default) or DEFAULT_LANGUAGE


def set_language(lang: str) -> None:
    _current.set(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)


def get_language() -> str:
    return _current.get()


_platform_language = DEFAULT_LANGUAGE


def set_platform_language(lang: str) -> None:
    """The language of texts written down for everyone (alarm messages, work-order titles):
    ``Settings.default_language``, set when the app or a worker starts."""
    global _platform_language
    _platform_language = normalise(lang) or DEFAULT_LANGUAGE


def platform_language() -> str:
    return _platform_language


def gettext(message: str, **params: Any) -> str:
    text = translations(_current.get()).gettext(message)
    return text % params if params else text


def pgettext(context: str, message: str, **params: Any) -> str:
    """``gettext`` for a word whose translation depends on what it names ("Name" of a person)."""
    text = translations(_current.get()).pgettext(context, message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(_current.get()).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


def translate_in(lang: str, message: str, **params: Any) -> str:
    text = translations(lang).gettext(message)
    return text % params if params else text


def render_in(lang: str, message: str, params: dict[str, Any]) -> str:
    """A stored message (msgid + parameters) in ``lang``; parameters whose name ends in
    ``_msg`` are msgids themselves (a built-in rule's name) and are translated too."""
    tr = translations(lang)
    values = {
        k: tr.gettext(v) if k.endswith("_msg") and isinstance(v, str) else v
        for k, v in params.items()
    }
    text = tr.gettext(message)
    return text % values if values else text


def render(message: str, params: dict[str, Any]) -> str:
    """:func:`render_in` the current request's language."""
    return render_in(_current.get(), message, params)


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


_ = gettext
