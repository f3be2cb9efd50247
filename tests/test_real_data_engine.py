"""The user's own data, end to end through `harness run`: string and integer ids in every
input (interactions, precomputed scores, labels, logged feedback) and every output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import harness
from harness.apps.cli import app
from tests.conftest import small_config, write_config


def _world(tmp_path: Path, *, string_ids: bool) -> tuple[pd.DataFrame, dict]:
    """Interactions of 60 users x 40 items in the user's ids, and the dataset block."""
    rng = np.random.default_rng(4)
    users = [f"u-{u:03d}" if string_ids else 500 + 7 * u for u in range(60)]
    items = [f"sku{i:02d}" if string_ids else 9000 + i for i in range(40)]
    rows = [(users[u], items[i], 1_700_000_000 + int(rng.integers(0, 10**6)))
            for u in range(60) for i in rng.choice(40, 10, replace=False)]
    log = pd.DataFrame(rows, columns=["uid", "sku", "ts"])
    log.to_csv(tmp_path / "log.csv", index=False)
    block = {"kind": "interactions", "path": str(tmp_path / "log.csv"),
             "columns": {"user": "uid", "item": "sku", "timestamp": "ts"},
             "split": {"kind": "leave_last_out", "k": 2}, "relevance": {"from": "interaction"}}
    return log, block


def _run(tmp_path: Path, cfg: dict) -> tuple[dict, Path]:
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list(Path(cfg["output"]).iterdir())
    return json.loads((folder / "results.json").read_text()), folder


@pytest.mark.parametrize("string_ids", [False, True])
def test_precomputed_scores_in_own_ids_equal_pytrec_eval(tmp_path: Path, string_ids: bool) -> None:
    import pytrec_eval

    log, block = _world(tmp_path, string_ids=string_ids)
    # the held-out pairs: each user's last two interactions
    held = log.sort_values(["uid", "ts", "sku"]).groupby("uid").tail(2)
    rng = np.random.default_rng(9)
    scores = pd.DataFrame({"query_id": np.repeat(log["uid"].unique(), 15),
                           "item_id": np.concatenate([rng.permutation(log["sku"].unique())[:15]
                                                      for _ in log["uid"].unique()]),
                           "score": rng.random(15 * log["uid"].nunique())})
    # half the users get their held-out items on top: a good model in the user's own ids
    good = held[held["uid"].isin(log["uid"].unique()[::2])].assign(score=5.0)
    scores = pd.concat([scores, good.rename(columns={"uid": "query_id", "sku": "item_id"})[
        ["query_id", "item_id", "score"]]]).drop_duplicates(["query_id", "item_id"], keep="last")
    scores.to_csv(tmp_path / "scores.csv", index=False)
    cfg = small_config(tmp_path, dataset=block, gate=[])
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "scores.csv")}}
    cfg["evaluate"]["ranking"] = {"metrics": ["ndcg@10", "recall@10"], "ties": "trec_eval",
                                  "missing": "zero"}
    data, folder = _run(tmp_path, cfg)
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    ours = per_unit[(per_unit.model == "candidate") & (per_unit.metric == "ndcg@10")].set_index("unit_id")["value"]
    # pytrec_eval on the same ids: qrels are the held-out pairs, the run is the file as written
    # (precomputed scores are the user's own ranking: nothing is removed from it)
    run_rows = scores
    qrels = {str(u): {str(i): 1 for i in g["sku"]} for u, g in held.groupby("uid")}
    run = {str(q): {str(i): float(s) for i, s in zip(g["item_id"], g["score"])} for q, g in run_rows.groupby("query_id")}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert (per_unit["unit_id"].dtype == np.int64) != string_ids  # the ids' own type
    ours.index = ours.index.astype(str)
    assert set(ours.index) == set(qrels)  # keyed by the user's own ids
    for user, values in ref.items():
        assert ours[user] == pytest.approx(values["ndcg_cut_10"], abs=1e-6), user
    # per_unit joins back to the user's own table on their id, as it is
    users = pd.DataFrame({"uid": log["uid"].unique()})
    joined = users.merge(per_unit[per_unit.family == "ranking"], left_on="uid", right_on="unit_id")
    assert joined["uid"].nunique() == len(qrels)
    # and so does the table read back through the API: the ids as the file stores them
    stored = harness.read_results_folder(folder).per_unit
    assert stored["unit_id"].dtype == per_unit["unit_id"].dtype
    assert users.merge(stored, left_on="uid", right_on="unit_id")["uid"].nunique() == len(qrels)


