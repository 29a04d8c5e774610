"""Opinion map in the spirit of Pol.is: who votes alike, what unites and what divides.

Residents post short statements and vote agree (1) / disagree (-1) / pass (0) on them. This
module turns those votes into an :class:`OpinionMap`: opinion groups of residents with similar
voting patterns, 2-D coordinates for a map chart, consensus statements (agreed in every group),
divisive statements (groups take opposite sides) and each group's representative statements.

It follows the math of Pol.is (compdemocracy/polis, ``math/src/polismath/math/``:
conversation.clj, pca.clj, clusters.clj, repness.clj) as a pure function of the votes (no
database; numpy / scikit-learn). See docs/opinion-map.md for the method and measurements.

1. Vote matrix: participants x comments, only the latest vote per (participant, comment).
   Comments moderated out are zeroed (Pol.is ``zero-out-columns``): they carry no information
   but, as in Pol.is, count as "seen" in the projection scaling below.
2. Participants "in the conversation" (the ones that get clustered): those who voted on at least
   ``min(7, number of comments)`` comments; while fewer than 15 qualify, the most active ones are
   taken (Pol.is ``in-conv``). Other voters are placed on the map and given the nearest group
   provisionally, but do not shape the groups or the statistics.
3. PCA (2 components) of the matrix with missing votes imputed by the column mean, computed on
   every participant; each participant is projected using only their own votes and the
   projection scaled by ``sqrt(n_comments / n_votes)`` (Pol.is ``sparsity-aware-project-ptpt``).
4. Groups: k-means for k = 2 .. min(5, 2 + n_base // 12), where n_base is the number of Pol.is
   base clusters (up to 100, summarising the map); k is chosen by the silhouette of the base
   clusters, preferring fewer groups on near ties (in place of Pol.is's k-smoother); a
   solution with a group smaller than 2 % of the clustered participants (or of one) is not
   taken (``min_group_share``), as Pol.is's incremental k-means never isolates a lone
   outlier. Pol.is clusters the base clusters, starting from its previous clustering; Linli
   clusters the participants themselves with seeded k-means++ restarts (deterministic, no
   history needed).
5. Per group and comment: agree / disagree / pass counts, the agreement probability
   ``(agree + 1) / (seen + 2)``; consensus (every group agrees, significantly), divisive
   statements (a group significantly agrees, another significantly disagrees) and Pol.is's
   representative statements per group (``repness``).

Vote sign: this module uses the convention of Pol.is exports and of Linli: 1 agree, -1 disagree,
0 pass (the Pol.is database and math use the opposite sign; the sign does not change clustering).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np

AGREE = 1
DISAGREE = -1
PASS = 0

Z_90 = 1.2816  # one-sided 90 % significance (Pol.is ``z-sig-90?``)

REASONS: dict[str, str] = {
    "bad_vote_tuple": (
        "Each vote must be (participant_id, comment_id, vote) or "
        "(participant_id, comment_id, vote, timestamp)"
    ),
    "bad_vote_value": "A vote must be 1 (agree), -1 (disagree) or 0 (pass)",
    "bad_timestamp": "A vote timestamp must be a number or a datetime",
    "bad_id": "Participant and comment ids must be integers or strings",
}


class OpinionInputError(ValueError):
    """Votes that cannot be used; ``code`` is a key of :data:`REASONS`, ``index`` the vote."""

    def __init__(self, code: str, index: int | None = None, detail: str = "") -> None:
        self.code = code
        self.reason = REASONS[code]
        self.index = index
        self.detail = detail
        where = f" (vote #{index})" if index is not None else ""
        super().__init__(f"{self.reason}{where}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class OpinionParams:
    """Parameters of the computation; the defaults are Pol.is's unless noted."""

    base_k: int = 100  # number of base clusters (they summarise the map for the silhouette)
    max_k: int = 5  # largest number of opinion groups
    min_votes: int = 7  # votes needed to be clustered: min(min_votes, number of comments)
    greedy_n: int = 15  # if fewer participants qualify, take this many most active ones
    n_init: int = 10  # Linli: k-means++ restarts (Pol.is starts from its previous clustering)
    seed: int = 0  # random seed of k-means++: the result is deterministic
    # Linli: the smallest k whose silhouette is within this of the best one is chosen. This
    # stands in for Pol.is's k-smoother, which leaves the current k only when another one wins
    # several updates in a row, so that near ties keep the smaller k.
    k_tolerance: float = 0.02
    force_k: int | None = None  # use this number of groups instead of choosing one
    # take this number of groups when it is among the candidates (e.g. the k Pol.is's own
    # incremental math ends on, replayed by linli.consultation.history); silhouettes of every
    # candidate are still computed and reported
    preferred_k: int | None = None
    # Linli: no opinion group smaller than this share of the clustered participants (and never a
    # group of one). The best k-means solution sometimes isolates a lone outlier far out on the
    # map ("group B: 1 person"); Pol.is's incremental k-means never does, and such a group tells
    # residents nothing. The best solution without a too-small group is taken instead, and a k
    # that has none is not offered. Not applied when the number of groups is forced.
    min_group_share: float = 0.02
    z_90: float = Z_90


