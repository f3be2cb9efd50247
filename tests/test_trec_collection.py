"""dataset kind trec: a qrels file and TREC run files from a config, in the collection's own
ids (strings and integers), per query equal to pytrec_eval on the same files; unjudged
documents, run queries without judgments, zero grades and ties included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import write_config

METRICS = {"ndcg@10": "ndcg_cut_10", "recall@10": "recall_10", "precision@5": "P_5", "map@100": "map_cut_100"}


def _collection(folder: Path, *, string_ids: bool, seed: int = 0, junk: bool = False) -> tuple[Path, list[Path]]:
    """A qrels file (grades 0-2, some queries judged only 0) and two runs over judged and
    unjudged documents, with tied scores and a query the qrels do not hold; with ``junk``,
    every third grade 0 written -2 or -1 (a web collection's junk and spam labels)."""
    rng = np.random.default_rng(seed)
    qid = (lambda q: f"topic-{q}") if string_ids else (lambda q: str(300 + q))
    doc = (lambda d: f"D{d:04d}") if string_ids else (lambda d: str(7000 + d))
    lines = []
    for q in range(30):
        judged = rng.choice(60, 12, replace=False)
        grades = np.zeros(12, int) if q % 10 == 3 else rng.integers(0, 3, 12)
        if junk:
            zeros = np.flatnonzero(grades == 0)[::3]
            grades[zeros] = np.resize([-2, -1], len(zeros))
        lines += [f"{qid(q)} 0 {doc(d)} {g}" for d, g in zip(judged, grades)]
    qrels = folder / "judgments.qrels"
    qrels.write_text("\n".join(lines) + "\n")
    runs = []
    for r in range(2):
        rows = []
        for q in range(31):  # query 30 has no judgments: trec_eval ignores it
            if r == 1 and q == 5:
                continue  # one run says nothing for a judged query
            docs = rng.choice(80, 25, replace=False)  # documents 60..79 are never judged
            scores = np.round(rng.normal(size=25), 1)  # rounded: ties
            rows += [f"{qid(q)} Q0 {doc(d)} {i + 1} {s} run{r}" for i, (d, s) in enumerate(zip(docs, scores))]
        path = folder / f"system{r}.run"
        path.write_text("\n".join(rows) + "\n")
        runs.append(path)
    return qrels, runs


def _config(folder: Path, qrels: Path, runs: list[Path], **ranking) -> dict:
    return {"name": "trec", "dataset": {"kind": "trec", "qrels": str(qrels)},
            "models": {"a": {"kind": "precomputed", "params": {"path": str(runs[0])}},
                       "b": {"kind": "precomputed", "params": {"path": str(runs[1]), "missing": "empty"}}},
            "evaluate": {"ranking": {"metrics": list(METRICS), "ties": "trec_eval", **ranking}},
            "compare": {"baseline": "a", "candidates": ["b"], "n_resamples": 200},
            "tracking": {"enabled": False}, "output": str(folder / "results")}


def _pytrec(qrels: Path, run: Path) -> dict[str, dict[str, float]]:
    import pytrec_eval

    judged: dict[str, dict[str, int]] = {}
    for line in qrels.read_text().split("\n"):
        if line:
            q, _, d, g = line.split()
            judged.setdefault(q, {})[d] = int(g)
    scored: dict[str, dict[str, float]] = {}
    for line in run.read_text().split("\n"):
        if line:
            q, _, d, _, s, _ = line.split()
            scored.setdefault(q, {})[d] = float(s)
    return pytrec_eval.RelevanceEvaluator(judged, set(METRICS.values()) - {"map_cut_100"} | {"map_cut"}).evaluate(scored)


@pytest.mark.parametrize("string_ids,junk", [(True, True), (False, False)], ids=["text-ids-junk-grades", "integer-ids"])
def test_trec_collection_per_query_equals_pytrec_eval(tmp_path: Path, string_ids: bool, junk: bool) -> None:
    """Negative grades (``junk``) are read as pytrec_eval reads them: not relevant, no gain."""
    qrels, runs = _collection(tmp_path, string_ids=string_ids, junk=junk)
    cfg = _config(tmp_path, qrels, runs, missing="skip", no_relevant="zero")  # trec_eval's per-query output
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    n_junk = sum(int(line.split()[3]) < 0 for line in qrels.read_text().splitlines())
    assert (n_junk > 0) == junk
    notice = (f"trec: {n_junk} judgments of judgments.qrels have negative grades (e.g. -2, -1); they are read as not "
              "relevant (grade 0), as in trec_eval")
    assert (notice in " ".join(result.stderr.split())) == junk
    assert "1 queries of the runs have no judgments" in result.stderr
    assert "3 judged queries have no relevant item (relevance >= 1): scored 0 on every metric" in result.stderr
    (folder,) = list((tmp_path / "results").iterdir())
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    for model, run in zip("ab", runs):
        ref = _pytrec(qrels, run)
        ours = per_unit[(per_unit.model == model) & (per_unit.family == "ranking")]
        for metric, trec_name in METRICS.items():
            got = ours[ours.metric == metric].set_index("unit_id")["value"]
            assert (got.index.dtype == np.int64) != string_ids  # the collection's ids, with their type
            got.index = got.index.astype(str)
            # keyed by the collection's own query ids; pytrec_eval evaluates run ∩ qrels queries
            assert set(got.index) <= set(ref), (model, metric)
            for q, values in ref.items():
                assert got[q] == pytest.approx(values[trec_name], abs=1e-6), (model, metric, q)
    data = json.loads((folder / "results.json").read_text())
    assert data["dataset"]["n_users"] == 31  # the unjudged run query joins the id space
    assert (notice in data["dataset"]["warnings"]) == junk


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("string_ids", [True, False])
def test_judgments_as_a_table_give_the_qrels_files_results(tmp_path: Path, string_ids: bool, suffix: str) -> None:
    """The judgments as a table (CSV or Parquet: query_id, item_id, relevance) instead of
    the TREC qrels file: the same per-query values, ids and their type, and fingerprint."""
    from harness.datasets.trec import read_trec_qrels

    qrels, runs = _collection(tmp_path, string_ids=string_ids)
    table = tmp_path / f"judgments{suffix}"
    frame = read_trec_qrels(qrels)
    frame.to_csv(table, index=False) if suffix == ".csv" else frame.to_parquet(table)
    found = {}
    for name, judgments in (("qrels", qrels), ("table", table)):
        cfg = _config(tmp_path, judgments, runs, missing="skip", no_relevant="zero")
        cfg["output"] = str(tmp_path / name)
        result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
        assert result.exit_code in (0, 1), result.output
        (folder,) = list((tmp_path / name).iterdir())
        found[name] = (pd.read_parquet(folder / "per_unit.parquet"), json.loads((folder / "results.json").read_text()))
    (want, want_data), (got, got_data) = found["qrels"], found["table"]
    pd.testing.assert_frame_equal(got, want)
    assert (got["unit_id"].dtype == np.int64) != string_ids
    assert got_data["dataset"]["fingerprint"] == want_data["dataset"]["fingerprint"]
    assert got_data["metrics"] == want_data["metrics"]


def test_trec_config_errors_are_exit_2_at_validate(tmp_path: Path) -> None:
    qrels, runs = _collection(tmp_path, string_ids=True)
    cfg = _config(tmp_path, qrels, runs)
    cfg["models"]["b"] = {"kind": "popularity"}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "['b'] need training data, which a trec dataset" in result.stderr
    cfg = _config(tmp_path, tmp_path / "nowhere.qrels", runs)
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "TREC qrels file not found" in result.stderr and "nowhere.qrels" in result.stderr
    bad = tmp_path / "bad.qrels"
    bad.write_text("topic-1 0 D0001 1.5\n")
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, _config(tmp_path, bad, runs)))])
    assert result.exit_code == 2 and "must hold integers" in result.stderr and "Traceback" not in result.output


