"""``engine: {kind: spark}`` in a config: the same results folder as the local engine.

Runs in the one Spark session of the test run (conftest's ``spark`` fixture, active, so
the engine picks it up); the local run of the same config is the reference.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest

import harness
from harness.errors import ConfigError

from conftest import small_config

# every run of these tests, finished or failed, frees what it cached in the session
pytestmark = pytest.mark.usefixtures("nothing_left_cached")


def _config(tmp_path, engine: dict) -> dict:
    cfg = small_config(tmp_path, engine=engine)
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10", "recall@[10,50]", "mrr@10"], "ties": "trec_eval"},
                       "off_policy": {"synthetic": {"n_rounds": 3000}, "estimators": ["ips", "snips"],
                                      "method": "bootstrap", "resampling": "poisson", "n_bootstrap": 200}}
    cfg["gate"].append({"metric": "snips", "role": "guardrail", "direction": "higher", "max_regression": 0.05})
    return cfg


def test_spark_engine_run_equals_local(spark, tmp_path):
    """Every documented engine option (master, conf, app_name: of a session the run starts;
    here the test run's session is active, which the engine uses) and the same results."""
    outcomes = {}
    for kind in ("local", "spark"):
        engine = {"kind": kind} if kind == "local" else {
            "kind": "spark", "master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4}, "app_name": "matrix"}
        config = harness.parse_config(_config(tmp_path / kind, engine))
        outcomes[kind] = harness.run(config, output=tmp_path / kind / "results", progress=False)
    local, found = outcomes["local"], outcomes["spark"]
    assert found.exit_code == local.exit_code
    assert found.result.verdict == local.result.verdict
    a, b = (harness.read_results_folder(o.results_dir) for o in (local, found))
    assert b.data["config"]["engine"] == {"kind": "spark", "master": "local[2]", "app_name": "matrix",
                                          "conf": {"spark.sql.shuffle.partitions": 4}}
    for key in ("metrics", "comparison"):
        left, right = pd.DataFrame(a.data[key]), pd.DataFrame(b.data[key])
        assert list(left.columns) == list(right.columns) and len(left) == len(right) > 0
        for col in left.columns:
            if pd.api.types.is_float_dtype(left[col]):
                np.testing.assert_allclose(right[col].to_numpy(float), left[col].to_numpy(float), rtol=0, atol=1e-9,
                                           err_msg=f"{key}.{col}")
            else:
                assert right[col].tolist() == left[col].tolist(), f"{key}.{col}"
    pa, pb = a.per_unit, b.per_unit
    assert pa[["family", "model", "unit_id", "metric"]].equals(pb[["family", "model", "unit_id", "metric"]])
    assert np.abs(pa["value"].to_numpy() - pb["value"].to_numpy()).max() <= 1e-9


def test_spark_engine_refuses_what_it_cannot_compute(tmp_path, monkeypatch):
    cfg = small_config(tmp_path, engine={"kind": "spark"})
    cfg["evaluate"]["calibration"] = {"metrics": ["ece"]}
    with pytest.raises(ConfigError, match="evaluate.calibration is not supported on Spark"):
        harness.parse_config(cfg)
    cfg = small_config(tmp_path, engine={"kind": "spark"})
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 500}, "estimators": ["ips"], "method": "bootstrap"}
    with pytest.raises(ConfigError, match="set resampling: poisson"):
        harness.parse_config(cfg)
    with pytest.raises(ConfigError, match="set kind: spark"):
        harness.parse_config(small_config(tmp_path, engine={"kind": "local", "master": "local[2]"}))
    # pyspark not installed: the config error says what to install (exit code 2)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    config = harness.parse_config(small_config(tmp_path, engine={"kind": "spark"}))
    with pytest.raises(ConfigError, match=r"pip install 'recsys-harness\[spark\]'"):
        harness.run(config, output=tmp_path / "results", progress=False)


