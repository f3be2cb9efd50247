"""Parity of harness.metrics off-policy estimators with Open Bandit Pipeline 0.5.7.

OBP needs the pre-2.0 NumPy stack, so it runs in a throwaway venv (built on demand per
../shared/PEERS.md) in a subprocess; inputs and outputs travel as .npz files. Prints
the max abs difference of every estimate and of the per-row round rewards, and compares
the Open Bandit Dataset loader with OBP's on the sample OBP ships.

    .venv/bin/python benchmarks/ope_parity.py [--obp-venv /tmp/obp-venv] [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

from harness.datasets.bandit import load_open_bandit_dataset
from harness.metrics.off_policy import DM, DR, IPS, SNDR, SNIPS, DRos, OPEInputs, SwitchDR
from harness.metrics.slate import (SlateIndependentIPS, SlateInputs, SlateRewardInteractionIPS,
                                   SlateStandardIPS, slate_pscores)

OBP_PINS = ["numpy<2", "pandas==1.5.3", "scikit-learn==1.3.2", "scipy==1.11.4", "torch==2.13.0",
            "matplotlib", "seaborn", "tqdm", "pyyaml", "pyarrow"]

# name -> (ours, OBP class, OBP hyperparameters)
CASES = {
    "ipw": (IPS(), "InverseProbabilityWeighting", {}),
    "ipw_clip5": (IPS(lambda_=5.0), "InverseProbabilityWeighting", {"lambda_": 5.0}),
    "snipw": (SNIPS(), "SelfNormalizedInverseProbabilityWeighting", {}),
    "dm": (DM(), "DirectMethod", {}),
    "dr": (DR(), "DoublyRobust", {}),
    "dr_clip5": (DR(lambda_=5.0), "DoublyRobust", {"lambda_": 5.0}),
    "sndr": (SNDR(), "SelfNormalizedDoublyRobust", {}),
    "switch_dr_tau3": (SwitchDR(tau=3.0), "SwitchDoublyRobust", {"lambda_": 3.0}),
    "dros_lambda0": (DRos(lambda_=0.0), "DoublyRobustWithShrinkage", {"lambda_": 0.0}),
    "dros_lambda10": (DRos(lambda_=10.0), "DoublyRobustWithShrinkage", {"lambda_": 10.0}),
}
SLATES = {"sips": (SlateStandardIPS(), "SlateStandardIPS", "joint"),
          "iips": (SlateIndependentIPS(), "SlateIndependentIPS", "marginal"),
          "rips": (SlateRewardInteractionIPS(), "SlateRewardInteractionIPS", "cascade")}

OBP_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import obp.ope as ope
    from obp.dataset import OpenBanditDataset
    d = dict(np.load(sys.argv[1]))
    cases = json.loads(sys.argv[3])
    slates = json.loads(sys.argv[4])
    out = {}
    for name, (cls, params) in cases.items():
        est = getattr(ope, cls)(**params)
        kw = dict(reward=d["reward"], action=d["action"], position=d["position"], pscore=d["pscore"],
                  action_dist=d["action_dist"], estimated_rewards_by_reg_model=d["q"])
        out[name] = est.estimate_policy_value(**kw)
        out[name + "_rounds"] = est._estimate_round_rewards(**kw)
    for name, (cls, kind) in slates.items():
        est = getattr(ope, cls)(len_list=3)
        arg = {"joint": ("pscore", "evaluation_policy_pscore"),
               "marginal": ("pscore_item_position", "evaluation_policy_pscore_item_position"),
               "cascade": ("pscore_cascade", "evaluation_policy_pscore_cascade")}[kind]
        out[name] = est.estimate_policy_value(slate_id=d["slate_id"], reward=d["slate_reward"],
                                              position=d["slate_position"], **{arg[0]: d["b_" + kind],
                                              arg[1]: d["e_" + kind]})
    obd = OpenBanditDataset(behavior_policy="random", campaign="all")
    for key in ("action", "position", "reward", "pscore", "context", "action_context"):
        out["obd_" + key] = np.asarray(getattr(obd, key), dtype=float)
    out["obd_path"] = np.array(str(obd.data_path.parent.parent))
    np.savez(sys.argv[2], **out)
""")


def ensure_obp(venv: Path) -> Path:
    """The venv's python, after building it when it does not import obp yet."""
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([python, "-c", "import obp.ope"], capture_output=True).returncode == 0:
        return python
    print(f"building OBP 0.5.7 venv in {venv} (a few minutes)", file=sys.stderr)
    # the system python3 (3.11): the project venv's would inherit its NumPy 2 stack
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *OBP_PINS], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--ignore-requires-python", "obp==0.5.7"],
                   check=True)
    return python


