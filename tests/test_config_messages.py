"""Config errors say what to write instead: "did you mean" for misspelt keys, families and
gate metrics, and why an evaluated metric cannot be gated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from harness.errors import ConfigError
from harness.spec.config import parse_config
from tests.conftest import small_config


def _gate(cfg: dict[str, Any], metric: str) -> None:
    cfg["gate"].append({"metric": metric, "role": "primary"})


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["evaluate"]["ranking"].update(metircs=["ndcg@10"]),
     "evaluate.ranking.metircs: unknown key; did you mean 'metrics'?"),
    (lambda c: c.update(compre={}), "compre: unknown key; did you mean 'compare'?"),
    (lambda c: c["compare"].update(n_resample=10), "compare.n_resample: unknown key; did you mean 'n_resamples'?"),
    (lambda c: c.update(zzz=1), "zzz: unknown key\n"),
    (lambda c: c["evaluate"].update(rankng={}), "unknown key 'rankng'; did you mean 'ranking'?"),
    (lambda c: _gate(c, "ndgc@10"), "gate[2].metric: 'ndgc@10' is not evaluated; did you mean 'ndcg@10'?"),
    (lambda c: (c["evaluate"].update(beyond_accuracy={"metrics": ["coverage@10"]}), _gate(c, "coverage@10")),
     "'coverage@10' is evaluated but cannot be gated: it is one number for the whole data"),
    (lambda c: c["evaluate"].update(off_policy={"synthetic": {}, "estimators": ["dr"]}),
     "  evaluate.off_policy: ['dr'] need a reward_model"),
    (lambda c: c["evaluate"].update(off_policy={"synthetic": {}, "temperature": 2.0}),
     "temperature applies to the softmax policy, not epsilon_greedy"),
    # inside lists and mappings too, with one way of writing the key path
    (lambda c: c["gate"][1].update(max_regresion=0.1),
     "gate[1].max_regresion: unknown key; did you mean 'max_regression'?"),
    (lambda c: c["models"]["candidate"].update(parms={}), "models.candidate.parms: unknown key; did you mean 'params'?"),
    (lambda c: c["dataset"].update(kind="synthetc"),
     "dataset.kind: unknown kind 'synthetc'; did you mean 'synthetic'? (known: synthetic, movielens, interactions, trec)"),
    (lambda c: c.update(dataset={"kind": "trec", "qrels": "q.txt"}, models={"a": {"kind": "precomputd"}}, compare=None,
                        gate=[]),
     "models.a.kind: unknown kind 'precomputd'; did you mean 'precomputed'?"),
    # a kind's section: the key path the user wrote (pydantic adds the kind: dataset.movielens.split)
    (lambda c: c.update(dataset={"kind": "movielens", "path": "x", "split": {"kind": "random", "test_fracton": 0.2}}),
     "  dataset.split.test_fracton: unknown key; did you mean 'test_fraction'?"),
    (lambda c: c.update(dataset={"kind": "movielens", "path": "x", "split": {"kind": "leave_last_out", "k": 0}}),
     "  dataset.split.k: Input should be greater than or equal to 1"),
])
def test_config_errors_suggest_the_fix(tmp_path: Path, edit: Callable[[dict], Any], message: str) -> None:
    cfg = small_config(tmp_path)
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        parse_config(cfg)
    assert message in str(info.value) + "\n", str(info.value)
    assert "(top level)" not in str(info.value) and "evaluate.off_policy: evaluate.off_policy" not in str(info.value)


def test_ab_config_errors_suggest_keys_of_the_ab_config() -> None:
    """"did you mean" looks up the keys of the config being read (an A/B test's here)."""
    from harness.spec.ab import ABConfig
    from harness.spec.config import validate_mapping

    with pytest.raises(ConfigError) as info:
        validate_mapping(ABConfig, {"name": "x", "analysis": {"confidnce": 0.9}}, source="ab.yaml")
    assert "  analysis.confidnce: unknown key; did you mean 'confidence'?" in str(info.value)
