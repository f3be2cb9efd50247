"""Splits: exact sizes, seeded reproducibility, no leakage, and agreement with slow references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.datasets.interactions import build_dataset
from harness.datasets.splits import leave_last_out, random_split, split_mask, temporal_ratio, temporal_split
from harness.errors import ConfigError, DataValidationError


def log(n_users: int = 40, n_items: int = 30, seed: int = 0, ties: bool = True) -> pd.DataFrame:
    """A log with distinct (user, item) pairs, per-user row counts 1..15 and repeated timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(1, 16))
        for i in rng.choice(n_items, size=n, replace=False):
            rows.append((f"u{u}", int(i), float(rng.integers(1, 6)), int(rng.integers(0, 8 if ties else 10**9))))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


# ---- slow, obviously correct references (a loop over users) --------------------------------
def reference_per_user(users: np.ndarray, ts: np.ndarray, items: np.ndarray, n_test_of) -> np.ndarray:
    mask = np.zeros(len(users), dtype=bool)
    for u in np.unique(users):
        rows = [r for r in range(len(users)) if users[r] == u]
        rows.sort(key=lambda r: (ts[r], items[r]))
        for r in rows[len(rows) - n_test_of(len(rows)):]:
            mask[r] = True
    return mask


def test_random_split_exact_size_and_seed() -> None:
    a = random_split(1000, test_fraction=0.2, seed=1)
    assert a.sum() == 200
    np.testing.assert_array_equal(a, random_split(1000, test_fraction=0.2, seed=1))
    assert (a != random_split(1000, test_fraction=0.2, seed=2)).any()
    assert random_split(7, test_fraction=0.5, seed=0).sum() == round(3.5)


def test_temporal_split_global_cut() -> None:
    ts = np.array([5, 1, 3, 3, 9, 7, 7, 2])
    mask = temporal_split(ts, test_fraction=0.25)
    # sorted: 1 2 3 3 5 7 7 9 -> the last 2 rows (7, 9) would be test, but 7 ties with the
    # last train row (7), so the cut is 7 and only 9 is test
    np.testing.assert_array_equal(mask, ts > 7)
    np.testing.assert_array_equal(temporal_split(ts, cutoff=4), ts > 4)
    np.testing.assert_array_equal(temporal_split(ts, test_fraction=0.5), ts > 3)
    dt = pd.to_datetime(["2020-01-01", "2020-03-01", "2020-02-01"]).to_numpy()
    np.testing.assert_array_equal(temporal_split(dt, cutoff="2020-01-15"), [False, True, True])


@pytest.mark.parametrize("k", [1, 2, 5])
def test_leave_last_out_matches_reference(k: int) -> None:
    df = log()
    users, ts, items = df["user"].to_numpy(), df["timestamp"].to_numpy(), df["item"].to_numpy()
    got = leave_last_out(users, ts, items, k=k)
    want = reference_per_user(users, ts, items, lambda n: k if n > k else 0)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_temporal_ratio_matches_reference(fraction: float) -> None:
    df = log(seed=3)
    users, ts, items = df["user"].to_numpy(), df["timestamp"].to_numpy(), df["item"].to_numpy()
    got = temporal_ratio(users, ts, items, test_fraction=fraction)
    want = reference_per_user(users, ts, items, lambda n: min(int(np.floor(n * fraction)), n - 1))
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 4)), min_size=1, max_size=60),
       st.integers(1, 3), st.floats(0.05, 0.95))
def test_per_user_splits_property(rows: list[tuple[int, int]], k: int, fraction: float) -> None:
    users = np.array([r[0] for r in rows])
    ts = np.array([r[1] for r in rows])
    items = np.arange(len(rows))  # unique tiebreak
    for mask in (leave_last_out(users, ts, items, k=k), temporal_ratio(users, ts, items, test_fraction=fraction)):
        for u in np.unique(users):
            mine = users == u
            train_ts, test_ts = ts[mine & ~mask], ts[mine & mask]
            assert len(train_ts) >= 1  # a user never loses all rows to test
            if len(test_ts):
                assert train_ts.max() <= test_ts.min()


def test_per_user_split_ignores_row_order() -> None:
    df = log(seed=5)
    perm = np.random.default_rng(0).permutation(len(df))
    cols = lambda d: (d["user"].to_numpy(), d["timestamp"].to_numpy(), d["item"].to_numpy())  # noqa: E731
    a = leave_last_out(*cols(df), k=2)
    b = leave_last_out(*cols(df.iloc[perm]), k=2)
    np.testing.assert_array_equal(a[perm], b)


