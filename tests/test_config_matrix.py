"""Every documented option through `harness run`, so a documented path cannot break unnoticed.

One small synthetic world (or a small MovieLens-format folder for file data sets); each
case changes one documented choice: every ranking metric (bare where it allows, at a
cut-off otherwise), tie mode, gain, missing policy, model kind, evaluation family,
split, candidate mode, comparison method and correction. A case passes when the run
exits 0 or 1 (a gate outcome), wrote a complete results folder, and measured what the
case configured; exit 2 or 3 fails it. The option sweeps run with ``--no-plots`` (an
option changes the numbers a figure draws, not how it is drawn); every family's case
draws its figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.metrics import RANKING_METRICS
from harness.metrics.beyond_accuracy import BEYOND_METRICS
from harness.metrics.calibration import CALIBRATION_METRICS
from tests.conftest import small_config, write_config

Case = Callable[[Path, dict[str, Any]], None]


def _base(tmp_path: Path) -> dict[str, Any]:
    cfg = small_config(tmp_path)
    cfg["dataset"] = {"kind": "synthetic", "n_users": 150, "n_items": 80, "dim": 6}
    cfg["compare"]["n_resamples"] = 200
    cfg["gate"] = [{"metric": "ndcg@10", "role": "guardrail", "direction": "higher", "max_regression": 1.0}]
    return cfg


def _run(tmp_path: Path, cfg: dict[str, Any], *, plots: bool = False) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress",
                                      "--plots" if plots else "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list(Path(cfg["output"]).iterdir())
    assert (folder / "per_unit.parquet").is_file() and (folder / "summary.md").is_file()
    assert (folder / "plots").is_dir() == plots
    return json.loads((folder / "results.json").read_text())


def _metrics_of(data: dict[str, Any], model: str = "candidate") -> set[str]:
    return {r["metric"] for r in data["metrics"] if r["model"] == model}


def _labels(known: dict[str, str], k: int = 5) -> list[str]:
    return [name if rule == "none" else f"{name}@{k}" for name, rule in known.items()]


RANKING = _labels(RANKING_METRICS) + [n for n, rule in RANKING_METRICS.items() if rule == "optional"]


@pytest.mark.parametrize("ties", ["stable", "trec_eval", "average"])
@pytest.mark.parametrize("gain", ["linear", "exponential"])
def test_every_ranking_metric_tie_mode_and_gain(tmp_path: Path, ties: str, gain: str) -> None:
    cfg = _base(tmp_path)
    cfg["evaluate"]["ranking"] = {"metrics": RANKING + ["ndcg@10"], "ties": ties, "gain": gain}
    data = _run(tmp_path, cfg)
    assert set(RANKING) <= _metrics_of(data)
    assert {"precision@5", "hit_rate@5", "f1@5"} <= {r["metric"] for r in data["comparison"]}


def _half_answered(tmp_path: Path, missing: str) -> dict[str, Any]:
    cfg = _base(tmp_path)
    users = np.arange(0, 150, 2)  # a precomputed run that answers every other user only
    rng = np.random.default_rng(0)
    pd.DataFrame({"query_id": np.repeat(users, 10), "item_id": np.tile(np.arange(10), len(users)),
                  "score": rng.random(10 * len(users))}).to_csv(tmp_path / "run.csv", index=False)
    cfg["models"]["candidate"] = {"kind": "precomputed", "params": {"path": str(tmp_path / "run.csv"),
                                                                    "missing": "empty"}}
    cfg["evaluate"]["ranking"] = {"metrics": ["ndcg@10"], "missing": missing}
    return cfg


def test_missing_query_policy_error(tmp_path: Path) -> None:
    cfg = _half_answered(tmp_path, "error")
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 2 and "ranks nothing for" in result.stderr, result.output


@pytest.mark.parametrize("missing", ["zero", "skip"])
def test_missing_query_policy(tmp_path: Path, missing: str) -> None:
    data = _run(tmp_path, _half_answered(tmp_path, missing))
    assert any("ranks nothing for" in n for n in data["notices"])
    ndcg = next(c for c in data["comparison"] if c["metric"] == "ndcg@10")
    judged = data["ranking"]["counts"]["popularity"]["evaluated"]
    assert ndcg["n_units"] == (judged if missing == "zero" else judged - data["ranking"]["counts"]["candidate"]
                               ["missing_from_run"])


@pytest.mark.parametrize("no_relevant", ["skip", "zero"])
def test_no_relevant_policy(tmp_path: Path, no_relevant: str) -> None:
    cfg = _base(tmp_path)  # grade >= 2 is rare in the synthetic world: some judged users have none
    cfg["evaluate"]["ranking"] = {"metrics": ["ndcg@10"], "relevance_threshold": 2, "no_relevant": no_relevant}
    cfg["gate"] = [{"metric": "ndcg@10", "role": "primary", "direction": "higher"}]
    data = _run(tmp_path, cfg)
    (notice,) = [n for n in data["notices"] if "have no relevant item" in n]
    without = int(notice.split("ranking: ")[1].split()[0])
    ndcg = next(c for c in data["comparison"] if c["metric"] == "ndcg@10")
    assert without > 0 and ndcg["n_units"] == data["dataset"]["n_queries"] - (without if no_relevant == "skip" else 0)


def _torch_checkpoint(tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    from harness.evaluate.data import load_dataset
    from harness.models.mf import BPRMF
    from harness.spec.config import parse_config

    ds = load_dataset(parse_config(cfg))
    BPRMF(dim=4, n_epochs=1, seed=0).fit(ds.train, n_users=ds.n_users, n_items=ds.n_items).save(tmp_path / "mf.pt")
    return {"kind": "torch_retriever", "params": {"checkpoint": str(tmp_path / "mf.pt")}}


def _xgboost_model(tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    from harness.evaluate.data import load_dataset
    from harness.models.lambdamart import LambdaMART
    from harness.spec.config import parse_config

    ds = load_dataset(parse_config(cfg))
    LambdaMART(n_estimators=5).fit(ds.train, n_users=ds.n_users, n_items=ds.n_items).booster.save_model(
        tmp_path / "ltr.json")
    return {"kind": "xgboost_ranker", "params": {"path": str(tmp_path / "ltr.json"), "n_candidates": 30,
                                                 "candidates": {"kind": "item_knn"}}}


def _sklearn_model(tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from harness.evaluate.data import load_dataset
    from harness.models.features import interaction_features
    from harness.spec.config import parse_config

    ds = load_dataset(parse_config(cfg))
    fb = interaction_features(ds.train, ds.n_users, ds.n_items)
    pairs = ds.train[["user_id", "item_id"]].rename(columns={"user_id": "query_id"}).head(400)
    x = fb.matrix(pairs)
    joblib.dump(LogisticRegression().fit(x, np.arange(len(x)) % 2), tmp_path / "clf.joblib")
    return {"kind": "sklearn", "params": {"path": str(tmp_path / "clf.joblib"), "trusted": True,
                                         "candidates": {"kind": "item_knn"}, "n_candidates": 30}}


def _precomputed(tmp_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    users, items = np.arange(150), np.arange(80)
    frame = pd.DataFrame({"query_id": np.repeat(users, 20), "item_id": np.concatenate(
        [rng.choice(items, 20, replace=False) for _ in users]), "score": rng.random(20 * len(users))})
    frame.to_parquet(tmp_path / "scores.parquet")
    return {"kind": "precomputed", "params": {"path": str(tmp_path / "scores.parquet")}}


MODEL_KINDS: dict[str, Callable[[Path, dict[str, Any]], dict[str, Any]]] = {
    "random": lambda t, c: {"kind": "random", "params": {"seed": 3}},
    "popularity": lambda t, c: {"kind": "popularity"},
    "oracle": lambda t, c: {"kind": "oracle", "params": {"noise": 0.5}},
    "oracle_clicks": lambda t, c: {"kind": "oracle_clicks", "params": {"power": 2.0}},
    "item_knn": lambda t, c: {"kind": "item_knn", "params": {"n_neighbours": 20}},
    "bpr_mf": lambda t, c: {"kind": "bpr_mf", "params": {"dim": 4, "n_epochs": 2}},
    "two_tower": lambda t, c: {"kind": "two_tower", "params": {"dim": 4, "n_epochs": 1}},
    "lambdamart": lambda t, c: {"kind": "lambdamart", "params": {"n_candidates": 30, "n_estimators": 5}},
    "torch_retriever": _torch_checkpoint,
    "xgboost_ranker": _xgboost_model,
    "sklearn": _sklearn_model,
    "precomputed": _precomputed,
    "pipeline": lambda t, c: {"kind": "pipeline", "params": {"stages": [
        {"name": "retrieval", "k": 40, "kind": "item_knn"},
        {"name": "rerank", "k": 20, "kind": "mmr", "params": {"lambda_": 0.7}}]}},
}


def test_the_matrix_covers_every_adapter_kind() -> None:
    from harness.adapters.registry import MODEL_KINDS as REGISTERED

    # mlflow is covered end to end in test_adapters_mlflow.py (it needs a model store);
    # mmr is a pipeline's last stage (the pipeline case)
    assert set(MODEL_KINDS) | {"mlflow", "mmr"} == set(REGISTERED)


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_every_model_kind(tmp_path: Path, kind: str) -> None:
    cfg = _base(tmp_path)
    cfg["models"]["candidate"] = MODEL_KINDS[kind](tmp_path, cfg)
    data = _run(tmp_path, cfg)
    assert "ndcg@10" in _metrics_of(data)


FAMILIES: dict[str, dict[str, Any]] = {
    # ild needs item categories or features (the synthetic world has neither): the split cases run it
    "beyond_accuracy": {"metrics": [m for m in _labels(BEYOND_METRICS) if not m.startswith("ild")]},
    "calibration": {"metrics": list(CALIBRATION_METRICS), "n_per_user": 4, "n_resamples": 100},
    "off_policy": {"synthetic": {"n_rounds": 2000}, "estimators": ["ips", "snips", "dm", "dr", "sndr"],
                   "reward_model": "logistic", "epsilon": 0.1},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family(tmp_path: Path, family: str) -> None:
    cfg = _base(tmp_path)
    cfg["models"] = {"popularity": {"kind": "oracle_clicks", "params": {"power": 2.0}},
                     "candidate": {"kind": "oracle_clicks"}}
    cfg["evaluate"][family] = FAMILIES[family]
    data = _run(tmp_path, cfg, plots=True)
    assert family in data["families"]
    (folder,) = list(Path(cfg["output"]).iterdir())
    drawn = {p.stem for p in (folder / "plots").glob("*.png")}
    assert {"ranking_curves", *(["reliability"] if family == "calibration" else [])} <= drawn, drawn
    expected = {"beyond_accuracy": set(FAMILIES["beyond_accuracy"]["metrics"]), "calibration": set(CALIBRATION_METRICS),
                "off_policy": {"ips", "snips", "dm", "dr", "sndr"}}[family]
    assert expected <= _metrics_of(data)
    assert set(data["families"][family]["compared"]) <= {r["metric"] for r in data["comparison"]}


def _engine_case(tmp_path: Path, engine: dict[str, Any]) -> None:
    cfg = _base(tmp_path)
    cfg["engine"] = engine
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 1000}, "estimators": ["ips", "snips"]}
    data = _run(tmp_path, cfg)
    assert {"ndcg@10", "ips", "snips"} <= _metrics_of(data)
    assert data["config"]["engine"]["kind"] == engine["kind"]


def test_engine_local(tmp_path: Path) -> None:
    _engine_case(tmp_path, {"kind": "local"})


# engine kind spark with every documented option (master, conf, app_name) is
# test_spark_run.py::test_spark_engine_run_equals_local: the same config on both engines


@pytest.mark.parametrize("policy", ["epsilon_greedy", "top_k", "softmax"])
def test_every_off_policy_policy(tmp_path: Path, policy: str) -> None:
    cfg = _base(tmp_path)
    cfg["models"] = {"popularity": {"kind": "oracle_clicks", "params": {"power": 2.0}},
                     "candidate": {"kind": "oracle_clicks"}}
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 2000}, "policy": policy,
                                     "estimators": ["ips", {"name": "ips", "lambda_": 5, "label": "ips_clip5"}],
                                     **({"temperature": 0.5} if policy == "softmax" else {"epsilon": 0.1})}
    data = _run(tmp_path, cfg)
    assert {"ips", "ips_clip5"} <= _metrics_of(data)
    assert set(data["off_policy"]["true_values"]) == {"popularity", "candidate"}


@pytest.mark.parametrize("method", ["auto", "bootstrap", "bca", "t_test", "randomization"])
@pytest.mark.parametrize("correction", ["holm", "bh", "none"])
def test_every_comparison_method_and_correction(tmp_path: Path, method: str, correction: str) -> None:
    cfg = _base(tmp_path)
    cfg["compare"].update(method=method, correction=correction)
    data = _run(tmp_path, cfg)
    assert data["verdict"]["correction"] == correction
    assert {r["method"] for r in data["comparison"]} - {"bca"} <= {method, "bootstrap", "t_test"}


GENRES = ["unknown", "Action", "Comedy", "Drama", "Thriller"]


def write_movielens_100k(folder: Path, *, n_users: int = 80, n_items: int = 50, seed: int = 0) -> Path:
    """A MovieLens-100K-format folder in the data's own ids (users 101.., films 1001..)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = [(101 + u, 1001 + i, int(rng.integers(1, 6)), 880_000_000 + int(rng.integers(0, 10**6)))
            for u in range(n_users) for i in rng.choice(n_items, 12, replace=False)]
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{s}\n" for u, i, r, s in rows))
    (folder / "u.genre").write_text("".join(f"{g}|{n}\n" for n, g in enumerate(GENRES)) + "\n")
    flags = (rng.random((n_items, len(GENRES))) < 0.4).astype(int)
    (folder / "u.item").write_text("".join(
        f"{1001 + i}|Film {i} (1995)|01-Jan-1995||http://x|{'|'.join(map(str, flags[i]))}\n" for i in range(n_items)))
    (folder / "u.user").write_text("".join(f"{101 + u}|{20 + u % 40}|{'MF'[u % 2]}|other|{10000 + u}\n"
                                           for u in range(n_users)))
    return folder


