"""Precomputed scores and TREC files in the user's own ids (integer and string), mapped to
the harness's codes through the data set's id maps; per-query values checked against
pytrec_eval on the user's ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytrec_eval

from harness.types import PAD_ITEM, PointwiseModel
from harness.datasets.build import build_dataset
from harness.datasets.ids import IdMap, id_maps
from harness.datasets.synthetic import make_synthetic
from harness.datasets.trec import read_trec_qrels, read_trec_run, write_trec_run
from harness.errors import AdapterError, ConfigError, DataValidationError
from harness.metrics import evaluate_ranking
from harness.models.precomputed import Precomputed, PrecomputedProba, load_precomputed


def _log(string_ids: bool, seed: int = 0) -> pd.DataFrame:
    """MovieLens-shaped ratings: users 1..60 (not 0-based), items 1000.. with gaps."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(1, 61), 12)
    items = np.concatenate([rng.choice(np.arange(1000, 1400, 3), 12, replace=False) for _ in range(60)])
    log = pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, users.size),
                        "timestamp": np.tile(np.arange(12), 60)})
    if string_ids:
        log["user"] = "u" + log["user"].astype(str)
        log["item"] = "m" + log["item"].astype(str)
    return log


def _dataset(string_ids: bool):
    return build_dataset(_log(string_ids), name="t", split={"kind": "leave_last_out", "k": 4},
                         relevance={"from": "rating", "threshold": 3})


def _raw_qrels(ds) -> pd.DataFrame:
    """The dataset's judgments in the user's own ids (what a user's qrels file holds)."""
    return pd.DataFrame({"query_id": ds.user_ids[ds.qrels["query_id"].to_numpy()],
                         "item_id": ds.item_ids[ds.qrels["item_id"].to_numpy()],
                         "relevance": ds.qrels["relevance"].to_numpy()})


def _random_run(ds, seed: int = 1) -> pd.DataFrame:
    """Each judged user: their judged items plus random others, distinct scores, user ids."""
    rng = np.random.default_rng(seed)
    raw = _raw_qrels(ds)
    extra = pd.DataFrame({"query_id": np.repeat(raw["query_id"].unique(), 15),
                          "item_id": rng.choice(ds.item_ids, 15 * raw["query_id"].nunique())})
    run = pd.concat([raw[["query_id", "item_id"]], extra]).drop_duplicates(["query_id", "item_id"])
    run["score"] = rng.permutation(len(run)).astype(float) / len(run)
    return run.reset_index(drop=True)


def _write(run: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        run.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        run.to_csv(path, index=False)
    else:
        write_trec_run(run, path)
    return path


def _pytrec(raw_qrels: pd.DataFrame, run: pd.DataFrame) -> dict:
    qrels = {}
    for q, i, r in raw_qrels.itertuples(index=False):
        qrels.setdefault(str(q), {})[str(i)] = int(r)
    scores = {}
    for q, i, s in run[["query_id", "item_id", "score"]].itertuples(index=False):
        scores.setdefault(str(q), {})[str(i)] = float(s)
    return pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"}).evaluate(scores)


@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".trec"])
def test_per_query_values_equal_pytrec_eval_on_the_users_ids(tmp_path, string_ids, suffix):
    ds = _dataset(string_ids)
    run = _random_run(ds)
    model = Precomputed(_write(run, tmp_path / f"run{suffix}"), dataset=ds)
    ranking = model.retrieve(ds.query_ids, 100)
    ours = evaluate_ranking(ds.qrels, ranking, ["ndcg@10", "recall@10"]).per_query
    ref = _pytrec(_raw_qrels(ds), run)
    users = ds.user_ids[ours.index.to_numpy()]
    assert len(ours) > 20 and set(map(str, users)) <= set(ref)
    np.testing.assert_allclose(ours["ndcg@10"].to_numpy(), [ref[str(u)]["ndcg_cut_10"] for u in users], atol=1e-12)
    np.testing.assert_allclose(ours["recall@10"].to_numpy(), [ref[str(u)]["recall_10"] for u in users], atol=1e-12)