def make_inputs(n: int, n_actions: int, len_list: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dist = rng.dirichlet(np.full(n_actions, 0.3), size=(n, len_list)).transpose(0, 2, 1)
    dist = np.maximum(dist, 1e-6)
    dist /= dist.sum(axis=1, keepdims=True)
    # slates: n // 10 slates of len_list slots with sequential conditionals
    n_slates = n // 10
    cond_b, cond_e = rng.uniform(0.05, 1, (2, n_slates * len_list))
    slate_id, slate_pos = np.repeat(np.arange(n_slates), len_list), np.tile(np.arange(len_list), n_slates)
    b_casc, b_joint = slate_pscores(slate_id, slate_pos, cond_b)
    e_casc, e_joint = slate_pscores(slate_id, slate_pos, cond_e)
    return dict(
        reward=rng.binomial(1, 0.3, n).astype(float), action=rng.integers(0, n_actions, n),
        position=rng.integers(0, len_list, n), pscore=rng.uniform(0.01, 1, n), action_dist=dist,
        q=rng.uniform(0, 1, (n, n_actions, len_list)), slate_id=slate_id, slate_position=slate_pos,
        slate_reward=rng.binomial(1, 0.3, n_slates * len_list).astype(float),
        b_joint=b_joint, e_joint=e_joint, b_cascade=b_casc, e_cascade=e_casc,
        b_marginal=rng.uniform(0.05, 1, n_slates * len_list), e_marginal=rng.uniform(0, 1, n_slates * len_list),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--obp-venv", type=Path, default=Path("/tmp/obp-venv"))
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    python = ensure_obp(args.obp_venv)
    d = make_inputs(args.n, 80, 3, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **d)
        cases = {k: (cls, params) for k, (_, cls, params) in CASES.items()}
        slates = {k: (cls, kind) for k, (_, cls, kind) in SLATES.items()}
        proc = subprocess.run([python, "-c", OBP_SCRIPT, src, dst, json.dumps(cases), json.dumps(slates)],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"OBP run failed:\n{proc.stderr[-3000:]}")
        obp = dict(np.load(dst))
    data = OPEInputs.from_action_dist(reward=d["reward"], action=d["action"], pscore=d["pscore"],
                                      action_dist=d["action_dist"], position=d["position"], estimated_rewards=d["q"])
    print(f"OBP 0.5.7 parity on {args.n} rows, 80 actions, 3 positions (max abs difference)")
    worst = 0.0
    for name, (est, _, _) in CASES.items():
        diff_v = abs(est.estimate_policy_value(data) - float(obp[name]))
        diff_r = float(np.max(np.abs(est.per_row_contributions(data) - obp[name + "_rounds"])))
        worst = max(worst, diff_v, diff_r)
        print(f"  {name:16s} value {float(obp[name]):+.6f}  |diff| {diff_v:.2e}  per-row max |diff| {diff_r:.2e}")
    for name, (est, _, kind) in SLATES.items():
        sd = SlateInputs(slate_id=d["slate_id"], position=d["slate_position"], reward=d["slate_reward"],
                         pscore=d["b_" + kind], pi_e=d["e_" + kind], len_list=3)
        diff_v = abs(est.estimate_policy_value(sd) - float(obp[name]))
        worst = max(worst, diff_v)
        print(f"  {name:16s} value {float(obp[name]):+.6f}  |diff| {diff_v:.2e}")
    fb = load_open_bandit_dataset(str(obp["obd_path"]), behavior_policy="random", campaign="all")
    print("Open Bandit Dataset sample (random/all) loader vs OBP's OpenBanditDataset:")
    for key in ("action", "position", "reward", "pscore", "context", "action_context"):
        ours = np.asarray(getattr(fb, key), dtype=float)
        same_shape = ours.shape == obp["obd_" + key].shape
        diff = float(np.max(np.abs(ours - obp["obd_" + key]))) if same_shape else float("nan")
        print(f"  {key:15s} shape {ours.shape} {'==' if same_shape else '!='} OBP's, max |diff| {diff:.2e}")
    print(f"worst estimator difference: {worst:.2e} (target <= 1e-9): {'OK' if worst <= 1e-9 else 'FAIL'}")


if __name__ == "__main__":
    main()