@dataclass(frozen=True)
class VoteCounts:
    agree: int = 0
    disagree: int = 0
    passed: int = 0

    @property
    def seen(self) -> int:
        return self.agree + self.disagree + self.passed

    @property
    def p_agree(self) -> float:
        """Pol.is's agreement probability with a +1 prior: (agree + 1) / (seen + 2)."""
        return (self.agree + 1) / (self.seen + 2)

    @property
    def p_disagree(self) -> float:
        return (self.disagree + 1) / (self.seen + 2)

    def to_dict(self) -> dict[str, int]:
        return {"agree": self.agree, "disagree": self.disagree, "pass": self.passed}


@dataclass(frozen=True)
class RepComment:
    """A statement representative of a group (Pol.is ``finalize-cmt-stats``)."""

    comment_id: Hashable
    repful_for: str  # "agree" or "disagree": the group stands out by agreeing / disagreeing
    n_success: int  # group members who agreed (or disagreed)
    n_trials: int  # group members who voted on it
    p_success: float  # (n_success + 1) / (n_trials + 2)
    p_test: float  # z of the group's own majority
    repness: float  # ratio of the group's probability to the rest's
    repness_test: float  # z of the difference between the group and the rest
    best_agree: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "comment_id": self.comment_id,
            "repful_for": self.repful_for,
            "n_success": self.n_success,
            "n_trials": self.n_trials,
            "p_success": round(self.p_success, 4),
            "p_test": round(self.p_test, 4),
            "repness": round(self.repness, 4),
            "repness_test": round(self.repness_test, 4),
            "best_agree": self.best_agree,
        }


@dataclass(frozen=True)
class CommentStats:
    """Per statement: votes per group, consensus and divisiveness scores."""

    comment_id: Hashable
    moderated_out: bool
    total: VoteCounts  # every participant, clustered or not
    groups: tuple[VoteCounts, ...]  # clustered participants, one entry per group
    consensus: float  # product over groups of p_agree (Pol.is group-aware consensus)
    divisiveness: float  # range across groups of p_agree - p_disagree (0 .. 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "comment_id": self.comment_id,
            "moderated_out": self.moderated_out,
            "total": self.total.to_dict(),
            "groups": [g.to_dict() for g in self.groups],
            "consensus": round(self.consensus, 4),
            "divisiveness": round(self.divisiveness, 4),
        }


