"""Read a Pol.is open-data export folder.

A Pol.is export (https://github.com/compdemocracy/openData) holds one folder per conversation:

- ``comments.csv`` — ``timestamp, datetime, comment-id, author-id, agrees, disagrees, moderated,
  comment-body`` (``moderated``: 1 accepted, 0 not yet moderated, -1 moderated out); an optional
  ``is-meta`` column (true/false) marks Pol.is meta statements (demographic questions), which
  Pol.is leaves out of its math — the public open-data exports do not carry it;
- ``votes.csv`` — ``timestamp, datetime, comment-id, voter-id, vote`` (1 agree, -1 disagree,
  0 pass); a participant may vote several times on a comment, the latest vote counts;
- ``participants-votes.csv`` (optional here) — one row per participant with the opinion group
  Pol.is assigned (``group-id``, empty when Pol.is did not cluster the participant), then the
  participant's vote on every comment (one column per comment id);
- ``summary.csv`` (optional) — ``key,value`` lines (topic, counts, number of groups).

Files are read strictly: a missing column, a malformed number, a vote outside {-1, 0, 1}, a
row with the wrong number of fields or text that is not UTF-8 raise :class:`PolisImportError`
with a stable code, the file and the line number. Only the standard library is used here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linli.consultation.meta import MetaFinding, detect_meta

# Machine code -> English text; the text is what a user sees (translated later through gettext).
REASONS: dict[str, str] = {
    "not_a_directory": "The Pol.is export folder does not exist or is not a folder",
    "missing_file": "A required file of the Pol.is export is missing",
    "unreadable_file": "A file of the Pol.is export cannot be read",
    "not_utf8": "The file is not UTF-8 text",
    "empty_file": "The file is empty (no header line)",
    "missing_column": "A required column is missing from the header",
    "duplicate_column": "A column name appears twice in the header",
    "bad_row_length": "The line does not have as many fields as the header",
    "bad_csv": "The line is not valid CSV",
    "bad_integer": "A field that must be a whole number is not one",
    "bad_vote": "A vote must be 1 (agree), -1 (disagree) or 0 (pass)",
    "bad_moderation": "The moderated field must be 1, 0 or -1",
    "bad_boolean": "A yes/no field must be true, false, 1, 0 or empty",
    "duplicate_comment": "The same comment id appears twice",
    "duplicate_participant": "The same participant appears twice",
    "unknown_comment": "A vote refers to a comment id that is not in comments.csv",
}

COMMENTS_FILE = "comments.csv"
VOTES_FILE = "votes.csv"
PARTICIPANTS_FILE = "participants-votes.csv"
SUMMARY_FILE = "summary.csv"

_BOOLEANS = {"": False, "0": False, "false": False, "f": False, "1": True, "true": True, "t": True}
_COMMENT_COLUMNS = ("comment-id", "moderated")
_VOTE_COLUMNS = ("comment-id", "voter-id", "vote")
_PARTICIPANT_FIXED = (
    "participant",
    "xid",
    "group-id",
    "n-comments",
    "n-votes",
    "n-agree",
    "n-disagree",
)


class PolisImportError(ValueError):
    """A Pol.is export that cannot be read; ``code`` is a key of :data:`REASONS`."""

    def __init__(
        self,
        code: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        detail: str = "",
    ) -> None:
        self.code = code
        self.reason = REASONS[code]
        self.path = Path(path) if path is not None else None
        self.line = line
        self.detail = detail
        super().__init__(self.describe())

    def describe(self) -> str:
        where = ""
        if self.path is not None:
            where = f" ({self.path.name}" + (f", line {self.line}" if self.line else "") + ")"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.reason}{where}{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.reason,
            "file": self.path.name if self.path is not None else None,
            "line": self.line,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PolisComment:
    comment_id: int
    author_id: int | None
    moderated: int  # 1 accepted, 0 unmoderated, -1 moderated out
    text: str
    timestamp: int | None
    agrees: int | None = None
    disagrees: int | None = None
    is_meta: bool = False  # Pol.is "meta" statement (e.g. a demographic question)
    is_seed: bool | None = None  # seeded by the moderator (``is-seed``); None: not in the export


@dataclass(frozen=True)
class PolisVote:
    timestamp: int | None
    comment_id: int
    participant_id: int
    vote: int  # 1 agree, -1 disagree, 0 pass (the export's convention)


@dataclass(frozen=True)
class PolisParticipant:
    participant_id: int
    group_id: int | None  # the group Pol.is assigned; None when it did not cluster the person
    votes: dict[int, int] = field(default_factory=dict)


@dataclass
class PolisConversation:
    """One conversation of a Pol.is export."""

    path: Path
    comments: list[PolisComment]
    votes: list[PolisVote]
    participants: list[PolisParticipant] | None = None
    summary: dict[str, str] = field(default_factory=dict)
    #: the export says which statements are meta (an ``is-meta`` column in comments.csv)
    has_meta_column: bool = False

    @property
    def moderated_out(self) -> set[int]:
        return {c.comment_id for c in self.comments if c.moderated < 0}

    @property
    def meta_ids(self) -> set[int]:
        """Meta statements, when the export says which they are (an ``is-meta`` column)."""
        return {c.comment_id for c in self.comments if c.is_meta}

    def detected_meta(self) -> list[MetaFinding]:
        """Statements that describe the participant, recognised from their text — only when
        the export does not say which statements are meta (no ``is-meta`` column), and only
        among statements not moderated out (those are left out anyway)."""
        if self.has_meta_column:
            return []
        out = {c.comment_id for c in self.comments if c.moderated < 0}
        return [f for f in detect_meta(self.comments) if f.comment_id not in out]

    def meta_statements(self, *, auto: bool = True, declared: Iterable[int] = ()) -> set[int]:
        """Meta statements to leave out of the math: the export's ``is-meta`` flags, those
        recognised from their text (``auto``, when the export has no flags) and ``declared``."""
        found = {f.comment_id for f in self.detected_meta()} if auto else set()
        return self.meta_ids | found | set(declared)

    @property
    def comment_ids(self) -> list[int]:
        return [c.comment_id for c in self.comments]

    def vote_tuples(self) -> list[tuple[int, int, int, int | None]]:
        """Votes as ``(participant_id, comment_id, vote, timestamp)`` for compute_opinion_map."""
        return [(v.participant_id, v.comment_id, v.vote, v.timestamp) for v in self.votes]

    def polis_groups(self) -> dict[int, int]:
        """Participant -> the group Pol.is assigned, for participants Pol.is clustered."""
        if self.participants is None:
            return {}
        return {p.participant_id: p.group_id for p in self.participants if p.group_id is not None}


# ---------------------------------------------------------------------------------------------
# low-level CSV reading with line numbers


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise PolisImportError("missing_file", path=path) from exc
    except OSError as exc:
        raise PolisImportError("unreadable_file", path=path, detail=str(exc)) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolisImportError("not_utf8", path=path, line=line) from exc


def _rows(
    path: Path, rest_column: str | None = None
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and an iterator of ``(line number, fields)`` (the line where the record starts).

    ``rest_column``: when it is the last column of the header, a record with more fields than
    the header has them joined back into that column with commas. Pol.is servers write
    ``comment-body`` last and unquoted, so a comma in a comment would otherwise split it."""
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration as exc:
        raise PolisImportError("empty_file", path=path, line=1) from exc
    except csv.Error as exc:
        raise PolisImportError("bad_csv", path=path, line=1, detail=str(exc)) from exc
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise PolisImportError("duplicate_column", path=path, line=1, detail=name)
        seen.add(name)

    def records() -> Iterator[tuple[int, list[str]]]:
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise PolisImportError("bad_csv", path=path, line=start, detail=str(exc)) from exc
            line = start
            start = reader.line_num + 1
            if not fields or all(not f.strip() for f in fields):
                continue  # blank line
            if rest_column is not None and header[-1] == rest_column and len(fields) > len(header):
                fields = [*fields[: len(header) - 1], ",".join(fields[len(header) - 1 :])]
            if len(fields) != len(header):
                raise PolisImportError(
                    "bad_row_length",
                    path=path,
                    line=line,
                    detail=f"{len(fields)} fields, header has {len(header)}",
                )
            yield line, fields

    return header, records()


