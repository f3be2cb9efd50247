"""Speed and peak memory of off-policy estimation at 10M logged rows (80 actions, 3 positions).

Times, on sparse inputs: building ``OPEInputs`` (validation), IPS, SNIPS, DM and DR with
analytic intervals, and one shared 1000-sample bootstrap of all four (Poisson and, with
``--multinomial``, classic resampling); separately, the batched computation of
``pi_e[n]`` and ``v_hat[n]`` from an epsilon-greedy policy. Then OBP 0.5.7 (dense
``action_dist``, in its throwaway venv, see ope_parity.py) at the sizes it can hold.

    .venv/bin/python benchmarks/ope_speed.py [--n 10000000] [--obp-sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numba
import numpy as np

from harness.metrics.off_policy import DM, DR, IPS, SNIPS, OPEInputs, estimate_intervals
from harness.models.policies import EpsilonGreedyPolicy

N_ACTIONS, LEN_LIST, N_CONTEXTS = 80, 3, 10_000


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def logged_rows(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A uniform-random logging policy's rows, as in the Open Bandit Dataset's 'random'."""
    rng = np.random.default_rng(seed)
    return dict(context=rng.integers(0, N_CONTEXTS, n), action=rng.integers(0, N_ACTIONS, n),
                position=rng.integers(0, LEN_LIST, n).astype(np.int64),
                reward=(rng.random(n) < 0.05).astype(np.float64), pscore=np.full(n, 1.0 / N_ACTIONS))


def run_ours(n: int, n_boot: int, multinomial: bool) -> None:
    t0 = time.perf_counter()
    rows = logged_rows(n)
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(N_CONTEXTS, N_ACTIONS))
    q_table = 1 / (1 + np.exp(-rng.normal(-3, 1, size=(N_CONTEXTS, N_ACTIONS, LEN_LIST))))
    print(f"data: {n:,} rows generated in {time.perf_counter() - t0:.1f} s")

    policy = EpsilonGreedyPolicy(scores, epsilon=0.1, len_list=LEN_LIST)
    t0 = time.perf_counter()
    pi_e = policy.action_probabilities(rows["context"], rows["action"], rows["position"])
    v_hat = policy.expected_reward(rows["context"], q_table, rows["position"])
    q_hat = q_table[rows["context"], rows["action"], rows["position"]]
    t_sparse = time.perf_counter() - t0
    print(f"sparse policy inputs pi_e[n], v_hat[n] (epsilon-greedy over a {N_CONTEXTS:,} x 80 x 3 table): "
          f"{t_sparse:.1f} s")

    estimators = [IPS(), SNIPS(), DM(), DR()]
    t0 = time.perf_counter()
    data = OPEInputs(reward=rows["reward"], pscore=rows["pscore"], pi_e=pi_e, q_hat=q_hat, v_hat=v_hat)
    t_validate = time.perf_counter() - t0
    t0 = time.perf_counter()
    analytic = estimate_intervals(estimators, data, method="analytic")
    t_analytic = time.perf_counter() - t0
    estimate_intervals(estimators, OPEInputs(reward=rows["reward"][:1000], pscore=rows["pscore"][:1000],
                                             pi_e=pi_e[:1000], q_hat=q_hat[:1000], v_hat=v_hat[:1000]),
                       method="bootstrap", n_bootstrap=10, resampling="poisson")  # numba compile
    t0, c0 = time.perf_counter(), time.process_time()
    boot = estimate_intervals(estimators, data, method="bootstrap", n_bootstrap=n_boot, seed=0,
                              resampling="poisson")
    t_boot, c_boot = time.perf_counter() - t0, time.process_time() - c0
    total = t_validate + t_analytic + t_boot
    print(f"validation {t_validate:.2f} s | 4 estimators + analytic intervals {t_analytic:.2f} s | "
          f"{n_boot}-sample Poisson bootstrap of all 4 {t_boot:.1f} s "
          f"({c_boot:.1f} CPU-s on {numba.get_num_threads()} threads)")
    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)")
    print(f"TOTAL estimation {total:.1f} s (target < 60 s); with the sparse inputs {total + t_sparse:.1f} s; "
          f"peak RSS {peak_gib():.2f} GiB (target < 8 GiB)")
    for name in analytic:
        a, b = analytic[name], boot[name]
        print(f"  {name:6s} {a.estimate:.6f}  analytic [{a.low:.6f}, {a.high:.6f}]  "
              f"bootstrap [{b.low:.6f}, {b.high:.6f}]")
    if multinomial:
        t0 = time.perf_counter()
        estimate_intervals(estimators, data, method="bootstrap", n_bootstrap=n_boot, seed=0)
        print(f"{n_boot}-sample multinomial bootstrap of all 4: {time.perf_counter() - t0:.1f} s")


OBP_SCRIPT = textwrap.dedent("""
    import resource, sys, time
    import numpy as np
    import obp.ope as ope
    n, n_boot = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    A, L = 80, 3
    action, position = rng.integers(0, A, n), rng.integers(0, L, n)
    reward, pscore = (rng.random(n) < 0.05).astype(float), np.full(n, 1 / A)
    t0 = time.perf_counter()
    dist = np.full((n, A, L), 0.1 / A)
    best = rng.integers(0, A, (n, L))
    for p in range(L):
        dist[np.arange(n), best[:, p], p] += 0.9
    q = rng.random((n, A, L))
    t_build = time.perf_counter() - t0
    kw = dict(reward=reward, action=action, position=position, pscore=pscore, action_dist=dist,
              estimated_rewards_by_reg_model=q)
    t0 = time.perf_counter()
    for est in (ope.InverseProbabilityWeighting(), ope.SelfNormalizedInverseProbabilityWeighting(),
                ope.DirectMethod(), ope.DoublyRobust()):
        est.estimate_policy_value(**kw)
    t_point = time.perf_counter() - t0
    t0 = time.perf_counter()
    for est in (ope.InverseProbabilityWeighting(), ope.SelfNormalizedInverseProbabilityWeighting(),
                ope.DirectMethod(), ope.DoublyRobust()):
        est.estimate_interval(**kw, n_bootstrap_samples=n_boot, random_state=0)
    t_boot = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{n} {t_build:.2f} {t_point:.2f} {t_boot:.2f} {peak:.2f}")
""")


def run_obp(sizes: list[int], n_boot: int, venv: Path) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"OBP: no venv at {venv} (build it with benchmarks/ope_parity.py)")
        return
    print(f"OBP 0.5.7 (dense action_dist[n, 80, 3] + estimated rewards, {n_boot}-sample bootstrap each):")
    for n in sizes:
        proc = subprocess.run([python, "-c", OBP_SCRIPT, str(n), str(n_boot)], capture_output=True, text=True)
        if proc.returncode:
            print(f"  n={n:,}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode})")
            break
        _, build, point, boot, peak = proc.stdout.split()
        print(f"  n={n:,}: dense inputs {build} s | 4 point estimates {point} s | 4 bootstrap intervals "
              f"{boot} s | total {float(point) + float(boot):.1f} s | peak RSS {peak} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--multinomial", action="store_true", help="also time classic resampling")
    parser.add_argument("--obp-sizes", default="100000,1000000")
    parser.add_argument("--obp-venv", type=Path, default=Path("/tmp/obp-venv"))
    args = parser.parse_args()
    run_ours(args.n, args.n_bootstrap, args.multinomial)
    sizes = [int(s) for s in args.obp_sizes.split(",") if s]
    if sizes:
        run_obp(sizes, args.n_bootstrap, args.obp_venv)


if __name__ == "__main__":
    sys.exit(main())