@pytest.mark.parametrize("string_ids", [False, True])
def test_a_perfect_ranking_in_the_users_ids_scores_one(tmp_path, string_ids):
    ds = _dataset(string_ids)
    raw = _raw_qrels(ds)
    perfect = raw.assign(score=raw["relevance"] + 0.0)[["query_id", "item_id", "score"]]
    path = _write(perfect, tmp_path / "perfect.csv")
    result = evaluate_ranking(ds.qrels, Precomputed(path, dataset=ds).retrieve(ds.query_ids, 10), ["ndcg@10"])
    assert result.n_queries > 20 and result.means["ndcg@10"] == pytest.approx(1.0)


def test_unknown_ids_name_file_column_count_and_both_sides(tmp_path):
    ds = _dataset(string_ids=False)
    run = _random_run(ds).head(20).copy()
    run.loc[[0, 1, 5], "item_id"] = [5, 7, 5]  # not item ids of this data (codes would be)
    path = _write(run, tmp_path / "run.csv")
    with pytest.raises(DataValidationError, match=r"run\.csv: column 'item_id': 3 of 20 rows \(2 distinct ids\) name "
                                                  r"items the data set does not know \(e\.g\. 5, 7\); the data set's "
                                                  r"\d+ item ids are its own ids, e\.g\. 1000, 1003, 1006"):
        Precomputed(path, dataset=ds)


def test_leading_zeros_are_not_coerced_to_integers(tmp_path):
    ds = _dataset(string_ids=False)
    run = _random_run(ds).head(4).astype({"query_id": str})
    run.loc[0, "query_id"] = "0" + run.loc[0, "query_id"]
    path = tmp_path / "run.csv"
    run.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'query_id': 1 of 4 rows .* \(e\.g\. '0\d+'\)"):
        Precomputed(path, dataset=ds)


def test_string_ids_against_integer_ids_and_back():
    ints = IdMap("user", 3, np.array([1, 5, 943]))
    np.testing.assert_array_equal(ints.encode(np.array(["943", "1"], dtype=object), source="f", column="c"), [2, 0])
    strs = IdMap("item", 2, np.array(["7", "a"], dtype=object))
    np.testing.assert_array_equal(strs.encode(np.array([7]), source="f", column="c"), [0])
    np.testing.assert_array_equal(strs.decode(np.array([1, 0])), ["a", "7"])
    with pytest.raises(DataValidationError, match=r"must hold integer or string ids, got dtype float64"):
        ints.encode(np.array([1.0]), source="f", column="c")
    with pytest.raises(DataValidationError, match=r"1 of 2 ids are neither integers nor strings \(e\.g\. None\)"):
        ints.encode(np.array(["1", None], dtype=object), source="f", column="c")


def test_synthetic_dataset_ids_are_the_codes():
    world = make_synthetic(n_users=30, n_items=20, n_train_per_user=5, seed=0)
    users, items = id_maps(world)
    assert users.raw is None and users.n == world.n_users
    frame = pd.DataFrame({"query_id": [0, 29], "item_id": [19, 3], "score": [1.0, 2.0]})
    model = Precomputed(frame, dataset=world, missing="empty")  # a file of two users: the others rank nothing
    np.testing.assert_array_equal(model.retrieve(np.array([29]), 1).items, [[3]])
    with pytest.raises(DataValidationError, match=r"column 'item_id': 1 of 2 rows .* \(e\.g\. 20\); the data set's "
                                                  r"20 item ids are its own ids, e\.g\. 0, 1, 2"):
        Precomputed(frame.assign(item_id=[20, 3]), dataset=world, missing="empty")


def test_missing_query_messages_use_the_users_ids():
    ds = _dataset(string_ids=True)
    run = _random_run(ds)
    run = run[run["query_id"] != ds.user_ids[ds.query_ids[0]]]
    message = rf"1 of \d+ queries asked for have no stored predictions \(e\.g\. '{ds.user_ids[ds.query_ids[0]]}'\)"
    with pytest.raises(DataValidationError, match=message):  # judged queries are checked when the file is read
        Precomputed(run, dataset=ds)
    model = Precomputed(run, dataset=ds, missing="empty")
    model.missing = "error"  # and any other query when it is asked for
    with pytest.raises(DataValidationError, match=message):
        model.retrieve(ds.query_ids, 10)


