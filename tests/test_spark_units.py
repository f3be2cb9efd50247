"""The Spark engine keeps a collection's per-query values in Spark, end to end.

A ``harness run`` with ``engine: {kind: spark}`` on a ``trec`` collection of score
tables gives the local engine's results folder (``results.json`` to 1e-9, the same
``per_unit.parquet``, verdict and exit code) while no per-query table reaches the
driver: headline values, comparisons and the gate come from Spark aggregates and
``per_unit.parquet`` is streamed one bounded batch at a time. Runs in the test run's one
Spark session (conftest's ``spark`` fixture); the local run of the same config is the
reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import harness
from harness.errors import ConfigError, DataValidationError

from test_spark_run import assert_same_results

# every run of these tests, finished or failed, frees what it cached in the session
pytestmark = pytest.mark.usefixtures("nothing_left_cached")


def _collection(folder: Path, *, text_ids: bool, n_queries: int = 60, gaps: dict[str, list[int]] | None = None,
                noise: dict[str, float] | None = None, seed: int = 5, junk: int = 0) -> tuple[dict, list[object]]:
    """Judgments and one score table per model (``noise``: how far its scores are from
    the relevance; ``gaps``: the judged queries, by position, a table has no row for,
    its params then ``missing: empty``; every table also ranks one query nobody judged),
    ids text or integers whose decimal order is not their numeric order; ``junk``: that
    many judgments of grade 0 stored as -2 or -1 instead (a collection's junk labels, read
    as 0). Returns the config's dataset and models, and the query ids."""
    rng = np.random.default_rng(seed)
    noise = noise or {"bm25": 1.0, "neural": 0.6}
    gaps = gaps or {}
    queries = [f"q{q * 37 % 211}" if text_ids else q * 37 % 211 * 7 for q in range(n_queries)]
    items = [f"d{i * 13 % 50}" if text_ids else i * 13 % 50 * 9 for i in range(30)]
    qrels = pd.DataFrame([(q, it, int(g)) for q in queries for it, g in
                          zip(rng.choice(items, 10, replace=False), rng.integers(0, 4, 10))],
                         columns=["query_id", "item_id", "relevance"])
    qrels.loc[qrels["query_id"] == queries[1], "relevance"] = 0  # judged, nothing relevant
    folder.mkdir(parents=True, exist_ok=True)
    stored = qrels.copy()
    zeros = np.flatnonzero(qrels["relevance"].to_numpy() == 0)[:junk]
    stored.loc[zeros, "relevance"] = np.resize([-2, -1], len(zeros))
    stored.to_parquet(folder / "judgments.parquet")
    truth = {(q, it): g for q, it, g in qrels.itertuples(index=False)}
    models = {}
    for name, sd in noise.items():
        rows = [(q, it, float(np.round(truth.get((q, it), 0) + rng.normal(0, sd), 1)))
                for q in queries for it in rng.choice(items, 20, replace=False)]
        run = pd.DataFrame(rows, columns=["query_id", "item_id", "score"])
        run = run[~run["query_id"].isin([queries[i] for i in gaps.get(name, [])])]
        unjudged = "q-unjudged" if text_ids else 999_999  # a run query without judgments: a warning
        run = pd.concat([run, pd.DataFrame({"query_id": [unjudged] * 2, "item_id": items[:2], "score": [1.0, 0.5]})],
                        ignore_index=True)
        run.to_parquet(folder / f"{name}.parquet")
        models[name] = {"kind": "precomputed", "params": {"path": str(folder / f"{name}.parquet"),
                                                          **({"missing": "empty"} if name in gaps else {})}}
    return {"name": "units", "seed": 7, "dataset": {"kind": "trec", "qrels": str(folder / "judgments.parquet")},
            "models": models, "tracking": {"enabled": False}}, queries


def _config(base: dict, *, missing: str, compare: dict, gate: list[dict]) -> dict:
    return {**base, "compare": compare, "gate": gate,
            "evaluate": {"ranking": {"metrics": ["ndcg@5", "map@10", "recall@10", "mrr", "dcg@5"],
                                     "ties": "trec_eval", "k": 12, "missing": missing}}}


