"""Several launches sharing one long-term holdout (``holdout.launches``): each launch's own
effect and the cumulative effect of every launch so far, recovered on simulated data
where each launch's effect is planted; the delta-method variance against a plain
per-user computation; coverage by seeded simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from harness.apps.cli import app

WEEKS = 8
# launch -> (first week, surface or None, planted effect on the rows it changes)
PLANTED = {"ranker": (3, None, 1.0), "home-ui": (5, "home", 0.6), "ads": (7, None, -0.5)}
HOME_SHARE = 0.4


def _world(users: int, seed: int, *, text_ids: bool = True) -> pd.DataFrame:
    """Rows (user, week): a user effect (weeks of a user correlate), a trend common to both
    arms, noise, and each launch's effect on the treated rows of its surface from its week on.
    Users are "user0".. (``text_ids``) or 0.. (the coverage simulation's 400 worlds: the
    same analysis, without a fifth of its time spent building and reading text ids)."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(users) < 0.2, "holdout", "launched")
    base = rng.gamma(2, 3, users)
    home = rng.random(users) < HOME_SHARE
    u, w = np.repeat(np.arange(users), WEEKS), np.tile(np.arange(1, WEEKS + 1), users)
    keep = rng.random(u.size) < 0.85  # users skip weeks
    u, w = u[keep], w[keep]
    surface = np.where(home[u], "home", "search")
    treated = arm[u] == "launched"
    y = base[u] + 0.3 * w + rng.normal(0, 2, u.size)
    for start, on, effect in PLANTED.values():
        y = y + effect * (treated & (w >= start) & ((surface == on) if on else True))
    user = [f"user{i}" for i in u] if text_ids else u
    return pd.DataFrame({"user": user, "week": w, "surface": surface, "variant": arm[u], "sessions": y})


def _config(tmp_path: Path) -> Path:
    cfg = {"name": "launches", "columns": {"variant": "variant", "unit": "user", "window": "week"},
           "variants": {"control": "holdout", "treatments": ["launched"], "split": {"holdout": 0.2, "launched": 0.8}},
           "metrics": {"sessions": {"mean": "sessions"}},
           "holdout": {"surface": "surface", "launches": [
               {"name": name, "start": start, **({"surface": on} if on else {})}
               for name, (start, on, _) in PLANTED.items()]},
           "tracking": {"enabled": False}, "output": str(tmp_path / "results")}
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _plain_increment(df: pd.DataFrame, rows: pd.Series, now: tuple[int, int], before: tuple[int, int] | None
                     ) -> tuple[float, float]:
    """Treated minus holdout of (row mean in weeks ``now``) - (row mean in weeks ``before``),
    its variance by the delta method over users, written out with pandas."""
    part = df[rows]
    est, var = 0.0, 0.0
    for arm, sign in (("launched", 1.0), ("holdout", -1.0)):
        mine = part[part.variant == arm]
        users = pd.Index(df.loc[df.variant == arm, "user"].unique())  # every user of the arm is a unit

        def totals(weeks: tuple[int, int]) -> tuple[pd.Series, pd.Series]:
            sel = mine[(mine.week >= weeks[0]) & (mine.week <= weeks[1])].groupby("user").sessions
            return sel.sum().reindex(users, fill_value=0.0), sel.count().reindex(users, fill_value=0).astype(float)

        n_now, d_now = totals(now)
        r_now = n_now.sum() / d_now.sum()
        lin = (n_now - r_now * d_now) / d_now.mean()
        value = r_now
        if before is not None:
            n_b, d_b = totals(before)
            r_b = n_b.sum() / d_b.sum()
            lin = lin - (n_b - r_b * d_b) / d_b.mean()
            value -= r_b
        est += sign * value
        var += lin.var(ddof=1) / len(users)
    return est, var