def _columns(header: Sequence[str], required: Sequence[str], path: Path) -> dict[str, int]:
    index = {name: i for i, name in enumerate(header)}
    missing = [name for name in required if name not in index]
    if missing:
        raise PolisImportError("missing_column", path=path, line=1, detail=", ".join(missing))
    return index


def _int(value: str, *, path: Path, line: int, column: str, optional: bool = False) -> int | None:
    text = value.strip()
    if not text and optional:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if number.is_integer():
            return int(number)
        raise PolisImportError(
            "bad_integer", path=path, line=line, detail=f"{column} = {value!r}"
        ) from None


def _req_int(value: str, *, path: Path, line: int, column: str) -> int:
    number = _int(value, path=path, line=line, column=column)
    assert number is not None
    return number


# ---------------------------------------------------------------------------------------------
# the four files


def _flag(f: list[str], index: int | None, *, path: Path, line: int, name: str) -> bool | None:
    """A true/false column; ``None`` when the export has no such column."""
    if index is None:
        return None
    flag = f[index].strip().lower()
    if flag not in _BOOLEANS:
        raise PolisImportError("bad_boolean", path=path, line=line, detail=f"{name} = {f[index]!r}")
    return _BOOLEANS[flag]


def read_comments(path: Path) -> list[PolisComment]:
    return _read_comments(path)[0]


