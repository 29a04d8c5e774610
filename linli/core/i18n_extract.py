"""Message extraction and catalog checks (tooling for ``scripts/i18n.py`` and the tests).

``babel.cfg`` at the repository root maps ``linli/**.py`` to :func:`extract_python` and the
templates to Jinja's extractor. :func:`extract_python` is Babel's Python extractor plus one
convention of this code base: the English values of a module- or class-level dict literal whose
name ends in ``REASONS``, ``_MESSAGES`` or ``_TITLES`` (``REASONS = {"code": "Text"}``) are
user-facing messages looked up through gettext at render time, so they are extracted too.

Nothing here is imported by the running application.
"""

from __future__ import annotations

import ast
import io
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.extract import extract_python as _babel_extract_python
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent.parent
PACKAGE = ROOT / "linli"
LOCALE_DIR = PACKAGE / "locale"
CONFIG = ROOT / "babel.cfg"
DOMAIN = "messages"
TRANSLATED = ("zh_CN",)

_DICT_NAME = re.compile(r"(REASONS|_MESSAGES|_TITLES)$")
#: printf-style directives; ``%(name)s`` keeps its name, ``%%`` and bare ``%s`` count as such
_DIRECTIVE = re.compile(
    r"%(?:\((?P<name>\w+)\))?[-#0+]*(?:\d+|\*)?(?:\.\d+)?(?P<conv>[diouxXeEfFgGcrsa%])"
)


# -- extraction --------------------------------------------------------------------------------


def _dict_messages(
    source: bytes, names: re.Pattern[str], filename: str = "?"
) -> Iterator[tuple[int, str]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    bodies: list[list[ast.stmt]] = [tree.body]
    bodies += [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    for body in bodies:
        for stmt in body:
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            else:
                continue
            if not isinstance(value, ast.Dict):
                continue
            if not any(isinstance(t, ast.Name) and names.search(t.id) for t in targets):
                continue
            for v in value.values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value:
                    yield v.lineno, v.value
                elif isinstance(v, ast.JoinedStr):
                    sys.stderr.write(
                        f"{filename}:{v.lineno}: warning: an f-string in a message dict cannot be "
                        "translated; use %(name)s parameters instead\n"
                    )


def extract_python(
    fileobj: Any, keywords: Any, comment_tags: Collection[str], options: Any
) -> Iterator[Any]:
    """Babel's Python extractor plus the English values of ``*REASONS`` (etc.) dicts."""
    source = fileobj.read()
    yield from _babel_extract_python(io.BytesIO(source), keywords, comment_tags, options)
    pattern = options.get("message_dicts")
    names = re.compile(str(pattern)) if pattern else _DICT_NAME
    filename = str(getattr(fileobj, "name", "?"))
    for lineno, text in _dict_messages(source, names, filename):
        yield lineno, None, text, []


def extract(root: Path = ROOT, config: Path = CONFIG) -> Catalog:
    """Every message of the files that exist now, as a template catalog (the ``.pot``)."""
    with config.open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, str(config))
    catalog = Catalog(project="Linli", domain=DOMAIN, charset="utf-8", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(root), method_map, options_map, comment_tags=("TRANSLATORS:",), strip_comment_tags=True
    ):
        catalog.add(
            message,
            None,
            [(filename, lineno)],
            auto_comments=comments,
            context=context,
            flags=("python-format",) if _DIRECTIVE.search(_first(message)) else (),
        )
    return catalog


def _first(message: str | tuple[str, ...]) -> str:
    return message if isinstance(message, str) else " ".join(message)


# -- checks --------------------------------------------------------------------------------------


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_po(lang: str) -> Catalog:
    """Every catalog of ``lang`` merged (``messages.po`` and the domains' own ``*.po``)."""
    from linli.core.i18n import read_catalog

    return read_catalog(lang)


def load_main_po(lang: str) -> Catalog:
    """``messages.po`` alone, as ``scripts/i18n.py update`` rewrites it."""
    path = po_path(lang)
    if not path.is_file():
        return Catalog(locale=lang, domain=DOMAIN)
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


def domain_translated(lang: str) -> set[tuple[str, str | None]]:
    """(msgid, context) translated in a domain's own catalog, not in ``messages.po``."""
    from linli.core.i18n import catalog_files

    out: set[tuple[str, str | None]] = set()
    for path in catalog_files(lang):
        if path == po_path(lang):
            continue
        with path.open("rb") as fh:
            for msg in read_po(fh, locale=lang):
                if msg.id and msg.string and not msg.fuzzy:
                    out.add(
                        (_first(tuple(msg.id) if isinstance(msg.id, list) else msg.id), msg.context)
                    )
    return out


def directives(text: str) -> tuple[list[str], int]:
    """Named placeholders (sorted) and the number of other directives (``%s``, ``%%``)."""
    named: list[str] = []
    other = 0
    for m in _DIRECTIVE.finditer(text):
        if m.group("name"):
            named.append(m.group("name"))
        else:
            other += 1
    return sorted(set(named)), other


def _strings(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def problems(template: Catalog, translated: Catalog) -> list[str]:
    """One line per message of ``template`` that ``translated`` lacks or gets wrong."""
    out: list[str] = []
    for msg in template:
        if not msg.id:
            continue
        ids = _strings(msg.id)
        where = ", ".join(f"{f}:{n}" for f, n in msg.locations[:2])
        label = f"{ids[0]!r}" + (f" [{msg.context}]" if msg.context else "") + f" ({where})"
        have = translated.get(msg.id, context=msg.context)
        strs = [s for s in _strings(have.string if have else None) if s]
        if have is None or not strs or have.fuzzy or len(strs) < len(_strings(have.string)):
            out.append(f"untranslated: {label}")
            continue
        want_named = directives(ids[0])[0]
        plural_named = {n for i in ids for n in directives(i)[0]}
        for s in strs:
            named, other = directives(s)
            ok_named = named == want_named or (len(ids) > 1 and set(named) <= plural_named)
            if not ok_named or other != directives(ids[0])[1]:
                out.append(f"placeholders differ: {label} -> {s!r}")
                break
    return out