def _collection(folder, *, text_ids: bool) -> dict:
    """A judged collection and two score tables as Parquet, ids as the user stores them:
    text, or integers whose decimal order differs from their numeric order (5 < 40 < 300),
    scores rounded so that ties (broken by item id) cross the cut-offs."""
    rng = np.random.default_rng(11)
    queries = [f"u{q * 37 % 101}" if text_ids else q * 37 % 101 * 7 for q in range(40)]
    items = np.array([f"d{i * 13 % 50}" if text_ids else i * 13 % 50 * 9 for i in range(30)], dtype=object)
    items = items if text_ids else items.astype(np.int64)
    qrels = pd.DataFrame([(q, it, int(g)) for q in queries for it, g in
                          zip(rng.choice(items, 8, replace=False), rng.integers(0, 4, 8))],
                         columns=["query_id", "item_id", "relevance"])
    qrels.loc[qrels["query_id"] == queries[0], "relevance"] = 0  # a judged query with nothing relevant
    folder.mkdir(parents=True, exist_ok=True)
    qrels.to_parquet(folder / "judgments.parquet")
    models = {}
    for name, noise in (("bm25", 1.0), ("neural", 0.5)):
        rows = [(q, it, float(np.round(rng.normal(g, noise)))) for q in queries + ["extra" if text_ids else 99999]
                for it, g in zip(rng.choice(items, 20, replace=False), rng.integers(0, 4, 20))]
        run = pd.DataFrame(rows, columns=["query_id", "item_id", "score"])
        if name == "neural":
            run = run[run["query_id"] != queries[5]]  # ranks nothing for one judged query
        run.to_parquet(folder / f"{name}.parquet")
        models[name] = {"kind": "precomputed", "params": {"path": str(folder / f"{name}.parquet"),
                                                          **({"missing": "empty"} if name == "neural" else {})}}
    if not text_ids:  # one model: its per-query values and the collection are what this case checks
        models.pop("neural")
    compare = {"compare": {"baseline": "bm25", "candidates": ["neural"], "n_resamples": 200},
               "gate": [{"metric": "ndcg@5", "role": "primary", "direction": "higher"}]} if text_ids else {}
    return {"name": "collection", "seed": 3, "dataset": {"kind": "trec", "qrels": str(folder / "judgments.parquet")},
            "models": models, **compare,
            "evaluate": {"ranking": {"metrics": ["ndcg@5", "map@10", "recall@[5,10]", "mrr", "precision@5"],
                                     "ties": "trec_eval", "k": 12}},
            "tracking": {"enabled": False}}


def assert_same_results(left: object, right: object, where: str = "results.json") -> None:
    """Equal JSON trees, floats to 1e-9; what names the run itself (id, time, config,
    tracking) and the models' wall-clock times aside."""
    if isinstance(left, dict) and isinstance(right, dict):
        skip = {"run_id", "created_at", "config", "config_hash", "tracking", "started_ms", "ended_ms"}
        assert sorted(set(left) - skip) == sorted(set(right) - skip), where
        for key in set(left) - skip:
            assert_same_results(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list) and isinstance(right, list):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right)):
            assert_same_results(a, b, f"{where}[{i}]")
    elif isinstance(left, float) or isinstance(right, float):
        assert left is not None and right is not None, where
        np.testing.assert_allclose(right, left, rtol=0, atol=1e-9, err_msg=where)
    else:
        assert left == right, where