def test_calibration_and_off_policy_from_files_in_string_ids(tmp_path: Path) -> None:
    log, block = _world(tmp_path, string_ids=True)
    rng = np.random.default_rng(2)
    pairs = log.sample(300, random_state=1)
    labels = pd.DataFrame({"who": pairs["uid"], "what": pairs["sku"], "clicked": rng.integers(0, 2, 300)})
    labels.to_parquet(tmp_path / "labels.parquet")
    items = log["sku"].unique()
    shown = rng.choice(items, 800)
    feedback = pd.DataFrame({"user": rng.choice(log["uid"].unique(), 800), "item": shown,
                             "click": rng.integers(0, 2, 800), "p": np.full(800, 1 / len(items))})
    feedback.to_csv(tmp_path / "feedback.csv", index=False)
    cfg = small_config(tmp_path, dataset=block, gate=[])
    cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "item_knn"}}
    cfg["evaluate"]["off_policy"] = {
        "feedback": {"path": str(tmp_path / "feedback.csv"),
                     "columns": {"context": "user", "action": "item", "reward": "click", "propensity": "p"}},
        "estimators": ["ips"], "min_ess": 1}
    data, folder = _run(tmp_path, cfg)
    ips = {r["model"]: r["value"] for r in data["metrics"] if r["metric"] == "ips"}
    # plain IPS: mean of reward * 1[shown == the model's top item for that user] / p
    from harness.evaluate.data import load_dataset
    from harness.models.baselines import PopularityRetriever
    from harness.spec.config import parse_config

    ds = load_dataset(parse_config(cfg))
    pop = PopularityRetriever().fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    codes = pd.Index(ds.user_ids).get_indexer(feedback["user"])
    top = pop.retrieve(np.arange(ds.n_users), 1).items[:, 0]
    hit = np.asarray(ds.item_ids)[top[codes]] == feedback["item"].to_numpy()
    assert ips["popularity"] == pytest.approx(np.mean(feedback["click"] * hit / feedback["p"]), abs=1e-12)

    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10"]}, "calibration": {
        "labels": {"path": str(tmp_path / "labels.parquet"), "columns": {"user": "who", "item": "what",
                                                                         "label": "clicked"}},
        "metrics": ["brier"], "segment_by": "none"}}
    # a production model's probabilities, exported with its scores (a `p` column)
    probs = pd.DataFrame({"query_id": labels["who"], "item_id": labels["what"], "score": rng.random(300),
                          "p": rng.uniform(0.05, 0.95, 300)}).drop_duplicates(["query_id", "item_id"])
    probs.to_csv(tmp_path / "probs.csv", index=False)
    cfg["models"] = {"prod": {"kind": "precomputed", "params": {"path": str(tmp_path / "probs.csv"),
                                                               "missing": "empty"}}}
    cfg.pop("compare")
    cfg["output"] = str(tmp_path / "results-cal")
    data, _ = _run(tmp_path, cfg)
    merged = labels.merge(probs, left_on=["who", "what"], right_on=["query_id", "item_id"])
    brier = next(r["value"] for r in data["metrics"] if r["metric"] == "brier")
    assert brier == pytest.approx(np.mean((merged["p"] - merged["clicked"]) ** 2), abs=1e-12)
    # probabilities for some labelled pairs only: validate refuses what run refuses, with run's message,
    # naming the model (validate passed it; run failed after building every model)
    probs.iloc[:-5].to_csv(tmp_path / "probs.csv", index=False)
    cfg["models"]["other"] = {"kind": "item_knn"}  # refused before it is fitted
    path = str(write_config(tmp_path, cfg))
    outputs = [CliRunner().invoke(app, [command, path, *extra])
               for command, extra in (("validate", []), ("run", ["--no-progress", "--no-plots"]))]
    for result in outputs:
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert re.search(r"error: model 'prod': Precomputed\(.*probs.csv\): 5 of 300 labelled \(query, item\) pairs "
                         r"have no stored p", result.stderr), result.stderr
    assert "fitting other" not in outputs[1].stderr
    probs.to_csv(tmp_path / "probs.csv", index=False)
    del cfg["models"]["other"]
    bad = labels.assign(what=labels["what"].where(np.arange(300) > 2, "no-such-sku"))
    bad.to_parquet(tmp_path / "labels.parquet")
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "no-such-sku" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("string_ids", [False, True])
def test_a_thin_action_is_named_by_the_datas_own_item_id(tmp_path: Path, string_ids: bool) -> None:
    """The per-action overlap check names an action as the feedback file does: logs of
    the users whose top item under popularity is the same, that item logged on 2 of 800
    rows under uniform propensities: it carries 2 * 40 / 800 = 0.1 of pi_e's estimated
    mass (>= 0.05 on < 30 rows: thin)."""
    log, block = _world(tmp_path, string_ids=string_ids)
    from harness.evaluate.data import load_dataset
    from harness.models.baselines import PopularityRetriever
    from harness.spec.config import parse_config

    cfg = small_config(tmp_path, dataset=block, gate=[])
    ds = load_dataset(parse_config(cfg))
    pop = PopularityRetriever().fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    top = pop.retrieve(np.arange(ds.n_users), 1).items[:, 0]  # each user's top unseen item
    mode = np.bincount(top).argmax()
    top_id, users = np.asarray(ds.item_ids)[[mode]].tolist()[0], np.asarray(ds.user_ids)[top == mode]
    rng = np.random.default_rng(3)
    others = np.setdiff1d(ds.item_ids, [top_id])
    shown = np.r_[[top_id] * 2, rng.choice(others, 798)]
    pd.DataFrame({"user": rng.choice(users, 800), "item": shown, "click": rng.integers(0, 2, 800),
                  "p": np.full(800, 1 / 40)}).to_csv(tmp_path / "feedback.csv", index=False)
    cfg["models"] = {"popularity": {"kind": "popularity"}}
    cfg.pop("compare")
    cfg["evaluate"] = {"off_policy": {
        "feedback": {"path": str(tmp_path / "feedback.csv"),
                     "columns": {"context": "user", "action": "item", "reward": "click", "propensity": "p"}},
        "estimators": ["ips"], "min_ess": 1}}
    data, _ = _run(tmp_path, cfg)
    (row,) = data["off_policy"]["estimates"]["popularity"]
    assert row["thin_actions"] == [[top_id, 2, pytest.approx(2 * 40 / 800)]]
    (note,) = [n for n in data["notices"] if "thin action" in n]
    assert f"e.g. action {top_id!r}: estimated pi_e mass 0.10 on 2 logged rows" in note


