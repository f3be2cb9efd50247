"""harness.options: one validator per option kind, one error class (ConfigError), one
message style — and every option of metrics/ and the inference stage goes through it."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

import harness.options as options
from harness.errors import ConfigError, DataValidationError
from harness.options import (check_bounds, check_choice, check_confidence, check_integer, check_number,
                             check_probability)


def test_doctests_run_and_pass() -> None:
    result = doctest.testmod(options)
    assert result.attempted >= 8 and result.failed == 0


# ----------------------------------------------------------------------- the validators


@pytest.mark.parametrize("value", [0.001, 0.5, 0.9, 0.95, 0.999, np.float64(0.8), 0.3])
def test_confidence_accepts_the_open_unit_interval(value) -> None:
    assert check_confidence(value) == float(value)
    assert type(check_confidence(value)) is float


@pytest.mark.parametrize("value, shown", [(0, "0"), (1, "1"), (1.5, "1.5"), (-0.1, "-0.1"),
                                          (float("nan"), "nan"), (float("inf"), "inf")])
def test_confidence_refuses_the_ends_and_beyond(value, shown) -> None:
    with pytest.raises(ConfigError) as err:
        check_confidence(value)
    assert str(err.value) == f"confidence: must be in (0, 1), got {shown}"


@pytest.mark.parametrize("value", ["0.9", None, True, [0.9]])
def test_confidence_refuses_non_numbers(value) -> None:
    with pytest.raises(ConfigError, match=r"^confidence: must be a number in \(0, 1\), got "):
        check_confidence(value)


def test_choice_message_lists_the_choices_in_order() -> None:
    assert check_choice("bh", ("holm", "bh", "none"), name="correction") == "bh"
    with pytest.raises(ConfigError) as err:
        check_choice("bonferroni", ("holm", "bh", "none"), name="correction")
    assert str(err.value) == "correction: unknown value 'bonferroni'; use one of holm, bh, none"
    with pytest.raises(ConfigError, match="unknown value 3"):
        check_choice(3, ("a",), name="x")


def test_number_interval_notation_and_open_ends() -> None:
    assert check_number(0, name="eps", low=0, high=0.5, high_open=True) == 0.0
    assert check_number(float("inf"), name="lambda_", low=0) == float("inf")
    with pytest.raises(ConfigError, match=r"^eps: must be in \[0, 0.5\), got 0.5$"):
        check_number(0.5, name="eps", low=0, high=0.5, high_open=True)
    with pytest.raises(ConfigError, match=r"^t: must be in \(0, inf\], got 0$"):
        check_number(0, name="t", low=0, low_open=True)
    with pytest.raises(ConfigError, match=r"^t: must be in \[0, inf\], got nan$"):
        check_number(float("nan"), name="t", low=0)


def test_probability_and_integer() -> None:
    assert check_probability(1, name="mass", low_open=True) == 1.0
    with pytest.raises(ConfigError, match=r"^mass: must be in \(0, 1\], got 0$"):
        check_probability(0, name="mass", low_open=True)
    assert check_integer(np.int64(12), name="n", minimum=10) == 12
    for bad in (9, 2.0, True, "12"):
        with pytest.raises(ConfigError, match="^n: must be an integer >= 10, got "):
            check_integer(bad, name="n", minimum=10)
    with pytest.raises(ConfigError, match=r"^k: must be an integer in \[1, 3\], got 4$"):
        check_integer(4, name="k", minimum=1, maximum=3)


def test_bounds() -> None:
    assert check_bounds(None) is None
    assert check_bounds([0, np.inf]) == (0.0, float("inf"))
    for bad in ((1, 0), (0,), "ab", (0, float("nan")), 5):
        with pytest.raises(ConfigError, match=r"^bounds: must be a pair \(low, high\) with low <= high"):
            check_bounds(bad)


def test_an_empty_name_leaves_the_prefix_to_the_caller() -> None:
    with pytest.raises(ConfigError) as err:
        check_confidence(2.0, name="")
    assert str(err.value) == "must be in (0, 1), got 2.0"


# ------------------------------------------------- every option refused the same way


def _bad_option_calls():
    from harness.inference.gate import decide
    from harness.inference.paired import compare_models
    from harness.metrics import beyond_accuracy, calibrated_recs, calibration, calibration_stats, ranking, stats
    from harness.metrics.off_policy import IPS, OPEInputs, estimate_intervals
    from harness.metrics.ope_diagnostics import weight_diagnostics

    rng = np.random.default_rng(0)
    c, b = rng.random(30), rng.random(30)
    y, p = (rng.random(50) < 0.4).astype(float), rng.random(50)
    ope = OPEInputs(reward=np.ones(4), pscore=np.full(4, 0.5), pi_e=np.full(4, 0.5))
    per_unit = {m: pd.DataFrame({"x": v}) for m, v in (("base", b), ("cand", c))}
    qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [1, 2], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": [1, 2], "score": [0.9, 0.1]})
    hist = pd.DataFrame({"user_id": [1], "item_id": [1]})
    cats = pd.DataFrame({"item_id": [1], "category": ["a"]})
    return [
        # (call, message): confidence, in every module that takes one
        (lambda: stats.infer_paired_means(c, b, confidence=1.5), r"confidence: must be in \(0, 1\), got 1.5"),
        (lambda: stats.bootstrap_statistics([stats.mean_statistic(c)], confidence=0.0),
         r"confidence: must be in \(0, 1\), got 0.0"),
        (lambda: stats.mean_confidence_interval(c, confidence=1.0), r"confidence: must be in \(0, 1\), got 1.0"),
        (lambda: calibration_stats.ece_bootstrap(y, p, confidence=1.5), r"confidence: must be in \(0, 1\), got 1.5"),
        (lambda: calibration.wilson_interval(1, 2, confidence=-0.5), r"confidence: must be in \(0, 1\), got -0.5"),
        (lambda: calibration.CalibrationFit(1.0, 0.0, 0.1, 0.1).interval(confidence=1.5),
         r"confidence: must be in \(0, 1\), got 1.5"),
        (lambda: compare_models(per_unit, baseline="base", candidates=["cand"], metrics=["x"], confidence=2.0),
         r"compare.confidence: must be in \(0, 1\), got 2.0"),
        # unknown values of choice options
        (lambda: stats.infer_paired_means(c, b, method="anova"), "method: unknown value 'anova'; use one of"),
        (lambda: stats.bootstrap_statistics([stats.mean_statistic(c)], method="t_test"),
         "method: unknown value 't_test'; use one of bootstrap, bca"),
        (lambda: stats.infer_paired_means(c, b, weights="bayes"), "weights: unknown value 'bayes'"),
        (lambda: stats.adjust_p_values(np.array([0.1]), "bonferroni"), "correction: unknown value 'bonferroni'"),
        (lambda: stats.smallest_level(0.05, 3, "sidak"), "correction: unknown value 'sidak'"),
        (lambda: decide([], [], correction="sidak"), "correction: unknown value 'sidak'"),
        (lambda: compare_models(per_unit, baseline="base", candidates=["cand"], metrics=["x"], method="z"),
         "compare.method: unknown value 'z'"),
        (lambda: calibration.expected_calibration_error(y, p, strategy="kmeans"), "strategy: unknown value 'kmeans'"),
        (lambda: calibration.expected_calibration_error(y, p, norm="l3"), "norm: unknown value 'l3'"),
        (lambda: calibration.CalibrationFit(1.0, 0.0).interval("offset"), "which: unknown value 'offset'"),
        (lambda: calibration.evaluate_calibration(y, p, ["auc"]), "metrics: unknown value 'auc'"),
        (lambda: ranking.evaluate_ranking(qrels, run, ["ndcg@2"], ties="random"), "ties: unknown value 'random'"),
        (lambda: ranking.evaluate_ranking(qrels, run, ["ndcg@2"], gain="cubic"), "gain: unknown value 'cubic'"),
        (lambda: estimate_intervals([IPS()], ope, method="exact"), "method: unknown value 'exact'"),
        (lambda: estimate_intervals([IPS()], ope, method="bootstrap", resampling="jackknife"),
         "resampling: unknown value 'jackknife'"),
        # numbers and counts
        (lambda: stats.infer_paired_means(c, b, n_resamples=3), "n_resamples: must be an integer >= 10, got 3"),
        (lambda: calibration.log_loss(y, p, eps=0.7), r"eps: must be in \[0, 0.5\), got 0.7"),
        (lambda: calibration.expected_calibration_error(y, p, n_bins=0), "n_bins: must be an integer >= 1, got 0"),
        (lambda: estimate_intervals([IPS()], ope, alpha=1.5), r"alpha: must be in \(0, 1\), got 1.5"),
        (lambda: IPS(lambda_=-1.0), r"IPS.lambda_: must be in \[0, inf\], got -1.0"),
        (lambda: weight_diagnostics(ope.pi_e, ope.pscore, min_ess_ratio=2.0),
         r"min_ess_ratio: must be in \[0, 1\], got 2.0"),
        (lambda: calibrated_recs.calibration_kl(hist, hist, cats, alpha=2.0), r"alpha: must be in \[0, 1\], got 2.0"),
        (lambda: beyond_accuracy.novelty(np.array([[0, 1]]), np.array([1.0, 1.0]), 2, k=0),
         "k: must be an integer >= 1, got 0"),
        (lambda: stats.resamples_to_reach(1.5), r"level: must be in \(0, 1\), got 1.5"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_option_calls())))
def test_every_bad_option_is_a_config_error_in_one_style(index) -> None:
    call, message = _bad_option_calls()[index]
    with pytest.raises(ConfigError, match=f"^{message}") as err:
        call()
    assert not isinstance(err.value, DataValidationError)


def test_one_confidence_range_everywhere() -> None:
    """A level below 0.5 is a valid (if unusual) confidence level in every module."""
    from harness.inference.paired import compare_models
    from harness.metrics import calibration, stats

    rng = np.random.default_rng(1)
    c, b = rng.random(40), rng.random(40)
    (inf,), _ = stats.infer_paired_means(c, b, method="t_test", confidence=0.3)
    (wide,), _ = stats.infer_paired_means(c, b, method="t_test", confidence=0.9)
    assert wide.ci_low < inf.ci_low < inf.estimate < inf.ci_high < wide.ci_high
    lo, hi = calibration.wilson_interval(3, 10, confidence=0.3)
    assert 0 < lo < 0.3 < hi < 1
    rows = compare_models({"b": pd.DataFrame({"x": b}), "c": pd.DataFrame({"x": c})}, baseline="b",
                          candidates=["c"], metrics=["x"], method="t_test", confidence=0.3)
    assert rows[0].ci_low == pytest.approx(inf.ci_low)


def test_config_confidence_uses_the_same_validator() -> None:
    from harness.spec.config import CompareSpec, parse_config

    assert CompareSpec(baseline="a", candidates=["b"], confidence=0.3).confidence == 0.3
    with pytest.raises(ConfigError) as err:
        parse_config({"name": "x", "dataset": {"kind": "synthetic"}, "models": {"a": {"kind": "random"},
                      "b": {"kind": "random"}}, "compare": {"baseline": "a", "candidates": ["b"],
                                                            "confidence": 1.5}})
    assert "compare.confidence: must be in (0, 1), got 1.5" in str(err.value)