def test_negative_grades_are_read_as_zero_and_counted(tmp_path: Path) -> None:
    """A junk grade (-2, -1) in a qrels file or a judgments table: grade 0 (not relevant),
    with a NegativeGradesWarning from the readers and a data set warning from the
    collection loader, which does not warn twice."""
    import warnings

    from harness.datasets.collection import load_trec_collection
    from harness.datasets.trec import NegativeGradesWarning, read_judgments, read_trec_qrels

    path = tmp_path / "web.qrels"
    path.write_text("q1 0 d1 2\nq1 0 d2 -2\nq1 0 d3 -1\nq2 0 d1 -2\nq2 0 d4 0\n")
    with pytest.warns(NegativeGradesWarning, match=r"3 judgments of web.qrels have negative grades \(e\.g\. -2, -1\)"):
        frame = read_trec_qrels(path)
    assert frame["relevance"].tolist() == [2, 0, 0, 0, 0]
    table = tmp_path / "web.parquet"
    pd.DataFrame({"query_id": ["q1", "q1", "q2"], "item_id": ["d1", "d2", "d1"],
                  "relevance": [1.0, -1.0, 0.0]}).to_parquet(table)
    with pytest.warns(NegativeGradesWarning, match=r"1 judgments of web.parquet have negative grades \(e\.g\. -1\)"):
        assert read_judgments(table)["relevance"].tolist() == [1, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = load_trec_collection(path)
    assert dataset.warnings == ["trec: 3 judgments of web.qrels have negative grades (e.g. -2, -1); they are read as "
                                "not relevant (grade 0), as in trec_eval"]
    assert dataset.qrels["relevance"].tolist() == [2, 0, 0, 0, 0]


def test_validate_describes_the_collection(tmp_path: Path) -> None:
    qrels, runs = _collection(tmp_path, string_ids=False)
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, _config(tmp_path, qrels, runs)))])
    assert result.exit_code == 0, result.output
    assert "valid (2 models built" in result.stdout and "31 query ids, 80 document ids" in result.stdout
    assert "judgments as given, no split; 1 queries of the score files have none" in result.stdout
    assert "split None" not in result.stdout
    # the Python API's result reads in a line, not the collection's every id
    import harness

    dry = harness.validate(tmp_path / "eval.yaml")
    assert repr(dry) == "DryRun(config='trec', dataset='trec:judgments' (31 users, 80 items), models=['a', 'b'], " \
                        "families=['ranking'])"