def test_catalogue_of_the_item_table_lets_scores_rank_items_without_interactions(tmp_path: Path) -> None:
    """``catalogue: item_features``: the item table's items without interactions (new
    items) join the catalogue, so a score file may rank them; they are never relevant,
    so one ranked first pushes every held-out item down a place (nDCG by hand). By
    default such a score file is refused, and the warning on the item table says how
    to keep its items."""
    from harness.evaluate.data import load_dataset
    from harness.spec.config import parse_config

    log, block = _world(tmp_path, string_ids=True)
    new_items = ["sku90", "sku91"]
    pd.DataFrame({"sku": [*log["sku"].unique(), *new_items]}).to_csv(tmp_path / "items.csv", index=False)
    held = log.sort_values(["uid", "ts", "sku"]).groupby("uid").tail(2)
    # every user: a new item first, then the two held-out items
    scores = pd.concat([pd.DataFrame({"query_id": log["uid"].unique(), "item_id": "sku90", "score": 9.0}),
                        held.rename(columns={"uid": "query_id", "sku": "item_id"})[["query_id", "item_id"]]
                        .assign(score=1.0)])
    scores.to_csv(tmp_path / "scores.csv", index=False)
    block["item_features"] = {"path": str(tmp_path / "items.csv")}
    cfg = small_config(tmp_path, dataset=block, gate=[])
    cfg["models"] = {"new": {"kind": "precomputed", "params": {"path": str(tmp_path / "scores.csv")}}}
    cfg.pop("compare")
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10", "recall@1"]}}
    refused = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert refused.exit_code == 2 and "name items the data set does not know (e.g. 'sku90')" in refused.stderr
    assert "1 rows for ids without interactions are not part of the catalogue" not in refused.stderr
    assert "2 rows for ids without interactions" in refused.stderr  # the two new items, counted
    assert "dataset.catalogue: item_features keeps" in refused.stderr
    cfg["dataset"] = {**block, "catalogue": "item_features"}
    ds = load_dataset(parse_config(cfg))
    assert ds.n_items == 42 and set(new_items) <= set(ds.item_ids) and list(ds.item_ids) == sorted(ds.item_ids)
    assert not any("catalogue" in w for w in ds.warnings)
    data, _ = _run(tmp_path, cfg)
    values = {r["metric"]: r["value"] for r in data["metrics"]}
    # relevant items at ranks 2 and 3 of 2 relevant: (1/log2(3) + 1/log2(4)) / (1 + 1/log2(3))
    assert values["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(4)) / (1 + 1 / np.log2(3)), abs=1e-12)
    assert values["recall@1"] == 0.0
    with pytest.raises(harness.ConfigError, match="catalogue: item_features needs an item_features table"):
        parse_config({**cfg, "dataset": {**cfg["dataset"], "item_features": None}})


def test_slate_estimators_from_a_config(tmp_path: Path) -> None:
    """Logged slates (own string ids) -> each model as a Plackett-Luce policy -> SIPS and
    RIPS per slate; checked against a plain loop over slates and slots."""
    log, block = _world(tmp_path, string_ids=True)
    rng = np.random.default_rng(5)
    items = np.sort(log["sku"].unique())
    users = log["uid"].unique()
    k, n_slates = 3, 400
    rows = []
    for s in range(n_slates):  # uniform logging without replacement: P(slot j) = 1 / (n - j)
        shown = rng.choice(items, k, replace=False)
        for j, item in enumerate(shown):
            rows.append((f"s{s:04d}", users[s % len(users)], item, j, int(rng.integers(0, 2)), 1 / (len(items) - j)))
    slots = pd.DataFrame(rows, columns=["sid", "uid", "sku", "pos", "click", "prop"])
    slots.to_csv(tmp_path / "slates.csv", index=False)
    cfg = small_config(tmp_path, dataset=block, gate=[
        {"metric": "slate_rips", "role": "guardrail", "direction": "higher", "max_regression": 100.0}])
    cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "item_knn"}}
    cfg["evaluate"]["slate_off_policy"] = {
        "feedback": {"path": str(tmp_path / "slates.csv"), "columns": {
            "slate": "sid", "context": "uid", "action": "sku", "position": "pos", "reward": "click",
            "propensity": "prop"}}, "temperature": 0.5}
    data, folder = _run(tmp_path, cfg)
    assert data["families"]["slate_off_policy"]["unit"] == "slate"
    assert {"slate_sips", "slate_rips"} <= {r["metric"] for r in data["comparison"]}
    # plain reference for the popularity model: its scores are the training counts
    from harness.evaluate.data import load_dataset
    from harness.models.baselines import PopularityRetriever
    from harness.spec.config import parse_config

    ds = load_dataset(parse_config(cfg))
    model = PopularityRetriever().fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    ours = per_unit[(per_unit.model == "popularity") & (per_unit.family == "slate_off_policy")].pivot(
        index="unit_id", columns="metric", values="value")
    item_code = {raw: j for j, raw in enumerate(ds.item_ids)}
    user_code = {raw: j for j, raw in enumerate(ds.user_ids)}
    for sid, slate in list(slots.groupby("sid"))[:25]:
        u = user_code[slate["uid"].iloc[0]]
        ranking = model.retrieve(np.array([u]), ds.n_items)
        score = {int(i): s for i, s in zip(ranking.items[0], ranking.scores[0]) if i >= 0}
        floor = min(score.values()) - 30 * 0.5
        z = np.array([score.get(j, floor) for j in range(ds.n_items)]) / 0.5
        remaining = np.ones(ds.n_items, dtype=bool)
        cond = []
        for item in slate["sku"]:
            j = item_code[item]
            weights = np.exp(z - z[remaining].max()) * remaining
            cond.append(weights[j] / weights.sum())
            remaining[j] = False
        pi_cascade, mu_cascade = np.cumprod(cond), np.cumprod(slate["prop"].to_numpy())
        clicks = slate["click"].to_numpy()
        assert ours.loc[sid, "slate_rips"] == pytest.approx(np.sum(pi_cascade / mu_cascade * clicks), rel=1e-9)
        assert ours.loc[sid, "slate_sips"] == pytest.approx(pi_cascade[-1] / mu_cascade[-1] * clicks.sum(), rel=1e-9)


