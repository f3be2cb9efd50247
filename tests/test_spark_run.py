"""``engine: {kind: spark}`` in a config: the same results folder as the local engine.

Runs in the one Spark session of the test run (conftest's ``spark`` fixture, active, so
the engine picks it up); the local run of the same config is the reference.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import harness
from harness.errors import ConfigError

from conftest import small_config


def _config(tmp_path, engine: dict) -> dict:
    cfg = small_config(tmp_path, engine=engine)
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10", "recall@[10,50]", "mrr@10"], "ties": "trec_eval"},
                       "off_policy": {"synthetic": {"n_rounds": 3000}, "estimators": ["ips", "snips"]}}
    cfg["gate"].append({"metric": "snips", "role": "guardrail", "direction": "higher", "max_regression": 0.05})
    return cfg


def test_spark_engine_run_equals_local(spark, tmp_path):
    outcomes = {}
    for kind in ("local", "spark"):
        engine = {"kind": kind} if kind == "local" else {"kind": "spark", "master": "local[2]"}
        config = harness.parse_config(_config(tmp_path / kind, engine))
        outcomes[kind] = harness.run(config, output=tmp_path / kind / "results", progress=False)
    local, found = outcomes["local"], outcomes["spark"]
    assert found.exit_code == local.exit_code
    assert found.result.verdict == local.result.verdict
    a, b = (harness.read_results_folder(o.results_dir) for o in (local, found))
    for key in ("metrics", "comparison"):
        left, right = pd.DataFrame(a.data[key]), pd.DataFrame(b.data[key])
        assert list(left.columns) == list(right.columns) and len(left) == len(right) > 0
        for col in left.columns:
            if pd.api.types.is_float_dtype(left[col]):
                np.testing.assert_allclose(right[col].to_numpy(float), left[col].to_numpy(float), rtol=0, atol=1e-9,
                                           err_msg=f"{key}.{col}")
            else:
                assert right[col].tolist() == left[col].tolist(), f"{key}.{col}"
    pa, pb = a.per_unit, b.per_unit
    assert pa[["family", "model", "unit_id", "metric"]].equals(pb[["family", "model", "unit_id", "metric"]])
    assert np.abs(pa["value"].to_numpy() - pb["value"].to_numpy()).max() <= 1e-9


def test_spark_engine_refuses_what_it_cannot_compute(tmp_path, monkeypatch):
    cfg = small_config(tmp_path, engine={"kind": "spark"})
    cfg["evaluate"]["calibration"] = {"metrics": ["ece"]}
    with pytest.raises(ConfigError, match="evaluate.calibration is not supported on Spark"):
        harness.parse_config(cfg)
    cfg = small_config(tmp_path, engine={"kind": "spark"})
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 500}, "estimators": ["ips"], "method": "bootstrap"}
    with pytest.raises(ConfigError, match="method analytic"):
        harness.parse_config(cfg)
    with pytest.raises(ConfigError, match="set kind: spark"):
        harness.parse_config(small_config(tmp_path, engine={"kind": "local", "master": "local[2]"}))
    # pyspark not installed: the config error says what to install (exit code 2)
    monkeypatch.setitem(sys.modules, "pyspark", None)
    config = harness.parse_config(small_config(tmp_path, engine={"kind": "spark"}))
    with pytest.raises(ConfigError, match=r"pip install 'recsys-harness\[spark\]'"):
        harness.run(config, output=tmp_path / "results", progress=False)
