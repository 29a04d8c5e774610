"""Message catalogs of Linli: extract, update, check.

    python scripts/i18n.py extract   # linli/locale/messages.pot from the code and templates
    python scripts/i18n.py update    # merge it into linli/locale/zh_CN/LC_MESSAGES/messages.po
                                     # (messages translated in a domain's own catalog, such as
                                     # LC_MESSAGES/waste.po, are left to that file)
    python scripts/i18n.py check     # exit 1 listing untranslated or mismatched messages

English is the source language (the msgids); ``zh_CN`` must be complete. The ``.po`` files are
compiled in memory at start-up, so there is nothing to compile here.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from babel.messages.catalog import Catalog  # noqa: E402
from babel.messages.pofile import write_po  # noqa: E402

from linli.core.i18n_extract import (  # noqa: E402
    LOCALE_DIR,
    TRANSLATED,
    domain_translated,
    extract,
    load_main_po,
    load_po,
    po_path,
    problems,
)

POT = LOCALE_DIR / "messages.pot"


HEADER = """\
# Linli (邻里) user interface messages. English is the source language.
# This file is distributed under the same license as the Linli project.
# Update with: python scripts/i18n.py update ; check with: python scripts/i18n.py check
#"""


def _write(catalog: Catalog, path: Path) -> None:
    from linli import __version__

    catalog.project = "Linli"
    catalog.version = __version__
    catalog.copyright_holder = "Linli contributors"
    catalog.msgid_bugs_address = ""
    catalog.header_comment = HEADER
    catalog.fuzzy = False
    if catalog.locale is not None:
        catalog.last_translator = "Linli contributors"
        catalog.revision_date = datetime.now(UTC)
        catalog.language_team = f"{catalog.locale_identifier} <https://linli.dev>"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=100, include_lineno=False, ignore_obsolete=True)


def cmd_extract(_: argparse.Namespace) -> int:
    template = extract()
    _write(template, POT)
    print(f"{POT.relative_to(ROOT)}: {len(template)} messages")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    template = extract()
    _write(template, POT)
    for lang in args.lang or TRANSLATED:
        catalog = load_main_po(lang)
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=True)
        for key in domain_translated(lang):  # kept in a domain's own catalog
            if (msg := catalog.get(key[0], context=key[1])) is not None and not msg.string:
                catalog.delete(key[0], context=key[1])
        _write(catalog, po_path(lang))
        missing = sum(1 for m in catalog if m.id and not m.string)
        print(f"{po_path(lang).relative_to(ROOT)}: {len(catalog)} messages, {missing} untranslated")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    template = extract()
    failed = False
    for lang in args.lang or TRANSLATED:
        found = problems(template, load_po(lang))
        for line in found:
            print(f"{lang}: {line}")
        if found:
            failed = True
            print(f"{lang}: {len(found)} of {len(template)} messages need work")
        else:
            print(f"{lang}: all {len(template)} messages translated")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, helptext in (
        ("extract", cmd_extract, "write linli/locale/messages.pot"),
        ("update", cmd_update, "merge the template into the translations, keeping them"),
        ("check", cmd_check, "fail on untranslated messages or mismatched placeholders"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--lang", action="append", help="language (default: zh_CN)")
        p.set_defaults(func=func)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
