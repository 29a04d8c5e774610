"""English and Simplified Chinese through gettext catalogs (``linli/locale``).

The catalogs are ``.po`` files compiled in memory at start-up with Babel, so no binary
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

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES: dict[str, str] = {"en": "English", "zh_CN": "简体中文"}
DEFAULT_LANGUAGE = "zh_CN"

_current: ContextVar[str] = ContextVar("linli_language", default=DEFAULT_LANGUAGE)


@cache
def translations(lang: str) -> _gettext.NullTranslations:
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not po.is_file():
        return _gettext.NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
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


def N_(message: str) -> str:
    """Mark a string for extraction without translating it now."""
    return message


_ = gettext