SPLITS = [{"kind": "random", "test_fraction": 0.3}, {"kind": "temporal", "test_fraction": 0.3},
          {"kind": "temporal", "cutoff": 4}, {"kind": "leave_last_out", "k": 2},
          {"kind": "temporal_ratio", "test_fraction": 0.4}]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: "-".join(map(str, s.values())))
def test_no_leakage_in_built_dataset(split: dict) -> None:
    df = log(seed=11)
    ds = build_dataset(df, name="t", split=split, relevance={"from": "rating", "threshold": 4}, seed=3)
    # every row lands in exactly one side
    assert len(ds.train) + len(ds.qrels) == len(df)
    train_pairs = set(zip(ds.train["user_id"], ds.train["item_id"]))
    test_pairs = set(zip(ds.qrels["query_id"], ds.qrels["item_id"]))
    assert not train_pairs & test_pairs
    raw = set(zip(df["user"], df["item"]))
    back = {(ds.user_ids[u], ds.item_ids[i]) for u, i in train_pairs | test_pairs}
    assert back == raw
    stats = ds.split_stats
    assert stats["train_rows"] == len(ds.train) and stats["test_rows"] == len(ds.qrels)
    assert stats["users_with_test"] == ds.qrels["query_id"].nunique()
    assert stats["users_with_test"] + stats["users_without_test"] == df["user"].nunique()
    short = any("too few interactions to hold any out" in w for w in ds.warnings)
    assert short == (split["kind"] in ("leave_last_out", "temporal_ratio") and stats["users_without_test"] > 0)
    if split["kind"] == "temporal":
        test_ts = df.set_index(["user", "item"]).loc[[(ds.user_ids[u], ds.item_ids[i]) for u, i in test_pairs],
                                                      "timestamp"]
        assert ds.train["timestamp"].max() <= test_ts.min()
    if split["kind"] in ("leave_last_out", "temporal_ratio"):
        test = df.set_index(["user", "item"]).loc[[(ds.user_ids[u], ds.item_ids[i]) for u, i in test_pairs]]
        first_test = test.groupby(level="user")["timestamp"].min()
        last_train = ds.train.groupby("user_id")["timestamp"].max().rename(index=lambda u: ds.user_ids[u])
        assert (last_train.reindex(first_test.index) <= first_test).all()


def test_split_errors() -> None:
    users = np.array([0, 0, 1])
    with pytest.raises(ConfigError, match="test_fraction"):
        random_split(10, test_fraction=1.5, seed=0)
    with pytest.raises(ConfigError, match="exactly one"):
        temporal_split(np.arange(3), test_fraction=0.2, cutoff=1)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        leave_last_out(users, np.arange(3), np.arange(3), k=0)
    with pytest.raises(DataValidationError, match="needs a timestamp column"):
        split_mask({"kind": "leave_last_out", "k": 1}, users=users, items=users, timestamps=None, seed=0)
    with pytest.raises(ConfigError, match="unknown"):
        split_mask({"kind": "sideways"}, users=users, items=users, timestamps=None, seed=0)
    with pytest.raises(DataValidationError, match="no interaction was held out"):
        build_dataset(pd.DataFrame({"user": [1, 2], "item": [1, 2], "timestamp": [1, 2]}), name="t",
                      split={"kind": "leave_last_out", "k": 1}, relevance={"from": "interaction"})