@dataclass
class OpinionMap:
    """Result of :func:`compute_opinion_map`. Group numbers are 0 .. k-1, largest group first."""

    k: int
    participants: dict[Hashable, int]  # every voter -> group (see ``provisional``)
    coordinates: dict[Hashable, tuple[float, float]]  # every voter -> map position
    consensus: list[Hashable]  # statements agreed in every group, strongest first
    divisive: list[Hashable]  # statements groups take opposite sides on, most divisive first
    repness: dict[int, list[RepComment]]  # group -> its representative statements
    comments: dict[Hashable, CommentStats]  # statement -> counts per group and scores
    group_sizes: list[int] = field(default_factory=list)
    group_centers: list[tuple[float, float]] = field(default_factory=list)
    silhouettes: dict[int, float] = field(default_factory=dict)  # k tried -> silhouette
    # voters below the vote threshold: given the nearest group, not used to form groups or counts
    provisional: list[Hashable] = field(default_factory=list)
    n_votes: int = 0  # votes used (latest per participant and statement)
    n_base_clusters: int = 0

    @property
    def clustered(self) -> dict[Hashable, int]:
        """Participants that took part in the clustering (Pol.is in-conv) -> group."""
        prov = set(self.provisional)
        return {p: g for p, g in self.participants.items() if p not in prov}

    @property
    def group_votes(self) -> dict[Hashable, list[VoteCounts]]:
        """Statement -> agree/disagree/pass counts for each group."""
        return {cid: list(s.groups) for cid, s in self.comments.items()}

    def groups_summary(self) -> dict[str, Any]:
        """The compact form printed by ``linli consultation opinion-groups``."""
        return {
            "groups": self.k,
            "participants": {str(p): g for p, g in self.participants.items()},
            "consensus": list(self.consensus),
            "divisive": list(self.divisive),
            "provisional": [str(p) for p in self.provisional],
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.groups_summary()
        out.update(
            {
                "group_sizes": self.group_sizes,
                "group_centers": [[round(x, 5), round(y, 5)] for x, y in self.group_centers],
                "silhouettes": {str(k): round(v, 4) for k, v in self.silhouettes.items()},
                "coordinates": {
                    str(p): [round(x, 5), round(y, 5)] for p, (x, y) in self.coordinates.items()
                },
                "repness": {
                    str(g): [r.to_dict() for r in reps] for g, reps in self.repness.items()
                },
                "comments": [s.to_dict() for s in self.comments.values()],
                "n_votes": self.n_votes,
                "n_base_clusters": self.n_base_clusters,
            }
        )
        return out


# ---------------------------------------------------------------------------------------------
# input normalisation


@dataclass
class _VoteMatrix:
    pids: list[Hashable]  # row -> participant id (rows in order of first vote)
    cids: list[Hashable]  # column -> comment id (sorted)
    raw: np.ndarray  # float (n_p, n_c): latest vote, NaN where none
    n_votes: int


def _ids(values: np.ndarray, what: str) -> tuple[list[Hashable], np.ndarray]:
    """Unique ids (in order of first appearance) and the index of each value."""
    if values.dtype.kind in "iuU":
        uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return list(uniq[order].tolist()), rank[inverse.reshape(-1)]
    mapping: dict[Hashable, int] = {}
    index = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values.tolist()):
        if not isinstance(v, int | str) or isinstance(v, bool):
            raise OpinionInputError("bad_id", None, f"{what} id {v!r}")
        index[i] = mapping.setdefault(v, len(mapping))
    return list(mapping), index


def _column(values: Sequence[Any]) -> np.ndarray:
    """An id column as an array; mixed types stay Python objects (never silently converted)."""
    types = set(map(type, values))
    if types <= {int, np.int64, np.int32}:
        try:
            return np.fromiter(values, dtype=np.int64, count=len(values))
        except OverflowError:
            pass
    elif types <= {str, np.str_}:
        return np.asarray(values)
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _timestamps(values: Sequence[Any]) -> np.ndarray | None:
    types = set(map(type, values))
    if type(None) in types:
        return None
    if types <= {int, float, np.int64, np.float64, np.int32, np.float32}:
        return np.fromiter(values, dtype=np.float64, count=len(values))
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, datetime):
            out[i] = v.timestamp()
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise OpinionInputError("bad_timestamp", i, repr(v))
    return out


