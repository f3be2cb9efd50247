"""Off-policy evaluation on a large logged run: 1,000 actions x 1M logged rows, IPS, SNIPS,
DM and DR with a cross-fitted reward model; time and peak memory of each stage.

The logs are a world with known values: 10,000 users with 8 features, actions with
8-dim embeddings, ``q(x, a) = sigmoid(<u_x, v_a> - 2)``; the logging policy is a softmax
of a noisy copy of the true logits, the evaluation policy a softmax (temperature 0.5) of
another noisy copy. The reward model is a 3-fold cross-fitted logistic regression on
``[context, one-hot action]`` (``design="sparse"``: the dense one-hot design would be
1M x 1008 x 8 bytes = 8 GB); ``v_hat = sum_a pi_e(a | x) q_hat(x, a)`` is computed in
(batch x 1000) blocks under ``--max-bytes``. Before the memory fix, ``expected_reward``
built ``batch x 1000`` one-hot rows of 1008 columns: 8192 x 1000 x 1008 x 8 bytes = 66 GB
per batch.

Peak memory: ``ru_maxrss`` of the process (everything, data included) and, per stage,
``tracemalloc``'s peak of the stage's own allocations (NumPy registers with it).

    .venv/bin/python benchmarks/ope_real_logs.py [--n 1000000] [--actions 1000] [--max-bytes 268435456]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from sklearn.linear_model import LogisticRegression

from harness.datasets.bandit import LoggedFeedback
from harness.datasets.synthetic_bandit import sample_from_tables
from harness.metrics.off_policy import DM, DR, IPS, SNIPS, OPEInputs, estimate_intervals
from harness.models.policies import SoftmaxPolicy
from harness.models.reward_model import fit_reward_model

N_CONTEXTS, DIM = 10_000, 8


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@contextmanager
def stage(name: str, times: dict[str, float]) -> Iterator[None]:
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    yield
    times[name] = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    print(f"  {name:<44s} {times[name]:7.1f} s   stage peak {peak / 2**20:8.1f} MiB   "
          f"process max RSS {rss_gib():5.2f} GiB", flush=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=1000)
    parser.add_argument("--max-bytes", type=int, default=256 * 2**20)
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()
    n, A = args.n, args.actions
    times: dict[str, float] = {}
    tracemalloc.start()
    print(f"off-policy on {n:,} logged rows x {A:,} actions ({N_CONTEXTS:,} users, {DIM} features), "
          f"reward-model budget max_bytes={args.max_bytes / 2**20:.0f} MiB")

    with stage("logs generated (world tables + 1M rows)", times):
        world = np.random.default_rng(0)
        users = world.normal(size=(N_CONTEXTS, DIM))
        items = world.normal(size=(A, DIM)) / np.sqrt(DIM)
        logits = users @ items.T - 2.0
        q_true = 1.0 / (1.0 + np.exp(-logits))
        pi_b = softmax(logits + world.normal(scale=0.5, size=logits.shape))
        eval_scores = logits + world.normal(scale=0.5, size=logits.shape)
        rng = np.random.default_rng(1)
        ctx = rng.integers(0, N_CONTEXTS, n)
        action = sample_from_tables(pi_b, ctx, rng)
        reward = (rng.random(n) < q_true[ctx, action]).astype(np.float64)
        fb = LoggedFeedback(action=action, reward=reward, pscore=pi_b[ctx, action], n_actions=A,
                            context_id=ctx, context=users[ctx], nonnegative_reward=True)
        del pi_b
    policy = SoftmaxPolicy(eval_scores, temperature=0.5)
    true_value = float((softmax(eval_scores / 0.5) * q_true).sum(axis=1).mean())

    with stage("pi_e at the logged actions", times):
        pi_e = policy.action_probabilities(fb.context_id, fb.action)
    with stage(f"reward model: {args.folds}-fold logistic fit (sparse)", times):
        fit = fit_reward_model(fb, LogisticRegression(max_iter=300), n_folds=args.folds, seed=0,
                               max_bytes=args.max_bytes, design="sparse")
    with stage(f"v_hat = sum_a pi_e q_hat ({n:,} x {A:,})", times):
        v_hat = fit.expected_reward(policy)
    with stage("IPS, SNIPS, DM, DR + analytic 95% intervals", times):
        data = OPEInputs(reward=fb.reward, pscore=fb.pscore, pi_e=pi_e, q_hat=fit.q_hat, v_hat=v_hat)
        intervals = estimate_intervals([IPS(), SNIPS(), DM(), DR()], data, method="analytic")
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(f"TOTAL {sum(times.values()):.1f} s (data generation {times['logs generated (world tables + 1M rows)']:.1f} s "
          f"of it); peak RSS {rss_gib():.2f} GiB; rows per (batch x {A}) block {fit.batch_rows()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared)")
    print(f"true policy value {true_value:.5f}")
    for name, iv in intervals.items():
        print(f"  {name:6s} {iv.estimate:.5f}  [{iv.low:.5f}, {iv.high:.5f}]  "
              f"{'covers' if iv.low <= true_value <= iv.high else 'misses'} the true value")
    del traced_peak


if __name__ == "__main__":
    sys.exit(main())
