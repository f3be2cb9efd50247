"""The Spark backend equals the local engine (to 1e-9) on the synthetic data.

One local[2] session for the run (the ``spark`` fixture of conftest.py, driver memory
512 MiB); every test here compares a Spark result with the local function on the same
data, never with numbers computed by the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets import make_synthetic, make_synthetic_bandit
from harness.errors import ConfigError, DataValidationError
from harness.inference.gate import decide
from harness.inference.paired import compare_models
from harness.metrics import evaluate_ranking
from harness.metrics._names import value_range
from harness.metrics.ab import variant_moments
from harness.metrics.off_policy import DM, DR, IPS, SNDR, SNIPS, DRos, SwitchDR, estimate_intervals
from harness.metrics._ope_inputs import OPEInputs
from harness.spec.config import GateCriterion

TOL = 1e-9
ALL_METRICS = ["ndcg@[5,10]", "ndcg", "dcg@10", "recall@[5,20]", "precision@5", "map@20", "map", "mrr@10",
               "hit_rate@10", "f1@10", "r_precision"]


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Qrels of a synthetic world and two runs of it (scores rounded to make ties),
    some judged queries unranked and some ranked queries unjudged."""
    data = make_synthetic(n_users=240, n_items=120, dim=8, seed=3)
    qrels = data.qrels[["query_id", "item_id", "relevance"]].astype({"relevance": np.int64})
    rng = np.random.default_rng(0)
    true = data.truth["true_scores"]
    users = np.arange(10, 250)  # users 240..249 are not judged; 0..9 are not ranked
    runs = []
    for noise in (0.5, 2.0):
        items = np.argsort(-(true[users % 240] + rng.normal(0, noise, (len(users), 120))), axis=1)[:, :30]
        score = np.round(np.tile(np.linspace(1, 0, 30), len(users)) + rng.normal(0, 0.05, items.size), 1)
        runs.append(pd.DataFrame({"query_id": np.repeat(users, 30), "item_id": items.ravel(), "score": score}))
    return qrels, runs[0], runs[1]


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(query_id="u" + frame["query_id"].astype(str), item_id="i" + frame["item_id"].astype(str))


@pytest.mark.parametrize("ids,ties,gain,no_relevant", [
    ("int", "stable", "linear", "skip"),
    ("str", "trec_eval", "exponential", "zero"),
    ("int", "average", "linear", "skip"),
])
def test_ranking_equals_local(spark, world, ids, ties, gain, no_relevant):
    from harness.spark import evaluate_ranking as spark_ranking

    qrels, run, _ = world
    if ids == "str":
        qrels, run = _as_strings(qrels), _as_strings(run)
    options = dict(ties=ties, gain=gain, no_relevant=no_relevant)
    local = evaluate_ranking(qrels, run, ALL_METRICS, **options)
    found = spark_ranking(spark.createDataFrame(qrels), spark.createDataFrame(run), ALL_METRICS, **options)
    per_query = found.to_pandas()
    assert sorted(per_query.index) == sorted(local.per_query.index)
    diff = np.abs(per_query.loc[local.per_query.index, list(local.per_query.columns)].to_numpy()
                  - local.per_query.to_numpy())
    assert diff.max() <= TOL
    assert found.means.keys() == local.means.keys()
    assert all(abs(found.means[k] - local.means[k]) <= TOL for k in local.means)
    assert (found.n_queries, found.skipped, found.n_missing_from_run) == (
        local.n_queries, local.skipped, local.n_missing_from_run)
    assert found.skipped["not_in_qrels"] > 0 and found.n_missing_from_run > 0  # both paths exercised


def test_ranking_refuses_bad_input(spark, world):
    from harness.spark import evaluate_ranking as spark_ranking

    qrels, run, _ = world
    sq = spark.createDataFrame(qrels)
    with pytest.raises(DataValidationError, match="missing column"):
        spark_ranking(sq, spark.createDataFrame(run.drop(columns="score")), "ndcg@10")
    with pytest.raises(DataValidationError, match="both must be integers or both strings"):
        spark_ranking(sq, spark.createDataFrame(_as_strings(run)), "ndcg@10")
    bad = run.copy()
    bad.loc[5, "score"] = np.nan
    # the local check runs in the worker; its error comes back as itself
    with pytest.raises(DataValidationError, match="NaN or infinite"):
        spark_ranking(sq, spark.createDataFrame(bad), "ndcg@10")
    with pytest.raises(DataValidationError, match="none of its"):
        spark_ranking(sq, spark.createDataFrame(run.assign(query_id=run["query_id"] + 10_000)), "ndcg@10")