def _read_comments(path: Path) -> tuple[list[PolisComment], bool]:
    """The comments and whether the file has Pol.is's ``is-meta`` column."""
    header, records = _rows(path, rest_column="comment-body")
    col = _columns(header, _COMMENT_COLUMNS, path)
    comments: list[PolisComment] = []
    seen: dict[int, int] = {}
    for line, f in records:
        cid = _req_int(f[col["comment-id"]], path=path, line=line, column="comment-id")
        if cid in seen:
            raise PolisImportError(
                "duplicate_comment",
                path=path,
                line=line,
                detail=f"comment-id {cid} (first on line {seen[cid]})",
            )
        seen[cid] = line
        moderated = _req_int(f[col["moderated"]], path=path, line=line, column="moderated")
        if moderated not in (-1, 0, 1):
            raise PolisImportError(
                "bad_moderation", path=path, line=line, detail=f"moderated = {moderated}"
            )

        def opt(name: str, _f: list[str] = f, _line: int = line) -> int | None:
            if name not in col:
                return None
            return _int(_f[col[name]], path=path, line=_line, column=name, optional=True)

        meta_col = col.get("is-meta", col.get("is_meta"))
        seed_col = col.get("is-seed", col.get("is_seed"))
        is_meta = bool(_flag(f, meta_col, path=path, line=line, name="is-meta"))
        is_seed = _flag(f, seed_col, path=path, line=line, name="is-seed")
        comments.append(
            PolisComment(
                comment_id=cid,
                author_id=opt("author-id"),
                moderated=moderated,
                text=f[col["comment-body"]] if "comment-body" in col else "",
                timestamp=opt("timestamp"),
                agrees=opt("agrees"),
                disagrees=opt("disagrees"),
                is_meta=is_meta,
                is_seed=is_seed,
            )
        )
    return comments, "is-meta" in col or "is_meta" in col


