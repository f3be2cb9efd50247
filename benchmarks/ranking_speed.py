"""Ranking-metric speed: the harness vs pytrec_eval and ranx, on the same data, in one run.

Builds N queries x 100 candidates with graded judgments, evaluates 16 metrics (nDCG,
recall, precision, MAP and hit rate at cut-offs 10/20/100, and MRR) with each tool,
checks that the numbers agree, and prints times, ratios and peak memory.

    python benchmarks/ranking_speed.py --queries 1000000            # harness alone at 1M
    python benchmarks/ranking_speed.py --queries 100000 --peers      # all three at 100k
    python benchmarks/ranking_speed.py --queries 100000 --threads 1  # the kernel on one core

Targets (issue 14, 2 cores): 100k x 100 x 16 metrics <= 0.35 s from DataFrames, >= 10x
pytrec_eval's evaluate step and >= 60x pytrec_eval end to end; 1M x 100 <= 3 s under
4 GiB peak (process RSS, input tables included).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import threading
import time

import numpy as np
import pandas as pd

CUTS = (10, 20, 100)
OURS = [f"{m}@{k}" for m in ("ndcg", "recall", "precision", "map", "hit_rate") for k in CUTS] + ["mrr"]
TARGET_100K_S, TARGET_1M_S, TARGET_PEAK_GIB = 0.35, 3.0, 4.0


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def current_rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**30


class RssSampler:
    """Peak RSS over a block of code, sampled every 5 ms (ru_maxrss cannot be reset)."""

    def __enter__(self) -> "RssSampler":
        self.start = current_rss_gib()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, current_rss_gib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_gib())


def build(n_queries: int, n_candidates: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run: n_candidates scored items per query; qrels: 20 judged items per query, half of
    them among the candidates, grades 0..3."""
    rng = np.random.default_rng(seed)
    n_items = 50_000
    q = np.repeat(np.arange(n_queries, dtype=np.int64), n_candidates)
    # distinct items per query: a random offset plus a stride keeps them unique
    start = rng.integers(0, n_items, n_queries)
    step = rng.integers(1, 50, n_queries)
    items = (start[:, None] + step[:, None] * np.arange(n_candidates)) % n_items
    run = pd.DataFrame({"query_id": q, "item_id": items.ravel(),
                        "score": rng.random(q.size)})
    judged = np.concatenate([items[:, :: n_candidates // 10][:, :10],
                             (items[:, :10] + 7 * n_items // 13) % n_items], axis=1)
    qj = np.repeat(np.arange(n_queries, dtype=np.int64), judged.shape[1])
    qrels = pd.DataFrame({"query_id": qj, "item_id": judged.ravel(),
                          "relevance": rng.integers(0, 4, qj.size)})
    qrels = qrels.drop_duplicates(["query_id", "item_id"])
    return qrels, run


def time_harness(qrels: pd.DataFrame, run: pd.DataFrame, repeats: int) -> tuple[float, float, pd.DataFrame]:
    """Best of ``repeats`` warm calls (the kernels load from numba's cache at import), and
    the peak RSS while evaluating (the input tables included)."""
    start = time.perf_counter()
    from harness.metrics import evaluate_ranking

    print(f"harness  import (kernels loaded or compiled): {time.perf_counter() - start:.2f} s", flush=True)
    tiny_q, tiny_r = build(50, 100, 1)
    evaluate_ranking(tiny_q, tiny_r, OURS)
    best = best_cpu = float("inf")
    for _ in range(repeats):
        gc.collect()
        with RssSampler() as rss:
            start, cpu = time.perf_counter(), time.process_time()
            result = evaluate_ranking(qrels, run, OURS)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - cpu)
    # CPU seconds (all threads): a check on the wall time when other processes share the cores
    print(f"harness  CPU time of evaluate, all threads: {best_cpu:.3f} s; load average {os.getloadavg()[0]:.1f}")
    print(f"harness  memory: RSS {rss.start:.2f} GiB before (the input tables), peak {rss.peak:.2f} GiB "
          f"during evaluate: {rss.peak - rss.start:.2f} GiB of working memory", flush=True)
    return best, rss.peak, result.per_query


def time_pytrec(qrels: pd.DataFrame, run: pd.DataFrame) -> tuple[float, float, dict]:
    import pytrec_eval

    start = time.perf_counter()
    qd: dict = {}
    for qid, iid, rel in zip(qrels["query_id"].astype(str), qrels["item_id"].astype(str), qrels["relevance"].tolist()):
        qd.setdefault(qid, {})[iid] = rel
    rd: dict = {}
    for qid, iid, score in zip(run["query_id"].astype(str), run["item_id"].astype(str), run["score"].tolist()):
        rd.setdefault(qid, {})[iid] = score
    built = time.perf_counter()
    measures = {"ndcg_cut.10,20,100", "recall.10,20,100", "P.10,20,100", "map_cut.10,20,100",
                "success.10,20,100", "recip_rank"}
    out = pytrec_eval.RelevanceEvaluator(qd, measures).evaluate(rd)
    return time.perf_counter() - start, time.perf_counter() - built, out


def time_ranx(qrels: pd.DataFrame, run: pd.DataFrame) -> tuple[float, float, dict]:
    from ranx import Qrels, Run, evaluate

    start = time.perf_counter()
    qr = qrels.assign(query_id=qrels["query_id"].astype(str).astype(object),
                      item_id=qrels["item_id"].astype(str).astype(object))
    rn = run.assign(query_id=run["query_id"].astype(str).astype(object),
                    item_id=run["item_id"].astype(str).astype(object))
    rq = Qrels.from_df(qr, q_id_col="query_id", doc_id_col="item_id", score_col="relevance")
    rr = Run.from_df(rn, q_id_col="query_id", doc_id_col="item_id", score_col="score")
    built = time.perf_counter()
    evaluate(rq, rr, OURS)  # includes numba compilation on a first call; time the second
    warm = time.perf_counter()
    means = evaluate(rq, rr, OURS)
    done = time.perf_counter()
    return (built - start) + (done - warm), done - warm, means


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--peers", action="store_true", help="also run pytrec_eval and ranx (slow, memory hungry)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="numba threads (default: every core)")
    parser.add_argument("--repeats", type=int, default=3, help="timed harness calls; the best is reported")
    args = parser.parse_args()
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)

    qrels, run = build(args.queries, args.candidates, args.seed)
    gc.collect()
    print(f"data: {args.queries:,} queries x {args.candidates} candidates = {len(run):,} run rows, "
          f"{len(qrels):,} judgments; peak RSS after building {peak_rss_gib():.2f} GiB", flush=True)
    t_ours, peak, ours = time_harness(qrels, run, args.repeats)
    import numba

    print(f"harness  evaluate ({len(OURS)} metrics, from DataFrames, {numba.get_num_threads()} threads): "
          f"{t_ours:8.3f} s   peak RSS while evaluating {peak:.2f} GiB (input tables included)", flush=True)
    if args.queries == 100_000:
        print(f"  target <= {TARGET_100K_S} s: {'met' if t_ours <= TARGET_100K_S else 'MISSED'}")
    if args.queries == 1_000_000:
        print(f"  target <= {TARGET_1M_S} s under {TARGET_PEAK_GIB} GiB: "
              f"{'met' if t_ours <= TARGET_1M_S and peak < TARGET_PEAK_GIB else 'MISSED'}")
    if not args.peers:
        return 0

    t_trec, t_trec_eval, trec = time_pytrec(qrels, run)
    from harness.metrics import evaluate_ranking

    # trec_eval compares scores in single precision: check parity in that mode
    ours_trec = evaluate_ranking(qrels, run, OURS, ties="trec_eval").per_query
    print(f"pytrec_eval end to end: {t_trec:8.2f} s  (evaluate alone {t_trec_eval:.2f} s)", flush=True)
    trec_names = {f"{name}@{k}": pattern.format(k=k) for k in CUTS for name, pattern in (
        ("ndcg", "ndcg_cut_{k}"), ("recall", "recall_{k}"), ("precision", "P_{k}"), ("map", "map_cut_{k}"),
        ("hit_rate", "success_{k}"))} | {"mrr": "recip_rank"}
    ids = [str(q) for q in ours.index]
    worst = 0.0
    for ours_name, trec_name in trec_names.items():
        theirs = np.array([trec[q][trec_name] for q in ids])
        worst = max(worst, float(np.abs(ours_trec[ours_name].to_numpy() - theirs).max()))
    print(f"  max |harness(ties='trec_eval') - pytrec_eval| over {len(ids):,} queries x {len(trec_names)} "
          f"measures: {worst:.2e}")
    del trec
    gc.collect()

    t_ranx, t_ranx_eval, ranx_means = time_ranx(qrels, run)
    print(f"ranx     end to end: {t_ranx:8.2f} s  (warm evaluate alone {t_ranx_eval:.2f} s)", flush=True)
    diffs = {m: abs(ours[m].mean() - ranx_means[m]) for m in OURS}
    print(f"  max |mean harness - mean ranx| over {len(OURS)} metrics: {max(diffs.values()):.2e} "
          f"(largest: {max(diffs, key=diffs.get)})")
    print()
    print(f"speed-up vs pytrec_eval end to end      : {t_trec / t_ours:6.1f}x  (target >= 60x)")
    print(f"speed-up vs pytrec_eval evaluate alone  : {t_trec_eval / t_ours:6.1f}x  (target >= 10x)")
    print(f"speed-up vs ranx end to end             : {t_ranx / t_ours:6.1f}x")
    print(f"speed-up vs ranx warm evaluate alone    : {t_ranx_eval / t_ours:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