def test_spark_engine_reduces_ab_units_to_the_local_numbers(spark, tmp_path):
    from harness.apps.ab import run_ab
    from harness.errors import DataValidationError
    from harness.spec.ab import parse_ab_config

    from test_ab_cli import _config as ab_config
    from test_ab_cli import _data as ab_data

    data = ab_data(tmp_path, n=2000, lift=0.3)
    outcomes = {kind: run_ab(parse_ab_config(ab_config(tmp_path / kind, engine={"kind": kind})), data)
                for kind in ("local", "spark")}
    a, b = (harness.read_results_folder(o.results_dir) for o in outcomes.values())
    assert outcomes["spark"].exit_code == outcomes["local"].exit_code
    assert_same_results(a.data, b.data)  # effects with CUPED, ratio and proportion metrics; SRM; verdict
    stats = [pd.read_csv(o.results_dir / "statistics.csv") for o in outcomes.values()]
    np.testing.assert_allclose(stats[1].drop(columns="variant").to_numpy(), stats[0].drop(columns="variant").to_numpy(),
                               rtol=1e-12)
    with pytest.raises(ConfigError, match=r"a statistics table is already small: use engine kind local"):
        parse_ab_config(ab_config(tmp_path, engine={"kind": "spark"}, input="statistics",
                                  columns={"variant": "variant"}))
    bad = pd.read_parquet(data).assign(converted=lambda d: d["converted"].where(d.index != 7, 2))
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError, match=r"proportion column 'converted' must be 0/1; 1 row"):
        run_ab(parse_ab_config(ab_config(tmp_path, engine={"kind": "spark"})), tmp_path / "bad.parquet")
    # a ratio's denominator below 0 (impressions -5, -2): the same refusal on both engines
    bad = pd.read_parquet(data)
    bad.loc[[3, 8], "impressions"] = [-5, -2]
    bad.to_parquet(tmp_path / "negative.parquet")
    refused = []
    for kind in ("local", "spark"):
        with pytest.raises(DataValidationError) as error:
            run_ab(parse_ab_config(ab_config(tmp_path / kind, engine={"kind": kind})), tmp_path / "negative.parquet")
        refused.append(str(error.value))
    assert refused[0] == refused[1] == (f"{tmp_path / 'negative.parquet'}: column 'impressions', a ratio metric's "
                                        "denominator, must be >= 0; 2 row(s) are not (e.g. -5.0, -2.0)")


def test_spark_engine_refuses_text_tables_naming_them(spark, tmp_path):
    cfg = _collection(tmp_path / "data", text_ids=True)
    pd.read_parquet(tmp_path / "data" / "bm25.parquet").to_csv(tmp_path / "bm25.csv", index=False)
    cfg["models"]["bm25"]["params"]["path"] = str(tmp_path / "bm25.csv")
    config = harness.parse_config({**cfg, "engine": {"kind": "spark"}})
    with pytest.raises(ConfigError, match=r"model Precomputed\(.*bm25.csv\): .*bm25.csv is a text file; .*Parquet"):
        harness.run(config, output=tmp_path / "results", progress=False)


def test_local_backend_resolves_the_same_sources(tmp_path):
    """The sources a Spark run hands its backend, resolved by the local backend (local
    loaders): the same collection summary and per-query values as the local run."""
    from harness.evaluate.backend import LOCAL
    from harness.evaluate.data import dataset_summary
    from harness.evaluate.sources import collection_sources

    cfg = _collection(tmp_path / "data", text_ids=True)
    local = harness.run(harness.parse_config(cfg), output=tmp_path / "local", progress=False)
    collection = LOCAL.describe_collection(collection_sources(harness.parse_config({**cfg, "engine": {"kind": "spark"}})))
    assert dataset_summary(collection) == local.result.dataset
    spec = cfg["evaluate"]["ranking"]
    found = LOCAL.evaluate_ranking_source(collection, collection.runs["neural"], spec["metrics"], depth=spec["k"],
                                          ties="trec_eval")
    want = local.result.per_unit.query("model == 'neural'").pivot(index="unit_id", columns="metric", values="value")
    got = found.result.per_query.set_axis(found.result.per_query.index.astype(str))
    pd.testing.assert_frame_equal(got.loc[want.index, want.columns], want, check_names=False, atol=1e-12)
    assert list(found.unranked) == [pd.read_parquet(tmp_path / "data" / "judgments.parquet")["query_id"].unique()[5]]
    assert found.n_no_relevant == 1