def test_each_planted_launch_is_recovered_with_its_cumulative_effect(tmp_path: Path) -> None:
    df = _world(4000, seed=1)
    df.to_parquet(tmp_path / "h.parquet")
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "h.parquet"), "--config", str(_config(tmp_path))])
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "results").glob("2*")
    data: dict[str, Any] = json.loads((folder / "results.json").read_text())
    rows = {r["launch"]: r for r in data["ab"]["launches"]}
    assert list(rows) == list(PLANTED)
    for name, (_, _, effect) in PLANTED.items():
        r = rows[name]
        assert r["confidence"] == pytest.approx(1 - 0.05 / 3)  # Bonferroni over the 3 launches
        assert r["ci_low"] <= effect <= r["ci_high"], (name, r)
    # independent per-user computation of each increment and its variance
    everything = pd.Series(True, index=df.index)
    home = df.surface == "home"
    for name, rows_, now, before in (("ranker", everything, (3, 4), (1, 2)), ("home-ui", home, (5, 6), (3, 4)),
                                     ("ads", everything, (7, 8), (5, 6))):
        est, var = _plain_increment(df, rows_, now, before)
        assert rows[name]["delta"] == pytest.approx(est, rel=1e-9), name
        assert rows[name]["std_error"] == pytest.approx(np.sqrt(var), rel=1e-8), name
    # cumulative: every launch so far on the launch's rows, over its period
    est, _ = _plain_increment(df, everything, (7, 8), None)
    assert rows["ads"]["cumulative_delta"] == pytest.approx(est, rel=1e-9)
    truth = 1.0 + 0.6 * HOME_SHARE - 0.5  # the home launch diluted over every row
    assert rows["ads"]["cumulative_ci_low"] <= truth <= rows["ads"]["cumulative_ci_high"]
    assert rows["home-ui"]["cumulative_ci_low"] <= 1.6 <= rows["home-ui"]["cumulative_ci_high"]
    assert "launch home-ui (from 5, home): launched sessions own effect" in res.output
    assert "Launches sharing the holdout" in (folder / "report.html").read_text()
    assert [r["baseline"] for r in rows.values()] == ["before the first launch", "from window 3", "from window 5"]


def test_a_launch_on_a_surface_needs_the_surface_column_and_windows(tmp_path: Path) -> None:
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    del cfg["holdout"]["surface"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    pd.DataFrame({"variant": ["holdout", "launched"] * 5, "user": range(10), "week": 1,
                  "sessions": 1.0}).to_parquet(tmp_path / "x.parquet")
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "x.parquet"), "--config", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2 and "set holdout.surface" in res.output and "Traceback" not in res.output
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg["columns"].pop("window")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "x.parquet"), "--config", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2 and "name the window column" in res.output


@pytest.mark.slow
def test_launch_intervals_cover_the_planted_effects() -> None:
    """400 seeded worlds: every launch's own-effect interval (level 1 - 0.05/3 each) covers
    its planted effect at the nominal rate, within 3 Monte Carlo standard errors."""
    import tempfile

    from harness.evaluate.ab import analyze_launches
    from harness.spec.ab import parse_ab_config

    reps = 400
    level = 1 - 0.05 / 3
    hits = {name: 0 for name in PLANTED}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = yaml.safe_load(_config(Path(tmp)).read_text())
        config = parse_ab_config(cfg)
        for rep in range(reps):
            path = Path(tmp) / "h.parquet"
            _world(600, seed=100 + rep, text_ids=False).to_parquet(path)
            for r in analyze_launches(config.family_spec(path)):
                hits[r["launch"]] += r["ci_low"] <= PLANTED[r["launch"]][2] <= r["ci_high"]
    mc_se = np.sqrt(level * (1 - level) / reps)
    for name, h in hits.items():
        assert h / reps == pytest.approx(level, abs=3 * mc_se + 1 / reps), (name, h / reps, mc_se)


@pytest.mark.parametrize("holdout,message", [
    ({"surface": "surface", "launches": [{"name": "a", "start": 3, "surface": "nope"}]},
     r"launch 'a' starts in window '3' \('week' column\) on surface 'nope' \('surface' column\), but variant\(s\) "
     r"\['holdout', 'launched'\] have no rows"),
    ({"launches": [{"name": "late", "start": 30}]}, r"launch 'late' starts in window '30'"),
    ({"surface": "platform", "launches": [{"name": "a", "start": 3}]}, r"columns \['platform'\] not found"),
    ({"launches": [{"name": "a", "start": 3}, {"name": "a", "start": 4}]}, r"names must be distinct"),
    ({"surface": "surface", "launches": [{"name": "a", "start": 3}, {"name": "b", "start": 3, "surface": "home"}]},
     r"'a' and 'b' start in the same window \('3'\) on the same rows"),
])
def test_bad_launches_are_exit_2_naming_the_problem(tmp_path: Path, holdout: dict[str, Any], message: str) -> None:
    import re

    _world(300, seed=2).to_parquet(tmp_path / "h.parquet")
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg["holdout"] = holdout
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "h.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.search(message, " ".join(res.output.split())), res.output
