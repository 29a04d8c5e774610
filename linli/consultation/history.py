"""Pol.is's number of opinion groups, replayed from a conversation's vote history.

Pol.is does not compute its opinion groups once: its math worker updates them every time new
votes arrive, and every update starts from the previous one (polismath ``conversation.clj`` and
``clusters.clj``):

- PCA by power iteration started from the previous components;
- base clusters (k = 100) and, for every k = 2 .. min(5, 2 + n_base // 12), a clustering of the
  base clusters, each k-means started from the previous update's clusters
  (``clean-start-clusters``: recentre them on the new positions, merge identical centres, and,
  while clusters are missing, split off the point farthest from every centre; only a brand-new k
  starts from the first k distinct points); Lloyd iterations up to 20 for the groups and 100 for
  the base clusters, stopping when no centre moves by 0.01;
- the silhouette of each clustering of the base clusters, and a k-smoother that switches to a
  new best k only after it has won 4 updates in a row;
- participants are "in the conversation" once they have voted on min(7, statements so far)
  statements, and stay in.

The groups Pol.is publishes therefore depend on its history: an early 2-group clustering can
stay in a worse local optimum, and then 3 groups win (london.youth.policing). Linli computes its
groups from the final votes (:mod:`linli.consultation.opinion`); when an import carries vote
times, this module replays the history to choose *how many* groups, the way Pol.is did. The
replay is sensitive to how votes are batched into updates (Pol.is's own batching is not in the
export), so it is run under several schedules and the number of groups most of them end on is
taken (ties: the one with the better silhouette in Linli's own map).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from linli.consultation.opinion import silhouette

SCHEDULES: tuple[int, ...] = (100, 300, 1000)  # updates the history is replayed in
BASE_K = 100
MAX_K = 5
K_BUFFER = 4  # updates a new best k must win in a row (Pol.is group-k-buffer)
MIN_VOTES = 7
GREEDY_N = 15
BASE_ITERS = 100
GROUP_ITERS = 20
PCA_ITERS = 100
SAME_CENTRES = 0.01


@dataclass(frozen=True)
class HistoryK:
    """The number of groups the replays end on: ``k`` (majority), one entry per schedule."""

    k: int
    per_schedule: dict[int, int]
    silhouettes: dict[int, dict[int, float]]  # schedule -> k -> silhouette at the last update

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "per_schedule": {str(n): k for n, k in self.per_schedule.items()},
            "silhouettes": {
                str(n): {str(k): round(v, 4) for k, v in sil.items()}
                for n, sil in self.silhouettes.items()
            },
        }


# ---------------------------------------------------------------------------------------------
# polismath's k-means with a previous clustering


def _weighted_centres(
    points: np.ndarray, weights: np.ndarray, labels: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """Weighted mean position of the members of each cluster id (every id has members)."""
    member = labels >= 0
    index = np.searchsorted(ids, labels[member])
    w = weights[member]
    total = np.bincount(index, weights=w, minlength=len(ids))
    return np.stack(
        [
            np.bincount(index, weights=points[member, d] * w, minlength=len(ids)) / total
            for d in range(points.shape[1])
        ],
        axis=1,
    )


def _clean_start(
    points: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``clean-start-clusters``: (cluster ids, centres, member labels) to start Lloyd from.

    ``labels``: the previous cluster id of each point, -1 for a point that had none.
    """
    labels = labels.copy()
    ids = np.unique(labels[labels >= 0])
    if len(ids) == 0:  # nothing survives: one big cluster (safe-recenter-clusters)
        labels[:] = 0
        ids = np.array([0])
    centres = _weighted_centres(points, weights, labels, ids)
    # merge clusters with identical centres into the larger one (uniqify-clusters)
    _, first, twin_of = np.unique(centres, axis=0, return_index=True, return_inverse=True)
    if len(first) < len(ids):
        sizes = np.bincount(np.searchsorted(ids, labels[labels >= 0]), minlength=len(ids))
        twin_of = twin_of.reshape(-1)
        target = np.empty(len(ids), dtype=np.int64)
        for t in range(len(first)):
            members = np.flatnonzero(twin_of == t)
            target[members] = ids[members[np.argmax(sizes[members])]]
        member = labels >= 0
        labels[member] = target[np.searchsorted(ids, labels[member])]
        ids = np.unique(labels[labels >= 0])
        centres = _weighted_centres(points, weights, labels, ids)
    possible = min(k, len(np.unique(points, axis=0)))
    while len(ids) < possible:
        dist = np.sqrt(((points[:, None, :] - centres[None]) ** 2).sum(axis=2)).min(axis=1)
        far = int(dist.argmax())
        if dist[far] <= 0:
            break
        labels[far] = int(ids.max()) + 1  # the most distal point becomes a cluster of its own
        ids = np.unique(labels[labels >= 0])
        centres = _weighted_centres(points, weights, labels, ids)
    return ids, centres, labels