def test_validate_checks_the_tables_a_spark_run_reads_without_reading_them(tmp_path):
    from typer.testing import CliRunner

    from harness.apps.cli import app

    from conftest import write_config

    cfg = {**_collection(tmp_path / "data", text_ids=True), "engine": {"kind": "spark"}}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 0, result.output
    assert "judgments" in result.output and "2 score tables, read by the Spark engine" in result.output
    cfg["models"]["bm25"]["params"]["path"] = str(tmp_path / "data" / "gone.parquet")
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "gone.parquet: no such Parquet file or folder" in result.output


@pytest.mark.parametrize("damage,message", [
    (lambda run: run.assign(score=run["score"].where(run.index != 3)), r"bm25.parquet: column 'score' has 1 NaN"),
    (lambda run: run.rename(columns={"score": "s"}), r"bm25.parquet: missing column\(s\) \['score'\]"),
    (lambda run: pd.concat([run, run.iloc[[0]]]), r"bm25.parquet: .*duplicate"),
], ids=["nan-score", "no-score-column", "duplicate-pair"])
def test_spark_engine_bad_score_table_is_exit_2_naming_it(spark, tmp_path, damage, message):
    """Bad rows found by a Spark worker reach the CLI as the local engine's exit-2 error,
    naming the table and column, and no results folder is left behind. (The first
    model's table: the run stops there, with no other model evaluated first.)"""
    import yaml
    from typer.testing import CliRunner

    from harness.apps.cli import app

    cfg = _collection(tmp_path / "data", text_ids=True)
    path = tmp_path / "data" / "bm25.parquet"
    damage(pd.read_parquet(path)).to_parquet(path)
    cfg.update(engine={"kind": "spark"}, output=str(tmp_path / "results"))
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "eval.yaml"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def _designs(tmp_path):
    """Per-unit tables of the grouped designs: whole markets randomised (with a platform
    segment per market), and (user, week) rows of a holdout."""
    from test_ab_cli import _data as ab_data

    clustered = pd.read_parquet(ab_data(tmp_path, n=3000, lift=0.3, clusters=40))
    clustered["platform"] = clustered["market"].map(lambda m: ("ios", "android", "web")[int(m[1:]) % 3])
    clustered.to_parquet(tmp_path / "clustered.parquet")
    rng = np.random.default_rng(4)
    users, weeks = 400, 6
    u, w = np.repeat(np.arange(users), weeks), np.tile(np.arange(1, weeks + 1), users)
    keep = rng.random(u.size) < 0.8
    u, w = u[keep], w[keep]
    arm = np.where(rng.random(users) < 0.3, "control", "treatment")[u]
    weekly = pd.DataFrame({"user_id": [f"user{i}" for i in u], "week": w, "variant": arm,
                           "revenue": rng.gamma(2, 5, u.size) + (arm == "treatment") * 0.5,
                           "pre_revenue": rng.gamma(2, 5, u.size), "clicks": rng.poisson(2, u.size),
                           "impressions": rng.poisson(30, u.size) + 1, "converted": rng.integers(0, 2, u.size)})
    weekly.to_parquet(tmp_path / "weekly.parquet")
    return clustered, weekly


DESIGNS = {
    "cluster-robust": ("clustered", {"cluster": "market"}, {}),
    "cluster-iid": ("clustered", {"cluster": "market"}, {"analysis": {"variance": "iid"}}),
    "segment": ("clustered", {"segment": "platform"}, {}),
    "segment-cluster": ("clustered", {"segment": "platform", "cluster": "market"}, {}),
    "window": ("weekly", {"window": "week"}, {}),
}