def test_a_run_whose_item_ids_are_not_the_judgments_gets_a_notice(tmp_path: Path) -> None:
    """Scores with the documents' ids lower-cased ("d0012" for "D0012"): every metric of
    that run is 0 on every query, which the run says (a NOTE and results.json's notices)
    instead of a silent 0 and a FAIL; the run with the right ids gets no such notice."""
    qrels, runs = _collection(tmp_path, string_ids=True)
    runs[1].write_text(runs[1].read_text().replace(" D", " d"))
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, _config(tmp_path, qrels, runs))),
                                      "--no-progress"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = (tmp_path / "results").iterdir()
    data = json.loads((folder / "results.json").read_text())
    notes = [n for n in data["notices"] if "scores 0 on every metric" in n]
    assert len(notes) == 1 and notes[0].startswith("ranking: b scores 0 on every metric for all 27 evaluated"), notes
    assert "check that its item ids are the judgments'" in result.output


@pytest.mark.parametrize("stored", ["text", "integer"])
def test_ids_keep_the_type_the_tables_store(tmp_path: Path, stored: str) -> None:
    """Parquet tables whose ids are digits: stored as text ("300"), ``per_unit.parquet``
    keeps them text, so that it joins the user's own text column (and they are ordered
    as text, "1000" before "301"); stored as integers, int64. ``results.json`` records
    the type (``dataset.id_types``)."""
    import harness
    from harness.datasets.trec import read_trec_qrels, read_trec_run

    qrels, runs = _collection(tmp_path, string_ids=False)  # digit ids: 300.., 7000..
    cast = str if stored == "text" else np.int64
    tables = []
    for name, frame in (("judgments", read_trec_qrels(qrels)), *((p.stem, read_trec_run(p)) for p in runs)):
        frame = frame.assign(query_id=frame["query_id"].astype(cast), item_id=frame["item_id"].astype(cast))
        frame = frame.drop(columns=[c for c in ("rank", "tag") if c in frame.columns])  # the TREC order: by score
        frame.to_parquet(tmp_path / f"{name}.parquet")
        tables.append(tmp_path / f"{name}.parquet")
    cfg = _config(tmp_path, tables[0], tables[1:], missing="skip")
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list((tmp_path / "results").iterdir())
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    data = json.loads((folder / "results.json").read_text())
    assert data["dataset"]["id_types"] == {"user": stored, "item": stored}
    if stored == "text":
        assert per_unit["unit_id"].map(type).eq(str).all()
        users = pd.DataFrame({"user": [str(300 + q) for q in range(31)], "segment": "s"})  # the user's own table
        joined = per_unit.merge(users, left_on="unit_id", right_on="user", how="left")
        assert joined["segment"].notna().all()
    else:
        assert per_unit["unit_id"].dtype == np.int64
    assert harness.read_results_folder(folder).per_unit["unit_id"].equals(per_unit["unit_id"])
    assert sorted(per_unit["unit_id"].astype(str).unique()) == sorted(str(300 + q) for q in range(30) if q % 10 != 3)  # no relevant: 3, 13, 23


