"""Long-term holdouts through ``harness ab`` with ``columns.window``: rows are (user, week)
pairs; the whole experiment is analysed by user (cluster-robust over the weeks), each week
on its own (the effect curve, Bonferroni over the weeks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from harness.apps.cli import app

WEEKS = 8


def _truth(week: np.ndarray) -> np.ndarray:
    return 2.0 * np.exp(-(week - 1) / 3.0) + 0.5  # a novelty effect decaying to a lasting 0.5


def _holdout(path: Path, *, users: int = 3000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(users) < 0.2, "holdout", "launched")
    base = rng.gamma(2, 5, users)
    u, w = np.repeat(np.arange(users), WEEKS), np.tile(np.arange(1, WEEKS + 1), users)
    keep = rng.random(u.size) < 0.8  # users skip weeks
    u, w = u[keep], w[keep]
    y = base[u] + rng.normal(0, 3, u.size) + (arm[u] == "launched") * _truth(w)
    df = pd.DataFrame({"user": [f"user{i}" for i in u], "week": w, "variant": arm[u], "revenue": y})
    df.to_parquet(path)
    return df


def _config(tmp_path: Path, **over: Any) -> Path:
    cfg = {"name": "holdout", "columns": {"variant": "variant", "unit": "user", "window": "week"},
           "variants": {"control": "holdout", "treatments": ["launched"], "split": {"holdout": 0.2, "launched": 0.8}},
           "metrics": {"revenue": {"mean": "revenue"}}, "tracking": {"enabled": False},
           "output": str(tmp_path / "results"), **over}
    path = tmp_path / "holdout.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(tmp_path: Path, data: Path, cfg: Path) -> tuple[int, str, dict[str, Any] | None]:
    res = CliRunner().invoke(app, ["ab", str(data), "--config", str(cfg)])
    folders = sorted((tmp_path / "results").glob("2*"))
    return res.exit_code, res.output, json.loads((folders[-1] / "results.json").read_text()) if folders else None


def test_weekly_effect_curve_and_the_user_level_overall_effect(tmp_path: Path) -> None:
    df = _holdout(tmp_path / "h.parquet")
    code, out, res = _run(tmp_path, tmp_path / "h.parquet", _config(tmp_path))
    assert code == 0, out
    ab = res["ab"]
    assert ab["design"]["n_windows"] == WEEKS and ab["design"]["n_rows"] == len(df)
    assert ab["design"]["n_units"] == df["user"].nunique() and ab["design"]["variance"] == "cluster-robust"
    level = 1 - 0.05 / WEEKS
    for row in ab["windows"]:  # each week: Welch on that week's rows (scipy), intervals at the Bonferroni level
        week = df[df["week"] == int(row["window"])]
        t, c = week[week.variant == "launched"].revenue, week[week.variant == "holdout"].revenue
        ref = stats.ttest_ind(t, c, equal_var=False)
        ci = ref.confidence_interval(level)
        assert row["delta"] == pytest.approx(t.mean() - c.mean(), rel=1e-10)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-8)
        assert row["confidence"] == pytest.approx(level)
        assert row["ci_low"] <= _truth(np.array(float(row["window"]))) <= row["ci_high"]
    # overall: the row mean per arm; its variance clusters each user's weeks (plain delta-method formula)
    comp = res["comparison"][0]
    se2 = 0.0
    for arm in ("launched", "holdout"):
        per_user = df[df.variant == arm].groupby("user").revenue.agg(["sum", "count"])
        r = per_user["sum"].sum() / per_user["count"].sum()
        n = len(per_user)
        se2 += np.var(per_user["sum"] - r * per_user["count"], ddof=1) / (n * per_user["count"].mean() ** 2)
    means = df.groupby("variant").revenue.mean()
    assert comp["delta"] == pytest.approx(means["launched"] - means["holdout"], rel=1e-10)
    assert comp["std_error"] == pytest.approx(np.sqrt(se2), rel=1e-9)
    naive = np.sqrt(sum(df[df.variant == a].revenue.var() / (df.variant == a).sum() for a in ("launched", "holdout")))
    assert comp["std_error"] > 1.5 * naive  # the weeks of one user are correlated
    assert (tmp_path / "results" / res["run_id"] / "plots" / "ab_effect_over_time.png").is_file()
    assert "effect over time: launched revenue across 8 windows" in out


def test_a_repeated_user_week_is_exit_2_and_a_window_needs_a_unit(tmp_path: Path) -> None:
    df = _holdout(tmp_path / "h.parquet", users=300)
    pd.concat([df, df.iloc[[7]]]).to_parquet(tmp_path / "h.parquet")
    code, out, _ = _run(tmp_path, tmp_path / "h.parquet", _config(tmp_path))
    assert code == 2 and "1 duplicated (user, week) pair(s)" in out and "Traceback" not in out
    cfg = _config(tmp_path, columns={"variant": "variant", "window": "week"})
    code, out, _ = _run(tmp_path, tmp_path / "h.parquet", cfg)
    assert code == 2 and "columns.window: rows are (unit, window) pairs" in out