def test_datetime_timestamps_from_csv(tmp_path) -> None:
    from harness.datasets.interactions import load_interactions

    path = tmp_path / "log.csv"
    path.write_text("u,i,ts\n"
                    "a,1,2020-01-01T00:00:00Z\n"
                    "a,2,2020-01-02T01:00:00+02:00\n"  # 2020-01-01T23:00Z: before the next row
                    "a,3,2020-01-02T00:00:00Z\n"
                    "b,1,2020-01-03T00:00:00Z\n"
                    "b,2,2020-01-01T12:00:00Z\n")
    log = load_interactions(path, columns={"user": "u", "item": "i", "timestamp": "ts"})
    ds = build_dataset(log, name="t", split={"kind": "temporal", "cutoff": "2020-01-01T23:30:00Z"},
                       relevance={"from": "interaction"})
    held = {(ds.user_ids[q], ds.item_ids[i]) for q, i in zip(ds.qrels["query_id"], ds.qrels["item_id"])}
    assert held == {("a", 3), ("b", 1)}
    last = build_dataset(log, name="t", split={"kind": "leave_last_out", "k": 1}, relevance={"from": "interaction"})
    held = {(last.user_ids[q], last.item_ids[i]) for q, i in zip(last.qrels["query_id"], last.qrels["item_id"])}
    assert held == {("a", 3), ("b", 1)}
    with pytest.raises(ConfigError, match="is not a number"):
        temporal_split(np.arange(3), cutoff="yesterday")
    # a number against dates: pandas would read it as nanoseconds (everything after it); the
    # message says what it is as Unix seconds
    with pytest.raises(ConfigError, match=r"cutoff 1577923200 is a number but the timestamps are dates: give the "
                                          r"cutoff as a date \(as Unix seconds, 1577923200 is '2020-01-02T00:00:00Z'\)"):
        build_dataset(log, name="t", split={"kind": "temporal", "cutoff": 1577923200}, relevance={"from": "interaction"})
    # a cutoff before every timestamp (or in other units: ms against s): nothing to train on
    with pytest.raises(DataValidationError, match=r"every interaction was held out \(5 rows, timestamps from "
                                                  r"2020-01-01T00:00:00 to 2020-01-03T00:00:00\); nothing to train on"):
        build_dataset(log, name="t", split={"kind": "temporal", "cutoff": "2019-12-31"}, relevance={"from": "interaction"})
    millis = log.assign(timestamp=((log["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms")).to_numpy())
    with pytest.raises(DataValidationError, match=r"timestamps from 1577836800000 to 1578009600000\); nothing to train"):
        build_dataset(millis, name="t", split={"kind": "temporal", "cutoff": 1577923200}, relevance={"from": "interaction"})


@pytest.mark.parametrize("kind", ["int", "float", "datetime", "huge"])
def test_packed_key_path_matches_reference(kind: str) -> None:
    """Rows sorted by (user, item) with integer ids take the one-argsort path; same answer."""
    rng = np.random.default_rng(9)
    n_users, n_items = 50, 40
    pairs = np.array([(u, i) for u in range(n_users) for i in np.sort(rng.choice(n_items, rng.integers(1, 15),
                                                                                  replace=False))])
    users, items = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    ts = rng.integers(0, 6, len(users))  # many ties
    ts = {"int": ts, "float": ts * 0.5, "datetime": ts.astype("datetime64[s]"),
          "huge": ts * (2**61 // 6)}[kind]  # span too large to pack: falls back to ranks
    for got, n_test_of in ((leave_last_out(users, ts, items, k=2), lambda n: 2 if n > 2 else 0),
                           (temporal_ratio(users, ts, items, test_fraction=0.4),
                            lambda n: min(int(np.floor(n * 0.4)), n - 1))):
        np.testing.assert_array_equal(got, reference_per_user(users, ts, items, n_test_of))


def test_keep_last_collapses_to_the_latest_row() -> None:
    df = pd.DataFrame({"user": [1, 1, 1, 1, 1, 2, 2, 2, 2], "item": [5, 5, 6, 5, 9, 5, 7, 7, 8],
                       "rating": [1, 2, 3, 4, 5, 5, 1, 2, 3], "timestamp": [10, 30, 5, 20, 99, 1, 9, 9, 99]})
    ds = build_dataset(df, name="t", split={"kind": "leave_last_out", "k": 1}, relevance={"from": "interaction"},
                       duplicates="keep_last")
    train = {(ds.user_ids[u], ds.item_ids[i]): (r, t) for u, i, r, t in
             ds.train[["user_id", "item_id", "rating", "timestamp"]].itertuples(index=False)}
    # (1, 5) keeps its latest row (t=30); (2, 7) the later in file order of its tied t=9 rows
    assert train == {(1, 5): (2, 30), (1, 6): (3, 5), (2, 5): (5, 1), (2, 7): (2, 9)}
    held = {(ds.user_ids[u], ds.item_ids[i]) for u, i in zip(ds.qrels["query_id"], ds.qrels["item_id"])}
    assert held == {(1, 9), (2, 8)}
    assert any("3 repeated (user, item) rows" in w for w in ds.warnings)
    with pytest.raises(DataValidationError, match=r"duplicate values of a unique key \(3 rows; e.g. \(1, 5\)"):
        build_dataset(df, name="t", split={"kind": "random"}, relevance={"from": "interaction"})