def test_hashed_64_bit_ids_stay_integers_to_the_results(tmp_path: Path) -> None:
    """Ids up to the int64 bounds (hashed ids use all 64 bits) are integers from the CSV
    to per_unit.parquet, so that the results join the user's int64 tables; one past the
    bounds, a leading zero or a sign on zero make an id text. The regex checked against
    Python's int on the bounds and around them."""
    import re

    from harness.datasets.ids import CANONICAL_INT

    def canonical(text: str) -> bool:
        return str(int(text)) == text and -2**63 <= int(text) < 2**63

    edges = [2**63 - 1, 2**63, -2**63, -2**63 - 1, 10**18, 10**18 - 1, 10**19, 9223372036854775799, 0]
    texts = [str(v) for e in edges for v in (e - 1, e, e + 1)] + ["-0", "042", "+7", "1.0", ""]
    rng = np.random.default_rng(0)
    texts += [str(int(v)) for v in rng.integers(-2**63, 2**63 - 1, 2000, dtype=np.int64)]
    assert [bool(re.match(CANONICAL_INT, t)) for t in texts] == [t.lstrip("-").isdigit() and canonical(t)
                                                                for t in texts]
    log, block = _world(tmp_path, string_ids=False)
    big = {u: 2**63 - 1 - 7 * k for k, u in enumerate(sorted(log["uid"].unique()))}
    log = log.assign(uid=log["uid"].map(big))
    log.to_csv(tmp_path / "log.csv", index=False)
    cfg = small_config(tmp_path, dataset=block, gate=[])
    cfg["models"] = {"popularity": {"kind": "popularity"}}
    cfg.pop("compare")
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10"]}}
    _, folder = _run(tmp_path, cfg)
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    assert per_unit["unit_id"].dtype == np.int64 and set(per_unit["unit_id"]) <= set(big.values())
    assert per_unit["unit_id"].max() == 2**63 - 1


