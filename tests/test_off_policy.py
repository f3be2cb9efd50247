"""Off-policy estimators: OBP-formula references, hand cases, limiting identities, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.errors import ConfigError, DataValidationError
from harness.metrics.off_policy import (DM, DR, ESTIMATORS, IPS, SNDR, SNIPS, DRos, OPEInputs, SwitchDR,
                                        estimate_intervals)

# ---------------------------------------------------------------------------------------
# Plain references of OBP 0.5.7's _estimate_round_rewards on dense inputs (written from
# the formulas in obp/ope/estimators.py; loops over rows on purpose).


def _dense_case(seed: int, n: int = 300, n_actions: int = 6, len_list: int = 3):
    rng = np.random.default_rng(seed)
    action = rng.integers(0, n_actions, n)
    position = rng.integers(0, len_list, n)
    pscore = rng.uniform(0.05, 1.0, n)
    reward = rng.binomial(1, 0.4, n).astype(float)
    dist = rng.dirichlet(np.ones(n_actions), size=(n, len_list)).transpose(0, 2, 1)
    q = rng.uniform(0, 1, (n, n_actions, len_list))
    return reward, action, position, pscore, dist, q


def _ref_rounds(name, reward, action, position, pscore, dist, q, param=math.inf):
    out = np.empty(len(reward))
    w_all = np.array([dist[i, action[i], position[i]] / pscore[i] for i in range(len(reward))])
    for i in range(len(reward)):
        w = w_all[i]
        pi = dist[i, :, position[i]]
        dm = sum(pi[a] * q[i, a, position[i]] for a in range(len(pi))) / sum(pi)
        resid = reward[i] - q[i, action[i], position[i]]
        out[i] = {
            "ips": lambda: min(w, param) * reward[i],
            "snips": lambda: w * reward[i] / w_all.mean(),
            "dm": lambda: dm,
            "dr": lambda: dm + min(w, param) * resid,
            "sndr": lambda: dm + w * resid / w_all.mean(),
            "switch_dr": lambda: dm + (w if w <= param else 0.0) * resid,
            "dros": lambda: dm + (param * w / (w * w + param) if param < math.inf else w) * resid,
        }[name]()
    return out


PARAMS = {"ips": 2.0, "dr": 3.0, "switch_dr": 2.5, "dros": 1.5}


def _make(name, param=None):
    cls = ESTIMATORS[name]
    if param is None:
        return cls()
    return cls(tau=param) if name == "switch_dr" else cls(lambda_=param)


# every estimator at its defaults, and each one that has a hyperparameter with it set
CASES = [(name, None) for name in sorted(ESTIMATORS)] + sorted(PARAMS.items())


@pytest.mark.parametrize("name, param", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_matches_obp_formula_reference(name, param):
    reward, action, position, pscore, dist, q = _dense_case(seed=len(name))
    est = _make(name, param)
    data = OPEInputs.from_action_dist(reward=reward, action=action, pscore=pscore, action_dist=dist,
                                      position=position, estimated_rewards=q)
    ref = _ref_rounds(name, reward, action, position, pscore, dist, q,
                      param if param is not None else math.inf)
    if param is not None:  # the hyperparameter bites on this data: the case differs from the default one
        assert not np.allclose(ref, _ref_rounds(name, reward, action, position, pscore, dist, q))
    np.testing.assert_allclose(est.per_row_contributions(data), ref, rtol=0, atol=1e-12)
    assert est.estimate_policy_value(data) == pytest.approx(ref.mean(), abs=1e-12)
    assert est.influence_values(data).mean() == pytest.approx(ref.mean(), abs=1e-12)


def _tiny() -> OPEInputs:
    # w = [2, 0.5, 4, 0]
    return OPEInputs(reward=np.array([1.0, 0.0, 1.0, 1.0]), pscore=np.array([0.5, 0.4, 0.25, 0.5]),
                     pi_e=np.array([1.0, 0.2, 1.0, 0.0]), q_hat=np.array([0.5, 0.2, 0.6, 0.9]),
                     v_hat=np.array([0.7, 0.3, 0.6, 0.1]))


@pytest.mark.parametrize("est, expected", [
    (IPS(), (2 + 0 + 4 + 0) / 4),
    (IPS(lambda_=3.0), (2 + 0 + 3 + 0) / 4),
    (SNIPS(), 6 / 6.5),
    (DM(), (0.7 + 0.3 + 0.6 + 0.1) / 4),
    # residuals r - q_hat = [0.5, -0.2, 0.4, 0.1]; w * resid = [1, -0.1, 1.6, 0]
    (DR(), (1.7 + 2.5) / 4),
    (DR(lambda_=1.0), (1.7 + 0.5 - 0.1 + 0.4) / 4),
    (SNDR(), 1.7 / 4 + 2.5 / 6.5),
    (SwitchDR(tau=3.0), (1.7 + 1.0 - 0.1) / 4),
    # shrunk weights lambda w / (w^2 + lambda) with lambda = 1: [0.4, 0.4, 4/17, 0]
    (DRos(lambda_=1.0), (1.7 + 0.4 * 0.5 - 0.4 * 0.2 + 4 / 17 * 0.4) / 4),
])
def test_hand_computed_tiny_case(est, expected):
    assert est.estimate_policy_value(_tiny()) == pytest.approx(expected, abs=1e-12)


def _random_inputs(seed=0, n=500):
    rng = np.random.default_rng(seed)
    return OPEInputs(reward=rng.normal(size=n), pscore=rng.uniform(0.1, 1, n), pi_e=rng.uniform(0, 1, n),
                     q_hat=rng.normal(size=n), v_hat=rng.normal(size=n))


def test_limiting_identities():
    d = _random_inputs()
    dm, dr = DM().estimate_policy_value(d), DR().estimate_policy_value(d)
    assert DRos(lambda_=0.0).estimate_policy_value(d) == pytest.approx(dm, abs=1e-12)
    assert DRos().estimate_policy_value(d) == pytest.approx(dr, abs=1e-12)
    assert SwitchDR(tau=math.inf).estimate_policy_value(d) == pytest.approx(dr, abs=1e-12)
    assert SwitchDR(tau=0.0).estimate_policy_value(d) == pytest.approx(dm, abs=1e-12)
    assert DR(lambda_=0.0).estimate_policy_value(d) == pytest.approx(dm, abs=1e-12)
    assert IPS(lambda_=1e300).estimate_policy_value(d) == IPS().estimate_policy_value(d)
    # a zero reward model turns DR into IPS and SNDR into SNIPS
    zero = OPEInputs(reward=d.reward, pscore=d.pscore, pi_e=d.pi_e, q_hat=np.zeros(len(d)), v_hat=np.zeros(len(d)))
    assert DR().estimate_policy_value(zero) == pytest.approx(IPS().estimate_policy_value(zero), abs=1e-12)
    assert SNDR().estimate_policy_value(zero) == pytest.approx(SNIPS().estimate_policy_value(zero), abs=1e-12)


def test_on_policy_snips_is_the_mean_reward():
    d = _random_inputs()
    same = OPEInputs(reward=d.reward, pscore=d.pscore, pi_e=d.pscore)
    assert SNIPS().estimate_policy_value(same) == pytest.approx(d.reward.mean(), abs=1e-12)
    assert IPS().estimate_policy_value(same) == pytest.approx(d.reward.mean(), abs=1e-12)


def test_snips_is_invariant_to_scaling_pi_e_and_bounded():
    rng = np.random.default_rng(3)
    r = rng.uniform(0, 1, 200)
    pscore, pi_e = rng.uniform(0.1, 1, 200), rng.uniform(0, 0.5, 200)
    a = SNIPS().estimate_policy_value(OPEInputs(reward=r, pscore=pscore, pi_e=pi_e))
    b = SNIPS().estimate_policy_value(OPEInputs(reward=r, pscore=pscore, pi_e=2 * pi_e))
    assert a == pytest.approx(b, abs=1e-12) and r.min() <= a <= r.max()


# --- intervals ----------------------------------------------------------------------------

def test_analytic_interval_of_linear_estimator_is_the_t_free_clt():
    from scipy import stats
    d = _random_inputs(1)
    iv = IPS().estimate_interval(d, alpha=0.1)
    contrib = d.pi_e / d.pscore * d.reward
    se = stats.sem(contrib)
    z = stats.norm.ppf(0.95)
    assert iv.se == pytest.approx(se, rel=1e-12)
    assert (iv.low, iv.high) == pytest.approx((contrib.mean() - z * se, contrib.mean() + z * se), rel=1e-12)


@pytest.mark.parametrize("est", [SNIPS(), SNDR()])
def test_delta_method_se_matches_numeric_gradient(est):
    d = _random_inputs(2)
    cols = est._columns(d)
    means = cols.mean(axis=0)
    eps = 1e-6
    grad = np.array([(est._combine(means + eps * e) - est._combine(means - eps * e)) / (2 * eps)
                     for e in np.eye(len(means))])
    cov = np.cov(cols, rowvar=False, ddof=1)
    se = math.sqrt(grad @ cov @ grad / len(d))
    assert est.estimate_interval(d).se == pytest.approx(se, rel=1e-6)
    assert np.var(est.influence_values(d), ddof=1) / len(d) == pytest.approx(se**2, rel=1e-6)


@pytest.mark.parametrize("resampling", ["multinomial", "poisson"])
def test_bootstrap_matches_plain_numpy_bootstrap(resampling):
    d = _random_inputs(4, n=400)
    ours = estimate_intervals([IPS(), SNIPS()], d, method="bootstrap", n_bootstrap=4000, seed=7,
                              resampling=resampling)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(d), size=(4000, len(d)))
    w, r = d.weight[idx], d.reward[idx]
    ref_ips = np.quantile((w * r).mean(axis=1), [0.025, 0.975])
    ref_snips = np.quantile((w * r).sum(axis=1) / w.sum(axis=1), [0.025, 0.975])
    se_ips = ours["ips"].se
    # two independent bootstraps agree to Monte-Carlo error (a fraction of the se)
    assert ours["ips"].low == pytest.approx(ref_ips[0], abs=0.15 * se_ips)
    assert ours["ips"].high == pytest.approx(ref_ips[1], abs=0.15 * se_ips)
    assert ours["snips"].low == pytest.approx(ref_snips[0], abs=0.15 * ours["snips"].se)
    assert ours["snips"].high == pytest.approx(ref_snips[1], abs=0.15 * ours["snips"].se)


def test_bootstrap_is_seeded_and_shares_resamples():
    d = _random_inputs(5, n=300)
    a = estimate_intervals([IPS(), DR()], d, method="bootstrap", n_bootstrap=200, seed=3)
    b = estimate_intervals([DR(), IPS()], d, method="bootstrap", n_bootstrap=200, seed=3)
    c = estimate_intervals([IPS(), DR()], d, method="bootstrap", n_bootstrap=200, seed=4)
    assert a["ips"] == b["ips"] and a["dr"] == b["dr"]
    assert a["ips"].low != c["ips"].low
    assert IPS().estimate_interval(d, method="bootstrap", n_bootstrap=200, seed=3) == a["ips"]


# --- bad input --------------------------------------------------------------------------

GOOD = dict(reward=np.array([1.0, 0.0, 1.0]), pscore=np.array([0.5, 0.5, 0.2]), pi_e=np.array([0.1, 0.2, 0.3]))


@pytest.mark.parametrize("change, match", [
    ({"pscore": np.array([0.5, 0.0, 0.2])}, r"pscore: 1 of 3 values outside \(0, 1\]"),
    ({"pscore": np.array([0.5, 1.5, np.nan])}, r"pscore: 2 of 3 values outside"),
    ({"pi_e": np.array([0.1, -0.2, 0.3])}, r"pi_e: 1 of 3 values outside \[0, 1\]"),
    ({"pi_e": np.array([0.1, 0.2])}, r"pi_e: length 2 != 3 logged rows"),
    ({"reward": np.array([1.0, np.nan, 0.0])}, r"reward: 1 of 3 values are NaN"),
    ({"reward": np.array([], dtype=float), "pscore": np.array([]), "pi_e": np.array([])}, "no logged rows"),
    ({"reward": np.array([1.0, -1.0, 0.0]), "nonnegative_reward": True}, r"reward: 1 of 3 rewards are negative"),
    ({"q_hat": np.array([0.1, 0.2, np.inf]), "v_hat": np.zeros(3)}, r"q_hat: 1 of 3 values are NaN or infinite"),
    ({"pscore": np.array(["a", "b", "c"])}, r"pscore: expected numbers"),
])
def test_bad_inputs_are_refused_with_counts(change, match):
    with pytest.raises(DataValidationError, match=match):
        OPEInputs(**{**GOOD, **change})


def test_model_based_estimators_name_what_is_missing():
    d = OPEInputs(**GOOD)
    for est in (DM(), DR(), SNDR(), SwitchDR(), DRos()):
        with pytest.raises(DataValidationError, match=f"{est.name} needs a reward model: missing q_hat, v_hat"):
            est.estimate_policy_value(d)


def test_self_normalised_estimators_refuse_all_zero_weights():
    d = OPEInputs(reward=np.ones(3), pscore=np.full(3, 0.5), pi_e=np.zeros(3), q_hat=np.ones(3), v_hat=np.ones(3))
    for est in (SNIPS(), SNDR()):
        with pytest.raises(DataValidationError, match=f"{est.name}: pi_e is 0 on all 3 logged rows"):
            est.estimate_policy_value(d)
    assert IPS().estimate_policy_value(d) == 0.0


@pytest.mark.parametrize("make", [lambda: IPS(lambda_=-1.0), lambda: DR(lambda_=float("nan")),
                                  lambda: SwitchDR(tau=-0.5), lambda: DRos(lambda_=-2.0)])
def test_bad_hyperparameters(make):
    with pytest.raises(ConfigError, match=r"(lambda_|tau): must be in \[0, inf\], got"):
        make()


def test_bad_interval_options():
    d = OPEInputs(**GOOD)
    with pytest.raises(ConfigError, match="method: unknown value 'exact'; use one of analytic, bootstrap"):
        IPS().estimate_interval(d, method="exact")
    with pytest.raises(ConfigError, match=r"alpha: must be in \(0, 1\), got 1.5"):
        IPS().estimate_interval(d, alpha=1.5)
    with pytest.raises(ConfigError, match="resampling: unknown value 'jackknife'"):
        IPS().estimate_interval(d, method="bootstrap", resampling="jackknife")
    with pytest.raises(ConfigError, match="n_bootstrap: must be an integer >= 2, got 1"):
        IPS().estimate_interval(d, method="bootstrap", n_bootstrap=1)
    with pytest.raises(ConfigError, match=r"bounds: must be a pair \(low, high\)"):
        IPS().estimate_interval(d, bounds=(1.0, 0.0))
    with pytest.raises(DataValidationError, match="at least one estimator"):
        estimate_intervals([], d)
    with pytest.raises(DataValidationError, match=r"\['ips'\] appear more than once; give each copy its own label"):
        estimate_intervals([IPS(), IPS(lambda_=2.0)], d)


def test_labelled_copies_of_one_estimator_are_estimated_separately():
    """Two IPS with different clipping in one call: each under its label, each equal to
    its own formula mean(min(w, lambda) r)."""
    rng = np.random.default_rng(3)
    pscore = rng.uniform(0.05, 1.0, 200)
    pi_e, reward = rng.uniform(0.0, 1.0, 200), rng.binomial(1, 0.4, 200).astype(float)
    d = OPEInputs(reward=reward, pscore=pscore, pi_e=pi_e)
    out = estimate_intervals([IPS(), IPS(lambda_=2.0, label="ips_clip2")], d)
    assert list(out) == ["ips", "ips_clip2"]
    w = pi_e / pscore
    assert out["ips"].estimate == pytest.approx(float(np.mean(w * reward)), rel=1e-12)
    assert out["ips_clip2"].estimate == pytest.approx(float(np.mean(np.minimum(w, 2.0) * reward)), rel=1e-12)
    assert out["ips_clip2"].estimator == "ips_clip2"
    with pytest.raises(DataValidationError, match="at least 2 units"):
        IPS().estimate_interval(OPEInputs(reward=[1.0], pscore=[0.5], pi_e=[0.5]))


def test_action_dist_conversion_is_checked():
    reward, action, position, pscore, dist, q = _dense_case(0, n=10)
    with pytest.raises(DataValidationError, match="do not sum to 1"):
        OPEInputs.from_action_dist(reward=reward, action=action, pscore=pscore, action_dist=dist * 0.9,
                                   position=position)
    with pytest.raises(DataValidationError, match=r"position: 1 of 10 values outside \[0, 2\]"):
        OPEInputs.from_action_dist(reward=reward, action=action, pscore=pscore, action_dist=dist,
                                   position=np.r_[position[:-1], 3])
    with pytest.raises(DataValidationError, match=r"action_dist: expected shape \(n_rounds=10"):
        OPEInputs.from_action_dist(reward=reward, action=action, pscore=pscore, action_dist=dist[:5])
    with pytest.raises(DataValidationError, match="estimated_rewards: shape"):
        OPEInputs.from_action_dist(reward=reward, action=action, pscore=pscore, action_dist=dist,
                                   position=position, estimated_rewards=q[:, :2])


# --- properties ---------------------------------------------------------------------------

@st.composite
def _logged(draw):
    n = draw(st.integers(2, 40))
    unit = st.floats(0.01, 1.0)
    return OPEInputs(reward=draw(arrays(float, n, elements=st.floats(-5, 5))),
                     pscore=draw(arrays(float, n, elements=unit)),
                     pi_e=draw(arrays(float, n, elements=unit)),
                     q_hat=draw(arrays(float, n, elements=st.floats(-5, 5))),
                     v_hat=draw(arrays(float, n, elements=st.floats(-5, 5))))


@settings(max_examples=60, deadline=None)
@given(_logged(), st.floats(0.1, 10), st.floats(-3, 3))
def test_affine_reward_properties(d, scale, shift):
    shifted = OPEInputs(reward=scale * d.reward + shift, pscore=d.pscore, pi_e=d.pi_e,
                        q_hat=scale * d.q_hat + shift, v_hat=scale * d.v_hat + shift)
    # SNIPS and SNDR are equivariant to affine changes of the reward (and the model)
    for est in (SNIPS(), SNDR()):
        assert est.estimate_policy_value(shifted) == pytest.approx(
            scale * est.estimate_policy_value(d) + shift, abs=1e-8)
    # IPS is linear in the reward; SNIPS lies within the reward range
    assert IPS().estimate_policy_value(OPEInputs(reward=scale * d.reward, pscore=d.pscore, pi_e=d.pi_e)) == \
        pytest.approx(scale * IPS().estimate_policy_value(d), abs=1e-8)
    assert d.reward.min() - 1e-12 <= SNIPS().estimate_policy_value(d) <= d.reward.max() + 1e-12
    # a reward model that is exact on the logged rows leaves DR equal to DM
    exact = OPEInputs(reward=d.reward, pscore=d.pscore, pi_e=d.pi_e, q_hat=d.reward, v_hat=d.v_hat)
    assert DR().estimate_policy_value(exact) == pytest.approx(DM().estimate_policy_value(exact), abs=1e-12)
    # intervals contain their estimate, and clipping never increases IPS's |weights|
    iv = SNDR().estimate_interval(d)
    assert iv.low <= iv.estimate <= iv.high
    assert (np.abs(IPS(lambda_=1.0).per_row_contributions(d)) <= np.abs(IPS().per_row_contributions(d)) + 1e-12).all()
