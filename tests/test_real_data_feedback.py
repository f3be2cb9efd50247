"""Logged feedback from Parquet/CSV with the user's column names and ids, and the Open
Bandit Dataset layout's checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.datasets.bandit import load_logged_feedback, load_open_bandit_dataset
from harness.datasets.build import build_dataset
from harness.datasets.ids import IdMap
from harness.errors import ConfigError, DataValidationError

COLUMNS = {"context": "visitor", "action": "sku", "position": "slot", "reward": "clicked", "propensity": "p_log"}


def _dataset():
    rng = np.random.default_rng(0)
    users = np.repeat([f"v{u}" for u in range(1, 31)], 6)
    log = pd.DataFrame({"user": users, "item": rng.choice([f"sku-{i:03d}" for i in range(40)], users.size),
                        "rating": 5, "timestamp": np.tile(np.arange(6), 30)}).drop_duplicates(["user", "item"])
    return build_dataset(log, name="t", split={"kind": "leave_last_out", "k": 1}, relevance={"from": "interaction"})


def _logs(ds, n=200, seed=1):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"visitor": rng.choice(ds.user_ids, n), "sku": rng.choice(ds.item_ids, n),
                         "slot": rng.integers(1, 4, n), "clicked": rng.integers(0, 2, n),
                         "p_log": rng.uniform(0.01, 1, n), "age": rng.normal(size=n), "hour": rng.integers(0, 24, n)})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_columns_and_ids_are_mapped_to_codes(tmp_path, suffix):
    ds = _dataset()
    logs = _logs(ds)
    path = tmp_path / f"logs{suffix}"
    logs.to_csv(path, index=False) if suffix == ".csv" else logs.to_parquet(path, index=False)
    fb = load_logged_feedback(path, columns=COLUMNS, dataset=ds, context_features=["age", "hour"])
    user_code = {u: c for c, u in enumerate(ds.user_ids)}
    item_code = {i: c for c, i in enumerate(ds.item_ids)}
    np.testing.assert_array_equal(fb.context_id, [user_code[u] for u in logs["visitor"]])
    np.testing.assert_array_equal(fb.action, [item_code[i] for i in logs["sku"]])
    np.testing.assert_array_equal(fb.position, logs["slot"] - 1)
    assert fb.len_list == 3 and fb.n_actions == ds.n_items
    np.testing.assert_array_equal(fb.reward, logs["clicked"])
    np.testing.assert_allclose(fb.pscore, logs["p_log"])
    np.testing.assert_allclose(fb.context, logs[["age", "hour"]].to_numpy(dtype=float))


def test_unknown_item_ids_show_both_sides(tmp_path):
    ds = _dataset()
    logs = _logs(ds, n=50)
    logs.loc[[3, 9], "sku"] = ["sku-999", "SKU-001"]
    logs.to_csv(tmp_path / "logs.csv", index=False)
    with pytest.raises(DataValidationError, match=r"logs.csv: column 'sku': 2 of 50 rows \(2 distinct ids\) name items "
                                                  r"the data set does not know \(e\.g\. 'sku-999', 'SKU-001'\); the data "
                                                  r"set's \d+ item ids are its own ids, e\.g\. 'sku-000'"):
        load_logged_feedback(tmp_path / "logs.csv", columns=COLUMNS, dataset=ds)


@pytest.mark.parametrize("values, match", [
    ([0.0, 0.0, np.nan], r"3 of 50 propensities outside \(0, 1\] or NaN in .*logs.csv, column 'p_log' "
                         r"\(2 zero, 1 NaN, 0 other"),
    ([1.5, 0.5, 0.5], r"1 of 50 propensities .* column 'p_log' \(0 zero, 0 NaN, 1 other; e\.g\. 1\.5\)"),
])
def test_zero_nan_or_large_propensities_name_file_column_and_count(tmp_path, values, match):
    ds = _dataset()
    logs = _logs(ds, n=50)
    logs.loc[[0, 1, 2], "p_log"] = values
    logs.to_csv(tmp_path / "logs.csv", index=False)
    with pytest.raises(DataValidationError, match=match):
        load_logged_feedback(tmp_path / "logs.csv", columns=COLUMNS, dataset=ds)


@pytest.mark.parametrize("edit, match", [
    (lambda df: df.assign(clicked=df["clicked"].astype(float).where(df.index != 4)),
     r"column 'clicked' \(reward\) has 1 NaN or infinite values of 50"),
    (lambda df: df.assign(slot=np.where(df.index % 2 == 0, 1, 3)),
     r"column 'slot' \(position\) must hold consecutive integers .* 2 distinct values from 1 to 3"),
    (lambda df: df.assign(age=df["age"].where(df.index != 7)),
     r"1 rows have NaN or infinite context features \(columns \['age'\]\)"),
    (lambda df: df.head(0), r"is empty \(0 rows\)"),
])
def test_bad_feedback_values(tmp_path, edit, match):
    ds = _dataset()
    edit(_logs(ds, n=50)).to_parquet(tmp_path / "logs.parquet", index=False)
    with pytest.raises(DataValidationError, match=match):
        load_logged_feedback(tmp_path / "logs.parquet", columns=COLUMNS, dataset=ds, context_features=["age"])


@pytest.mark.parametrize("columns, kwargs, match", [
    ({**COLUMNS, "user": "visitor"}, {}, r"unknown names \['user'\]"),
    ({"action": "sku", "reward": "clicked"}, {}, r"mappings for \['propensity'\] are required"),
    ({**COLUMNS, "reward": "sku"}, {}, r"each column may be mapped once"),
    (COLUMNS, {"dataset": None}, r"the item id map is required"),
])
def test_bad_feedback_options(tmp_path, columns, kwargs, match):
    ds = _dataset()
    _logs(ds, n=10).to_csv(tmp_path / "logs.csv", index=False)
    with pytest.raises(ConfigError, match=match):
        load_logged_feedback(tmp_path / "logs.csv", columns=columns, **{"dataset": ds, **kwargs})


def test_without_a_user_map_context_ids_are_codes(tmp_path):
    logs = pd.DataFrame({"u": [4, 0, 4], "a": [2, 0, 1], "r": [1, 0, 1], "p": [0.5, 0.5, 0.25]})
    logs.to_csv(tmp_path / "l.csv", index=False)
    cols = {"context": "u", "action": "a", "reward": "r", "propensity": "p"}
    fb = load_logged_feedback(tmp_path / "l.csv", columns=cols, items=IdMap("item", 3))
    np.testing.assert_array_equal(fb.context_id, [4, 0, 4])
    assert fb.n_actions == 3 and fb.len_list == 1
    with pytest.raises(DataValidationError, match=r"column 'a': 1 of 3 rows .* \(e\.g\. 2\); the data set's 2 item ids"):
        load_logged_feedback(tmp_path / "l.csv", columns=cols, items=IdMap("item", 2))


# ---------------------------------------------------------------- Open Bandit Dataset layout
def _obd(root, **overrides):
    folder = root / "random" / "men"
    folder.mkdir(parents=True, exist_ok=True)
    n = 12
    log = pd.DataFrame({"timestamp": np.arange(n), "item_id": np.arange(n) % 3, "position": np.arange(n) % 2 + 1,
                        "click": np.arange(n) % 2, "propensity_score": np.full(n, 1 / 3), "user_feature_0": "a"})
    log = log.assign(**overrides)
    log.to_csv(folder / "men.csv")
    pd.DataFrame({"item_id": np.arange(3), "item_feature_0": [0.1, 0.2, 0.3]}).to_csv(folder / "item_context.csv")


@pytest.mark.parametrize("overrides, match", [
    ({"propensity_score": [0.0] * 3 + [1 / 3] * 9}, r"3 of 12 propensities .*/men.csv, column 'propensity_score' "
                                                    r"\(3 zero, 0 NaN"),
    ({"click": [2] + [0] * 11}, r"men.csv: column 'click' must hold 0/1; 1 rows do not \(e\.g\. 2\)"),
    ({"item_id": [7] + [0] * 11}, r"column 'item_id': 1 rows name items that .*item_context.csv does not list "
                                  r"\(e\.g\. 7; it lists 0\.\.2\)"),
])
def test_open_bandit_layout_checks_name_the_file(tmp_path, overrides, match):
    _obd(tmp_path, **overrides)
    with pytest.raises(DataValidationError, match=match):
        load_open_bandit_dataset(tmp_path, campaign="men")


def test_open_bandit_layout_loads_and_refuses_unknown_policies(tmp_path):
    _obd(tmp_path)
    fb = load_open_bandit_dataset(tmp_path, campaign="men")
    assert len(fb) == 12 and fb.len_list == 2 and fb.n_actions == 3
    with pytest.raises(ConfigError, match=r"behavior_policy must be one of \['random', 'bts'\], got 'greedy'"):
        load_open_bandit_dataset(tmp_path, behavior_policy="greedy", campaign="men")
    with pytest.raises(ConfigError, match=r"campaign must be one of \['all', 'men', 'women'\], got 'kids'"):
        load_open_bandit_dataset(tmp_path, campaign="kids")