class DriverRows:
    """Spy on everything that brings rows of a Spark DataFrame or RDD to the driver:
    records (how, rows) of every call; and the rows of each batch of a kept table read
    for ``per_unit.parquet`` (``batches``) and of each row group written (``groups``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import pyarrow.parquet as pq
        from pyspark import RDD
        from pyspark.sql.classic.dataframe import DataFrame  # what a session's DataFrames are
        from pyspark.sql.pandas.conversion import PandasConversionMixin

        from harness.spark.units import SparkUnits

        self.calls: list[tuple[str, int]] = []
        self.batches: list[int] = []
        self.groups: list[int] = []
        for cls, name in ((DataFrame, "collect"), (DataFrame, "toPandas"), (DataFrame, "toArrow"),
                          (PandasConversionMixin, "_collect_as_arrow"), (RDD, "collect")):
            monkeypatch.setattr(cls, name, self._counted(getattr(cls, name), f"{cls.__name__}.{name}"))
        monkeypatch.setattr(DataFrame, "toLocalIterator", self._streamed(DataFrame.toLocalIterator))
        original_batches, original_write = SparkUnits.batches, pq.ParquetWriter.write_table

        def batches(units):
            for batch in original_batches(units):
                self.batches.append(len(batch))
                yield batch

        def write_table(writer, table, *args, **kwargs):
            self.groups.append(table.num_rows)
            return original_write(writer, table, *args, **kwargs)

        monkeypatch.setattr(SparkUnits, "batches", batches)
        monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)

    def _counted(self, method, label):
        def spy(frame, *args, **kwargs):
            out = method(frame, *args, **kwargs)
            rows = out.num_rows if hasattr(out, "num_rows") else (
                sum(b.num_rows for b in out) if label.endswith("_collect_as_arrow") else len(out))
            self.calls.append((label, int(rows)))
            return out
        return spy

    def _streamed(self, method):
        def spy(frame, *args, **kwargs):
            n = 0
            for row in method(frame, *args, **kwargs):
                n += 1
                yield row
            self.calls.append(("DataFrame.toLocalIterator", n))
        return spy

    def most(self) -> int:
        return max((rows for _, rows in self.calls), default=0)


def _no_local_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.datasets.collection as collection
    import harness.datasets.predictions as predictions
    import harness.models.precomputed as precomputed

    def driver_read(*args, **kwargs):
        raise AssertionError("the driver read an input table")

    for module, name in ((collection, "load_trec_collection"), (precomputed, "load_precomputed"),
                         (predictions, "read_predictions"), (collection, "judgments_and_notice")):
        monkeypatch.setattr(module, name, driver_read)


def _both(cfg: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *,
          plots: bool = False) -> tuple[object, object, DriverRows]:
    """The local run, then the Spark run with the local readers refused and the rows
    brought to the driver recorded (figures drawn with ``plots``)."""
    local = harness.run(harness.parse_config(cfg), output=tmp_path / "local", progress=False, plots=plots)
    with monkeypatch.context() as patched:
        _no_local_reads(patched)
        rows = DriverRows(patched)
        found = harness.run(harness.parse_config({**cfg, "engine": {"kind": "spark"}}), output=tmp_path / "spark",
                            progress=False, plots=plots)
    return local, found, rows


def assert_same_folder(local, found) -> None:
    """results.json to 1e-9 and per_unit.parquet: the same rows, order and dtypes."""
    assert found.exit_code == local.exit_code
    a, b = (harness.read_results_folder(o.results_dir) for o in (local, found))
    assert_same_results(a.data, b.data)  # metrics, comparison rows, verdict, units, notices
    pa_, pb_ = (pd.read_parquet(o.results_dir / "per_unit.parquet") for o in (local, found))
    assert dict(pb_.dtypes) == dict(pa_.dtypes)
    key = ["family", "model", "unit_id", "metric"]
    assert pb_[key].equals(pa_[key])  # the local order, too
    assert len(pa_) and np.abs(pb_["value"].to_numpy() - pa_["value"].to_numpy()).max() <= 1e-9


# text ids with missing: skip are the common-pairing test's case
@pytest.mark.parametrize("text_ids,missing,better,decision,exit_code",
                         [(True, "zero", "neural", "PASS", 0), (False, "error", "bm25", "FAIL", 1)],
                         ids=["text-ids-zero-PASS", "integer-ids-error-FAIL"])
def test_spark_run_keeps_per_query_values_in_spark_and_equals_local(spark, request, tmp_path, monkeypatch, text_ids,
                                                                    missing, better, decision, exit_code):
    """auto comparison (bootstrap for the bounded metrics, t-test and Fieller for dcg) and
    a gate that passes (the candidate ranks better) or fails (worse), with the local
    verdict and exit code; above MULTINOMIAL_MAX_UNITS (lowered here for both engines)
    the bootstrap is the Poisson one, drawn in Spark: no call brings as many rows as
    there are queries. With Arrow batches of 16 rows, ``per_unit.parquet`` is streamed
    into the folder at most 16 queries a batch and 16 rows a row group."""
    monkeypatch.setattr("harness.metrics._resample.MULTINOMIAL_MAX_UNITS", 20)
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "16")
    request.addfinalizer(lambda: spark.conf.set(key, before))
    n_queries = 150
    gaps = {"neural": [5]} if missing == "zero" else {}
    noise = {"bm25": 0.3 if better == "bm25" else 2.0, "neural": 0.3 if better == "neural" else 2.0}
    base, _ = _collection(tmp_path / "data", text_ids=text_ids, n_queries=n_queries, gaps=gaps, noise=noise)
    cfg = _config(base, missing=missing, compare={"baseline": "bm25", "candidates": ["neural"], "n_resamples": 100},
                  gate=[{"metric": "ndcg@5", "role": "primary", "direction": "higher"},
                        {"metric": "dcg@5", "role": "guardrail", "direction": "higher", "max_regression": 0.5}])
    local, found, rows = _both(cfg, tmp_path, monkeypatch, plots=text_ids)
    assert_same_folder(local, found)  # the dataset section too: ids, counts, fingerprint, warnings
    drawn = [sorted(p.name for p in (o.results_dir / "plots").glob("*.png")) if text_ids else [] for o in (local, found)]
    assert drawn[1] == drawn[0] == (["ranking_curves.png"] if text_ids else [])  # curves from Spark aggregates
    assert "1 queries of the runs have no judgments" in " ".join(local.result.dataset["warnings"])
    assert (found.result.verdict["decision"], found.exit_code) == (decision, exit_code)
    methods = {r["metric"]: r["method"] for r in local.result.comparison}
    assert methods["ndcg@5"] == "auto"
    # the driver saw aggregates, per-replicate sums (100 rows) and streamed batches, never a per-query table
    assert rows.calls and rows.most() < n_queries - 1, rows.calls
    hows = {how for how, _ in rows.calls}
    assert {"DataFrame.toLocalIterator", "DataFrame.collect", "DataFrame.toPandas"} <= hows, hows
    if gaps:
        assert local.result.extra["ranking"]["counts"]["neural"]["missing_from_run"] == 1
    n_rows = len(pd.read_parquet(found.results_dir / "per_unit.parquet"))
    assert n_rows == 2 * 149 * 5  # two models, 149 queries with a relevant item, 5 metrics
    assert sum(rows.batches) == 2 * 149 and max(rows.batches) <= 16 and len(rows.batches) >= 2 * 149 // 16
    assert max(rows.groups) <= 16 and sum(rows.groups) == 2 * n_rows  # split by metric, then copied into the file


def test_spark_run_missing_error_names_the_same_queries(spark, tmp_path):
    """``evaluate.ranking.missing: error`` on a model that ranks nothing for judged
    queries: the local engine's message, from the Spark engine's aggregates."""
    base, _ = _collection(tmp_path / "data", text_ids=True, n_queries=30, gaps={"neural": [3, 8]})
    cfg = _config(base, missing="error", compare={"baseline": "bm25", "candidates": ["neural"]}, gate=[])
    with pytest.raises(DataValidationError) as local:
        harness.run(harness.parse_config(cfg), output=tmp_path / "local", progress=False)
    with pytest.raises(DataValidationError) as found:
        harness.run(harness.parse_config({**cfg, "engine": {"kind": "spark"}}), output=tmp_path / "spark",
                    progress=False)
    assert str(found.value) == str(local.value)
    assert "ranks nothing for 2 of 29 judged queries" in str(found.value)
    assert not (tmp_path / "spark").exists() or not any((tmp_path / "spark").iterdir())


def test_spark_run_refuses_a_table_missing_judged_queries_before_any_model(spark, tmp_path, monkeypatch):
    """A score table with ``missing: error`` (the default) lacking judged queries is
    refused when the collection is described, as the local engine refuses it when the
    models are built: no model is evaluated first, and the message is the local one."""
    from harness.spark.backend import SparkBackend

    base, _ = _collection(tmp_path / "data", text_ids=False, n_queries=30, gaps={"neural": [2, 4, 6]})
    base["models"]["neural"]["params"].pop("missing")  # missing: error
    cfg = _config(base, missing="zero", compare={"baseline": "bm25", "candidates": ["neural"]}, gate=[])
    with pytest.raises(DataValidationError) as local:
        harness.run(harness.parse_config(cfg), output=tmp_path / "local", progress=False)
    evaluated = []
    original = SparkBackend.evaluate_ranking_source
    monkeypatch.setattr(SparkBackend, "evaluate_ranking_source",
                        lambda self, *a, **k: evaluated.append(a[1].name) or original(self, *a, **k))
    with pytest.raises(DataValidationError) as found:
        harness.run(harness.parse_config({**cfg, "engine": {"kind": "spark"}}), output=tmp_path / "spark",
                    progress=False)
    assert str(found.value) == str(local.value) and "3 of 30 queries asked for have no stored" in str(found.value)
    assert evaluated == []


def test_spark_run_pairs_the_common_queries_as_local(spark, tmp_path, monkeypatch):
    """``missing: skip`` with models ranking different query sets (pairing "common"): two
    candidates compared with the baseline on the queries all three rank, the second
    resampled with the next seed; the exact multinomial bootstrap of this size (the
    local engine's) from the collected paired values, equal to local."""
    base, _ = _collection(tmp_path / "data", text_ids=True, n_queries=50,
                          gaps={"bm25": [2], "neural": [5, 9], "hybrid": [9, 11]},
                          noise={"bm25": 1.0, "neural": 0.6, "hybrid": 0.8}, junk=5)
    cfg = _config(base, missing="skip", gate=[{"metric": "recall@10", "role": "guardrail", "max_regression": 0.05}],
                  compare={"baseline": "bm25", "candidates": ["neural", "hybrid"], "method": "bootstrap",
                           "n_resamples": 200})
    local, found, _ = _both(cfg, tmp_path, monkeypatch)
    assert_same_folder(local, found)  # the dataset's warnings and fingerprint too
    data = harness.read_results_folder(found.results_dir).data
    # junk grades counted by a Spark aggregate, read as 0 in Spark as by the local loader
    assert data["dataset"]["warnings"][0] == ("trec: 5 judgments of judgments.parquet have negative grades "
                                              "(e.g. -2, -1); they are read as not relevant (grade 0), as in trec_eval")
    assert data["families"]["ranking"]["pairing"] == "common"
    assert {r["n_units"] for r in data["comparison"]} == {50 - 1 - 4}  # no relevant item: 1; gaps: 2, 5, 9, 11
    n_eval = {m: data["ranking"]["counts"][m]["evaluated"] for m in ("bm25", "neural", "hybrid")}
    assert n_eval == {"bm25": 48, "neural": 47, "hybrid": 47}


@pytest.mark.parametrize("bad", [[-1.5], [np.nan, 2.5]], ids=["negative-fraction", "nan-and-fraction"])
def test_grades_that_are_not_whole_are_refused_by_both_engines(spark, tmp_path, bad):
    """Only whole negative grades are junk labels read as 0: a -1.5 beside a -2.0, or a
    NaN, in a float grade column is refused before any model, on Spark with the local
    loader's message (the column, the count, the first values)."""
    base, _ = _collection(tmp_path / "data", text_ids=True, n_queries=10, junk=2)
    path = Path(base["dataset"]["qrels"])
    stored = pd.read_parquet(path).astype({"relevance": float})
    stored.loc[stored.index[stored["relevance"] == 0][:len(bad)], "relevance"] = bad
    stored.to_parquet(path)
    cfg = _config(base, missing="skip", compare={"baseline": "bm25", "candidates": ["neural"]}, gate=[])
    errors = []
    for engine in ("local", "spark"):
        with pytest.raises(DataValidationError) as refused:
            harness.run(harness.parse_config({**cfg, "engine": {"kind": engine}}), output=tmp_path / engine,
                        progress=False)
        errors.append(str(refused.value))
    assert errors[1] == errors[0]
    assert f"column 'relevance' must hold integer grades; {len(bad)} of {len(stored)} rows do not" in errors[0]


def test_spark_collection_refuses_methods_it_cannot_compute_at_validation(tmp_path):
    base, _ = _collection(tmp_path / "data", text_ids=True, n_queries=10)
    for method in ("bca", "randomization"):
        cfg = _config(base, missing="zero", compare={"baseline": "bm25", "candidates": ["neural"], "method": method},
                      gate=[])
        harness.parse_config(cfg)  # the local engine computes it
        with pytest.raises(ConfigError, match=rf"compare.method {method} needs every per-query value"):
            harness.parse_config({**cfg, "engine": {"kind": "spark"}})
    # a Spark run that loads its data in the driver keeps its per-unit values there: any method
    from conftest import small_config

    cfg = small_config(tmp_path, engine={"kind": "spark"})
    cfg["compare"]["method"] = "bca"
    harness.parse_config(cfg)


@pytest.mark.parametrize("method", ["t_test", "bootstrap"])
def test_a_stored_frame_pairs_with_tables_kept_in_spark(spark, method):
    """A baseline whose per-unit values come from a stored run (a frame with text ids)
    against candidates kept in Spark (integer ids): the frame joins them as a Spark
    table, ids cast to the candidates' type, and the comparisons equal compare_family on
    frames (units in ascending id order, as a collection's are)."""
    from harness.evaluate.family import FamilyResult, ModelOutput
    from harness.inference.paired import compare_family
    from harness.spark.units import SparkUnits

    rng = np.random.default_rng(2)
    ids = np.sort(rng.choice(10_000, 300, replace=False)) * 7
    metrics = ["ndcg@5", "recall@10"]
    frames = {name: pd.DataFrame({m: np.clip(rng.normal(0.4 + shift, 0.2, 300), 0, 1) for m in metrics},
                                 index=pd.Index(ids.astype(str), name="unit_id"))
              for name, shift in (("prod", 0.0), ("new", 0.03), ("other", -0.01))}

    def kept(frame):
        table = frame.set_axis(frame.index.astype(np.int64)).rename_axis("query_id").reset_index()
        return SparkUnits(spark.createDataFrame(table.sample(frac=1.0, random_state=0)), metrics)

    def result(outputs):
        return FamilyResult("ranking", "query", metrics, {n: ModelOutput(per_unit=t, values=[]) for n, t in outputs.items()})

    options = dict(baseline="prod", candidates=["new", "other"], method=method, n_resamples=300, seed=4)
    want = compare_family(result(frames), **options)
    got = compare_family(result({"prod": frames["prod"], "new": kept(frames["new"]), "other": kept(frames["other"])}),
                         **options)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        assert_same_results(w.to_row(), g.to_row(), f"{w.candidate}.{w.metric}")
