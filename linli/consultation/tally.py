"""Vote counting as pure functions (no database): choice polls, instant-runoff, owners' assembly.

Owners' assembly decisions follow PRC Civil Code art. 278 (2021):

* participation: owners holding at least 2/3 of the exclusive floor area **and** at least 2/3
  of the owners by headcount must take part;
* approval: more than half of the participating area **and** more than half of the
  participating headcount; for the special matters (raising or using the maintenance fund,
  rebuilding, changing the use of common parts, ...) at least 3/4 of both.

An owner of several units counts once by headcount, with the sum of their units' areas. A unit
with several co-owners is represented by one designated owner (Linli: the co-owner registered
first) — see :func:`owner_register`. Arithmetic is exact (fractions), so "exactly 2/3" passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

AGREE, DISAGREE, ABSTAIN = "agree", "disagree", "abstain"


def _frac(x: float | int | Fraction) -> Fraction:
    if isinstance(x, Fraction):
        return x
    return Fraction(Decimal(str(x)))


def owner_register(
    ownerships: Iterable[tuple[int, int, int]], unit_areas: Mapping[int, float | None]
) -> dict[int, float]:
    """Owner (resident id) -> counted floor area.

    ``ownerships``: ``(ownership_id, resident_id, unit_id)``. For each unit only the co-owner
    with the lowest ownership id (registered first) is counted; the others do not vote for it.
    """
    designated: dict[int, tuple[int, int]] = {}
    for oid, rid, uid in ownerships:
        cur = designated.get(uid)
        if cur is None or oid < cur[0]:
            designated[uid] = (oid, rid)
    out: dict[int, float] = {}
    for uid, (_, rid) in designated.items():
        out[rid] = out.get(rid, 0.0) + float(unit_areas.get(uid) or 0.0)
    return out


@dataclass
class OwnersResult:
    total_owners: int
    total_area: float
    voters: int
    voted_area: float
    agree_owners: int
    agree_area: float
    disagree_owners: int
    abstain_owners: int
    quorum_met: bool
    approved: bool
    special_matter: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def owners_tally(
    register: Mapping[Any, float],
    ballots: Iterable[tuple[Any, str]],
    *,
    special_matter: bool = False,
) -> OwnersResult:
    """Count an owners' assembly decision from named ballots.

    ``register``: every eligible owner -> counted area; ``ballots``: ``(owner, choice)`` with
    choice agree / disagree / abstain. A ballot of someone not in the register raises
    ValueError (the caller refuses non-owners before they vote); so does a second ballot of
    the same owner.
    """
    seen: set[Any] = set()
    weighted: list[tuple[float, str]] = []
    for owner, choice in ballots:
        if owner not in register:
            raise ValueError(f"not an owner: {owner!r}")
        if owner in seen:
            raise ValueError(f"voted twice: {owner!r}")
        seen.add(owner)
        weighted.append((register[owner], choice))
    return owners_decision(
        len(register), sum(register.values()), weighted, special_matter=special_matter
    )


def owners_decision(
    total_owners: int,
    total_area: float,
    ballots: Iterable[tuple[float, str]],
    *,
    special_matter: bool = False,
) -> OwnersResult:
    """The art. 278 rules on ``(area, choice)`` ballots (one per owner; secret ballots carry
    the area but not the owner)."""
    total_a = _frac(total_area)
    agree_n = disagree_n = abstain_n = voters = 0
    agree_a = voted_a = Fraction(0)
    for area_f, choice in ballots:
        if choice not in (AGREE, DISAGREE, ABSTAIN):
            raise ValueError(f"bad choice: {choice!r}")
        area = _frac(area_f)
        voters += 1
        voted_a += area
        if choice == AGREE:
            agree_n += 1
            agree_a += area
        elif choice == DISAGREE:
            disagree_n += 1
        else:
            abstain_n += 1
    two_thirds = Fraction(2, 3)
    reasons: list[str] = []
    quorum_area = total_a > 0 and voted_a >= two_thirds * total_a
    quorum_head = total_owners > 0 and voters >= two_thirds * total_owners
    if not quorum_area:
        reasons.append("participating area below 2/3")
    if not quorum_head:
        reasons.append("participating owners below 2/3")
    quorum = quorum_area and quorum_head
    if special_matter:
        ok_area = voted_a > 0 and agree_a >= Fraction(3, 4) * voted_a
        ok_head = voters > 0 and agree_n >= Fraction(3, 4) * voters
        need = "3/4"
    else:
        ok_area = agree_a > Fraction(1, 2) * voted_a
        ok_head = agree_n > Fraction(1, 2) * voters
        need = "more than 1/2"
    if not ok_area:
        reasons.append(f"agreeing area not {need} of the participating area")
    if not ok_head:
        reasons.append(f"agreeing owners not {need} of the participating owners")
    return OwnersResult(
        total_owners=total_owners,
        total_area=float(total_a),
        voters=voters,
        voted_area=float(voted_a),
        agree_owners=agree_n,
        agree_area=float(agree_a),
        disagree_owners=disagree_n,
        abstain_owners=abstain_n,
        quorum_met=bool(quorum),
        approved=bool(quorum and ok_area and ok_head),
        special_matter=special_matter,
        reasons=reasons,
    )


def choice_tally(
    option_ids: Sequence[int],
    ballots: Iterable[Sequence[int]],
    *,
    eligible: int,
    quorum: float = 0.0,
    threshold: float = 0.0,
) -> dict[str, Any]:
    """Single or multiple choice: counts per option, quorum on ballots / eligible voters, and
    the winner(s): options whose share of the ballots exceeds ``threshold`` (0 = plurality;
    a tie at the top under plurality has no single winner)."""
    counts = {o: 0 for o in option_ids}
    n = 0
    for b in ballots:
        n += 1
        for o in set(b):
            if o in counts:
                counts[o] += 1
    quorum_met = eligible > 0 and Fraction(n, eligible) >= _frac(quorum) if quorum else n > 0
    winners: list[int] = []
    if quorum_met and n:
        if threshold:
            winners = [o for o, c in counts.items() if Fraction(c, n) > _frac(threshold)]
        else:
            top = max(counts.values(), default=0)
            leaders = [o for o, c in counts.items() if c == top and top > 0]
            winners = leaders if len(leaders) == 1 else []
    return {
        "ballots": n,
        "eligible": eligible,
        "counts": {str(o): c for o, c in counts.items()},
        "quorum_met": bool(quorum_met),
        "winners": winners,
        "tie": bool(quorum_met and n and not threshold and not winners),
    }


def instant_runoff(option_ids: Sequence[int], rankings: Iterable[Sequence[int]]) -> dict[str, Any]:
    """Instant-runoff: eliminate the option with the fewest first preferences until one has a
    majority of the ballots still in play. Ties for last place eliminate the option with the
    fewest first preferences in the original count, then the higher option id (deterministic);
    a tie between the last two remaining options is reported as a tie."""
    ballots = [[o for o in r if o in option_ids] for r in rankings]
    ballots = [b for b in ballots if b]
    remaining = list(option_ids)
    first_round = {o: sum(1 for b in ballots if b[0] == o) for o in option_ids}
    rounds: list[dict[str, int]] = []
    while remaining:
        counts = {o: 0 for o in remaining}
        for b in ballots:
            for o in b:
                if o in counts:
                    counts[o] += 1
                    break
        active = sum(counts.values())
        rounds.append({str(o): c for o, c in counts.items()})
        if active == 0:
            return {"rounds": rounds, "winner": None, "tie": False, "ballots": len(ballots)}
        top = max(counts.values())
        if top * 2 > active or len(remaining) == 1:
            winner = max(remaining, key=lambda o: counts[o])
            return {"rounds": rounds, "winner": winner, "tie": False, "ballots": len(ballots)}
        low = min(counts.values())
        losers = [o for o in remaining if counts[o] == low]
        if len(losers) == len(remaining):
            return {"rounds": rounds, "winner": None, "tie": True, "ballots": len(ballots)}
        out = min(losers, key=lambda o: (first_round[o], -o))
        remaining.remove(out)
    return {"rounds": rounds, "winner": None, "tie": False, "ballots": len(ballots)}