@pytest.mark.parametrize("split", [{"kind": "leave_last_out", "k": 1}, {"kind": "temporal_ratio", "test_fraction": 0.2},
                                   {"kind": "temporal", "test_fraction": 0.2}, {"kind": "random", "test_fraction": 0.2,
                                                                                "seed": 1}])
@pytest.mark.parametrize("candidates", [None, {"kind": "full"}, {"kind": "sampled", "n_negatives": 20, "seed": 2},
                                        {"kind": "given"}])
def test_every_split_and_candidate_mode(tmp_path: Path, split: dict[str, Any], candidates: dict | None) -> None:
    folder = write_movielens_100k(tmp_path / "ml-100k")
    cfg = _base(tmp_path)
    cfg["dataset"] = {"kind": "movielens", "path": str(folder), "split": split,
                      "relevance": {"from": "rating", "threshold": 3}}
    cfg["evaluate"]["beyond_accuracy"] = {"metrics": ["ild@10", "coverage@10"]}  # genres: ild is defined
    if candidates is not None:
        if candidates["kind"] == "given":
            ratings = pd.read_csv(folder / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
            extra = pd.DataFrame({"user": ratings["user"].unique(), "item": 1001})  # a negative per user
            pd.concat([ratings[["user", "item"]], extra]).drop_duplicates().to_csv(tmp_path / "cands.csv", index=False)
            candidates = {"kind": "given", "path": str(tmp_path / "cands.csv")}
        cfg["dataset"]["candidates"] = candidates
    cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "item_knn"}}
    cfg["gate"] = []
    data = _run(tmp_path, cfg)
    assert "ndcg@10" in _metrics_of(data)
    assert {"ndcg@10", "ild@10"} <= _metrics_of(data)
    per_unit = pd.read_parquet(Path(cfg["output"]).iterdir().__next__() / "per_unit.parquet")
    assert set(per_unit["unit_id"].astype(int)) <= set(range(101, 181))  # keyed by the data's own user ids