@pytest.fixture(scope="module")
def logged() -> pd.DataFrame:
    bandit = make_synthetic_bandit(6000, n_actions=8, seed=1)
    fb = bandit.feedback
    rng = np.random.default_rng(2)
    pi_e = np.where(rng.random(len(fb.reward)) < 0.3, 0.0, rng.uniform(0.02, 1.0, len(fb.reward)))
    q_hat = np.clip(fb.reward * 0.6 + rng.uniform(0, 0.4, len(fb.reward)), 0, 1)
    return pd.DataFrame({"reward": fb.reward.astype(float), "pscore": fb.pscore, "pi_e": pi_e, "q_hat": q_hat,
                         "v_hat": rng.uniform(0, 1, len(fb.reward))})


ESTIMATORS = [IPS(), IPS(lambda_=5.0, label="ips_clip5"), SNIPS(), DM(), DR(), SNDR(), SwitchDR(tau=4.0), DRos(lambda_=2.0)]


@pytest.mark.parametrize("method", ["analytic", "bootstrap"])
def test_off_policy_equals_local(spark, logged, method):
    from harness.spark import estimate_off_policy

    data = OPEInputs(**{c: logged[c].to_numpy() for c in logged.columns})
    options = dict(method=method, n_bootstrap=200, seed=11, alpha=0.1)
    local = estimate_intervals(ESTIMATORS, data, resampling="poisson", **options)
    # rows in their order over the session's partitions: unit i is row i, as locally
    found = estimate_off_policy(spark.createDataFrame(logged), ESTIMATORS, **options)
    assert found.intervals.keys() == local.keys()
    for key, want in local.items():
        got = found.intervals[key]
        assert (got.n_units, got.method) == (want.n_units, want.method)
        for field in ("estimate", "low", "high", "se"):
            assert abs(getattr(got, field) - getattr(want, field)) <= TOL, (key, field)
    # per-row influence values: their mean is the estimate
    means = found.per_unit.agg({k: "avg" for k in local}).first().asDict()
    assert all(abs(means[f"avg({k})"] - local[k].estimate) <= TOL for k in local)


def test_off_policy_bootstrap_positions_follow_order_column(spark, logged):
    """With ``order_by``, unit i is the i-th row by that column: shuffled rows give the
    local interval of the rows in that order."""
    from harness.spark import estimate_off_policy

    data = OPEInputs(**{c: logged[c].to_numpy() for c in logged.columns})
    local = estimate_intervals([SNIPS()], data, method="bootstrap", n_bootstrap=100, seed=5, resampling="poisson")
    shuffled = logged.assign(row=np.arange(len(logged))).sample(frac=1.0, random_state=0)
    found = estimate_off_policy(spark.createDataFrame(shuffled), ["snips"], method="bootstrap", n_bootstrap=100,
                                seed=5, order_by="row")
    assert abs(found.intervals["snips"].low - local["snips"].low) <= TOL
    assert abs(found.intervals["snips"].high - local["snips"].high) <= TOL
    with pytest.raises(DataValidationError, match="reward model"):
        estimate_off_policy(spark.createDataFrame(logged.drop(columns=["q_hat", "v_hat"])), ["dr"])


@pytest.mark.parametrize("method", ["bootstrap", "auto"])  # auto: t-test for the unbounded dcg
def test_paired_comparison_and_gate_equal_local(spark, world, method):
    from harness.spark import evaluate_ranking as spark_ranking
    from harness.spark import paired_comparison

    qrels, base_run, cand_run = world
    metrics = ["ndcg@10", "recall@20", "mrr@10", "dcg@10"]
    sq = spark.createDataFrame(qrels)
    base = spark_ranking(sq, spark.createDataFrame(base_run), metrics)
    cand = spark_ranking(sq, spark.createDataFrame(cand_run), metrics)
    gate = [{"metric": "ndcg@10", "role": "primary", "direction": "higher"},
            {"metric": "recall@20", "role": "guardrail", "direction": "higher", "max_regression": 0.02}]
    rows, verdict = paired_comparison(base.per_query, cand.per_query, metrics, unit_col="query_id",
                                      baseline_name="prod", candidate_name="new", method=method,
                                      n_resamples=400, seed=3, gate=gate)
    # local: the same per-query tables, units in sorted id order, Poisson weights
    tables = {name: evaluate_ranking(qrels, run, metrics).per_query.sort_index()
              for name, run in (("prod", base_run), ("new", cand_run))}
    local = compare_models(tables, baseline="prod", candidates=["new"], metrics=metrics, method=method,
                           n_resamples=400, seed=3, weights="poisson", bounds={m: value_range(m) for m in metrics})
    for got, want in zip(rows, local):
        assert (got.metric, got.method, got.n_units) == (want.metric, want.method, want.n_units)
        for field in ("baseline_value", "candidate_value", "delta", "ci_low", "ci_high", "p_two_sided",
                      "std_error", "relative_delta", "relative_ci_low", "relative_ci_high"):
            g, w = getattr(got, field), getattr(want, field)
            assert (g is None and w is None) or abs(g - w) <= TOL, (got.metric, field, g, w)
    want_verdict = decide([GateCriterion.model_validate(c) for c in gate], local)
    assert verdict.decision == want_verdict.decision
    assert verdict.reasons == want_verdict.reasons


