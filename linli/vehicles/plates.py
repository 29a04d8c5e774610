"""Plate strings as people type them and as the reader returns them: one normal form
(no separators, upper case, ASCII letters and digits) so that every look-up matches."""

from __future__ import annotations

from linli.core.errors import InvalidValue


def normalise_plate(text: str) -> str:
    """``皖a·12345`` / ``皖Ａ 12345`` -> ``皖A12345``."""
    from linli.vision.plate_grammar import normalise_text

    return normalise_text(text or "").upper()


def is_valid_plate(text: str) -> bool:
    from linli.vision.plate_grammar import validate

    return validate(normalise_plate(text)) is not None


def check_plate_value(text: str) -> str:
    """The normal form of a plate typed by a person, or InvalidValue (pydantic validators)."""
    plate = normalise_plate(text)
    if not plate:
        raise InvalidValue("This field is required.")
    if not is_valid_plate(plate):
        raise InvalidValue("%(plate)s is not a valid licence plate.", plate=plate[:20])
    return plate


def display_plate(plate: str | None) -> str:
    """``皖A12345`` -> ``皖A·12345`` (how plates are printed)."""
    if not plate:
        return ""
    return f"{plate[:2]}·{plate[2:]}" if len(plate) > 2 else plate