def test_no_query_with_a_relevant_item_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _base(tmp_path)
    cfg["evaluate"]["ranking"] = {"metrics": ["ndcg@10"], "relevance_threshold": 9}
    # validate refuses what run refuses, before any model is fitted, and says which setting to change
    for command in (["run", "--no-progress"], ["validate"]):
        result = CliRunner().invoke(app, [command[0], str(write_config(tmp_path, cfg)), *command[1:]])
        assert result.exit_code == 2 and "none of the 55 judged queries has a relevant item (relevance >= 9); " \
            "lower evaluate.ranking.relevance_threshold (the highest grade is" in result.stderr, result.output
        assert "fitting" not in result.stderr


@pytest.mark.parametrize("missing", ["error", "separate"])
def test_every_segments_missing_policy(tmp_path: Path, missing: str) -> None:
    """``attribution.segments`` read from a table (``by: activity`` and the errors are in
    tests/test_decomposition_runs.py): with ``separate`` the unlisted users form a segment."""
    from tests.test_attribution_cli import attribution_config

    listed = np.arange(300) if missing == "error" else np.arange(200)
    pd.DataFrame({"user": listed, "market": np.where(listed % 2, "odd", "even")}).to_csv(tmp_path / "m.csv",
                                                                                         index=False)
    cfg = attribution_config(tmp_path, gate=[])
    cfg["dataset"]["n_users"] = 300
    cfg["attribution"] = {"n_resamples": 100, "metrics": ["ndcg@10"], "ceiling": False,
                          "segments": {"by": "market", "path": str(tmp_path / "m.csv"), "id_column": "user",
                                       "missing": missing}}
    result = CliRunner().invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    (folder,) = list(Path(cfg["output"]).iterdir())
    section = json.loads((folder / "results.json").read_text())["decomposition"]
    segments = {s["segment"] for s in section["metrics"]["ndcg@10"]["segments"]}
    assert segments == ({"even", "odd"} if missing == "error" else {"even", "odd", "(no segment)"})
    assert section["units"]["missing"] == missing


