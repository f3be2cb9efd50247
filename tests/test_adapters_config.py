"""Adapter kinds named in a config, run end to end by the runner."""

from __future__ import annotations

import json
import re
from typing import Any
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from harness.spec.config import parse_config
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.errors import ConfigError, DataValidationError
from harness.models.features import interaction_features
from harness.apps.run import load_dataset, run
from tests import reference as ref
from tests.conftest import small_config, write_config


def metrics_of(outcome, model: str) -> dict[str, float]:
    data = json.loads((outcome.results_dir / "results.json").read_text())
    return {r["metric"]: r["value"] for r in data["metrics"] if r["model"] == model}


def test_precomputed_file_evaluates_like_the_ranking_it_holds(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    ds = load_dataset(parse_config(cfg))
    rng = np.random.default_rng(0)
    scores = ds.truth["true_scores"] + rng.normal(0, 1.0, ds.truth["true_scores"].shape)
    q, i = np.nonzero(np.ones_like(scores, dtype=bool))
    frame = pd.DataFrame({"query_id": q, "item_id": i, "score": scores[q, i]})
    seen = set(zip(ds.train.user_id, ds.train.item_id))
    frame = frame[[(a, b) not in seen for a, b in zip(frame.query_id, frame.item_id)]]
    frame.to_parquet(tmp_path / "preds.parquet", index=False)
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "preds.parquet")}}
    got = metrics_of(run(parse_config(cfg), progress=False), "candidate")
    want = ref.ranking_means(ds.qrels, ref.lists_from_run(frame), ["ndcg@10", "recall@10", "recall@50"])
    assert got == pytest.approx(want, abs=1e-12)


def test_sklearn_pickle_with_candidates_from_config(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    ds = load_dataset(parse_config(cfg))
    fb = interaction_features(ds.train, ds.n_users, ds.n_items, seed=cfg["seed"])
    pairs = pd.DataFrame({"query_id": np.repeat(np.arange(ds.n_users), 40),
                          "item_id": np.tile(np.arange(40), ds.n_users)})
    y = ds.truth["true_relevance"][pairs.query_id, pairs.item_id] > 0
    joblib.dump(LogisticRegression().fit(fb.matrix(pairs), y), tmp_path / "clf.joblib")
    cfg["models"]["candidate"] = {"kind": "sklearn", "params": {
        "path": str(tmp_path / "clf.joblib"), "trusted": True, "candidates": {"kind": "item_knn"},
        "n_candidates": 100}}
    outcome = run(parse_config(cfg), progress=False)
    got, pop = metrics_of(outcome, "candidate"), metrics_of(outcome, "popularity")
    assert got["ndcg@10"] > pop["ndcg@10"]
    assert outcome.exit_code == 0


def test_bad_precomputed_ids_fail_the_run_with_the_model_named(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    pd.DataFrame({"query_id": np.arange(300), "item_id": np.full(300, 999), "score": np.ones(300)}).to_csv(
        tmp_path / "p.csv", index=False)
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "p.csv")}}
    with pytest.raises(DataValidationError, match=r"p\.csv: column 'item_id': 300 of 300 rows \(1 distinct ids\) "
                                                  r"name items the data set does not know \(e\.g\. 999\); the data "
                                                  r"set's 200 item ids are its own ids, e\.g\. 0, 1, 2"):
        run(parse_config(cfg), progress=False)
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])  # refused at validate time
    assert result.exit_code == 2 and "column 'item_id'" in result.stderr, result.output


def test_a_pickle_is_refused_unless_trusted(tmp_path: Path) -> None:
    """A pickle runs code when loaded: a config must say `trusted: true` to load one."""
    joblib.dump(LogisticRegression().fit(np.eye(2), [0, 1]), tmp_path / "clf.joblib")
    cfg = small_config(tmp_path)
    cfg["models"]["candidate"] = {"kind": "sklearn", "params": {
        "path": str(tmp_path / "clf.joblib"), "candidates": {"kind": "item_knn"}, "n_candidates": 10}}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "trusted: true" in result.stderr and "Traceback" not in result.output


def test_validate_suggests_a_misspelt_parameter(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["models"]["candidate"] = {"kind": "item_knn", "params": {"n_neighbors": 20}}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2, result.output
    assert "models.candidate.params" in result.stderr and "did you mean 'n_neighbours'?" in result.stderr


def test_validate_and_run_refuse_an_unwritable_output_before_any_model(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the output folder should go")
    cfg = small_config(tmp_path, output=str(tmp_path / "blocker" / "results"))
    path = write_config(tmp_path, cfg)
    for command in ("validate", "run"):
        result = CliRunner().invoke(app, [command, str(path), "--no-progress"] if command == "run" else [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "output folder" in result.stderr and "is a file" in result.stderr
        assert "fitting" not in result.stderr and "Traceback" not in result.output
    with pytest.raises(ConfigError, match="output folder"):
        run(parse_config(cfg), progress=False)


def _validate(tmp_path: Path, cfg: dict) -> Any:
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    return result


def test_validate_refuses_bad_input_files_as_run_would(tmp_path: Path) -> None:
    """Each case of the real-data issue is exit 2 at validate time, naming file and column."""
    cfg = small_config(tmp_path)
    scores = pd.DataFrame({"query_id": np.arange(300), "item_id": np.arange(300) % 200, "score": np.ones(300)})
    scores.loc[[3, 7], "score"] = np.nan
    scores.to_csv(tmp_path / "nan.csv", index=False)
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "nan.csv")}}
    err = _validate(tmp_path, cfg).stderr
    assert "nan.csv: column 'score' has 2 NaN or infinite values" in err
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "gone.csv")}}
    assert "file not found" in _validate(tmp_path, cfg).stderr and "gone.csv" in _validate(tmp_path, cfg).stderr
    scores.dropna().to_csv(tmp_path / "short.csv", index=False)  # users 3 and 7 have no predictions
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "short.csv")}}
    assert re.search(r"short\.csv\): 2 of \d+ queries asked for have no stored predictions \(e\.g\. 3, 7\); set "
                     r"the model's params\.missing: empty", _validate(tmp_path, cfg).stderr)
    (tmp_path / "empty.csv").write_text("")
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "empty.csv")}}
    assert "empty.csv" in _validate(tmp_path, cfg).stderr
    cfg = small_config(tmp_path)
    feedback = pd.DataFrame({"user_id": [0, 1, 2], "item_id": [1, 2, 3], "reward": [1, 0, 1],
                             "propensity": [0.5, 0.0, 0.2]})
    feedback.to_csv(tmp_path / "logs.csv", index=False)
    cfg["evaluate"]["off_policy"] = {"feedback": {"path": str(tmp_path / "logs.csv")}}
    err = _validate(tmp_path, cfg).stderr
    assert "s.csv, column 'propensity' (1 zero, 0 NaN" in err and "1 of 3 propensities" in err


def test_a_binary_config_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    for command in (["validate", str(path)], ["run", str(path), "--no-progress"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2 and "not a text file" in result.stderr, result.output