@pytest.mark.parametrize("design", list(DESIGNS))
def test_spark_engine_reduces_grouped_ab_designs_to_the_local_numbers(spark, tmp_path, design):
    """Clusters (cluster-robust and iid), segments (alone and with clusters) and time
    windows: the Spark engine's results.json equals the local engine's to 1e-9 and its
    statistics.csv (per cluster totals, per segment rows) to 1e-12."""
    from harness.apps.ab import run_ab
    from harness.spec.ab import parse_ab_config

    from test_ab_cli import _config as ab_config

    _designs(tmp_path)
    table, columns, extra = DESIGNS[design]
    cols = {"variant": "variant", "unit": "user_id", **columns}
    outcomes = {kind: run_ab(parse_ab_config(ab_config(tmp_path / kind, engine={"kind": kind}, columns=cols,
                                                       **extra)), tmp_path / f"{table}.parquet", plots=False)
                for kind in ("local", "spark")}
    a, b = (harness.read_results_folder(o.results_dir) for o in outcomes.values())
    assert outcomes["spark"].exit_code == outcomes["local"].exit_code
    assert_same_results(a.data, b.data)  # design (clusters, windows), effects, segments, windows, verdict
    assert a.data["ab"]["design"] == b.data["ab"]["design"]
    if "segment" in columns:
        assert len(a.data["ab"]["segments"]) == len(b.data["ab"]["segments"]) > 0
    if "window" in columns:
        assert len(a.data["ab"]["windows"]) == len(b.data["ab"]["windows"]) and {r["window"] for r in b.data["ab"]["windows"]} == {str(w) for w in range(1, 7)}
    stats = [pd.read_csv(o.results_dir / "statistics.csv") for o in outcomes.values()]
    assert list(stats[0].columns) == list(stats[1].columns)
    text = [c for c in stats[0].columns if not pd.api.types.is_numeric_dtype(stats[0][c])]
    assert stats[0][text].equals(stats[1][text])
    np.testing.assert_allclose(stats[1].drop(columns=text).to_numpy(), stats[0].drop(columns=text).to_numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("damage, message", [
    ("mixed-cluster", r"1 cluster\(s\) have units in more than one variant, e.g. 'm3'"),
    ("missing-segment", r"segment column 'platform' has 2 missing value\(s\)"),
    ("repeated-week", r"1 duplicated \(user_id, week\) pair\(s\)"),
    # the local reader also numbers the rows; Spark does not know the file's row order
    ("missing-unit", r"column 'user_id' has 2 missing id\(s\) \(empty or null"),
    ("missing-variant", r"column 'variant' has 2 row\(s\) with no variant \(empty or null"),
    ("unit-switches-variant", r"^1 unit\(s\) \('user_id' column\) have rows in more than one variant, e\.g\. "
                              r"'user0': a unit stays in one variant for the whole experiment$"),
])
def test_spark_engine_refuses_bad_grouped_ab_data_as_the_local_engine(spark, tmp_path, damage, message):
    from harness.apps.ab import run_ab
    from harness.errors import DataValidationError
    from harness.spec.ab import parse_ab_config

    from test_ab_cli import _config as ab_config

    clustered, weekly = _designs(tmp_path)
    if damage == "mixed-cluster":
        first = clustered.index[clustered["market"] == "m3"][0]
        other = "treatment" if clustered.loc[first, "variant"] == "control" else "control"
        table, cols = clustered.assign(variant=clustered["variant"].where(clustered.index != first, other)), {
            "cluster": "market"}
    elif damage == "missing-segment":
        table, cols = clustered.assign(platform=clustered["platform"].where(~clustered.index.isin([4, 9]))), {
            "segment": "platform"}
    elif damage == "missing-variant":  # one null, one blank: no variant (it was "a variant not in the config: ''")
        table, cols = clustered.assign(variant=clustered["variant"].where(clustered.index != 4, None)
                                       .where(clustered.index != 9, " ")), {}
    elif damage == "missing-unit":  # text ids, one null and one empty: both are no id
        ids = clustered["user_id"].astype(str).where(clustered.index != 4, None).where(clustered.index != 9, " ")
        table, cols = clustered.assign(user_id=ids), {}
    elif damage == "unit-switches-variant":  # a holdout's user moved to the other arm after week 1
        later = weekly.index[weekly["user_id"] == "user0"][1:]
        other = "treatment" if weekly.loc[later[0], "variant"] == "control" else "control"
        table, cols = weekly.assign(variant=weekly["variant"].where(~weekly.index.isin(later), other)), {
            "window": "week"}
    else:
        table, cols = pd.concat([weekly, weekly.iloc[[5]]], ignore_index=True), {"window": "week"}
    table.to_parquet(tmp_path / "bad.parquet")
    for kind in ("local", "spark"):
        config = parse_ab_config(ab_config(tmp_path / kind, engine={"kind": kind},
                                           columns={"variant": "variant", "unit": "user_id", **cols}))
        with pytest.raises(DataValidationError, match=message):
            run_ab(config, tmp_path / "bad.parquet")
        assert not (tmp_path / kind / "results").exists()


def test_spark_engine_measures_a_holdouts_launches_as_the_local_engine(spark, tmp_path):
    """A holdout with three launches, one of them on a surface: each unit's totals per
    launch period are Spark aggregates; every launch's cumulative and own effect equal
    the local engine's to 1e-9."""
    from harness.apps.ab import run_ab
    from harness.spec.ab import parse_ab_config

    import yaml
    from test_ab_launches import _config as launches_config
    from test_ab_launches import _world

    _world(users=600, seed=3).to_parquet(tmp_path / "weekly.parquet")
    cfg = yaml.safe_load(launches_config(tmp_path).read_text())
    outcomes = {kind: run_ab(parse_ab_config({**cfg, "engine": {"kind": kind}, "output": str(tmp_path / kind)}),
                             tmp_path / "weekly.parquet") for kind in ("local", "spark")}
    a, b = (harness.read_results_folder(o.results_dir) for o in outcomes.values())
    assert outcomes["spark"].exit_code == outcomes["local"].exit_code
    assert len(a.data["ab"]["launches"]) == 3
    assert_same_results(a.data, b.data)  # launches (cumulative and increments), windows, effects, verdict


def test_spark_engine_fingerprints_a_catalog_table_by_its_content(spark, tmp_path):
    """A per-unit table read by name from the session's catalog has no file to digest:
    its fingerprint is Spark's digest of its content, the same whatever the rows' order
    or partitioning, different when one value changes; a file keeps the local engine's."""
    from harness.apps.ab import run_ab
    from harness.spec.ab import parse_ab_config

    from test_ab_cli import _config as ab_config
    from test_ab_cli import _data as ab_data

    path = ab_data(tmp_path, n=600, lift=0.3)
    units = pd.read_parquet(path)
    config = parse_ab_config(ab_config(tmp_path, engine={"kind": "spark"}))

    def fingerprint(frame: pd.DataFrame, partitions: int) -> str:
        spark.createDataFrame(frame).repartition(partitions).createOrReplaceTempView("ab_units")
        found = harness.read_results_folder(run_ab(config, "ab_units").results_dir).data
        assert found["dataset"]["name"] == "ab_units"
        return found["dataset"]["fingerprint"]

    first = fingerprint(units, 1)
    assert len(first) == 16 and int(first, 16) >= 0
    assert fingerprint(units.iloc[::-1], 3) == first
    assert fingerprint(units.assign(revenue=units["revenue"].where(units.index != 5, 0.0)), 1) != first
    local = run_ab(parse_ab_config(ab_config(tmp_path / "local")), path)
    by_file = run_ab(config, path)
    assert (harness.read_results_folder(by_file.results_dir).data["dataset"]["fingerprint"]
            == harness.read_results_folder(local.results_dir).data["dataset"]["fingerprint"] is not None)