# ---------------------------------------------------------------- probabilities (p column)
def test_p_column_serves_predict_proba_in_the_users_ids(tmp_path):
    ds = _dataset(string_ids=True)
    rng = np.random.default_rng(3)
    raw = _raw_qrels(ds)
    table = raw[["query_id", "item_id"]].assign(p=rng.random(len(raw)), score=rng.random(len(raw)))
    path = tmp_path / "p.parquet"
    table.to_parquet(path, index=False)
    model = load_precomputed(path, dataset=ds, name="service")
    assert isinstance(model, PrecomputedProba) and isinstance(model, PointwiseModel)
    pairs = ds.qrels[["query_id", "item_id"]].sample(frac=1.0, random_state=0)  # codes, shuffled
    expected = {(q, i): p for q, i, p in table[["query_id", "item_id", "p"]].itertuples(index=False)}
    ref = [expected[(ds.user_ids[q], ds.item_ids[i])] for q, i in pairs.itertuples(index=False)]
    np.testing.assert_array_equal(model.predict_proba(pairs), ref)
    unknown_pair = pd.DataFrame({"query_id": [ds.qrels["query_id"].iloc[0]], "item_id": [ds.n_items - 1]})
    if (ds.qrels[["query_id", "item_id"]] == unknown_pair.iloc[0]).all(axis=1).any():
        unknown_pair["item_id"] = ds.n_items - 2
    with pytest.raises(DataValidationError, match=r"service: 1 of 1 labelled \(query, item\) pairs have no stored p "
                                                  r"\(e\.g\. \('u"):
        model.predict_proba(unknown_pair)


def test_without_p_the_model_is_not_a_pointwise_model_and_p_only_files_do_not_rank():
    frame = pd.DataFrame({"query_id": [0, 0], "item_id": [1, 2], "score": [0.3, 0.2]})
    plain = load_precomputed(frame)
    assert type(plain) is Precomputed and not isinstance(plain, PointwiseModel)
    p_only = load_precomputed(frame.rename(columns={"score": "p"}), name="probs")
    np.testing.assert_array_equal(p_only.predict_proba(frame[["query_id", "item_id"]]), [0.3, 0.2])
    with pytest.raises(AdapterError, match="probs: the file has a 'p' column but no 'score' column"):
        p_only.retrieve(np.array([0]), 2)


@pytest.mark.parametrize("p, match", [
    ([0.5, 1.5], r"column 'p' has 1 values outside \[0, 1\] \(e\.g\. 1\.5\)"),
    ([0.5, np.nan], r"column 'p' has 1 NaN or infinite values"),
])
def test_bad_probabilities(p, match):
    with pytest.raises(DataValidationError, match=match):
        load_precomputed(pd.DataFrame({"query_id": [0, 0], "item_id": [1, 2], "p": p}))


# ---------------------------------------------------------------- TREC files
def test_trec_run_and_qrels_readers(tmp_path):
    run = tmp_path / "run.txt"
    run.write_text("u1 Q0 m7 1 2.5 bm25\nu1\tQ0   m9 2 1.0 bm25\n\nu2 Q0 m7 1 -0.5 bm25\n")
    df = read_trec_run(run)
    assert list(df.columns) == ["query_id", "item_id", "score", "rank", "tag"]
    assert df.to_dict("list") == {"query_id": ["u1", "u1", "u2"], "item_id": ["m7", "m9", "m7"],
                                  "score": [2.5, 1.0, -0.5], "rank": [1, 2, 1], "tag": ["bm25"] * 3}
    qrels = tmp_path / "qrels"
    qrels.write_text("1 0 10 2\n1 0 011 0\n2 0 10 1\n")
    q = read_trec_qrels(qrels)
    assert q["query_id"].dtype == np.int64 and q["item_id"].tolist() == ["10", "011", "10"]  # 011 stays text
    assert q["relevance"].tolist() == [2, 0, 1]


