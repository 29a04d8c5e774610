"""Navigation: the modules of the product and the pages each one registers.

Every domain adds its pages with ``register()``; a section whose module is not installed
yet is listed as planned (greyed out, not a link), so staff see the whole product map.
"""

from __future__ import annotations

from dataclasses import dataclass

from linli.core.i18n import N_
from linli.core.roles import Perm


@dataclass(frozen=True)
class NavItem:
    section: str
    label: str
    path: str  # relative to /c/{cid}
    perm: Perm


SECTIONS: list[tuple[str, str]] = [
    ("overview", N_("Overview")),
    ("people", N_("Residents")),
    ("consultation", N_("Consultation")),
    ("access", N_("Access control")),
    ("vehicles", N_("Vehicles")),
    ("safety", N_("Safety")),
    ("waste", N_("Living environment")),
    ("iot", N_("Facilities")),
    ("workorders", N_("Work orders")),
    ("admin", N_("Administration")),
]

_items: list[NavItem] = []


def register(*items: NavItem) -> None:
    for item in items:
        if item not in _items:
            _items.append(item)


def items() -> list[NavItem]:
    return list(_items)