def test_stored_scores_that_rank_training_items_get_a_notice_and_exclude_seen(tmp_path: Path) -> None:
    """A score file that ranks each user's own training items, against item_knn (which
    leaves them out): a notice counts them, for that model only; ``exclude_seen: true``
    drops them (no notice), and nDCG@10 then equals the file without them."""
    log, block = _world(tmp_path, string_ids=True)
    rng = np.random.default_rng(2)
    every = pd.MultiIndex.from_product([log["uid"].unique(), log["sku"].unique()], names=["query_id", "item_id"])
    scores = every.to_frame(index=False).assign(score=rng.random(len(every)))  # every item, seen ones too
    scores.to_parquet(tmp_path / "scores.parquet")
    cfg = small_config(tmp_path, dataset=block, gate=[])
    cfg["models"] = {"prod": {"kind": "precomputed", "params": {"path": str(tmp_path / "scores.parquet")}},
                     "knn": {"kind": "item_knn"}}
    cfg["compare"] = {"baseline": "prod", "candidates": ["knn"], "n_resamples": 200}
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10"]}}
    data, folder = _run(tmp_path, cfg)
    notes = [n for n in data["notices"] if "training items" in n]
    assert len(notes) == 1 and notes[0].startswith("ranking: prod ranks ") and "exclude_seen: true" in notes[0], notes
    held = log.sort_values(["uid", "ts", "sku"]).groupby("uid").tail(2)
    train = log.drop(held.index)
    judged = pd.read_parquet(folder / "per_unit.parquet")["unit_id"].unique()  # the queries asked for
    top = scores[scores["query_id"].isin(judged)].sort_values(["score", "item_id"], ascending=[False, True])
    hits = top.groupby("query_id").head(10).merge(train, left_on=["query_id", "item_id"], right_on=["uid", "sku"])
    assert (f"prod ranks {len(hits)} of its users' own training items (in {hits['query_id'].nunique()} queries' "
            "top 10)") in notes[0]

    cfg["models"]["prod"]["params"]["exclude_seen"] = True
    cfg["output"] = str(tmp_path / "results-unseen")
    data, _ = _run(tmp_path, cfg)
    assert not [n for n in data["notices"] if "training items" in n]
    unseen = scores.merge(train, left_on=["query_id", "item_id"], right_on=["uid", "sku"], how="left",
                          indicator=True).query("_merge == 'left_only'")[["query_id", "item_id", "score"]]
    unseen.to_parquet(tmp_path / "unseen.parquet")
    cfg["models"]["prod"]["params"] = {"path": str(tmp_path / "unseen.parquet")}
    cfg["output"] = str(tmp_path / "results-filtered")
    filtered, _ = _run(tmp_path, cfg)
    value = {d: next(r["value"] for r in x["metrics"] if r["model"] == "prod") for d, x in (("a", data), ("b", filtered))}
    assert value["a"] == value["b"]
