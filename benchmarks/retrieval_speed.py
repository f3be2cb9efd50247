"""Exact top-k retrieval speed of TorchRetriever: 100k queries x 100k items, 64-dim, top-100.

Prints throughput (queries/s) and peak memory, and checks a sample of queries against a
brute-force NumPy reference. Memory stays bounded by the score-block budget: the process
peak is the embeddings, the (n_queries, k) output and one block, not n_queries x n_items.

    .venv/bin/python benchmarks/retrieval_speed.py [--queries 100000 --items 100000 --dim 64
                                                    --k 100 --budget-mb 256 --threads 2 --device cpu]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from harness.models.torch_retriever import TorchRetriever, query_batch_size


class Embeddings(nn.Module):
    def __init__(self, n_queries: int, n_items: int, dim: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.Q = nn.Parameter(torch.randn(n_queries, dim, generator=g))
        self.V = nn.Parameter(torch.randn(n_items, dim, generator=g))

    def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.Q[ids]

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.V[ids]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--budget-mb", type=float, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--check", type=int, default=200, help="queries checked against brute force")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    module = Embeddings(args.queries, args.items, args.dim, seed=0)
    model = TorchRetriever(module, exclude_seen=False, memory_budget_mb=args.budget_mb, device=args.device)
    no_train = pd.DataFrame({"user_id": np.zeros(0, np.int64), "item_id": np.zeros(0, np.int64)})
    model.fit(no_train, n_users=args.queries, n_items=args.items)
    query_ids = np.arange(args.queries)
    model.retrieve(query_ids[:64], args.k)  # warm-up
    rss_before = current_rss_mib()
    start = time.perf_counter()
    out = model.retrieve(query_ids, args.k)
    elapsed = time.perf_counter() - start
    peak = peak_rss_mib()

    rng = np.random.default_rng(1)
    sample = rng.choice(args.queries, size=min(args.check, args.queries), replace=False)
    Q = module.Q.detach().numpy()[sample]
    V = module.V.detach().numpy()
    ref = np.argsort(-(Q @ V.T), axis=1, kind="stable")[:, : args.k]
    agree = float((out.items[sample] == ref).mean())

    batch = query_batch_size(args.items, args.budget_mb)
    block_mib = batch * args.items * 4 / 2**20
    print(f"exact top-{args.k}: {args.queries:,} queries x {args.items:,} items, dim {args.dim}, "
          f"{args.threads} threads, device {args.device}, budget {args.budget_mb:g} MiB")
    print(f"  time            {elapsed:.1f} s")
    print(f"  throughput      {args.queries / elapsed:,.0f} queries/s "
          f"({args.queries * args.items / elapsed / 1e9:.2f} G scores/s)")
    print(f"  query batch     {batch} queries -> score block {block_mib:.0f} MiB (float32)")
    print(f"  output          {out.items.nbytes / 2**20 + out.scores.nbytes / 2**20:.0f} MiB "
          f"(items int64 + scores float64, kept by the caller)")
    output_mib = out.items.nbytes / 2**20 + out.scores.nbytes / 2**20
    working = peak - rss_before - output_mib
    print(f"  peak RSS        {peak:.0f} MiB (RSS before the timed run: {rss_before:.0f} MiB; "
          f"peak - before = {peak - rss_before:.0f} MiB)")
    print(f"  working memory  {working:.0f} MiB (peak - before - output) vs budget {args.budget_mb:g} MiB: "
          f"{'within' if working <= args.budget_mb * 1.1 else 'OVER'}")
    print(f"  brute-force agreement on {len(sample)} queries: {agree:.6f}")
    return 0 if agree > 0.999 and working <= args.budget_mb * 1.1 else 1


if __name__ == "__main__":
    sys.exit(main())
