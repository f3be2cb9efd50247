"""Streaming reduction of per-unit experiment files (harness.datasets.experiment.reduce_units):
batch by batch gives the statistics of the whole file at once; errors name file, column,
row and count across batch boundaries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets.experiment import reduce_units
from harness.errors import DataValidationError
from harness.metrics.ab import cluster_totals, segment_moments, variant_moments

VARIANTS = ["control", "treatment"]


def _frame(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    market = rng.integers(0, 60, n)
    return pd.DataFrame({
        "user": [f"u{i:05d}" for i in range(n)],
        "variant": np.array(VARIANTS)[(market % 2)],  # whole markets randomised
        "market": [f"m{k:02d}" for k in market],
        "platform": np.array(["web", "ios", "android"])[market % 3],  # constant within a market
        "y": rng.gamma(2.0, 3.0, n), "x": rng.poisson(5, n).astype(float)})


def _close(a, b) -> None:  # noqa: ANN001 - VariantMoments lists
    for m, r in zip(a, b):
        assert (m.variant, m.n, m.columns) == (r.variant, r.n, r.columns)
        np.testing.assert_allclose(m.sums, r.sums, rtol=1e-11)
        np.testing.assert_allclose(m.cross, r.cross, rtol=1e-11)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("clustered", [False, True])
def test_batches_give_the_whole_file_statistics(tmp_path: Path, fmt: str, clustered: bool) -> None:
    df = _frame().sort_values("variant", kind="stable")  # early batches hold one variant only
    path = tmp_path / f"exp.{fmt}"
    df.to_parquet(path, row_group_size=700) if fmt == "parquet" else df.to_csv(path, index=False)
    kw = dict(variant="variant", columns=["y", "x"], variants=VARIANTS, unit="user", cluster="market",
              segment="platform", cluster_robust=clustered)
    red = reduce_units(path, batch_rows=333, **kw)
    codes = pd.Categorical(df["variant"], categories=VARIANTS).codes
    seg_cat = pd.Categorical(df["platform"])
    x = df[["y", "x"]].to_numpy(float)
    if clustered:  # reference: the whole file at once
        t = cluster_totals(x, codes, df["market"].to_numpy(), columns=["y", "x"], segments=seg_cat.codes)
        x, codes, cols, seg = t.values, t.variants, list(t.columns), t.segments
    else:
        cols, seg = ["y", "x"], seg_cat.codes
    ref = segment_moments(x, codes, seg, names=VARIANTS, segment_names=list(seg_cat.categories), columns=cols)
    assert list(red.segments) == sorted(ref)
    for g in ref:
        _close(red.segments[g], ref[g])
    _close(red.moments, variant_moments(x, codes, names=VARIANTS, columns=cols))
    assert red.n_units == len(df) and red.n_clusters == 60 and red.clustered == clustered


def test_errors_across_batches_name_the_row_and_the_count(tmp_path: Path) -> None:
    df = _frame(2000)
    df.loc[1500, "y"] = np.nan
    path = tmp_path / "exp.parquet"
    df.to_parquet(path, row_group_size=400)
    kw = dict(variant="variant", columns=["y"], variants=VARIANTS, batch_rows=400)
    # the 1501st row (rows count from 1), in the fourth batch of 400
    with pytest.raises(DataValidationError, match=r"column 'y' has 1 NaN/inf value\(s\), e.g. at row\(s\) 1501$"):
        reduce_units(path, **kw)
    df.loc[1500, "y"] = 1.0
    df.loc[1900, "user"] = df.loc[10, "user"]  # a duplicate in another batch
    df.to_parquet(path, row_group_size=400)
    with pytest.raises(DataValidationError, match=r"'user' has 1 duplicated unit id\(s\) \(e.g. 'u00010'\)"):
        reduce_units(path, unit="user", **kw)
    df["variant"] = "control"
    df.to_parquet(path, row_group_size=400)
    with pytest.raises(DataValidationError, match=r"no units in variant\(s\) \['treatment'\]"):
        reduce_units(path, **kw)
    mixed = _frame(400)
    mixed.loc[0, "variant"] = "treatment" if mixed.loc[0, "variant"] == "control" else "control"
    mixed.to_parquet(path)
    with pytest.raises(DataValidationError, match=r"1 cluster\(s\) have units in more than one variant"):
        reduce_units(path, variant="variant", columns=["y"], variants=VARIANTS, cluster="market", batch_rows=100)