def _vote_matrix(votes: Iterable[Sequence[Any]], params: OpinionParams) -> _VoteMatrix:
    rows = votes if isinstance(votes, list) else list(votes)
    if not rows:
        return _VoteMatrix([], [], np.zeros((0, 0)), 0)
    row_types = set(map(type, rows))
    try:
        lengths = set(map(len, rows))
    except TypeError:
        lengths = {0}
    if not lengths <= {3, 4} or row_types & {str, bytes, dict}:
        bad = next(
            i
            for i, r in enumerate(rows)
            if isinstance(r, str | bytes | dict)
            or not hasattr(r, "__len__")
            or len(r) not in (3, 4)
        )
        raise OpinionInputError("bad_vote_tuple", bad, repr(rows[bad]))
    # mixed 3- and 4-tuples: timestamps are unusable
    n_cols = 4 if lengths == {4} else 3
    columns: list[list[Any]] = [list(map(itemgetter(i), rows)) for i in range(n_cols)]
    vote_col = columns[2]
    ts = _timestamps(columns[3]) if len(columns) == 4 else None

    try:
        vals = np.fromiter(vote_col, dtype=np.float64, count=len(vote_col))
    except (TypeError, ValueError):
        bad = next(
            i
            for i, v in enumerate(vote_col)
            if not isinstance(v, int | float | np.integer | np.floating)
        )
        raise OpinionInputError("bad_vote_value", bad, repr(vote_col[bad])) from None
    ok = (vals == 1) | (vals == 0) | (vals == -1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise OpinionInputError("bad_vote_value", bad, repr(vote_col[bad]))

    pid_arr, cid_arr = _column(columns[0]), _column(columns[1])
    if ts is not None:
        order = np.argsort(ts, kind="stable")
        pid_arr, cid_arr, vals = pid_arr[order], cid_arr[order], vals[order]
    pids, p_idx = _ids(pid_arr, "participant")
    cids_appearance, c_idx_app = _ids(cid_arr, "comment")

    # columns sorted by comment id when the ids are comparable, else by first appearance
    try:
        col_order = sorted(range(len(cids_appearance)), key=lambda j: cids_appearance[j])  # type: ignore[arg-type,return-value]
    except TypeError:
        col_order = list(range(len(cids_appearance)))
    remap = np.empty(len(cids_appearance), dtype=np.int64)
    remap[np.asarray(col_order, dtype=np.int64)] = np.arange(len(col_order))
    c_idx = remap[c_idx_app]
    cids = [cids_appearance[j] for j in col_order]

    n_p, n_c = len(pids), len(cids)
    key = p_idx * n_c + c_idx
    # the latest vote of each (participant, comment): last occurrence in chronological order
    _, last_rev = np.unique(key[::-1], return_index=True)
    last = key.size - 1 - last_rev
    raw = np.full((n_p, n_c), np.nan)
    raw[p_idx[last], c_idx[last]] = vals[last]
    return _VoteMatrix(pids, cids, raw, int(last.size))


# ---------------------------------------------------------------------------------------------
# the math


def _pca_project(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pol.is PCA: impute column means, 2 principal components, sparsity-aware projection.

    ``mat`` is the rating matrix (NaN = no vote; moderated-out columns already zeroed).
    Returns (projections (n_p, 2), components (2, n_c), center (n_c,)).
    """
    n_p, n_c = mat.shape
    voted = ~np.isnan(mat)
    counts = voted.sum(axis=0)
    col_mean = np.divide(np.nansum(mat, axis=0), counts, out=np.zeros(n_c), where=counts > 0)
    filled = np.where(voted, mat, col_mean)
    center = filled.mean(axis=0)
    centred = filled - center
    n_comps = min(2, n_p, n_c)
    comps = np.zeros((2, n_c))
    if n_comps > 0:
        cov = centred.T @ centred
        eigval, eigvec = np.linalg.eigh(cov)
        top = eigvec[:, ::-1][:, :n_comps].T.copy()
        top[eigval[::-1][:n_comps] <= 1e-12 * max(float(eigval.max()), 1.0)] = 0.0
        for row in top:  # deterministic sign: largest loading positive
            if row[np.argmax(np.abs(row))] < 0:
                row *= -1
        comps[:n_comps] = top
    deltas = np.where(voted, mat - center, 0.0)
    proj = deltas @ comps.T
    n_votes = voted.sum(axis=1)
    proj *= np.sqrt(n_c / np.maximum(n_votes, 1))[:, None]
    return proj, comps, center


def _kmeans(
    points: np.ndarray,
    k: int,
    weights: np.ndarray | None,
    params: OpinionParams,
    min_size: float = 0.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted k-means (k-means++ restarts, seeded). Labels renumbered 0.., centres.

    With ``min_size``, a solution with a cluster of less total weight is refused: the best of
    further seeded restarts without one is returned, or None when none of them qualifies. The
    further restarts (plain Lloyd iterations in numpy, cheap) start from randomly drawn points,
    not k-means++ (which seeds on far outliers by design and would isolate the same outlier
    again).
    """
    from sklearn.cluster import KMeans

    def fit(n_init: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        km = KMeans(
            n_clusters=k, init="k-means++", n_init=n_init, random_state=seed, algorithm="lloyd"
        )
        labels = km.fit_predict(points, sample_weight=weights)
        return labels, km.cluster_centers_, float(km.inertia_)

    def too_small(labels: np.ndarray) -> bool:
        sizes = np.bincount(labels, weights=weights, minlength=k)
        return bool(sizes.min() < min_size)

    labels, centers, _ = fit(params.n_init, params.seed)
    if min_size > 0 and too_small(labels):
        best: tuple[np.ndarray, np.ndarray, float] | None = None
        rng = np.random.default_rng(params.seed)
        w = np.ones(len(points)) if weights is None else weights
        for _ in range(3 * params.n_init):
            start = points[rng.choice(len(points), size=k, replace=False)]
            cand = _lloyd(points, w, start)
            if not too_small(cand[0]) and (best is None or cand[2] < best[2]):
                best = cand
        if best is None:
            return None
        labels, centers, _ = best
    used, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(-1), centers[used]


def _lloyd(
    points: np.ndarray, weights: np.ndarray, centres: np.ndarray, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted Lloyd iterations from the given centres: (labels, centres, inertia). A
    cluster that loses every point keeps its centre (and stays empty, so it is too small)."""
    centres = centres.astype(np.float64, copy=True)
    k = len(centres)
    labels = np.zeros(len(points), dtype=np.int64)
    for iteration in range(max_iter):
        dist = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2)
        new_labels = dist.argmin(axis=1)
        if iteration and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        total = np.bincount(labels, weights=weights, minlength=k)
        for d in range(points.shape[1]):
            sums = np.bincount(labels, weights=weights * points[:, d], minlength=k)
            centres[:, d] = np.where(total > 0, sums / np.maximum(total, 1e-300), centres[:, d])
    dist = ((points[:, None, :] - centres[None]) ** 2).sum(axis=2)
    labels = dist.argmin(axis=1)
    inertia = float((dist[np.arange(len(points)), labels] * weights).sum())
    return labels, centres, inertia


def silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette, Euclidean (a member alone in its cluster counts 0, as in Pol.is and
    scikit-learn). Vectorised: the history replay (:mod:`linli.consultation.history`) calls it
    thousands of times, where ``sklearn.metrics.silhouette_score`` costs four times as much."""
    ids, index = np.unique(labels, return_inverse=True)
    if len(ids) < 2:
        return 0.0
    index = index.reshape(-1)
    dist = np.sqrt(((points[:, None, :] - points[None]) ** 2).sum(axis=2))
    onehot = np.zeros((len(points), len(ids)))
    onehot[np.arange(len(points)), index] = 1.0
    sizes = onehot.sum(axis=0)
    sums = dist @ onehot  # distance of each point to all members of each cluster
    own = sizes[index]
    a = np.divide(
        sums[np.arange(len(points)), index], own - 1, out=np.zeros(len(points)), where=own > 1
    )
    mean_other = sums / sizes
    mean_other[np.arange(len(points)), index] = np.inf
    b = mean_other.min(axis=1)
    top = np.maximum(a, b)
    values = np.divide(b - a, top, out=np.zeros(len(points)), where=(own > 1) & (top > 0))
    return float(values.mean())


def _group_clusters(
    proj_in: np.ndarray, params: OpinionParams
) -> tuple[np.ndarray, np.ndarray, int, dict[int, float]]:
    """Opinion groups of the clustered participants' map positions.

    Returns (group of each row, group centres, number of base clusters, silhouette per k).
    As Pol.is: base clusters summarise the map (k-means, k = base_k); k = 2 ..
    min(max_k, 2 + n_base // 12) are tried and judged by the silhouette of the base clusters.
    Unlike Pol.is, the groups are k-means of the participants themselves (identical positions
    merged and weighted) rather than of the base clusters, with seeded k-means++ restarts
    rather than Pol.is's history-dependent start.
    """
    n = len(proj_in)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 2)), 0, {}
    points, inverse, counts = np.unique(proj_in, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    weights = counts.astype(np.float64)
    n_distinct = len(points)
    if n_distinct == 1:
        return np.zeros(n, dtype=np.int64), points.copy(), 1, {}
    if n_distinct <= params.base_k:
        base_centers = points
    else:
        base = _kmeans(points, params.base_k, weights, replace(params, n_init=1))
        assert base is not None  # no minimum size asked
        base_centers = base[1]
    n_base = len(base_centers)
    max_k = min(params.max_k, 2 + n_base // 12, n_distinct)
    candidates = [min(params.force_k, n_distinct)] if params.force_k else range(2, max_k + 1)
    clusterings: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    silhouettes: dict[int, float] = {}
    min_size = 0.0 if params.force_k else max(2.0, params.min_group_share * n)
    for k in candidates:
        fitted = _kmeans(points, k, weights, params, min_size)
        if fitted is None:
            continue
        labels, centers = fitted
        if len(centers) < 2 and not params.force_k:
            continue
        clusterings[k] = (labels, centers)
        base_labels = ((base_centers[:, None, :] - centers[None]) ** 2).sum(axis=2).argmin(1)
        silhouettes[k] = silhouette(base_centers, base_labels)
    if not clusterings:
        return np.zeros(n, dtype=np.int64), proj_in.mean(axis=0, keepdims=True), n_base, {}
    best = max(silhouettes.values())
    k = min(kk for kk, sil in silhouettes.items() if sil >= best - params.k_tolerance)
    if params.preferred_k in clusterings:
        k = params.preferred_k
    labels, centers = clusterings[k]
    return labels[inverse], centers, n_base, silhouettes


def _prop_test(succ: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pol.is ``prop-test``: z of a proportion against 1/2, with +1 pseudo-counts."""
    s1, n1 = succ + 1.0, n + 1.0
    return 2.0 * np.sqrt(n1) * (s1 / n1 - 0.5)


def _two_prop_test(
    succ_in: np.ndarray, succ_out: np.ndarray, pop_in: np.ndarray, pop_out: np.ndarray
) -> np.ndarray:
    """Pol.is ``two-prop-test`` with +1 pseudo-counts (0 when the pooled proportion is 1)."""
    si, so, pi, po = succ_in + 1.0, succ_out + 1.0, pop_in + 1.0, pop_out + 1.0
    p1, p2 = si / pi, so / po
    pooled = (si + so) / (pi + po)
    denom = np.sqrt(pooled * (1.0 - pooled) * (1.0 / pi + 1.0 / po))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(denom > 0, (p1 - p2) / np.where(denom > 0, denom, 1.0), 0.0)
    return z


def _select_rep_comments(
    cids: Sequence[Hashable],
    excluded: np.ndarray,
    na: np.ndarray,
    nd: np.ndarray,
    ns: np.ndarray,
    z90: float,
) -> dict[int, list[RepComment]]:
    """Pol.is ``conv-repness`` + ``select-rep-comments`` for groups x comments count arrays."""
    k = na.shape[0]
    rest_na, rest_nd, rest_ns = na.sum(0) - na, nd.sum(0) - nd, ns.sum(0) - ns
    pa, pd = (na + 1.0) / (ns + 2.0), (nd + 1.0) / (ns + 2.0)
    pat, pdt = _prop_test(na, ns), _prop_test(nd, ns)
    ra = pa / ((rest_na + 1.0) / (rest_ns + 2.0))
    rd = pd / ((rest_nd + 1.0) / (rest_ns + 2.0))
    rat = _two_prop_test(na, rest_na, ns, rest_ns)
    rdt = _two_prop_test(nd, rest_nd, ns, rest_ns)

    def final(g: int, c: int, best_agree: bool = False) -> RepComment:
        # Pol.is finalize-cmt-stats: report the side (agree / disagree) that is more distinctive
        if rat[g, c] > rdt[g, c]:
            vals = (na[g, c], pa[g, c], pat[g, c], ra[g, c], rat[g, c], "agree")
        else:
            vals = (nd[g, c], pd[g, c], pdt[g, c], rd[g, c], rdt[g, c], "disagree")
        return RepComment(
            comment_id=cids[c],
            repful_for=str(vals[5]),
            n_success=int(vals[0]),
            n_trials=int(ns[g, c]),
            p_success=float(vals[1]),
            p_test=float(vals[2]),
            repness=float(vals[3]),
            repness_test=float(vals[4]),
            best_agree=best_agree,
        )

    out: dict[int, list[RepComment]] = {}
    for g in range(k):
        sufficient: list[int] = []
        best: int | None = None
        best_z = -math.inf
        best_agr: int | None = None
        for c in range(na.shape[1]):
            if excluded[c]:
                continue
            passes = (rat[g, c] > z90 and pat[g, c] > z90) or (rdt[g, c] > z90 and pdt[g, c] > z90)
            if passes:
                sufficient.append(c)
            if not sufficient and (best is None or max(rat[g, c], rdt[g, c]) > best_z):
                best, best_z = c, float(max(rat[g, c], rdt[g, c]))
            # beats-best-agr?
            if na[g, c] == 0 and nd[g, c] == 0:
                beats = False
            elif best_agr is not None and ra[g, best_agr] > 1.0:
                b = best_agr
                beats = ra[g, c] * rat[g, c] * pa[g, c] * pat[g, c] > (
                    ra[g, b] * rat[g, b] * pa[g, b] * pat[g, b]
                )
            elif best_agr is not None:
                b = best_agr
                beats = pa[g, c] * pat[g, c] > pa[g, b] * pat[g, b]
            else:
                beats = bool(pat[g, c] > z90 or (ra[g, c] > 1.0 and pa[g, c] > 0.5))
            if beats:
                best_agr = c
        head = [final(g, best_agr, best_agree=True)] if best_agr is not None else []
        if not sufficient:
            out[g] = head if head else ([final(g, best)] if best is not None else [])
            continue
        reps = [final(g, c) for c in sufficient if c != best_agr]
        reps.sort(key=lambda r: -(r.repness * r.repness_test * r.p_success * r.p_test))
        chosen = (head + reps)[:5]
        out[g] = [r for r in chosen if r.repful_for == "agree"] + [
            r for r in chosen if r.repful_for == "disagree"
        ]
    return out


def compute_opinion_map(
    votes: Iterable[Sequence[Any]],
    moderated_out: Iterable[Hashable] = (),
    params: OpinionParams | None = None,
    *,
    meta: Iterable[Hashable] = (),
) -> OpinionMap:
    """Compute the opinion map of a conversation.

    ``votes``: ``(participant_id, comment_id, vote)`` or ``(participant_id, comment_id, vote,
    timestamp)``; vote 1 agree, -1 disagree, 0 pass; ids are ints or strings; timestamps are
    numbers or datetimes (all or none). Without timestamps the votes are taken in the given
    order as chronological. Only the latest vote per (participant, comment) counts.
    ``moderated_out``: comment ids moderated out; ``meta``: comment ids of meta statements
    (e.g. demographic questions). Both are left out of the clustering (Pol.is zeroes them) and
    out of the consensus / divisive / representative lists; their vote counts are still given.
    """
    params = params or OpinionParams()
    vm = _vote_matrix(votes, params)
    n_p, n_c = vm.raw.shape
    if n_p == 0:
        return OpinionMap(0, {}, {}, [], [], {}, {})
    out_set = set(moderated_out) | set(meta)
    excluded = np.array([c in out_set for c in vm.cids], dtype=bool)

    rating = vm.raw.copy()
    rating[:, excluded] = 0.0  # Pol.is zero-out-columns

    # who is clustered (Pol.is in-conv); votes counted on the raw matrix as Pol.is does
    voted = ~np.isnan(vm.raw)
    vote_counts = voted.sum(axis=1)
    in_conv = vote_counts >= min(params.min_votes, n_c)
    if in_conv.sum() < params.greedy_n:
        order = np.argsort(-vote_counts, kind="stable")
        in_conv[order[: params.greedy_n]] = True

    proj, _, _ = _pca_project(rating)
    rows_in = np.flatnonzero(in_conv)
    group_of_row, centers, n_base, silhouettes = _group_clusters(proj[rows_in], params)

    # number groups by size, largest first
    k = len(centers)
    sizes = np.bincount(group_of_row, minlength=k)
    rank = np.argsort(-sizes, kind="stable")
    relabel = np.empty(k, dtype=np.int64)
    relabel[rank] = np.arange(k)
    group_of_row = relabel[group_of_row]
    centers = centers[rank]
    sizes = sizes[rank]

    # vote counts per group and comment (clustered participants, raw latest votes)
    raw_in = vm.raw[rows_in]
    onehot = np.zeros((k, len(rows_in)))
    onehot[group_of_row, np.arange(len(rows_in))] = 1.0
    na = onehot @ (raw_in == AGREE)
    nd = onehot @ (raw_in == DISAGREE)
    ns = onehot @ ~np.isnan(raw_in)
    tot_a = (vm.raw == AGREE).sum(axis=0)
    tot_d = (vm.raw == DISAGREE).sum(axis=0)
    tot_s = voted.sum(axis=0)

    pa = (na + 1.0) / (ns + 2.0)
    pd = (nd + 1.0) / (ns + 2.0)
    consensus_score = np.prod(pa, axis=0)
    stance = pa - pd
    divisiveness = stance.max(axis=0) - stance.min(axis=0)

    # consensus: every group agrees, each significantly (Pol.is's majority test, per group)
    agree_sig = (pa > 0.5) & (_prop_test(na, ns) > params.z_90)
    disagree_sig = (pd > 0.5) & (_prop_test(nd, ns) > params.z_90)
    cons_ok = agree_sig.all(axis=0) & ~excluded
    # divisive: one group significantly agrees while another significantly disagrees
    div_ok = np.zeros(n_c, dtype=bool)
    if k >= 2:
        div_ok = agree_sig.any(axis=0) & disagree_sig.any(axis=0) & ~excluded
    consensus = [
        vm.cids[c]
        for c in sorted(np.flatnonzero(cons_ok).tolist(), key=lambda c: (-consensus_score[c], c))
    ]
    divisive = [
        vm.cids[c]
        for c in sorted(np.flatnonzero(div_ok).tolist(), key=lambda c: (-divisiveness[c], c))
    ]
    if k >= 2:
        repness = _select_rep_comments(vm.cids, excluded, na, nd, ns, params.z_90)
    else:
        repness = {g: [] for g in range(k)}

    comments: dict[Hashable, CommentStats] = {}
    for c, cid in enumerate(vm.cids):
        comments[cid] = CommentStats(
            comment_id=cid,
            moderated_out=bool(excluded[c]),
            total=VoteCounts(int(tot_a[c]), int(tot_d[c]), int(tot_s[c] - tot_a[c] - tot_d[c])),
            groups=tuple(
                VoteCounts(int(na[g, c]), int(nd[g, c]), int(ns[g, c] - na[g, c] - nd[g, c]))
                for g in range(k)
            ),
            consensus=float(consensus_score[c]),
            divisiveness=float(divisiveness[c]),
        )

    # every voter gets a group: clustered ones their own, the others the nearest centre
    group_all = np.zeros(n_p, dtype=np.int64)
    if k:
        dist = ((proj[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        group_all = dist.argmin(axis=1)
    group_all[rows_in] = group_of_row
    participants = {pid: int(g) for pid, g in zip(vm.pids, group_all.tolist(), strict=True)}
    provisional = [vm.pids[r] for r in np.flatnonzero(~in_conv).tolist()]
    coordinates = {
        pid: (float(x), float(y)) for pid, (x, y) in zip(vm.pids, proj.tolist(), strict=True)
    }
    return OpinionMap(
        k=k,
        participants=participants,
        coordinates=coordinates,
        consensus=consensus,
        divisive=divisive,
        repness=repness,
        comments=comments,
        group_sizes=[int(x) for x in sizes],
        group_centers=[(float(x), float(y)) for x, y in centers],
        silhouettes=silhouettes,
        provisional=provisional,
        n_votes=vm.n_votes,
        n_base_clusters=n_base,
    )
