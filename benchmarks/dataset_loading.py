"""Loading speed of MovieLens-format files at MovieLens-10M/20M scale (data generated here).

    .venv/bin/python benchmarks/dataset_loading.py --rows 10000000

Writes ``ratings.dat``/``movies.dat`` (1M/10M format) and ``ratings.csv``/``movies.csv``
(20M/25M format) with ``--rows`` ratings into a temporary folder, then times, per format,
reading the raw tables (pyarrow) and building the evaluation data set (schema checks, id
mapping, leave-last-one-out split, judgments, fingerprint). Prints seconds, rows per
second and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from harness.datasets.movielens import load_movielens_dataset, read_movielens

GENRES = np.array(["Action", "Comedy", "Drama", "Thriller", "Romance", "Sci-Fi", "Horror", "Children's"])


def write_files(folder: Path, n_rows: int, n_users: int, n_items: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    # distinct (user, item) pairs: a per-user stride through a permuted catalogue
    users = np.sort(rng.integers(1, n_users + 1, n_rows))
    pos = np.arange(n_rows) - np.searchsorted(users, users)
    items = (rng.permutation(n_items)[(users * 7919 + pos) % n_items] + 1).astype(np.int64)
    ratings = rng.integers(1, 11, n_rows) / 2.0
    ts = 900_000_000 + rng.integers(0, 300_000_000, n_rows)
    table = pa.table({"userId": users, "movieId": items, "rating": ratings, "timestamp": ts})
    pacsv.write_csv(table, folder / "ratings.csv")
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    pacsv.write_csv(table, folder / "ratings.tmp", write_options=opts)
    (folder / "ratings.dat").write_bytes((folder / "ratings.tmp").read_bytes().replace(b"\t", b"::"))
    (folder / "ratings.tmp").unlink()
    ids = np.arange(1, n_items + 1)
    genres = ["|".join(GENRES[rng.random(len(GENRES)) < 0.2]) or "(no genres listed)" for _ in ids]
    (folder / "movies.dat").write_text("".join(f"{i}::Movie {i} (1999)::{g}\n" for i, g in zip(ids, genres)))
    (folder / "movies.csv").write_text("movieId,title,genres\n" +
                                       "".join(f'{i},"Movie {i}, The (1999)",{g}\n' for i, g in zip(ids, genres)))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=70_000)
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, t_write = timed(lambda: write_files(root, args.rows, args.users, args.items))
        print(f"wrote {args.rows:,} ratings in each format in {t_write:.1f} s")
        for fmt, hide in (("dat", "ratings.csv"), ("csv", "ratings.dat")):
            folder = root / fmt
            folder.mkdir()
            for name in ("ratings", "movies"):
                ext = ".dat" if fmt == "dat" else ".csv"
                (folder / f"{name}{ext}").symlink_to(root / f"{name}{ext}")
            raw, t_read = timed(lambda: read_movielens(folder))
            ds, t_build = timed(lambda: load_movielens_dataset(
                folder, split={"kind": "leave_last_out", "k": 1}, relevance={"from": "rating", "threshold": 4}))
            fp, t_fp = timed(lambda: ds.fingerprint)
            n = len(raw["ratings"])
            print(f"{fmt}: read {t_read:.2f} s ({n / t_read / 1e6:.1f} M rows/s); read + build {t_build:.2f} s "
                  f"({n / t_build / 1e6:.2f} M rows/s); fingerprint {t_fp:.2f} s; "
                  f"{ds.n_users:,} users x {ds.n_items:,} items, {len(ds.qrels):,} judgments")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