def test_bad_judgments_tables_are_named_as_tables(tmp_path: Path) -> None:
    """A judgments table (not a TREC file) with grades written as text, or a pair judged
    twice: the message speaks of the table's column type and rows (it spoke of "lines"
    and said the text grades "do not hold integers")."""
    from harness.datasets.trec import read_judgments
    from harness.errors import DataValidationError

    frame = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "item_id": ["d1", "d2", "d1"], "relevance": [1, 0, 2]})
    frame.assign(relevance=frame["relevance"].astype(str)).to_parquet(tmp_path / "text.parquet")
    with pytest.raises(DataValidationError, match=r"text.parquet: column 'relevance' stores text \(dtype object, "
                                                  r"e.g. '1', '0', '2'\), not integer grades; .*astype\(int\)"):
        read_judgments(tmp_path / "text.parquet")
    pd.concat([frame, frame.iloc[[2]]], ignore_index=True).to_parquet(tmp_path / "twice.parquet")
    with pytest.raises(DataValidationError, match=r"twice.parquet: 1 duplicate \(query_id, item_id\) rows "
                                                  r"\(e.g. \('q2', 'd1'\) as \(query_id, item_id\); row\(s\) 4\)$"):
        read_judgments(tmp_path / "twice.parquet")


def test_score_table_errors_name_the_model(tmp_path: Path) -> None:
    """A score file that is missing, or lacks judged queries: the message names the model
    of the config as well as the file (it named only the file, or ``Precomputed(path)``)."""
    qrels, runs = _collection(tmp_path, string_ids=True)
    cfg = _config(tmp_path, qrels, runs)
    cfg["models"]["a"]["params"]["path"] = str(tmp_path / "gone.parquet")
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"model 'a': precomputed: file not found: {tmp_path / 'gone.parquet'}" in result.output
    cfg = _config(tmp_path, qrels, runs)
    cfg["models"]["b"]["params"].pop("missing")  # run b says nothing for a judged query: an error by default
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 2
    assert f"model 'b': Precomputed({runs[1]}): 1 of 30 queries asked for have no stored predictions" in result.output
    # ids of another form ("topic_3" for "topic-3"): not one judged query found, and the message says what to check
    renamed = tmp_path / "renamed.run"
    renamed.write_text(runs[0].read_text().replace("topic-", "topic_"))
    cfg = _config(tmp_path, qrels, [renamed, runs[1]])
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 2
    assert ("model 'a': Precomputed(" in result.output and "none of the 30 queries asked for has stored predictions "
            "(e.g. 'topic-0'" in result.output and "same form" in result.output), result.output
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
