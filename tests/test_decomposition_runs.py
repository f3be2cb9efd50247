"""Segment decomposition wired into the tools: ``harness decompose`` on two stored runs and
``attribution.segments`` in ``harness attribute``; results folder, report, MLflow, errors;
and the simultaneous coverage of the per-segment intervals by simulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.metrics import decompose_by_segment
from harness.results.folder import EvalResult, long_table, write_results
from tests.conftest import write_config
from tests.test_attribution_cli import attribution_config, only_folder

runner = CliRunner()


def write_run(root: Path, name: str, values: pd.Series) -> Path:
    """A stored ranking run of one model whose per-unit ndcg@10 is ``values``."""
    result = EvalResult(run_id=name, created_at="2026-12-02T10:00:00+00:00", config={"name": name, "seed": 0},
                        config_hash="h", dataset={"name": "logs", "fingerprint": name}, metrics=[],
                        per_unit=long_table("ranking", {"prod": values.to_frame("ndcg@10")}))
    return write_results(result, root)


@pytest.fixture
def two_weeks(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Simpson's paradox planted: both segments improve, traffic moves to the weak one.

    Week 1: 80 "head" users at 0.90, 20 "tail" users at 0.30; week 2: 20 head users at
    0.95, 80 tail users at 0.35 (string user ids, some shared between the weeks)."""
    week1 = pd.Series(np.r_[np.ones(72), np.zeros(8), np.ones(6), np.zeros(14)],
                      index=[f"u{i}" for i in range(100)])
    week2 = pd.Series(np.r_[np.ones(19), np.zeros(1), np.ones(28), np.zeros(52)],
                      index=[f"u{i}" for i in range(50, 150)])
    seg = pd.DataFrame({"user": [f"u{i}" for i in range(150)],
                        "surface": ["head"] * 80 + ["tail"] * 70})
    # week 2's users: u50..u69 head, u70..u149 tail (u50..u69 were head in week 1 too)
    seg2 = pd.DataFrame({"user": [f"u{i}" for i in range(50, 150)], "surface": ["head"] * 20 + ["tail"] * 80})
    seg.to_csv(tmp_path / "seg1.csv", index=False)
    seg2.to_csv(tmp_path / "seg2.csv", index=False)
    return (write_run(tmp_path / "runs", "week1", week1), write_run(tmp_path / "runs", "week2", week2),
            tmp_path)