def _first_distinct(points: np.ndarray, k: int) -> np.ndarray:
    """``init-clusters``: the first k distinct points, in order."""
    _, first = np.unique(points, axis=0, return_index=True)
    return points[np.sort(first)[:k]]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if len(a) != len(b):
        return False
    a = a[np.lexsort(a.T[::-1])]
    b = b[np.lexsort(b.T[::-1])]
    return bool((np.sqrt(((a - b) ** 2).sum(axis=1)) < SAME_CENTRES).all())


def _kmeans(
    points: np.ndarray,
    weights: np.ndarray,
    k: int,
    previous: np.ndarray | None,
    max_iters: int,
) -> np.ndarray:
    """polismath ``kmeans``; returns the cluster id of every point (ids stay stable)."""
    if previous is not None and (previous >= 0).any():
        ids, centres, _ = _clean_start(points, weights, previous, k)
    else:
        centres = _first_distinct(points, k)
        ids = np.arange(len(centres))
    labels = np.full(len(points), -1)
    for _ in range(max_iters + 1):
        nearest = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        labels = ids[nearest]
        ids = np.unique(labels)  # clusters without members are dropped
        new = _weighted_centres(points, weights, labels, ids)
        done = _same(centres, new)
        centres = new
        if done:
            break
    return labels


# ---------------------------------------------------------------------------------------------
# one conversation's replay