def test_ab_moments_equal_local(spark):
    from harness.spark import ab_moments

    rng = np.random.default_rng(4)
    units = pd.DataFrame({"variant": rng.choice(["control", "treatment"], 5000),
                          "revenue": rng.lognormal(0, 1, 5000), "clicks": rng.poisson(3, 5000),
                          "impressions": rng.poisson(20, 5000) + 1})
    cols = ["revenue", "clicks", "impressions"]
    found = ab_moments(spark.createDataFrame(units), cols, variants=["control", "treatment"])
    codes = (units["variant"] == "treatment").to_numpy().astype(np.int64)
    local = variant_moments(units[cols].to_numpy(dtype=float), codes, names=["control", "treatment"], columns=cols)
    for got, want in zip(found, local):
        assert (got.variant, got.n, got.columns) == (want.variant, want.n, want.columns)
        np.testing.assert_allclose(got.sums, want.sums, rtol=TOL)
        np.testing.assert_allclose(got.cross, want.cross, rtol=TOL)


def test_per_unit_written_back_as_parquet(spark, world, tmp_path):
    from harness.spark import evaluate_ranking as spark_ranking
    from harness.spark import read_table, write_per_unit

    qrels, run, _ = world
    qrels.to_parquet(tmp_path / "qrels.parquet")
    run.to_parquet(tmp_path / "run.parquet")
    found = spark_ranking(read_table(spark, tmp_path / "qrels.parquet"), read_table(spark, tmp_path / "run.parquet"),
                          ["ndcg@10", "recall@20"])
    write_per_unit(found.per_query, tmp_path / "per_unit", family="ranking", model="prod", unit_col="query_id")
    back = pd.read_parquet(tmp_path / "per_unit")
    assert list(back.columns) == ["family", "model", "unit_id", "metric", "value"]
    local = evaluate_ranking(qrels, run, ["ndcg@10", "recall@20"]).per_query
    wide = back.pivot(index="unit_id", columns="metric", values="value").loc[local.index, local.columns]
    assert np.abs(wide.to_numpy() - local.to_numpy()).max() <= TOL
    with pytest.raises(ConfigError, match="not a table of the session's catalog"):
        read_table(spark, "warehouse_db.no_such_table")


# Rows of the larger-than-memory test: 100 a query, item ids in the user's own text ids,
# 250 characters each (long warehouse keys: the bytes, not the rows, fill memory, and
# each row costs time). As Spark rows (8-byte null mask, three 8-byte fields, the id's
# bytes) a run row is 282 B, so the run alone is BIG_ROWS * 282 B > 512 MiB, and the
# judgments (20 a query) add a fifth: more than the session's whole 512 MiB heap, in
# local mode the driver's and the executors' memory at once.
BIG_ROWS = 2_100_000
ID_CHARS = 250


