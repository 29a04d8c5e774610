"""Benchmark: opinion map (Pol.is-style groups) for 2,000 participants x 200 statements.

Synthetic conversation with planted opinion groups; prints details, then ONE result line.
Run on one core:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/bench_opinion.py

Options: --participants N --statements M --density D (share of statements each person votes
on) --groups K --repeat R. Before that, every Pol.is conversation folder under --polis DIR
(default ../shared/data/polis when it exists; --no-polis skips them) is timed too: reading the
export, recognising its meta statements (statements that describe the participant) and the
opinion map, with the meta statements found and the ARI against Pol.is's groups.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def planted_votes(
    n_participants: int, n_statements: int, n_groups: int, density: float, seed: int = 0
) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Votes (participant, statement, vote, timestamp) and the planted group of each person."""
    rng = np.random.default_rng(seed)
    shares = np.linspace(1.0, 0.5, n_groups)
    group = rng.choice(n_groups, size=n_participants, p=shares / shares.sum())
    # per group and statement: probabilities of agree / disagree / pass
    stance = rng.choice([-1.0, 1.0], size=(n_groups, n_statements))
    consensus = rng.random(n_statements) < 0.2  # some statements everyone agrees with
    stance[:, consensus] = 1.0
    p_agree = np.where(stance > 0, 0.75, 0.12)
    p_disagree = np.where(stance > 0, 0.12, 0.75)
    votes: list[tuple[int, int, int, int]] = []
    t = 1_700_000_000_000
    for p in range(n_participants):
        seen = np.flatnonzero(rng.random(n_statements) < density)
        if seen.size < 7:
            seen = rng.choice(n_statements, size=7, replace=False)
        g = group[p]
        u = rng.random(seen.size)
        vote = np.where(
            u < p_agree[g, seen], 1, np.where(u < p_agree[g, seen] + p_disagree[g, seen], -1, 0)
        )
        for c, v in zip(seen.tolist(), vote.tolist(), strict=True):
            t += 1000
            votes.append((p, c, v, t))
    return votes, group


DEFAULT_POLIS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "polis"


def polis_conversations(root: Path, repeat: int) -> None:
    """Per conversation: meta statements found and the time of each step (best of ``repeat``)."""
    from sklearn.metrics import adjusted_rand_score

    from linli.consultation.history import replay_k
    from linli.consultation.opinion import OpinionParams, compute_opinion_map
    from linli.consultation.polis import load_polis_export

    for directory in sorted(p for p in root.iterdir() if (p / "votes.csv").is_file()):
        load_s, meta_s, map_s = [], [], []
        for _ in range(repeat):
            t0 = time.process_time()
            conv = load_polis_export(directory)
            t1 = time.process_time()
            meta = conv.meta_statements()
            t2 = time.process_time()
            result = compute_opinion_map(conv.vote_tuples(), conv.moderated_out, meta=meta)
            t3 = time.process_time()
            load_s.append(t1 - t0)
            meta_s.append(t2 - t1)
            map_s.append(t3 - t2)
        # the CLI's default: the number of groups replayed from the vote history (once: slow)
        t0 = time.process_time()
        history = replay_k(
            conv.vote_tuples(), meta | conv.moderated_out, tie_break=result.silhouettes
        )
        history_s = time.process_time() - t0
        final_k = result.k
        if history is not None and history.k != result.k:
            params = OpinionParams(preferred_k=history.k)
            result = compute_opinion_map(conv.vote_tuples(), conv.moderated_out, params, meta=meta)
        theirs = conv.polis_groups()
        ids = [p for p in theirs if p in result.participants]
        ari = adjusted_rand_score([theirs[p] for p in ids], [result.participants[p] for p in ids])
        print(
            f"{directory.name}: {len(conv.comments)} statements, {len(meta)} meta "
            f"({sorted(meta)}), {len(conv.votes)} votes; cpu ms read {min(load_s) * 1000:.0f}, "
            f"meta {min(meta_s) * 1000:.1f}, map {min(map_s) * 1000:.0f}; history replay cpu "
            f"{history_s:.1f} s; k={result.k} (final votes {final_k}, Pol.is "
            f"{len(set(theirs.values()))}), ARI {ari:.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--participants", type=int, default=2000)
    ap.add_argument("--statements", type=int, default=200)
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--groups", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--polis",
        type=Path,
        default=DEFAULT_POLIS if DEFAULT_POLIS.is_dir() else None,
        help="folder of Pol.is conversations to time as well (default: ../shared/data/polis)",
    )
    ap.add_argument("--no-polis", action="store_true", help="time the synthetic map only")
    args = ap.parse_args()
    if args.polis is not None and not args.no_polis:
        if args.polis.is_dir():
            polis_conversations(args.polis, args.repeat)
        else:
            print(f"no Pol.is conversations at {args.polis}: skipped")

    from sklearn.metrics import adjusted_rand_score

    from linli.consultation.opinion import compute_opinion_map

    votes, planted = planted_votes(args.participants, args.statements, args.groups, args.density)
    compute_opinion_map(votes[:5000])  # warm-up: imports, first sklearn call
    times: list[float] = []  # wall clock
    cpu: list[float] = []  # CPU time of this process: fair when other jobs share the core
    result = None
    for _ in range(args.repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = compute_opinion_map(votes)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert result is not None
    clustered = {int(p): g for p, g in result.clustered.items()}  # type: ignore[call-overload]
    ids = sorted(clustered)
    ari = adjusted_rand_score([planted[p] for p in ids], [clustered[p] for p in ids])
    print(
        f"votes: {len(votes)}, participants clustered: {len(ids)}, groups found: {result.k} "
        f"(planted {args.groups}), ARI vs planted: {ari:.3f}"
    )
    print(f"consensus: {len(result.consensus)}, divisive: {len(result.divisive)}")
    print("wall (s): " + ", ".join(f"{t:.3f}" for t in times))
    print("cpu  (s): " + ", ".join(f"{t:.3f}" for t in cpu))
    print(
        f"opinion_map {args.participants}x{args.statements} density {args.density:g}: "
        f"wall median {statistics.median(times) * 1000:.0f} ms (best {min(times) * 1000:.0f}), "
        f"cpu median {statistics.median(cpu) * 1000:.0f} ms "
        f"({len(votes)} votes, k={result.k}, ARI {ari:.2f})"
    )


if __name__ == "__main__":
    main()