def test_trec_round_trip_through_the_writer(tmp_path):
    run = pd.DataFrame({"query_id": [3, 3, 1], "item_id": [9, 4, 4], "score": [0.25, 0.5, 1.0]})
    back = read_trec_run(write_trec_run(run, tmp_path / "r.trec"))
    assert back[["query_id", "item_id", "score", "rank"]].to_dict("list") == {
        "query_id": [1, 3, 3], "item_id": [4, 4, 9], "score": [1.0, 0.5, 0.25], "rank": [1, 1, 2]}


@pytest.mark.parametrize("reader, text, match", [
    (read_trec_run, "1 Q0 5 1 0.5 x extra\n", r"lines have 7 fields, expected 6"),
    (read_trec_run, "1 Q0 5 1 0.5 x\n1 Q0 6 2 0.1 x y\n", r"Expected 6 fields in line 2, saw 7"),
    (read_trec_run, "1 Q0 5 1 0.5 x\n1 Q0 6 2\n", r"1 lines have fewer than 6 fields .* line 2"),
    (read_trec_run, "1 Q0 5 1 abc x\n", r"field 'score' must hold finite numbers; 1 of 1 lines do not \(e\.g\. 'abc'\)"),
    (read_trec_run, "1 Q0 5 1 nan x\n", r"field 'score' must hold finite numbers"),
    (read_trec_run, "1 Q0 5 1.5 3 x\n", r"field 'rank' must hold integers"),
    (read_trec_run, "1 Q0 5 1 3 x\n\n1 Q0 5 2 2 x\n", r"1 duplicate \(query, doc\) lines \(e\.g\. \(1, 5\) as "
                                                  r"\(query_id, item_id\); line\(s\) 2 \(blank lines not counted\)\)"),
    (read_trec_run, "\n", r"TREC run file is empty"),
    (read_trec_qrels, "1 0 5 1.5\n", r"field 'relevance' must hold integers"),
    (read_trec_qrels, "1 0 5\n", r"lines have 3 fields, expected 4"),
])
def test_bad_trec_files(tmp_path, reader, text, match):
    path = tmp_path / "f.txt"
    path.write_text(text)
    with pytest.raises(DataValidationError, match=match):
        reader(path)


def test_missing_trec_file_and_unknown_suffix(tmp_path):
    with pytest.raises(ConfigError, match="TREC run file not found"):
        read_trec_run(tmp_path / "nope.txt")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"must end in .parquet, .pq, .csv, .tsv \(tables\) or .trec, .run, .txt"):
        Precomputed(tmp_path / "x.json")
    with pytest.raises(ConfigError, match=r"format must be one of \['auto', 'table', 'trec'\], got 'json'"):
        Precomputed(tmp_path / "x.json", format="json")


@pytest.mark.parametrize("string_ids", [False, True])
def test_trec_qrels_in_the_users_ids_encode_to_the_datasets_judgments(tmp_path, string_ids):
    from harness.datasets.ids import encode_pairs

    ds = _dataset(string_ids)
    raw = _raw_qrels(ds)
    path = tmp_path / "qrels.txt"
    path.write_text("".join(f"{q} 0 {i} {r}\n" for q, i, r in raw.itertuples(index=False)))
    back = encode_pairs(read_trec_qrels(path), ds, source=str(path))
    pd.testing.assert_frame_equal(back.reset_index(drop=True), ds.qrels[["query_id", "item_id", "relevance"]]
                                  .reset_index(drop=True), check_dtype=False)
    bad = tmp_path / "bad.txt"
    bad.write_text(f"nobody 0 {raw['item_id'].iloc[0]} 1\n")
    with pytest.raises(DataValidationError, match=r"bad.txt: column 'query_id': 1 of 1 rows .* \(e\.g\. 'nobody'\)"):
        encode_pairs(read_trec_qrels(bad), ds, source=str(bad))


