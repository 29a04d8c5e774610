"""``linli consultation ...``: opinion maps of consultations, Pol.is import and comparison.

Heavy libraries (numpy, scikit-learn) are imported inside the commands so that ``linli --help``
stays fast (the Pol.is reader uses only the standard library).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from linli.consultation.meta import parse_ids
from linli.consultation.polis import PolisConversation, PolisImportError, load_polis_export

if TYPE_CHECKING:
    from linli.consultation.opinion import OpinionMap

app = typer.Typer(
    help="Democratic consultation: opinion maps (Pol.is-style groups, consensus, divisive).",
    no_args_is_help=True,
)

# Machine code -> English text shown to the user (translated later through gettext).
REASONS: dict[str, str] = {
    "bad_id_list": "Statement ids must be whole numbers or ranges, e.g. 1-14,20",
    "no_polis_groups": "participants-votes.csv is missing or has no group-id: nothing to compare",
}


def _parse_ids(text: str) -> set[int]:
    """``"1-14,20"`` -> {1, ..., 14, 20}."""
    try:
        return parse_ids(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{REASONS['bad_id_list']}: {str(exc)!r}") from None


def _fail(code: str, message: str) -> NoReturn:
    typer.echo(f"error [{code}]: {message}", err=True)
    raise typer.Exit(2)


def _load(directory: Path) -> PolisConversation:
    try:
        return load_polis_export(directory)
    except PolisImportError as exc:
        _fail(exc.code, exc.describe())


def _compute(
    conv: PolisConversation, meta: set[int], groups: int | None, history: bool
) -> tuple[OpinionMap, dict[str, Any]]:
    """The map, and how its number of groups was chosen ("forced", "history" or
    "silhouette", with the replay's figures)."""
    from linli.consultation.history import replay_k
    from linli.consultation.opinion import OpinionInputError, OpinionParams, compute_opinion_map

    votes = conv.vote_tuples()
    try:
        result = compute_opinion_map(
            votes, conv.moderated_out, OpinionParams(force_k=groups), meta=meta
        )
        if groups is not None:
            return result, {"k_choice": "forced"}
        replay = None
        if history:
            replay = replay_k(votes, meta | conv.moderated_out, tie_break=result.silhouettes)
        if replay is None:
            return result, {"k_choice": "silhouette"}
        if replay.k != result.k:
            params = OpinionParams(preferred_k=replay.k)
            result = compute_opinion_map(votes, conv.moderated_out, params, meta=meta)
        return result, {"k_choice": "history", "history": replay.to_dict()}
    except OpinionInputError as exc:
        _fail(exc.code, str(exc))


MetaOption = typer.Option(
    "",
    "--meta",
    help="Ids of further meta statements (e.g. demographic questions) to leave out of the "
    "clustering, as Pol.is does with is_meta statements. Example: 1-14,20",
)
AutoMetaOption = typer.Option(
    True,
    "--auto-meta/--no-auto-meta",
    help="When comments.csv has no is-meta column, recognise statements that describe the "
    "participant (age, gender, where they live…) and leave them out as meta. "
    "See `meta-statements` for the list.",
)
GroupsOption = typer.Option(
    None, "--groups", min=1, max=20, help="Use this number of groups instead of choosing one."
)
HistoryOption = typer.Option(
    True,
    "--history/--no-history",
    help="When votes.csv has vote times, choose the number of groups the way Pol.is's own "
    "math arrived at it: by replaying its incremental updates over the vote history (about "
    "10-30 s for a few thousand participants). --no-history chooses it from the final votes "
    "alone (best silhouette).",
)


@app.command("opinion-groups")
def opinion_groups(
    directory: Path = typer.Argument(..., help="A Pol.is export folder (comments.csv, votes.csv)."),
    meta: str = MetaOption,
    auto_meta: bool = AutoMetaOption,
    groups: int | None = GroupsOption,
    history: bool = HistoryOption,
    full: bool = typer.Option(
        False,
        "--full",
        help="Print the whole map: coordinates, representative statements, vote counts per group.",
    ),
    indent: int | None = typer.Option(None, "--indent", min=0, help="Indent the JSON."),
) -> None:
    """Opinion groups of a Pol.is export as JSON.

    Prints {"groups": k, "participants": {"<participant id>": group, ...}, "consensus":
    [statement ids], "divisive": [statement ids], "provisional": [participant ids],
    "meta": [statement ids]}.
    Every voter has a group; "provisional" lists those who voted on fewer than
    min(7, number of statements) statements: they did not shape the groups and were given the
    nearest one. "meta" lists the statements left out as meta (see `meta-statements`).
    "k_choice" says how the number of groups was chosen: "history" (replayed, see --history),
    "silhouette" or "forced".
    """
    conv = _load(directory)
    meta_ids = conv.meta_statements(auto=auto_meta, declared=_parse_ids(meta))
    result, how = _compute(conv, meta_ids, groups, history)
    data = result.to_dict() if full else result.groups_summary()
    data["meta"] = sorted(meta_ids)
    data["k_choice"] = how["k_choice"]
    if full and "history" in how:
        data["history"] = how["history"]
    json.dump(data, sys.stdout, ensure_ascii=False, indent=indent)
    sys.stdout.write("\n")


@app.command("opinion-compare")
def opinion_compare(
    directory: Path = typer.Argument(
        ..., help="A Pol.is export folder with participants-votes.csv."
    ),
    meta: str = MetaOption,
    auto_meta: bool = AutoMetaOption,
    groups: int | None = GroupsOption,
    history: bool = HistoryOption,
) -> None:
    """Compare Linli's opinion groups with the groups Pol.is assigned (adjusted Rand index).

    Only participants Pol.is clustered (non-empty group-id) are compared.
    """
    from sklearn.metrics import adjusted_rand_score

    conv = _load(directory)
    theirs = conv.polis_groups()
    if not theirs:
        _fail("no_polis_groups", REASONS["no_polis_groups"])
    meta_ids = conv.meta_statements(auto=auto_meta, declared=_parse_ids(meta))
    result, how = _compute(conv, meta_ids, groups, history)
    compared = [p for p in theirs if p in result.participants]
    provisional = set(result.provisional)
    ari = adjusted_rand_score(
        [theirs[p] for p in compared], [result.participants[p] for p in compared]
    )
    data = {
        "conversation": directory.name,
        "ari": round(float(ari), 4),
        "groups": result.k,
        "polis_groups": len(set(theirs.values())),
        "compared": len(compared),
        "polis_clustered": len(theirs),
        "compared_provisional": sum(1 for p in compared if p in provisional),
        "clustered_not_by_polis": sum(1 for p in result.clustered if p not in theirs),
        "silhouettes": {str(k): round(v, 4) for k, v in result.silhouettes.items()},
        "meta": sorted(meta_ids),
        **how,
    }
    json.dump(data, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


@app.command("meta-statements")
def meta_statements(
    directory: Path = typer.Argument(..., help="A Pol.is export folder (comments.csv)."),
    indent: int | None = typer.Option(None, "--indent", min=0, help="Indent the JSON."),
) -> None:
    """Which statements are meta, and why, as JSON.

    Prints {"source": "export" | "detected", "meta": [{"id", "category", "matched", "text"},
    ...]}: with "export", comments.csv has Pol.is's is-meta column and its flags are used as
    they are; with "detected", the statements were recognised from their text as describing the
    participant (category: age, gender, ethnicity, language, residence, education, occupation,
    household, tenure, health or experience; matched: the words that decided it).
    Statements moderated out are not listed.
    """
    conv = _load(directory)
    if conv.has_meta_column:
        texts = {c.comment_id: c.text for c in conv.comments}
        items = [
            {"id": cid, "category": None, "matched": None, "text": texts[cid]}
            for cid in sorted(conv.meta_ids - conv.moderated_out)
        ]
        data: dict[str, object] = {"source": "export", "meta": items}
    else:
        data = {"source": "detected", "meta": [f.to_dict() for f in conv.detected_meta()]}
    json.dump(data, sys.stdout, ensure_ascii=False, indent=indent)
    sys.stdout.write("\n")
