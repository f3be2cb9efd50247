"""Stage attribution at scale: 3 differing stages (8 hybrids), 100k queries.

A retrieve -> rank -> re-rank pipeline in the multi-stage world (every stage differs
between baseline and candidate), evaluated twice: with stage outputs reused (each
retriever's candidates once, each ranker's output once per upstream choice: 2 + 4 + 8 =
14 stage runs per batch) and without (every stage of every hybrid: 24). Prints the wall
time of each, the share of stage time and of total time reuse saves, the attribution
and bootstrap time, and the process's peak memory; checks that both give the same values
and that the Shapley values sum to the total change.

    .venv/bin/python benchmarks/attribution_speed.py [--queries 100000 --resamples 2000 --batch 4096]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from harness.adapters.pipeline import Pipeline
from harness.datasets import make_multistage
from harness.evaluate.attribution import differing_stages, evaluate_hybrids
from harness.inference.attribution import infer_terms, term_columns
from harness.metrics.attribution import attribution_plan

METRICS = ["ndcg@10", "recall@10", "precision@10"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args()
    n = args.queries
    world = make_multistage(n_users=n, n_items=150, n_relevant=10, n_candidates=60,
                            retriever_recalls=(0.6, 0.9), seed=0)
    print(f"world: {n:,} queries, 60 candidates each; after building it, peak RSS {peak_rss_mib():,.0f} MiB")
    base = Pipeline([("retrieval", world.retriever("recall=0.6"), 60), ("ranking", world.ranker(0.3, seed=1), 30),
                     ("rerank", world.ranker(0.2, seed=2), 10)], name="baseline")
    cand = Pipeline([("retrieval", world.retriever("recall=0.9"), 60), ("ranking", world.ranker(0.6, seed=3), 30),
                     ("rerank", world.ranker(0.5, seed=4), 10)], name="candidate")
    players = differing_stages(base, cand)
    plan = attribution_plan(len(players))
    runs = {}
    for reuse in (True, False):
        began = time.perf_counter()
        runs[reuse] = hv = evaluate_hybrids(base, cand, world.dataset.qrels, np.arange(n), METRICS, plan.masks,
                                            batch_size=args.batch, ceiling=False, reuse=reuse)
        wall = time.perf_counter() - began
        c = hv.cache
        print(f"reuse={reuse!s:<5}: {wall:6.1f} s wall; stage runs {c.stage_calls:,} ({c.stage_seconds:.1f} s), "
              f"metrics {c.metric_seconds:.1f} s")
        runs[reuse] = (hv, wall)
    (hv, wall), (hv_naive, wall_naive) = runs[True], runs[False]
    for m in METRICS:
        np.testing.assert_array_equal(hv.values[m], hv_naive.values[m])
    print(f"reuse saves {1 - hv.cache.stage_seconds / hv_naive.cache.stage_seconds:.0%} of the stage time "
          f"(estimated from the cached run alone: {hv.cache.share_saved:.0%}) and "
          f"{1 - wall / wall_naive:.0%} of the hybrid evaluation's wall time")
    began = time.perf_counter()
    rows = infer_terms(term_columns(hv, plan, players), baseline="baseline", candidate="candidate",
                       n_resamples=args.resamples, seed=0)
    took = time.perf_counter() - began
    by = {r.metric: r for r in rows}
    for m in METRICS:
        parts = sum(by[f"shapley/{p}/{m}"].delta for p in players)
        assert abs(parts - by[f"total/{m}"].delta) < 1e-12
        shares = ", ".join(f"{p} {by[f'shapley/{p}/{m}'].delta:+.4f}" for p in players)
        print(f"  {m}: total {by[f'total/{m}'].delta:+.4f} = {shares}")
    print(f"terms and one shared bootstrap ({len(rows)} terms x {args.resamples} resamples, "
          f"{len(hv.query_ids):,} queries): {took:.1f} s")
    print(f"peak RSS {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
