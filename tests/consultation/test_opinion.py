"""Opinion map (Pol.is-style): groups on real Pol.is conversations, the math on planted data,
the Pol.is export reader and the ``linli consultation`` CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from typer.testing import CliRunner

from linli.consultation.cli import app
from linli.consultation.opinion import (
    AGREE,
    DISAGREE,
    PASS,
    OpinionInputError,
    OpinionParams,
    compute_opinion_map,
)
from linli.consultation.polis import PolisImportError, load_polis_export

# london.youth.policing: once its demographic statements are left out as meta (recognised from
# their text, see test_meta.py), the silhouettes of the final votes are a near tie (0.580 for 2
# groups, 0.562 for 3) and the map from the final votes has 2; Pol.is had 3, which its update
# history decided. With 3 groups the partition is Pol.is's exactly. The CLI replays that history
# to choose the number of groups and gets 3 (test_history.py).
NEAR_TIE_K = {"london.youth.policing": 3}


def _conversations(shared_data: Path) -> list[Path]:
    root = shared_data / "polis"
    found = sorted(p for p in root.iterdir() if (p / "votes.csv").is_file())
    if not found:
        pytest.fail(f"no Pol.is conversation under {root}")
    return found


def _ari_with_polis(
    directory: Path, meta: set[int] | None = None, force_k: int | None = None
) -> tuple[float, int, int, int]:
    """(ARI, our k, Pol.is k, participants compared) on participants Pol.is clustered.

    ``meta``: the meta statements; by default those of the export or recognised from the text,
    as the CLI does."""
    conv = load_polis_export(directory)
    theirs = conv.polis_groups()
    if meta is None:
        meta = conv.meta_statements()
    result = compute_opinion_map(
        conv.vote_tuples(), conv.moderated_out, OpinionParams(force_k=force_k), meta=meta
    )
    compared = [p for p in theirs if p in result.participants]
    ari = adjusted_rand_score(
        [theirs[p] for p in compared], [result.participants[p] for p in compared]
    )
    return float(ari), result.k, len(set(theirs.values())), len(compared)


# ---------------------------------------------------------------------------------------------
# real Pol.is conversations


def test_groups_match_polis_on_real_conversations(shared_data: Path) -> None:
    checked = 0
    failures = []
    for directory in _conversations(shared_data):
        conv = load_polis_export(directory)
        n_theirs = len(conv.polis_groups())
        ari, k, polis_k, compared = _ari_with_polis(
            directory, force_k=NEAR_TIE_K.get(directory.name)
        )
        assert compared == n_theirs, "every participant Pol.is clustered must get a group"
        if k != polis_k or ari < 0.8:
            failures.append(f"{directory.name}: k={k} (Pol.is {polis_k}), ARI={ari:.3f}")
        checked += 1
    assert checked >= 1
    assert not failures, failures


def test_london_matches_polis_once_meta_statements_are_known(shared_data: Path) -> None:
    directory = shared_data / "polis" / "london.youth.policing"
    if not directory.is_dir():
        pytest.skip("london.youth.policing not in shared data")
    # Kept in, the demographic questions dominate the map: no resemblance.
    ari_plain, _, _, _ = _ari_with_polis(directory, meta=set())
    assert ari_plain < 0.5
    # Recognised from their text and left out, as Pol.is did: the moderator's statements 1-14
    # (0, 2 and 3 are moderated out anyway), nothing else.
    conv = load_polis_export(directory)
    assert conv.meta_statements() == set(range(1, 15)) - conv.moderated_out
    ari, k, polis_k, _ = _ari_with_polis(directory, force_k=3)
    assert (k, polis_k) == (3, 3)
    assert ari >= 0.99
    # left to choose k, Linli takes 2 groups (a near tie, see NEAR_TIE_K) that merge two of
    # Pol.is's three
    ari_free, k_free, _, _ = _ari_with_polis(directory)
    assert k_free == 2 and ari_free > ari_plain


def test_consensus_and_divisive_on_real_conversation(shared_data: Path) -> None:
    conv = load_polis_export(shared_data / "polis" / "canadian-electoral-reform")
    result = compute_opinion_map(conv.vote_tuples(), conv.moderated_out)
    assert result.consensus and result.divisive
    assert not set(result.consensus) & conv.moderated_out
    assert not set(result.divisive) & conv.moderated_out
    assert not set(result.consensus) & set(result.divisive)
    for cid in result.consensus:
        for counts in result.comments[cid].groups:  # agreed by a majority of every group
            assert counts.agree > counts.seen / 2
    for cid in result.divisive:
        shares = [g.agree / max(g.seen, 1) for g in result.comments[cid].groups]
        assert max(shares) - min(shares) > 0.3
    assert sorted(result.repness) == list(range(result.k))
    assert all(result.repness[g] for g in range(result.k))
    # group vote counts only count clustered participants, totals count everyone
    for stats in result.comments.values():
        assert sum(g.seen for g in stats.groups) <= stats.total.seen
    json.dumps(result.to_dict())  # serialisable


# ---------------------------------------------------------------------------------------------
# the math on synthetic conversations


def _planted(
    sizes: tuple[int, ...], n_statements: int = 40, seed: int = 0, density: float = 0.8
) -> tuple[list[tuple[str, int, int, int]], dict[str, int]]:
    votes, truth, _ = _planted_with_stance(sizes, n_statements, seed, density)
    return votes, truth


def _planted_with_stance(
    sizes: tuple[int, ...], n_statements: int, seed: int, density: float
) -> tuple[list[tuple[str, int, int, int]], dict[str, int], np.ndarray]:
    """Votes of planted groups: each group agrees (85 %) with the statements of its stance."""
    rng = np.random.default_rng(seed)
    stance = rng.choice([-1, 1], size=(len(sizes), n_statements))
    if len(sizes) == 4:
        # four groups fit a 2-D map when they sit on two independent axes of opinion
        half = n_statements // 2
        stance[:, :half] = np.array([1, 1, -1, -1])[:, None]
        stance[:, half:] = np.array([1, -1, 1, -1])[:, None]
    stance[:, :5] = 1  # statements 0-4: everyone agrees
    votes: list[tuple[str, int, int, int]] = []
    truth: dict[str, int] = {}
    t = 0
    for g, size in enumerate(sizes):
        for i in range(size):
            pid = f"r{g}-{i}"
            truth[pid] = g
            for c in range(n_statements):
                if rng.random() > density:
                    continue
                u = rng.random()
                vote = int(stance[g, c]) if u < 0.85 else (PASS if u < 0.93 else -int(stance[g, c]))
                t += 1
                votes.append((pid, c, vote, t))
    return votes, truth, stance


@pytest.mark.parametrize("sizes", [(60, 40), (50, 35, 25), (40, 30, 30, 20)])
def test_planted_groups_are_found(sizes: tuple[int, ...]) -> None:
    votes, truth, stance = _planted_with_stance(sizes, 40, 0, 0.8)
    result = compute_opinion_map(votes)
    assert result.k == len(sizes)
    ids = list(truth)
    ours = [result.participants[p] for p in ids]
    assert adjusted_rand_score([truth[p] for p in ids], ours) > 0.95
    assert result.group_sizes == sorted(result.group_sizes, reverse=True)
    # consensus: statements every group agrees with (0-4 and any that chance made so); with
    # groups of ~16 voters one of them may miss the significance test by bad luck
    agreed_by_all = set(np.flatnonzero((stance > 0).all(axis=0)).tolist())
    assert set(result.consensus) <= agreed_by_all
    assert len(set(range(5)) & set(result.consensus)) >= 4
    assert len(result.coordinates) == len(truth)


def test_divisive_statement_is_found() -> None:
    votes, truth = _planted((50, 50), seed=3)
    # statement 99: group 0 agrees, group 1 disagrees
    votes += [(p, 99, AGREE if g == 0 else DISAGREE, 10**6) for p, g in truth.items()]
    result = compute_opinion_map(votes)
    assert 99 in result.divisive and 99 not in result.consensus
    g0 = result.participants["r0-0"]
    counts = result.comments[99].groups
    assert counts[g0].agree == 50 and counts[1 - g0].disagree == 50


def test_result_is_deterministic_and_independent_of_input_order() -> None:
    votes, _ = _planted((40, 30, 20), seed=5)
    first = compute_opinion_map(votes)
    shuffled = list(votes)
    np.random.default_rng(1).shuffle(shuffled)
    second = compute_opinion_map(shuffled)
    assert first.participants == second.participants
    assert first.consensus == second.consensus and first.divisive == second.divisive
    assert first.coordinates == second.coordinates


def test_only_the_latest_vote_counts() -> None:
    votes, _ = _planted((30, 30), seed=7)
    base = compute_opinion_map(votes)
    pid = "r0-0"
    before = dict(base.comments[7].total.to_dict())
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    # timestamps as datetimes; the participant changes their mind twice on statement 7
    dated = [(p, c, v, t0 + timedelta(seconds=t)) for p, c, v, t in votes]
    dated += [
        (pid, 7, DISAGREE, t0 + timedelta(days=1)),
        (pid, 7, AGREE, t0 + timedelta(days=2)),
        (pid, 7, PASS, t0 + timedelta(days=3)),
    ]
    result = compute_opinion_map(dated)
    after = result.comments[7].total
    voted_before = any(p == pid and c == 7 for p, c, _, _ in votes)
    assert after.seen == before["agree"] + before["disagree"] + before["pass"] + (not voted_before)
    assert after.passed >= 1
    assert result.n_votes == base.n_votes + (not voted_before)


def test_moderated_and_meta_statements_leave_the_math_but_keep_counts() -> None:
    votes, truth = _planted((40, 40), seed=11)
    plain = compute_opinion_map(votes)
    # a statement that would split the map differently (random noise), then moderated out
    rng = np.random.default_rng(0)
    noisy = votes + [(p, 500 + j, int(rng.choice([-1, 1])), 10**7) for p in truth for j in range(3)]
    moderated = compute_opinion_map(noisy, moderated_out={500, 501}, meta={502})
    assert moderated.participants == plain.participants
    for cid in (500, 501, 502):
        assert moderated.comments[cid].moderated_out
        assert moderated.comments[cid].total.seen == len(truth)
        assert cid not in moderated.consensus and cid not in moderated.divisive
        assert all(cid != r.comment_id for reps in moderated.repness.values() for r in reps)


def test_participants_with_few_votes_are_provisional() -> None:
    votes, truth = _planted((40, 40), seed=13)
    votes += [("newcomer", 0, AGREE, 10**8), ("newcomer", 1, AGREE, 10**8 + 1)]
    result = compute_opinion_map(votes)
    assert result.provisional == ["newcomer"]
    assert "newcomer" in result.participants and "newcomer" not in result.clustered
    assert "newcomer" in result.coordinates
    assert len(result.clustered) == len(truth)
    summary = result.groups_summary()
    assert summary["provisional"] == ["newcomer"]
    assert set(summary) >= {"groups", "participants", "consensus", "divisive"}


def test_small_and_degenerate_conversations() -> None:
    assert compute_opinion_map([]).k == 0
    one = compute_opinion_map([(1, 1, AGREE), (1, 2, DISAGREE)])
    assert one.k == 1 and one.participants == {1: 0}
    same = compute_opinion_map([(p, c, AGREE) for p in range(10) for c in range(5)])
    assert same.k == 1 and set(same.participants.values()) == {0}
    assert same.consensus == [0, 1, 2, 3, 4]  # ordered, all agreed


@pytest.mark.parametrize(
    ("votes", "code"),
    [
        ([(1, 1, 2)], "bad_vote_value"),
        ([(1, 1, "yes")], "bad_vote_value"),
        ([(1, 1)], "bad_vote_tuple"),
        (["abc"], "bad_vote_tuple"),
        ([(1.5, 1, 1)], "bad_id"),
        ([(1, 1, 1, "noon")], "bad_timestamp"),
    ],
)
def test_bad_votes_are_refused_with_a_code(votes: list, code: str) -> None:
    with pytest.raises(OpinionInputError) as info:
        compute_opinion_map(votes)
    assert info.value.code == code


# ---------------------------------------------------------------------------------------------
# Pol.is export reader


def _write_export(folder: Path, comments: str, votes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comments.csv").write_text(comments, encoding="utf-8")
    (folder / "votes.csv").write_text(votes, encoding="utf-8")
    return folder


COMMENTS = (
    "timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body\n"
    '1,d,0,0,1,0,1,"First, with a comma"\n'
    '2,d,1,0,0,1,-1,"Two\nlines"\n'
    "3,d,2,0,0,0,1,Third\n"
)
VOTES_HEADER = "timestamp,datetime,comment-id,voter-id,vote\n"


def test_reader_parses_a_valid_export(tmp_path: Path) -> None:
    folder = _write_export(tmp_path / "ok", COMMENTS, VOTES_HEADER + "5,d,0,7,1\n6,d,2,7,-1\n")
    conv = load_polis_export(folder)
    assert [c.comment_id for c in conv.comments] == [0, 1, 2]
    assert conv.comments[1].text == "Two\nlines"
    assert conv.moderated_out == {1}
    assert conv.vote_tuples() == [(7, 0, 1, 5), (7, 2, -1, 6)]
    assert conv.participants is None


@pytest.mark.parametrize(
    ("comments", "votes", "code", "file", "line"),
    [
        (COMMENTS, VOTES_HEADER + "5,d,0,7,1\n6,d,2,7,2\n", "bad_vote", "votes.csv", 3),
        (COMMENTS, VOTES_HEADER + "5,d,0,7,1\n6,d,x,7,1\n", "bad_integer", "votes.csv", 3),
        (COMMENTS, VOTES_HEADER + "5,d,0,7\n", "bad_row_length", "votes.csv", 2),
        (COMMENTS, VOTES_HEADER + "5,d,9,7,1\n", "unknown_comment", "votes.csv", 2),
        (COMMENTS, "timestamp,comment-id,vote\n5,0,1\n", "missing_column", "votes.csv", 1),
        (COMMENTS, "", "empty_file", "votes.csv", 1),
        # the bad record starts on line 6: the quoted body above spans lines 3-4
        (COMMENTS + "4,d,3,0,0,0,7,Bad\n", VOTES_HEADER, "bad_moderation", "comments.csv", 6),
        (COMMENTS + "4,d,2,0,0,0,1,Again\n", VOTES_HEADER, "duplicate_comment", "comments.csv", 6),
        (COMMENTS + '4,d,3,0,0,0,1,"open\n', VOTES_HEADER, "bad_csv", "comments.csv", 6),
    ],
)
def test_reader_reports_malformed_files_with_line_numbers(
    tmp_path: Path, comments: str, votes: str, code: str, file: str, line: int
) -> None:
    folder = _write_export(tmp_path / "bad", comments, votes)
    with pytest.raises(PolisImportError) as info:
        load_polis_export(folder)
    err = info.value
    assert (err.code, err.path.name if err.path else None, err.line) == (code, file, line)
    assert f"line {line}" in str(err)


def test_reader_reports_missing_folder_files_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(PolisImportError) as info:
        load_polis_export(tmp_path / "nowhere")
    assert info.value.code == "not_a_directory"
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "comments.csv").write_text(COMMENTS, encoding="utf-8")
    with pytest.raises(PolisImportError) as info:
        load_polis_export(folder)
    err = info.value
    assert (err.code, err.path.name if err.path else None) == ("missing_file", "votes.csv")
    (folder / "votes.csv").write_bytes(VOTES_HEADER.encode() + b"5,d,0,7,1\n6,d,\xff,7,1\n")
    with pytest.raises(PolisImportError) as info:
        load_polis_export(folder)
    assert (info.value.code, info.value.line) == ("not_utf8", 3)


def test_reader_reads_participants_votes(shared_data: Path) -> None:
    conv = load_polis_export(shared_data / "polis" / "london.youth.policing")  # has an xid column
    assert conv.participants is not None
    groups = conv.polis_groups()
    assert len(groups) == 24 and set(groups.values()) == {0, 1, 2}
    by_id = {p.participant_id: p for p in conv.participants}
    latest: dict[tuple[int, int], int] = {}
    for v in sorted(conv.votes, key=lambda v: v.timestamp or 0):
        latest[(v.participant_id, v.comment_id)] = v.vote
    assert {(p, c): v for p, pp in by_id.items() for c, v in pp.votes.items()} == latest


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_opinion_groups_prints_the_json(shared_data: Path) -> None:
    directory = shared_data / "polis" / "15-per-hour-seattle"
    res = CliRunner().invoke(app, ["opinion-groups", str(directory), "--no-history"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["groups"] == 2 and data["k_choice"] == "silhouette"
    assert set(data) == {
        "groups",
        "participants",
        "consensus",
        "divisive",
        "provisional",
        "meta",
        "k_choice",
    }
    assert data["meta"] == []  # nothing in this conversation describes the participant
    assert set(data["participants"].values()) == {0, 1}
    assert all(isinstance(k, str) for k in data["participants"])
    theirs = load_polis_export(directory).polis_groups()
    ours = [data["participants"][str(p)] for p in theirs]
    assert adjusted_rand_score(list(theirs.values()), ours) >= 0.8

    full = CliRunner().invoke(app, ["opinion-groups", str(directory), "--full", "--groups", "3"])
    assert full.exit_code == 0, full.output
    data = json.loads(full.stdout)
    assert data["groups"] == 3 and len(data["repness"]) == 3 and data["coordinates"]


def test_cli_opinion_compare(shared_data: Path) -> None:
    directory = shared_data / "polis" / "london.youth.policing"
    # meta statements recognised from their text by default
    res = CliRunner().invoke(app, ["opinion-compare", str(directory), "--groups", "3"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ari"] >= 0.99 and data["polis_groups"] == 3 and data["compared"] == 24
    assert data["meta"] == [1, *range(4, 15)]
    # --no-auto-meta keeps them in; --meta names them by hand
    args = ["opinion-compare", str(directory), "--groups", "3", "--no-auto-meta"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ari"] < 0.5 and json.loads(res.stdout)["meta"] == []
    res = CliRunner().invoke(app, [*args, "--meta", "1-14"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ari"] >= 0.99 and data["meta"] == list(range(1, 15))


def test_cli_meta_statements_lists_them_with_the_reason(shared_data: Path, tmp_path: Path) -> None:
    directory = shared_data / "polis" / "vtaiwan.uberx"
    res = CliRunner().invoke(app, ["meta-statements", str(directory)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["source"] == "detected"
    assert [(m["id"], m["category"]) for m in data["meta"]] == [
        (0, "experience"),
        (14, "experience"),
        (15, "occupation"),
    ]
    assert data["meta"][0]["text"] == "我有用過 Uber 叫車。"
    flagged = _write_export(
        tmp_path / "flagged",
        "timestamp,comment-id,author-id,agrees,disagrees,moderated,is-meta,comment-body\n"
        "1,0,0,0,0,1,true,I live here\n2,1,0,0,0,-1,true,gone\n3,2,0,0,0,1,false,I am 30\n",
        VOTES_HEADER,
    )
    res = CliRunner().invoke(app, ["meta-statements", str(flagged)])
    assert json.loads(res.stdout) == {
        "source": "export",
        "meta": [{"id": 0, "category": None, "matched": None, "text": "I live here"}],
    }


def test_cli_reports_bad_exports_and_options(tmp_path: Path) -> None:
    folder = _write_export(tmp_path / "bad", COMMENTS, VOTES_HEADER + "5,d,0,7,3\n")
    res = CliRunner().invoke(app, ["opinion-groups", str(folder)])
    assert res.exit_code == 2
    assert "bad_vote" in res.stderr and "line 2" in res.stderr
    ok = _write_export(tmp_path / "ok", COMMENTS, VOTES_HEADER + "5,d,0,7,1\n")
    res = CliRunner().invoke(app, ["opinion-groups", str(ok), "--meta", "x-y"])
    assert res.exit_code != 0
    res = CliRunner().invoke(app, ["opinion-compare", str(ok)])
    assert res.exit_code == 2 and "no_polis_groups" in res.stderr


def test_an_is_meta_column_leaves_meta_statements_out(shared_data: Path, tmp_path: Path) -> None:
    """Pol.is leaves meta statements (is_meta) out of its math; an export that says which they
    are (an ``is-meta`` column) is used as Pol.is would, without --meta."""
    import csv

    source = shared_data / "polis" / "london.youth.policing"
    folder = tmp_path / "london"
    folder.mkdir()
    for name in ("votes.csv", "participants-votes.csv"):
        (folder / name).write_bytes((source / name).read_bytes())
    with (source / "comments.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0].append("is-meta")
    for row in rows[1:]:
        row.append("true" if 1 <= int(row[2]) <= 14 else "false")
    with (folder / "comments.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    conv = load_polis_export(folder)
    assert conv.meta_ids == set(range(1, 15))
    res = CliRunner().invoke(app, ["opinion-compare", str(folder), "--groups", "3"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ari"] >= 0.99

    rows[1][-1] = "maybe"
    with (folder / "comments.csv").open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(PolisImportError) as info:
        load_polis_export(folder)
    assert (info.value.code, info.value.line) == ("bad_boolean", 2)


def test_reader_takes_newer_exports_and_unquoted_comment_bodies(tmp_path: Path) -> None:
    # newer Pol.is exports: no datetime column, is-meta / is-seed columns, comment-body last
    # and written unquoted by the server, so a comma in a comment adds fields
    comments = (
        "timestamp,comment-id,author-id,agrees,disagrees,moderated,is-meta,is-seed,comment-body\n"
        "1,0,0,1,0,1,false,true,More trees, fewer cars, and benches\n"
        "2,1,0,0,1,1,true,true,I have lived here all my life.\n"
        "3,2,4,0,0,-1,false,false,spam\n"
    )
    votes = "timestamp,comment-id,voter-id,vote\n5,0,7,1\n6,1,7,-1\n7,0,7,-1\n"
    folder = _write_export(tmp_path / "new", comments, votes)
    conv = load_polis_export(folder)
    assert conv.comments[0].text == "More trees, fewer cars, and benches"
    assert conv.meta_ids == {1} and conv.moderated_out == {2}
    assert conv.vote_tuples()[-1] == (7, 0, -1, 7)
    # a short row is still an error, and so is an extra field in a file without comment-body last
    bad = comments.replace("3,2,4,0,0,-1,false,false,spam", "3,2,4,0,0")
    with pytest.raises(PolisImportError) as info:
        load_polis_export(_write_export(tmp_path / "bad", bad, votes))
    assert (info.value.code, info.value.line) == ("bad_row_length", 4)
    with pytest.raises(PolisImportError) as info:
        load_polis_export(_write_export(tmp_path / "bad2", comments, votes + "8,0,7,1,9\n"))
    assert info.value.code == "bad_row_length"
    assert info.value.path is not None and info.value.path.name == "votes.csv"


def test_a_lone_outlier_is_not_made_an_opinion_group() -> None:
    """Two blocs of 50 and one participant far out on the map: unconstrained k-means puts the
    outlier alone in a group of one (the blocs merged); Linli refuses groups of one (and under
    2 % of the participants) and keeps the two blocs, as Pol.is's incremental k-means does."""
    from linli.consultation.opinion import _group_clusters

    rng = np.random.default_rng(0)
    blocs = np.vstack(
        [rng.normal((-1.0, 0.0), 0.15, (50, 2)), rng.normal((1.0, 0.0), 0.15, (50, 2))]
    )
    points = np.vstack([blocs, [[0.0, 40.0]]])
    truth = [0] * 50 + [1] * 50

    free, _, _, _ = _group_clusters(points, OpinionParams(min_group_share=0.0, force_k=2))
    assert np.bincount(free).min() == 1  # the failure the rule prevents

    labels, centres, _, silhouettes = _group_clusters(points, OpinionParams())
    assert len(centres) == 2 and 2 in silhouettes
    assert np.bincount(labels).min() >= 50
    assert adjusted_rand_score(truth, labels[:100]) == 1.0