def test_bad_scores_are_named_by_query_item_and_row(tmp_path: Path) -> None:
    """A duplicated pair, a NaN score and a text score: the count, the (query_id,
    item_id) pairs in the file's ids and the row numbers (1 = the first data row); the
    text values too (the messages named query ids only, or only the column's dtype)."""
    ds = _dataset(string_ids=True)
    run = _random_run(ds)
    q, i = run.loc[4, "query_id"], run.loc[4, "item_id"]
    cases = [
        (pd.concat([run, run.iloc[[4]]], ignore_index=True),
         rf"1 duplicate \(query_id, item_id\) rows \(e.g. \('{q}', '{i}'\) as \(query_id, item_id\); row\(s\) {len(run) + 1}\)"),
        (run.assign(score=run["score"].where(run.index != 4, np.nan)),
         rf"column 'score' has 1 NaN or infinite values \(e.g. \('{q}', '{i}'\) as \(query_id, item_id\); row\(s\) 5\)"),
        (run.assign(score=run["score"].astype(object).where(run.index != 4, "high")),
         rf"column 'score' must be numeric, got dtype object: 1 value\(s\) are not numbers \(e.g. 'high'; e.g. "
         rf"\('{q}', '{i}'\) as \(query_id, item_id\); row\(s\) 5\)"),
    ]
    for k, (frame, message) in enumerate(cases):
        path = tmp_path / f"bad{k}.csv"
        frame.to_csv(path, index=False)
        with pytest.raises(DataValidationError, match=rf"bad{k}.csv: {message}"):
            load_precomputed(path, dataset=ds)
    # a Parquet table whose scores are numbers written as text: the type is named, not "0 values" (it said
    # "0 value(s) are not numbers (; )")
    path = tmp_path / "text_scores.parquet"
    run.assign(score=run["score"].map(repr)).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"text_scores.parquet: column 'score' stores numbers as text "
                                                  r"\(dtype object, e.g. '[-0-9.e]+', .*astype\(float\)"):
        load_precomputed(path, dataset=ds)


@pytest.mark.parametrize("string_ids", [True, False])
def test_exclude_seen_drops_each_users_training_items_before_the_top_k(string_ids: bool) -> None:
    """``exclude_seen: true``: each user's stored list without that user's training
    items, in stored order, then its top k (checked row by row against a plain loop);
    without it, the stored lists as they are, training items included."""
    ds = _dataset(string_ids)
    rng = np.random.default_rng(4)
    train = ds.train
    seen_raw = pd.DataFrame({"query_id": ds.user_ids[train["user_id"].to_numpy()],
                             "item_id": ds.item_ids[train["item_id"].to_numpy()]})
    run = pd.concat([_random_run(ds)[["query_id", "item_id"]], seen_raw]).drop_duplicates(["query_id", "item_id"])
    run["score"] = rng.permutation(len(run)).astype(float)  # training items mixed in at every rank
    kept = load_precomputed(run, dataset=ds).fit(train, n_users=ds.n_users, n_items=ds.n_items)
    dropped = load_precomputed(run, dataset=ds, exclude_seen=True).fit(train, n_users=ds.n_users, n_items=ds.n_items)
    k = 10
    got_kept, got = kept.retrieve(ds.query_ids, k), dropped.retrieve(ds.query_ids, k)
    seen = set(zip(train["user_id"], train["item_id"]))
    items = pd.Index(ds.item_ids)
    n_seen_kept = 0
    for row, user in enumerate(ds.query_ids):
        stored = run[run["query_id"] == ds.user_ids[user]].sort_values("score", ascending=False)
        codes = items.get_indexer(stored["item_id"])
        want = [c for c in codes if (user, c) not in seen][:k]
        assert got.items[row, :len(want)].tolist() == want and (got.items[row, len(want):] == PAD_ITEM).all()
        assert got_kept.items[row, :min(k, len(codes))].tolist() == codes[:k].tolist()
        n_seen_kept += sum((user, c) in seen for c in codes[:k])
    assert n_seen_kept > 0  # the stored lists do rank training items


def test_unknown_items_point_to_the_item_catalogue() -> None:
    """Score rows naming items nobody interacted with: the message names them, and the
    data set option that adds items without interactions (catalogue: item_features)."""
    ds = _dataset(string_ids=True)
    run = _random_run(ds)
    run.loc[0, "item_id"] = "new-sku"
    with pytest.raises(DataValidationError, match=r"1 of \d+ rows \(1 distinct ids\) name items the data set does not "
                                                  r"know \(e.g. 'new-sku'\).*dataset.catalogue: item_features"):
        load_precomputed(run, dataset=ds)