def test_decompose_two_runs_splits_exactly_flags_simpson_and_writes_everything(
        two_weeks: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    before, after, tmp = two_weeks
    store = tmp / "mlruns"
    monkeypatch.setenv("HARNESS_HOME", str(tmp / "home"))
    result = runner.invoke(app, ["decompose", str(before), str(after), "--segments", str(tmp / "seg1.csv"),
                                 "--segments-after", str(tmp / "seg2.csv"), "--by", "surface", "--id-column", "user",
                                 "-o", str(tmp / "out"), "--tracking-uri", f"sqlite:///{store}.db"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "within +0.0500 + mix -0.3600" in result.stdout and "Simpson's paradox" in result.stdout
    folder = only_folder(tmp / "out")
    data = json.loads((folder / "results.json").read_text())
    entry = data["decomposition"]["metrics"]["ndcg@10"]
    # by hand: shares (.8,.2) -> (.2,.8), means head .90 -> .95, tail .30 -> .35
    assert entry["within"] == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert entry["mix"] == pytest.approx(0.925 * (0.2 - 0.8) + 0.325 * (0.8 - 0.2))
    assert entry["total"] == pytest.approx(0.47 - 0.78) and abs(entry["residual"]) < 1e-12
    assert entry["simpsons_paradox"] and data["notices"]
    rows = {s["segment"]: s for s in entry["segments"]}
    assert rows["head"]["n_before"] == 80 and rows["head"]["n_after"] == 20
    assert rows["tail"]["mean_after"] == pytest.approx(0.35)
    # both sides' per-unit values are kept, keyed by the users' own ids
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    assert set(per_unit["model"]) == {"prod (before)", "prod (after)"}
    assert set(per_unit.loc[per_unit["model"] == "prod (after)", "unit_id"]) == {f"u{i}" for i in range(50, 150)}
    assert (folder / "plots" / "decomposition_ndcg_at_10.png").read_bytes()[:4] == b"\x89PNG"
    html = (folder / "report.html").read_text()
    assert "Decomposition by segment" in html and "mix shift" in html
    # MLflow: the parent run holds within / mix / per-segment deltas
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store}.db")
    logged = json.loads((folder / "results.json").read_text())["tracking"]
    parent = client.get_run(logged["mlflow_run_ids"]["parent"])
    assert parent.data.metrics["decomposition.within.ndcg_at_10"] == pytest.approx(0.05)
    assert parent.data.metrics["decomposition.mix.ndcg_at_10"] == pytest.approx(-0.36)
    assert parent.data.metrics["decomposition.delta.ndcg_at_10.tail"] == pytest.approx(0.05)


def test_decompose_refuses_units_without_a_segment_unless_told(two_weeks: tuple[Path, Path, Path]) -> None:
    before, after, tmp = two_weeks
    args = ["decompose", str(before), str(after), "--segments", str(tmp / "seg2.csv"), "--by", "surface",
            "--id-column", "user", "-o", str(tmp / "out"), "--no-track"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr
    assert "50 of 100 prod (before) units have no segment" in refused.stderr and "'u0'" in refused.stderr
    assert not (tmp / "out").exists() or not any((tmp / "out").iterdir())  # nothing half-written
    counted = runner.invoke(app, args + ["--missing", "separate"])
    assert counted.exit_code == 0, counted.stderr
    assert "(no segment)" in counted.stdout


@pytest.mark.parametrize("extra, message", [
    (["--segments", "nowhere.csv", "--by", "surface"], "data file not found: nowhere.csv"),
    (["--segments", "{tmp}/seg1.csv", "--by", "market", "--id-column", "user"], "columns ['market'] not found"),
    (["--segments", "{tmp}/seg1.csv", "--by", "surface"], "columns ['unit_id'] not found"),
    (["--segments", "{tmp}/seg1.csv", "--by", "surface", "--id-column", "user", "--metrics", "mrr"],
     "hold ['mrr']"),
    (["--segments", "{tmp}/seg1.csv", "--by", "surface", "--id-column", "user", "--missing", "drop"],
     "--missing: unknown value 'drop'; use one of error, separate"),
])
def test_decompose_bad_input_is_exit_2_naming_the_problem(two_weeks: tuple[Path, Path, Path], extra: list[str],
                                                          message: str) -> None:
    before, after, tmp = two_weeks
    result = runner.invoke(app, ["decompose", str(before), str(after), "--no-track", "-o", str(tmp / "out"),
                                 *[e.format(tmp=tmp) for e in extra]])
    assert result.exit_code == 2, result.output + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_decompose_without_plots_writes_the_section_and_no_waterfall(two_weeks: tuple[Path, Path, Path]) -> None:
    before, after, tmp = two_weeks
    result = runner.invoke(app, ["decompose", str(before), str(after), "--segments", str(tmp / "seg1.csv"),
                                 "--segments-after", str(tmp / "seg2.csv"), "--by", "surface", "--id-column", "user",
                                 "--no-track", "--no-plots", "-o", str(tmp / "out")])
    assert result.exit_code == 0, result.output + result.stderr
    folder = only_folder(tmp / "out")
    entry = json.loads((folder / "results.json").read_text())["decomposition"]["metrics"]["ndcg@10"]
    assert entry["total"] == pytest.approx(0.47 - 0.78) and not (folder / "plots").exists()
    assert "mix shift" in (folder / "report.html").read_text()


def test_duplicated_or_unlabelled_units_in_the_segment_table_are_refused(two_weeks: tuple[Path, Path, Path]) -> None:
    before, after, tmp = two_weeks
    pd.DataFrame({"user": ["u1", "u1"], "surface": ["head", "tail"]}).to_csv(tmp / "dup.csv", index=False)
    pd.DataFrame({"user": ["u1", "u2"], "surface": ["head", None]}).to_csv(tmp / "gap.csv", index=False)
    for name, message in (("dup.csv", "1 unit id(s) listed more than once"), ("gap.csv", "1 unit(s) have no 'surface'")):
        result = runner.invoke(app, ["decompose", str(before), str(after), "--segments", str(tmp / name), "--by",
                                     "surface", "--id-column", "user", "--no-track", "-o", str(tmp / "out")])
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_attribute_with_segments_decomposes_every_metric_by_a_table_of_integer_ids(tmp_path: Path) -> None:
    """Same queries on both sides: no mix shift, and the segments' within effects add up
    to the total change; validate refuses the missing units ``attribute`` would."""
    users = np.arange(300)
    pd.DataFrame({"unit_id": users, "cohort": np.where(users % 3 == 0, "new", "old")}).to_csv(
        tmp_path / "cohorts.csv", index=False)
    cfg = attribution_config(tmp_path, gate=[])
    cfg["attribution"] = {"n_resamples": 200, "segments": {"by": "cohort", "path": str(tmp_path / "cohorts.csv")}}
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "decomposition by cohort: prod -> funnel" in result.stdout
    folder = only_folder(tmp_path / "results")
    data = json.loads((folder / "results.json").read_text())
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    for metric in ("ndcg@10", "recall@10"):
        entry = data["decomposition"]["metrics"][metric]
        assert entry["mix"] == pytest.approx(0.0, abs=1e-15)
        assert entry["total"] == pytest.approx(data["attribution"]["metrics"][metric]["total"], abs=1e-12)
        # each segment's delta from the per-unit values written beside it
        wide = per_unit[per_unit["metric"] == metric].pivot(index="unit_id", columns="model", values="value")
        delta = (wide["funnel"] - wide["prod"]).groupby(np.where(wide.index % 3 == 0, "new", "old")).mean()
        got = {s["segment"]: s["delta"] for s in entry["segments"]}
        assert got == pytest.approx(delta.to_dict(), abs=1e-12)
        assert (folder / "plots" / f"decomposition_{metric.replace('@', '_at_')}.png").is_file()
    assert "Decomposition by segment" in (folder / "report.html").read_text()
    # a table that misses some users: validate says so, as attribute would
    pd.DataFrame({"unit_id": users[:250], "cohort": "x"}).to_csv(tmp_path / "cohorts.csv", index=False)
    checked = runner.invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert checked.exit_code == 2 and "have no segment" in checked.stderr, checked.stderr


@pytest.mark.parametrize("by, edges", [("activity", [15, 20]), ("popularity", None)])
def test_attribute_built_in_segments_bucket_users_from_the_training_data(tmp_path: Path, by: str,
                                                                         edges: list[int] | None) -> None:
    from harness.datasets import make_synthetic
    from harness.datasets.segments import activity_segments, taste_segments

    cfg = attribution_config(tmp_path, gate=[])
    cfg["attribution"] = {"n_resamples": 200, "segments": {"by": by, **({"edges": edges} if edges else {})}}
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    folder = only_folder(tmp_path / "results")
    data = json.loads((folder / "results.json").read_text())
    world = make_synthetic(n_users=300, n_items=200, dim=8, seed=3)
    users, items = world.train["user_id"].to_numpy(), world.train["item_id"].to_numpy()
    expected = (activity_segments(users, 300, None, edges) if by == "activity" else
                taste_segments(users, items, 300, 200, None, [33, 67]))
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    evaluated = per_unit.loc[(per_unit["model"] == "prod") & (per_unit["metric"] == "ndcg@10"), "unit_id"]
    counts = expected.reindex(evaluated.astype(str)).value_counts().to_dict()
    got = {s["segment"]: s["n_before"] for s in data["decomposition"]["metrics"]["ndcg@10"]["segments"]}
    assert got == counts and data["decomposition"]["by"] == by


@pytest.mark.parametrize("segments, message", [
    ({"by": "cohort"}, "give 'path'"),
    ({"by": "activity", "path": "x.csv"}, "drop 'path'"),
    ({"by": "cohort", "path": "x.csv", "edges": [3]}, "'edges' bucket 'by: activity' and 'by: popularity' only"),
    ({"by": "activity", "edges": [5, 3]}, "increasing positive"),
])
def test_segments_config_errors(tmp_path: Path, segments: dict, message: str) -> None:
    cfg = attribution_config(tmp_path)
    cfg["attribution"] = {"segments": segments}
    result = runner.invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def _welch_bonferroni(x0: np.ndarray, x1: np.ndarray, confidence: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference: Welch t interval of mean(x1) - mean(x0) at level 1 - alpha / k,
    for every row of the (replications, units) arrays at once (scipy's t quantile)."""
    from scipy import stats

    n0, n1 = x0.shape[1], x1.shape[1]
    q0, q1 = x0.var(axis=1, ddof=1) / n0, x1.var(axis=1, ddof=1) / n1
    df = (q0 + q1) ** 2 / (q0**2 / (n0 - 1) + q1**2 / (n1 - 1))
    half = stats.t.ppf(1 - (1 - confidence) / (2 * k), df) * np.sqrt(q0 + q1)
    delta = x1.mean(axis=1) - x0.mean(axis=1)
    return delta - half, delta + half


@pytest.mark.slow
def test_per_segment_intervals_hold_simultaneously_at_the_stated_level() -> None:
    """Three segments with planted mean changes and shares that move. The harness's
    per-segment intervals equal a plain Welch/Bonferroni reference (1e-12, on 200 seeded
    replications through ``decompose_by_segment``), so the coverage of the reference is
    theirs: over 20,000 seeded replications every segment's interval covers its true
    change at once in 94.8% of them (Monte-Carlo SE 0.15 points), each segment's own
    98.1-98.4% against the nominal 98.3%. Welch's t is approximate for 0/1 outcomes
    (segment c: 80 units at a 10% rate), so the joint level is held to within half a
    point of 95%, and no segment's own level more than 0.8 points off its nominal."""
    rng = np.random.default_rng(20261202)
    true = {"a": (0.30, 0.35), "b": (0.60, 0.55), "c": (0.10, 0.10)}  # Bernoulli rates before / after
    sizes = ({"a": 300, "b": 150, "c": 80}, {"a": 150, "b": 300, "c": 120})

    def draw(reps: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {g: tuple((rng.random((reps, sizes[side][g])) < true[g][side]).astype(float) for side in (0, 1))
                for g in true}

    sample = draw(200)
    for rep in range(200):
        sides = [(np.concatenate([sample[g][side][rep] for g in true]),
                  np.concatenate([np.full(sizes[side][g], g) for g in true])) for side in (0, 1)]
        d = decompose_by_segment(sides[0][0], sides[0][1], sides[1][0], sides[1][1])
        assert d.within + d.mix == pytest.approx(d.total, abs=1e-12)
        t = d.table.set_index("segment")
        for g in true:
            low, high = _welch_bonferroni(sample[g][0][rep:rep + 1], sample[g][1][rep:rep + 1], 0.95, k=3)
            assert t.loc[g, "ci_low"] == pytest.approx(low[0], abs=1e-12)
            assert t.loc[g, "ci_high"] == pytest.approx(high[0], abs=1e-12)

    reps = 20_000
    covered = np.ones(reps, dtype=bool)
    for g, (x0, x1) in draw(reps).items():
        low, high = _welch_bonferroni(x0, x1, 0.95, k=3)
        delta = true[g][1] - true[g][0]
        own = (low <= delta) & (delta <= high)
        assert 0.975 <= own.mean() <= 0.992, (g, own.mean())  # nominal 1 - 0.05 / 3 = 98.3%
        covered &= own
    assert 0.945 <= covered.mean() <= 0.975, covered.mean()  # Bonferroni: 95% to ~97.5%


def test_taste_segments_equal_a_plain_pandas_reference() -> None:
    """Users by the mean popularity percentile of their training items, cut at [33, 67]."""
    from harness.datasets.segments import NO_HISTORY, taste_segments

    rng = np.random.default_rng(5)
    n_users, n_items = 60, 40
    # users 0-9 make 2 picks each among 10 items nobody else sees (niche); users 10-54 make
    # 800 picks, mostly among 10 hits; users 55-59 have no history
    niche = pd.DataFrame({"user": np.repeat(np.arange(10), 2), "item": 30 + rng.integers(0, 10, 20)})
    rest = rng.integers(10, n_users - 5, 800)
    train = pd.concat([niche, pd.DataFrame({"user": rest, "item": np.where(
        rng.random(800) < 0.7, rng.integers(0, 10, 800), rng.integers(0, 30, 800))})], ignore_index=True)
    got = taste_segments(train["user"].to_numpy(), train["item"].to_numpy(), n_users, n_items,
                         np.array([f"user-{u}" for u in range(n_users)], dtype=object), [33, 67])
    popularity = train["item"].value_counts().reindex(range(n_items), fill_value=0)
    percentile = 100 * (popularity.rank(method="average") - 0.5) / n_items
    taste = train.assign(p=train["item"].map(percentile)).groupby("user")["p"].mean()
    names = pd.cut(taste, [-np.inf, 33, 67, np.inf], right=False,
                   labels=["niche (<p33)", "p33-p67", "mainstream (>=p67)"]).astype(str)
    expected = {f"user-{u}": names.get(u, NO_HISTORY) for u in range(n_users)}
    assert got.to_dict() == expected
    assert {"niche (<p33)", "mainstream (>=p67)", NO_HISTORY} <= set(got.to_numpy())  # the cases occur


def test_decompose_unwritable_output_is_exit_2_saying_which_option(tmp_path: Path) -> None:
    """`harness decompose` has no config: the fix it names is its own --output option."""
    segments = tmp_path / "segments.csv"
    segments.write_text("user,segment\nu1,a\n")
    result = runner.invoke(app, ["decompose", str(tmp_path / "before"), str(tmp_path / "after"),
                                 "--segments", str(segments), "--by", "segment", "-o", "/proc/harness-out"])
    assert result.exit_code == 2, result.output
    assert "output folder /proc/harness-out: not writable" in result.stderr
    assert "pass another folder with --output" in result.stderr and "config" not in result.stderr