class _Replay:
    def __init__(self, excluded: set[Hashable], seed: int) -> None:
        self.excluded = excluded
        self.rng = np.random.default_rng(seed)
        self.pids: list[Hashable] = []
        self.cids: list[Hashable] = []
        self.pidx: dict[Hashable, int] = {}
        self.cidx: dict[Hashable, int] = {}
        self.raw = np.full((0, 0), np.nan)
        self.comps: np.ndarray | None = None
        self.in_conv = np.zeros(0, dtype=bool)
        self.base: dict[int, int] = {}  # participant row -> base cluster id
        self.groups: dict[int, dict[int, int]] = {}  # k -> base cluster id -> group id
        self.last_k: int | None = None
        self.last_k_count = 0
        self.smoothed_k: int | None = None
        self.silhouettes: dict[int, float] = {}

    def add(self, batch: Sequence[tuple[Hashable, Hashable, float]]) -> None:
        for pid, cid, _ in batch:
            if pid not in self.pidx:
                self.pidx[pid] = len(self.pids)
                self.pids.append(pid)
            if cid not in self.cidx:
                self.cidx[cid] = len(self.cids)
                self.cids.append(cid)
        n_p, n_c = len(self.pids), len(self.cids)
        if self.raw.shape != (n_p, n_c):
            grown = np.full((n_p, n_c), np.nan)
            grown[: self.raw.shape[0], : self.raw.shape[1]] = self.raw
            self.raw = grown
            self.in_conv = np.concatenate([self.in_conv, np.zeros(n_p - len(self.in_conv), bool)])
        for pid, cid, vote in batch:
            self.raw[self.pidx[pid], self.cidx[cid]] = vote

    def _pca(self, filled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Power iteration (``powerit-pca``) from the previous components, new statements'
        entries 1; the second component on the data with the first factored out."""
        centre = filled.mean(axis=0)
        data = filled - centre
        n_c = data.shape[1]
        comps = np.zeros((2, n_c))
        found: list[np.ndarray] = []

        def xtx(v: np.ndarray) -> np.ndarray:
            for pc in found:  # (I - pc pc') X'X (I - pc pc') v
                v = v - pc * (pc @ v)
            out = np.asarray(data.T @ (data @ v))
            for pc in found:
                out = out - pc * (pc @ out)
            return out

        for i in range(min(2, *data.shape)):
            if self.comps is not None and self.comps[i].any():
                v = np.ones(n_c)
                v[: self.comps.shape[1]] = self.comps[i]
            else:
                v = self.rng.random(n_c)
            last = 0.0
            for _ in range(PCA_ITERS + 1):
                prod = xtx(v)
                norm = float(np.linalg.norm(prod))
                if norm == 0.0:
                    v = np.zeros(n_c)
                    break
                v = prod / norm
                if abs(norm - last) <= 1e-12 * norm:
                    break
                last = norm
            comps[i] = v
            if v.any():
                found.append(v)
        self.comps = comps
        return comps, centre

    def update(self) -> None:
        n_p, n_c = self.raw.shape
        if n_p == 0 or n_c == 0:
            return
        out = np.array([c in self.excluded for c in self.cids])
        rating = self.raw.copy()
        rating[:, out] = 0.0
        counts = (~np.isnan(self.raw)).sum(axis=1)
        self.in_conv |= counts >= min(MIN_VOTES, n_c)
        if self.in_conv.sum() < GREEDY_N:
            for r in np.argsort(-counts, kind="stable"):
                if self.in_conv.sum() >= GREEDY_N:
                    break
                self.in_conv[r] = True
        voted = ~np.isnan(rating)
        n_voted = voted.sum(axis=0)
        col_mean = np.divide(
            np.nansum(rating, axis=0), n_voted, out=np.zeros(n_c), where=n_voted > 0
        )
        comps, centre = self._pca(np.where(voted, rating, col_mean))
        proj = np.where(voted, rating - centre, 0.0) @ comps.T
        proj *= np.sqrt(n_c / np.maximum(voted.sum(axis=1), 1))[:, None]

        rows = np.flatnonzero(self.in_conv)
        pts = proj[rows]
        prev = np.array([self.base.get(int(r), -1) for r in rows])
        base_labels = _kmeans(pts, np.ones(len(rows)), BASE_K, prev, BASE_ITERS)
        self.base = dict(zip(rows.tolist(), base_labels.tolist(), strict=True))
        bids = np.unique(base_labels)
        bpts = _weighted_centres(pts, np.ones(len(rows)), base_labels, bids)
        bw = np.bincount(np.searchsorted(bids, base_labels), minlength=len(bids)).astype(float)

        max_k = min(MAX_K, 2 + len(bids) // 12)
        silhouettes: dict[int, float] = {}
        for k in range(2, max_k + 1):
            last = self.groups.get(k)
            prev_g = None if last is None else np.array([last.get(int(b), -1) for b in bids])
            g_labels = _kmeans(bpts, bw, k, prev_g, GROUP_ITERS)
            self.groups[k] = dict(zip(bids.tolist(), g_labels.tolist(), strict=True))
            silhouettes[k] = silhouette(bpts, g_labels)
        for k in [k for k in self.groups if k > max_k]:
            del self.groups[k]
        if not silhouettes:
            return
        this_k = max(silhouettes, key=lambda k: (silhouettes[k], k))  # max-key: ties to later
        self.last_k_count = self.last_k_count + 1 if this_k == self.last_k else 1
        self.last_k = this_k
        if self.last_k_count >= K_BUFFER or self.smoothed_k is None:
            self.smoothed_k = this_k
        if self.smoothed_k not in silhouettes:
            self.smoothed_k = this_k
        self.silhouettes = silhouettes


def _batches(
    votes: Sequence[tuple[Hashable, Hashable, float, float]], n_updates: int
) -> list[list[tuple[Hashable, Hashable, float]]]:
    """Votes by second of their timestamp (milliseconds), merged evenly into at most
    ``n_updates`` updates."""
    seconds: list[list[tuple[Hashable, Hashable, float]]] = []
    last: float | None = None
    for pid, cid, vote, ts in votes:
        sec = ts // 1000
        if not seconds or sec != last:
            seconds.append([])
            last = sec
        seconds[-1].append((pid, cid, vote))
    if len(seconds) <= n_updates:
        return seconds
    step = len(seconds) / n_updates
    return [
        [v for s in seconds[int(i * step) : int((i + 1) * step)] for v in s]
        for i in range(n_updates)
    ]


def replay_k(
    votes: Iterable[Sequence[Any]],
    excluded: Iterable[Hashable] = (),
    *,
    schedules: Sequence[int] = SCHEDULES,
    tie_break: dict[int, float] | None = None,
    seed: int = 0,
) -> HistoryK | None:
    """The number of groups Pol.is's incremental math ends on, by majority over ``schedules``.

    ``votes``: ``(participant_id, comment_id, vote, timestamp)`` with timestamps in
    milliseconds (Pol.is exports); ``excluded``: moderated-out and meta statement ids.
    ``tie_break``: silhouette per k (Linli's map) to settle a tie between schedules.
    Returns None when the votes carry no usable timestamps.
    """
    rows = [tuple(v) for v in votes]
    if not rows or any(len(r) != 4 or r[3] is None for r in rows):
        return None
    try:
        ordered = sorted(((r[0], r[1], float(r[2]), float(r[3])) for r in rows), key=lambda r: r[3])
    except (TypeError, ValueError):
        return None
    excluded_set = set(excluded)
    per_schedule: dict[int, int] = {}
    silhouettes: dict[int, dict[int, float]] = {}
    for n in schedules:
        replay = _Replay(excluded_set, seed)
        for batch in _batches(ordered, n):
            replay.add(batch)
            replay.update()
        if replay.smoothed_k is not None:
            per_schedule[n] = replay.smoothed_k
            silhouettes[n] = replay.silhouettes
    if not per_schedule:
        return None
    tally = Counter(per_schedule.values())
    top = max(tally.values())
    tied = [k for k, c in tally.items() if c == top]
    scores = tie_break or {}
    k = max(tied, key=lambda kk: (scores.get(kk, float("-inf")), -kk))
    return HistoryK(k, per_schedule, silhouettes)