def read_votes(path: Path, known_comments: set[int] | None = None) -> list[PolisVote]:
    header, records = _rows(path)
    col = _columns(header, _VOTE_COLUMNS, path)
    has_ts = "timestamp" in col
    votes: list[PolisVote] = []
    for line, f in records:
        cid = _req_int(f[col["comment-id"]], path=path, line=line, column="comment-id")
        pid = _req_int(f[col["voter-id"]], path=path, line=line, column="voter-id")
        raw_vote = f[col["vote"]]
        try:
            vote = _req_int(raw_vote, path=path, line=line, column="vote")
        except PolisImportError:
            raise PolisImportError(
                "bad_vote", path=path, line=line, detail=f"vote = {raw_vote!r}"
            ) from None
        if vote not in (-1, 0, 1):
            raise PolisImportError("bad_vote", path=path, line=line, detail=f"vote = {raw_vote!r}")
        if known_comments is not None and cid not in known_comments:
            raise PolisImportError(
                "unknown_comment", path=path, line=line, detail=f"comment-id {cid}"
            )
        ts = (
            _int(f[col["timestamp"]], path=path, line=line, column="timestamp", optional=True)
            if has_ts
            else None
        )
        votes.append(PolisVote(timestamp=ts, comment_id=cid, participant_id=pid, vote=vote))
    return votes


def read_participants(path: Path) -> list[PolisParticipant]:
    header, records = _rows(path)
    col = _columns(header, ("participant", "group-id"), path)
    comment_cols: list[tuple[int, int]] = []
    for i, name in enumerate(header):
        if name in _PARTICIPANT_FIXED:
            continue
        try:
            comment_cols.append((i, int(name)))
        except ValueError:
            continue  # an unknown extra column: ignore it
    participants: list[PolisParticipant] = []
    seen: dict[int, int] = {}
    for line, f in records:
        pid = _req_int(f[col["participant"]], path=path, line=line, column="participant")
        if pid in seen:
            raise PolisImportError(
                "duplicate_participant",
                path=path,
                line=line,
                detail=f"participant {pid} (first on line {seen[pid]})",
            )
        seen[pid] = line
        gid = _int(f[col["group-id"]], path=path, line=line, column="group-id", optional=True)
        votes: dict[int, int] = {}
        for i, cid in comment_cols:
            value = f[i].strip()
            if not value:
                continue
            v = _int(value, path=path, line=line, column=str(cid))
            if v not in (-1, 0, 1):
                raise PolisImportError(
                    "bad_vote", path=path, line=line, detail=f"comment {cid}: {value!r}"
                )
            votes[cid] = v
        participants.append(PolisParticipant(participant_id=pid, group_id=gid, votes=votes))
    return participants


def read_summary(path: Path) -> dict[str, str]:
    text = _read_text(path)
    out: dict[str, str] = {}
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if len(row) >= 2 and row[0].strip():
                out[row[0].strip()] = row[1]
    except csv.Error as exc:
        raise PolisImportError("bad_csv", path=path, detail=str(exc)) from exc
    return out


def load_polis_export(
    directory: Path | str,
    *,
    with_participants: bool = True,
    check_comment_ids: bool = True,
) -> PolisConversation:
    """Read one conversation folder of a Pol.is export.

    ``comments.csv`` and ``votes.csv`` are required; ``participants-votes.csv`` and
    ``summary.csv`` are read when present (and ``with_participants``).
    With ``check_comment_ids`` every vote must name a comment of comments.csv.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise PolisImportError("not_a_directory", path=folder, detail=str(folder))
    comments, has_meta = _read_comments(folder / COMMENTS_FILE)
    known = {c.comment_id for c in comments} if check_comment_ids else None
    votes = read_votes(folder / VOTES_FILE, known)
    participants = None
    if with_participants and (folder / PARTICIPANTS_FILE).is_file():
        participants = read_participants(folder / PARTICIPANTS_FILE)
    summary = read_summary(folder / SUMMARY_FILE) if (folder / SUMMARY_FILE).is_file() else {}
    return PolisConversation(
        path=folder,
        comments=comments,
        votes=votes,
        participants=participants,
        summary=summary,
        has_meta_column=has_meta,
    )
