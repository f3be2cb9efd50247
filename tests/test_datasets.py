"""Generic interaction loader, judgments, cold start, fingerprints, candidate sets, config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.spec.config import parse_config
from harness.datasets import InteractionDataset
from harness.datasets.candidates import (given_candidates, restrict_to_candidates, sampled_candidates,
                                         with_candidates)
from harness.datasets.interactions import build_dataset, dataset_from_spec, load_interactions
from harness.datasets.judgments import judge, relevance_from_labels, relevance_from_ratings
from harness.errors import ConfigError, DataValidationError


def clicks(n_users: int = 30, n_items: int = 25, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=int(rng.integers(3, 12)), replace=False):
            rows.append((f"user-{u}", f"sku{i:03d}", int(rng.integers(0, 3)), float(rng.integers(1, 6)),
                         int(rng.integers(0, 10**6))))
    return pd.DataFrame(rows, columns=["uid", "sku", "clicks", "stars", "ts"])


MAPPING = {"user": "uid", "item": "sku", "label": "clicks", "rating": "stars", "timestamp": "ts"}


# ---------------------------------------------------------------- judgments
def test_relevance_from_ratings_by_hand() -> None:
    r = np.array([1, 3.5, 4, 4.5, 5])
    np.testing.assert_array_equal(relevance_from_ratings(r, threshold=4), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(relevance_from_ratings(r, grades={4: 1, 5: 3}), [0, 0, 1, 1, 3])
    np.testing.assert_array_equal(relevance_from_ratings(r, grades={3.5: 1, 4.5: 2}), [0, 1, 1, 2, 2])
    with pytest.raises(ConfigError, match="exactly one"):
        relevance_from_ratings(r)
    with pytest.raises(ConfigError, match="non-decreasing"):
        relevance_from_ratings(r, grades={4: 2, 5: 1})
    with pytest.raises(ConfigError, match="integers >= 1"):
        relevance_from_ratings(r, grades={4: 0})


def test_relevance_from_labels_and_interactions() -> None:
    np.testing.assert_array_equal(relevance_from_labels(np.array([0, 2, 1])), [0, 2, 1])
    np.testing.assert_array_equal(relevance_from_labels(np.array([True, False])), [1, 0])
    with pytest.raises(DataValidationError, match=r"2 negative labels.*-1"):
        relevance_from_labels(np.array([0, -1, -3]))
    with pytest.raises(DataValidationError, match="labels must be integers"):
        relevance_from_labels(np.array([0.5, 1.0]))
    test = pd.DataFrame({"rating": [1.0, 5.0]})
    np.testing.assert_array_equal(judge(test, {"from": "interaction"}), [1, 1])
    with pytest.raises(DataValidationError, match="no label column"):
        judge(test, {"from": "label"})


# ---------------------------------------------------------------- generic loader
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_interactions_with_mapping(tmp_path: Path, suffix: str) -> None:
    df = clicks()
    path = tmp_path / f"log{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    log = load_interactions(path, columns=MAPPING)
    assert list(log.columns) == list(MAPPING)
    assert len(log) == len(df)
    np.testing.assert_array_equal(log["label"], df["clicks"])
    two = load_interactions([path, path], columns=MAPPING)
    assert len(two) == 2 * len(df)


def test_load_interactions_errors(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    clicks().to_csv(path, index=False)
    with pytest.raises(ConfigError, match="data file not found"):
        load_interactions(tmp_path / "nope.csv", columns=MAPPING)
    with pytest.raises(DataValidationError, match=r"columns \['who'\] not found \(columns: \['uid', 'sku'"):
        load_interactions(path, columns={"user": "who", "item": "sku"})
    with pytest.raises(ConfigError, match="its own source column"):
        load_interactions(path, columns={"user": "uid", "item": "sku", "rating": "stars", "label": "stars"})
    with pytest.raises(ConfigError, match="a mapping for 'item' is required"):
        load_interactions(path, columns={"user": "uid"})
    with pytest.raises(ConfigError, match="unknown canonical names"):
        load_interactions(path, columns={"user": "uid", "item": "sku", "weight": "clicks"})


def test_csv_ids_keep_their_text(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("u,i,extra\n007,10,x\n7,10,y\n8,011,z\n")
    log = load_interactions(path, columns={"user": "u", "item": "i"})
    assert log["user"].tolist() == ["007", "7", "8"]  # "007" and "7" are two users
    assert log["item"].tolist() == ["10", "10", "011"]
    assert list(log.columns) == ["user", "item"]  # unmapped columns are not read
    path.write_text("u,i\n7,10\n-3,12\n")
    log = load_interactions(path, columns={"user": "u", "item": "i"})
    assert log["user"].dtype == np.int64 and log["user"].tolist() == [7, -3]


def test_dataset_from_spec_with_features(tmp_path: Path) -> None:
    df = clicks()
    df.to_parquet(tmp_path / "log.parquet", index=False)
    skus = sorted(df["sku"].unique())
    items = pd.DataFrame({"sku": skus + ["sku999"], "price": np.arange(len(skus) + 1, dtype=float),
                          "tags": ["a|b", "", None] + ["b"] * (len(skus) - 2)})
    items.to_csv(tmp_path / "items.csv", index=False)
    users = pd.DataFrame({"uid": sorted(df["uid"].unique()), "age": 30})
    users.to_csv(tmp_path / "users.csv", index=False)
    spec = {"kind": "interactions", "path": str(tmp_path / "log.parquet"), "columns": MAPPING,
            "split": {"kind": "temporal_ratio", "test_fraction": 0.3}, "relevance": {"from": "label"},
            "item_features": {"path": str(tmp_path / "items.csv"), "category_column": "tags"},  # id: "sku"
            "user_features": {"path": str(tmp_path / "users.csv"), "id_column": "uid"}}
    ds = dataset_from_spec(spec, seed=0)
    assert ds.n_items == len(skus) and ds.n_users == df["uid"].nunique()
    assert list(ds.item_ids) == skus
    assert list(ds.item_features.columns) == ["item_id", "price"]
    np.testing.assert_array_equal(ds.item_features["item_id"], np.arange(len(skus)))
    np.testing.assert_array_equal(ds.item_features["price"], np.arange(len(skus), dtype=float))
    cats = ds.item_categories
    assert set(cats.loc[cats["item_id"] == 0, "category"]) == {"a", "b"}
    assert not (cats["item_id"] == 1).any() and not (cats["item_id"] == 2).any()
    assert any("item features: 1 rows" in w for w in ds.warnings)  # sku999 has no interactions
    assert list(ds.user_features.columns) == ["user_id", "age"]
    # labels are the relevance, unchanged
    raw = df.set_index(["uid", "sku"])["clicks"]
    for q, i, r in ds.qrels.itertuples(index=False):
        assert raw[(ds.user_ids[q], ds.item_ids[i])] == r


def test_items_missing_from_feature_table_are_an_error(tmp_path: Path) -> None:
    df = clicks()
    df.to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"sku": sorted(df["sku"].unique())[1:], "x": 1}).to_csv(tmp_path / "items.csv", index=False)
    spec = {"kind": "interactions", "path": str(tmp_path / "log.csv"), "columns": MAPPING,
            "split": {"kind": "random"}, "relevance": {"from": "interaction"},
            "item_features": {"path": str(tmp_path / "items.csv"), "id_column": "sku"}}
    # named as the user knows it: the file and its own column name
    with pytest.raises(DataValidationError, match=r"log.csv: column 'sku': values not found in the item table"):
        dataset_from_spec(spec, seed=0)


# ---------------------------------------------------------------- cold start
def cold_log() -> pd.DataFrame:
    # user "c" and item 9 occur only after the cut at t=5
    return pd.DataFrame({"user": ["a", "a", "b", "b", "a", "b", "c", "c"], "item": [1, 2, 1, 3, 3, 9, 1, 2],
                         "timestamp": [1, 2, 3, 4, 6, 7, 8, 9], "rating": [5, 4, 3, 5, 5, 4, 5, 1]})


def test_cold_start_counted_and_segmented() -> None:
    ds = build_dataset(cold_log(), name="t", split={"kind": "temporal", "cutoff": 5},
                       relevance={"from": "rating", "threshold": 4})
    assert ds.cold_start == {"cold_users": 1, "cold_items": 1, "judgments_of_cold_users": 2,
                             "judgments_of_cold_items": 1}
    assert ds.split_stats == {"train_rows": 4, "test_rows": 4, "users_with_test": 3, "users_without_test": 0}
    c = int(np.flatnonzero(ds.user_ids == "c")[0])
    np.testing.assert_array_equal(ds.segments["cold_users"], [c])
    np.testing.assert_array_equal(ds.segments["warm_users"], sorted(set(ds.query_ids) - {c}))
    cold = ds.restrict_queries(ds.segments["cold_users"], label="cold_users")
    assert cold.name == "t[cold_users]" and set(cold.qrels["query_id"]) == {c}
    assert cold.fingerprint != ds.fingerprint
    excluded = build_dataset(cold_log(), name="t", split={"kind": "temporal", "cutoff": 5},
                             relevance={"from": "rating", "threshold": 4}, cold_start="exclude")
    assert c not in set(excluded.qrels["query_id"]) and len(excluded.qrels) == 2
    assert any("2 judgments of 1 users unseen in training" in w for w in excluded.warnings)
    only = build_dataset(cold_log(), name="t", split={"kind": "temporal", "cutoff": 5},
                         relevance={"from": "rating", "threshold": 4}, cold_start="only")
    assert set(only.qrels["query_id"]) == {c} and len(only.qrels) == 2
    assert any("only the 1 users unseen in training" in w for w in only.warnings)
    with pytest.raises(DataValidationError, match="leaves no user unseen"):
        build_dataset(cold_log(), name="t", split={"kind": "leave_last_out", "k": 1},
                      relevance={"from": "interaction"}, cold_start="only")


# ---------------------------------------------------------------- fingerprint
def built(df: pd.DataFrame, **kw) -> InteractionDataset:
    args = {"name": "t", "split": {"kind": "random", "test_fraction": 0.25}, "relevance": {"from": "label"},
            "seed": 1, **kw}
    return build_dataset(df.rename(columns={"uid": "user", "sku": "item", "clicks": "label", "ts": "timestamp"}),
                         **args)


def test_fingerprint_changes_with_data_and_settings_only() -> None:
    df = clicks()
    base = built(df).fingerprint
    assert built(df.copy()).fingerprint == base
    assert built(df.sample(frac=1.0, random_state=3)).fingerprint == base  # row order is not content
    changed = df.copy()
    changed.loc[5, "clicks"] += 1
    assert built(changed).fingerprint != base
    assert built(df.drop(index=7)).fingerprint != base
    assert built(df, seed=2).fingerprint != base
    assert built(df, split={"kind": "random", "test_fraction": 0.3}).fingerprint != base
    assert built(df, name="other name").fingerprint == base  # names are labels, not content


def test_fingerprint_ignores_the_path(tmp_path: Path) -> None:
    df = clicks()
    spec = {"kind": "interactions", "columns": MAPPING, "split": {"kind": "random"}, "relevance": {"from": "label"}}
    prints = []
    for name in ("a.csv", "b.csv"):
        df.to_csv(tmp_path / name, index=False)
        prints.append(dataset_from_spec({**spec, "path": str(tmp_path / name)}, seed=0).fingerprint)
    assert prints[0] == prints[1]


# ---------------------------------------------------------------- candidates
def dense_dataset(n_users: int = 40, n_items: int = 60) -> InteractionDataset:
    rng = np.random.default_rng(4)
    rows = [(u, int(i), int(t)) for u in range(n_users)
            for t, i in enumerate(rng.choice(n_items, size=int(rng.integers(5, 20)), replace=False))]
    df = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return build_dataset(df, name="d", split={"kind": "leave_last_out", "k": 2}, relevance={"from": "interaction"})


def test_sampled_candidates() -> None:
    ds = dense_dataset()
    cands, short = sampled_candidates(ds, n_negatives=10, seed=0)
    assert short == 0
    seen = set(zip(ds.train["user_id"], ds.train["item_id"]))
    judged = set(zip(ds.qrels["query_id"], ds.qrels["item_id"]))
    pairs = list(zip(cands["query_id"], cands["item_id"]))
    assert len(pairs) == len(set(pairs))
    assert judged <= set(pairs) and not seen & set(pairs)
    per_query = cands.groupby("query_id").size()
    np.testing.assert_array_equal(per_query.to_numpy(), ds.qrels.groupby("query_id").size().to_numpy() + 10)
    again, _ = sampled_candidates(ds, n_negatives=10, seed=0)
    pd.testing.assert_frame_equal(cands, again)
    assert not cands.equals(sampled_candidates(ds, n_negatives=10, seed=1)[0])
    _, short = sampled_candidates(ds, n_negatives=50, seed=0)
    assert short > 0


@pytest.mark.parametrize("n_neg", [2, 8])  # 14 allowed items: rejection sampling (2), random keys (8)
def test_sampled_negatives_are_uniform(n_neg: int) -> None:
    # 3000 users with items 0..4 seen and 5 judged: negatives uniform over the 14 others
    n_users = 3000
    df = pd.DataFrame({"user": np.repeat(np.arange(n_users), 6), "item": np.tile(np.arange(6), n_users),
                       "timestamp": np.tile(np.arange(6), n_users)})
    wide = pd.DataFrame({"user": n_users, "item": np.arange(20), "timestamp": np.arange(20)})  # catalogue of 20
    ds = build_dataset(pd.concat([df, wide]), name="u", split={"kind": "leave_last_out", "k": 1},
                       relevance={"from": "interaction"})
    ds.qrels = ds.qrels[ds.qrels["query_id"] < n_users].reset_index(drop=True)
    c, _ = sampled_candidates(ds, n_negatives=n_neg, seed=0)
    counts = np.bincount(c["item_id"].to_numpy(), minlength=20)
    assert counts[5] == n_users and counts[:5].sum() == 0
    assert (c.groupby("query_id").size() == 1 + n_neg).all()
    p = n_neg / 14  # each of the 14 items is in a user's sample with probability n_neg / 14
    assert np.abs(counts[6:] / n_users - p).max() < 4 * np.sqrt(p * (1 - p) / n_users)
    # pairs: P(i and j both sampled) = C(12, n-2) / C(14, n) for a uniform n-subset
    sets = c[c["item_id"] >= 6].pivot_table(index="query_id", columns="item_id", aggfunc="size", fill_value=0)
    both = (sets[6].to_numpy() & sets[7].to_numpy()).mean()
    p2 = n_neg * (n_neg - 1) / (14 * 13)
    assert abs(both - p2) < 4 * np.sqrt(p2 * (1 - p2) / n_users)


def test_with_candidates_warns_and_fingerprints() -> None:
    ds = dense_dataset()
    sampled = with_candidates(ds, {"kind": "sampled", "n_negatives": 5, "seed": 0})
    assert any("Krichene & Rendle" in w for w in sampled.warnings)
    assert sampled.fingerprint != ds.fingerprint
    assert with_candidates(ds, {"kind": "full"}).candidates is None
    table = pd.DataFrame({"user": ds.user_ids[[0, 0, 1]], "item": ds.item_ids[[0, 1, 2]]})
    given = with_candidates(ds, {"kind": "given"}, table)
    assert given.candidates.values.tolist() == [[0, 0], [0, 1], [1, 2]]
    assert any("relevant judgments are not among the given candidates" in w for w in given.warnings)
    with pytest.raises(DataValidationError, match=r"candidates.item: 1 ids unknown.*'nope'"):
        given_candidates(ds, pd.DataFrame({"user": [ds.user_ids[0]], "item": ["nope"]}))
    with pytest.raises(ConfigError, match="unknown"):
        with_candidates(ds, {"kind": "some"})


def test_restrict_to_candidates_matches_loop() -> None:
    rng = np.random.default_rng(0)
    q = np.arange(5)
    items = np.array([rng.permutation(12)[:8] for _ in q])
    items[1, 6:] = -1
    scores = -np.sort(-rng.random((5, 8)), axis=1)
    cands = pd.DataFrame({"query_id": rng.integers(0, 5, 40), "item_id": rng.integers(0, 12, 40)}).drop_duplicates()
    got_i, got_s = restrict_to_candidates(q, items, scores, cands, n_items=12)
    allowed = set(zip(cands["query_id"], cands["item_id"]))
    for r in q:
        keep = [(i, s) for i, s in zip(items[r], scores[r]) if i >= 0 and (r, i) in allowed]
        want_i = [i for i, _ in keep] + [-1] * (8 - len(keep))
        want_s = [s for _, s in keep] + [-np.inf] * (8 - len(keep))
        np.testing.assert_array_equal(got_i[r], want_i)
        np.testing.assert_array_equal(got_s[r], want_s)


# ---------------------------------------------------------------- config
BASE = {"name": "x", "models": {"p": {"kind": "popularity"}}, "tracking": {"enabled": False}}


def test_config_dataset_kinds() -> None:
    cfg = parse_config({**BASE, "dataset": {"kind": "movielens", "path": "data/ml-1m",
                                            "split": {"kind": "leave_last_out", "k": 10},
                                            "relevance": {"from": "rating", "threshold": 4}}})
    dumped = cfg.dataset.model_dump(by_alias=True)
    assert dumped["split"] == {"kind": "leave_last_out", "k": 10}
    assert dumped["relevance"] == {"from": "rating", "threshold": 4.0, "grades": None}
    assert cfg.model_dump(mode="json")["dataset"]["relevance"]["from"] == "rating"
    assert parse_config({**BASE, "dataset": {"n_users": 5}}).dataset.kind == "synthetic"
    cfg = parse_config({**BASE, "dataset": {"kind": "interactions", "path": ["a.parquet", "b.parquet"],
                                            "columns": {"user": "u", "item": "i"},
                                            "relevance": {"from": "interaction"}, "split": {"kind": "temporal"}}})
    assert cfg.dataset.split.test_fraction == 0.2


@pytest.mark.parametrize(("dataset", "message"), [
    ({"kind": "movielens", "path": "x", "split": {"kind": "sideways"}}, r"dataset.split.kind: unknown kind .sideways. \(known: "),
    ({"kind": "movielens", "path": "x", "split": {"kind": "leave_last_out", "k": 0}}, "k: Input should be greater"),
    ({"kind": "movielens", "path": "x", "split": {"kind": "temporal", "test_fraction": 0.2, "cutoff": 5}},
     "not both"),
    ({"kind": "movielens", "path": "x", "relevance": {"from": "label", "threshold": 3}}, "apply to ratings"),
    ({"kind": "movielens", "path": "x", "format": "2m"}, "format"),
    ({"kind": "movielens", "path": "x", "exclude_seen": False}, "exclude_seen"),
    ({"kind": "movielens", "path": "x", "colour": "red"}, "colour: unknown key"),
    ({"kind": "interactions", "path": "x.csv", "columns": {"user": "u", "item": "i"}}, "needs columns.rating"),
    ({"kind": "interactions", "path": "x.csv", "columns": {"user": "u"}, "relevance": {"from": "interaction"}},
     "item"),
    ({"kind": "warehouse"}, r"dataset.kind: unknown kind 'warehouse' \(known: synthetic, movielens, interactions, trec\)"),
])
def test_config_dataset_errors(dataset: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, "dataset": dataset})


def test_interactions_config_through_the_runner(tmp_path: Path) -> None:
    from harness.apps.run import load_dataset

    df = clicks()
    df.to_parquet(tmp_path / "log.parquet", index=False)
    pd.DataFrame({"uid": df["uid"].unique()[1:], "age": 3}).to_csv(tmp_path / "users.csv", index=False)
    dataset = {"kind": "interactions", "path": str(tmp_path / "log.parquet"),
               "columns": {"user": "uid", "item": "sku", "timestamp": "ts"},
               "split": {"kind": "leave_last_out", "k": 2}, "relevance": {"from": "interaction"}}
    ds = load_dataset(parse_config({**BASE, "dataset": dataset}))
    assert len(ds.train) + len(ds.qrels) == len(df)
    assert list(ds.train.columns) == ["user_id", "item_id", "timestamp"]
    assert (ds.qrels["relevance"] == 1).all()
    renamed = df.rename(columns={"uid": "customer"})
    renamed.to_parquet(tmp_path / "log2.parquet", index=False)
    again = load_dataset(parse_config({**BASE, "dataset": {**dataset, "path": str(tmp_path / "log2.parquet"),
                                                           "columns": {"user": "customer", "item": "sku",
                                                                       "timestamp": "ts"}}}))
    assert again.fingerprint == ds.fingerprint  # same content under another column name
    with pytest.raises(DataValidationError, match=r"log.parquet: column 'uid': values not found in the user table \(.*'user-0'"):
        load_dataset(parse_config({**BASE, "dataset": {**dataset, "user_features": {
            "path": str(tmp_path / "users.csv")}}}))


def test_seed_enters_the_fingerprint_through_the_random_split_only() -> None:
    df = clicks()
    last = {"kind": "leave_last_out", "k": 1}
    assert built(df, split=last, seed=1).fingerprint == built(df, split=last, seed=2).fingerprint
    assert built(df, seed=1).settings["split"] == {"kind": "random", "test_fraction": 0.25, "seed": 1}
    own = {"kind": "random", "test_fraction": 0.25, "seed": 5}
    assert built(df, split=own, seed=1).fingerprint == built(df, split=own, seed=2).fingerprint


def test_yaml_date_cutoff(tmp_path: Path) -> None:
    import yaml

    from harness.spec.config import load_config

    text = yaml.safe_dump({**BASE, "dataset": {"kind": "interactions", "path": "x.csv",
                                               "columns": {"user": "u", "item": "i", "timestamp": "t"},
                                               "relevance": {"from": "interaction"}}})
    text = text.replace("kind: interactions", "kind: interactions\n  split: {kind: temporal, cutoff: 2024-06-15}")
    (tmp_path / "c.yaml").write_text(text)
    assert load_config(tmp_path / "c.yaml").dataset.split.cutoff == "2024-06-15"


def test_a_header_only_or_mixed_zone_log_is_one_message_naming_the_file(tmp_path: Path) -> None:
    """A header-only CSV is "empty" and nothing else (its columns have no type to check);
    dates with and without a zone in one CSV column (the reader leaves them text) are one
    violation naming the file and the user's column (it was pandas' ValueError, exit 3)."""
    spec = {"kind": "interactions", "path": str(tmp_path / "log.csv"), "columns": MAPPING,
            "split": {"kind": "random"}, "relevance": {"from": "interaction"}}
    (tmp_path / "log.csv").write_text("uid,sku,clicks,stars,ts\n")
    with pytest.raises(DataValidationError) as empty:
        dataset_from_spec(spec, seed=0)
    assert str(empty.value) == f"1 data validation error(s):\n  {tmp_path / 'log.csv'}: table is empty (0 rows)"
    df = clicks()
    df["ts"] = pd.to_datetime(df["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df.loc[:2, "ts"] = "2024-01-01 10:00"
    df.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(DataValidationError, match=r"log.csv: column 'ts': expected timestamp values.*dates with a "
                                                  r"time zone \(\d+ rows\) and without one \(3 rows\)"):
        dataset_from_spec(spec, seed=0)


def test_a_relevance_rule_that_judges_nothing_relevant_is_refused_at_validate(tmp_path: Path) -> None:
    """Ratings of 1-5 with ``relevance: {from: rating, threshold: 6}``: every held-out item
    is graded 0. validate refuses it as run does, naming the data set's rule as the fix
    (the message named evaluate.ranking.relevance_threshold, which cannot help)."""
    from harness.apps.validate import dry_run

    clicks().to_csv(tmp_path / "log.csv", index=False)
    dataset = {"kind": "interactions", "path": str(tmp_path / "log.csv"), "columns": MAPPING,
               "split": {"kind": "leave_last_out", "k": 1}, "relevance": {"from": "rating", "threshold": 6}}
    cfg = parse_config({**BASE, "dataset": dataset, "output": str(tmp_path / "out")})
    with pytest.raises(DataValidationError, match=r"none of the 30 judged queries has a relevant item \(relevance "
                                                  r">= 1\); the data set's relevance rule \(dataset.relevance\) "
                                                  r"judged every held-out item 0"):
        dry_run(cfg)