# ----------------------------------------------------------------------------- harness ab options
def _ab_rows(path: Path, *, weeks: int = 4, users: int = 400) -> None:
    """(user, week) rows with every column the A/B cases below name."""
    rng = np.random.default_rng(4)
    arm = rng.choice(["holdout", "launched"], users)
    u, w = np.repeat(np.arange(users), weeks), np.tile(np.arange(1, weeks + 1), users)
    impressions = rng.poisson(20, u.size) + 1
    pd.DataFrame({"user": u, "week": w, "variant": arm[u], "surface": rng.choice(["home", "search"], users)[u],
                  "sessions": rng.gamma(2, 2, u.size), "converted": (rng.random(u.size) < 0.2).astype(int),
                  "impressions": impressions, "clicks": rng.binomial(impressions, 0.1)}).to_parquet(path)


AB_CASES: dict[str, dict[str, Any]] = {
    # every metric kind over the launches of one holdout; a launch on one surface
    "holdout_launches": {"holdout": {"surface": "surface", "launches": [
        {"name": "first", "start": 2}, {"name": "second", "start": 3, "surface": "home"}]}},
    "holdout_launches_text_weeks": {"holdout": {"launches": [{"name": "only", "start": "3"}]}},
}


@pytest.mark.parametrize("case", sorted(AB_CASES))
def test_every_ab_holdout_option(tmp_path: Path, case: str) -> None:
    import yaml

    _ab_rows(tmp_path / "h.parquet")
    cfg = {"name": case, "columns": {"variant": "variant", "unit": "user", "window": "week"},
           "variants": {"control": "holdout", "treatments": ["launched"]},
           "metrics": {"sessions": {"mean": "sessions"}, "conversion": {"proportion": "converted"},
                       "ctr": {"ratio": ["clicks", "impressions"]}},
           "tracking": {"enabled": False}, "output": str(tmp_path / "results"), **AB_CASES[case]}
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["ab", str(tmp_path / "h.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list((tmp_path / "results").iterdir())
    launches = json.loads((folder / "results.json").read_text())["ab"]["launches"]
    names = [x["name"] for x in cfg["holdout"]["launches"]]
    assert [r["launch"] for r in launches] == [n for n in names for _ in cfg["metrics"]]
    assert all(r["ci_low"] <= r["delta"] <= r["ci_high"] for r in launches)