@pytest.mark.slow  # about half a minute on 2 cores: in make test, not make test-quick
def test_data_larger_than_driver_memory_completes(spark, tmp_path):
    # Spark's whole-stage code generation for this test's half a gigabyte: interpreted
    # expressions (the session's test setting, cheaper for the other tests' tiny tables)
    # take 40% longer here (15 s, not 10.5); the setting changes how a plan runs, not
    # what it computes
    codegen = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}
    before = {key: spark.conf.get(key) for key in codegen}
    for key, value in codegen.items():
        spark.conf.set(key, value)
    try:
        _larger_than_memory(spark, tmp_path)
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def _write_big_tables(folder: Path) -> None:
    """The run and judgments of the larger-than-memory test as Parquet folders of 8 files,
    written a part at a time with Arrow (generated in Spark, the rows' 600 MB took as long
    to make as the test's evaluation). Query q ranks items (31 q + 97 s) mod 100003 at
    slots s = 0..99, each item id left-padded to ID_CHARS characters with "item-"
    ("item-item-...-item-i4711", as Spark's lpad); every fifth slot is judged, with a
    grade in {0, 1, 2}."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    per_query, n_items, parts = 100, 100_003, 8  # n_items a prime: a query's items are distinct
    pads = pa.array([("item-" * ID_CHARS)[:ID_CHARS - digits] for digits in range(1, 7)])
    rng = np.random.default_rng(1)
    for table in ("run", "qrels"):
        (folder / table).mkdir(parents=True)
    for part, rows in enumerate(np.array_split(np.arange(BIG_ROWS), parts)):
        query, slot = rows // per_query, rows % per_query
        number = pa.array((query * 31 + slot * 97) % n_items).cast(pa.string())
        item = pc.binary_join_element_wise(pads.take(pc.subtract(pc.utf8_length(number), 1)), number, "")
        pq.write_table(pa.table({"query_id": query, "item_id": item, "score": rng.random(rows.size)}),
                       folder / "run" / f"part-{part}.parquet")
        judged = slot % 5 == 0
        pq.write_table(pa.table({"query_id": query[judged], "item_id": item.filter(judged),
                                 "relevance": rng.integers(0, 3, int(judged.sum()))}),
                       folder / "qrels" / f"part-{part}.parquet")


def _larger_than_memory(spark, tmp_path):
    from pyspark.sql import functions as F

    from harness.spark import evaluate_ranking as spark_ranking
    from harness.spark import read_table

    heap = spark.sparkContext._jvm.java.lang.Runtime.getRuntime().maxMemory()  # the JVM's own -Xmx
    row_bytes = 8 + 3 * 8 + ID_CHARS
    assert heap <= 512 * 2**20 < (BIG_ROWS + BIG_ROWS // 5) * row_bytes
    per_query = 100
    _write_big_tables(tmp_path)
    qrels, run = read_table(spark, tmp_path / "qrels"), read_table(spark, tmp_path / "run")
    assert len(run.select("item_id").first()["item_id"]) == ID_CHARS
    found = spark_ranking(qrels, run, ["ndcg@10", "recall@100"])
    assert found.n_queries + found.skipped["no_relevant"] == BIG_ROWS // per_query
    # a sample of the queries, checked against the local engine
    sample = [q.where(F.col("query_id") < 300).toPandas() for q in (qrels, run)]
    local = evaluate_ranking(*sample, ["ndcg@10", "recall@100"]).per_query
    got = found.per_query.where(F.col("query_id") < 300).toPandas().set_index("query_id").loc[local.index]
    assert np.abs(got[local.columns].to_numpy() - local.to_numpy()).max() <= TOL
    found.release()


def test_python_workers_are_forked_with_the_kernels_loaded(spark, world):
    """The sessions the harness starts fork their Python workers from
    :mod:`harness.spark.daemon`: each worker starts with the compiled kernels already
    imported (none imports them again after an error or an idle timeout), on numba's
    workqueue layer (GNU OpenMP aborts a process forked after loading it), and a
    parallel kernel run in such a worker gives the local numbers."""
    import os

    def report(batches):
        import sys

        loaded = "harness.metrics._ranking_kernels" in sys.modules  # before anything below imports it
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            parent = f.read().replace(b"\0", b" ").decode()
        for _ in batches:
            pass
        yield pd.DataFrame({"loaded": [loaded], "parent": [parent],
                            "layer": [os.environ.get("NUMBA_THREADING_LAYER", "")]})

    assert spark.conf.get("spark.python.daemon.module") == "harness.spark.daemon"
    rows = spark.range(4, numPartitions=2).mapInPandas(report, "loaded boolean, parent string, layer string").collect()
    assert rows and all(r["loaded"] and "harness.spark.daemon" in r["parent"] and r["layer"] == "workqueue"
                        for r in rows), rows
    from harness.spark import evaluate_ranking as spark_ranking

    qrels, run, _ = world
    found = spark_ranking(spark.createDataFrame(qrels), spark.createDataFrame(run), ["ndcg@10", "map"])
    local = evaluate_ranking(qrels, run, ["ndcg@10", "map"])
    assert all(abs(found.means[m] - local.means[m]) <= TOL for m in ("ndcg@10", "map"))
    found.release()


def test_column_expressions_make_no_call_site_calls_to_the_jvm(spark, monkeypatch):
    """The sessions the harness starts turn PySpark's DataFrame debugging context off:
    with it, every Column function records the Python line that called it in the JVM
    (extra py4j calls each: a third of a warm config run's driver time)."""
    import pyspark.errors.utils as pyspark_errors
    from py4j.clientserver import ClientServerConnection
    from pyspark.sql import functions as F

    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert not pyspark_errors.is_debugging_enabled()
    sent: list[str] = []
    original = ClientServerConnection.send_command
    monkeypatch.setattr(ClientServerConnection, "send_command",
                        lambda self, command: sent.append(command[:1]) or original(self, command))

    def calls() -> int:
        sent.clear()
        F.col("a") * 2
        return len(sent)

    off = calls()
    monkeypatch.setattr(pyspark_errors, "_enable_debugging_cache", True)  # as PySpark's default would
    on = calls()
    assert off <= 6 and on >= off + 10, (off, on)
