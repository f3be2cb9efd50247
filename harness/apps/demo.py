"""The example evaluation behind ``harness demo`` and ``make demo``."""

from __future__ import annotations

from pathlib import Path

DEMO_CONFIG = """\
# Example evaluation on the built-in synthetic world (see README for every key).
name: harness-demo                 # MLflow experiment name
seed: 42
dataset:
  kind: synthetic                  # latent-factor world with exact graded relevance
  n_users: 2000
  n_items: 1000
models:
  random:     {kind: random}
  popularity: {kind: popularity}   # the production baseline in this story
  candidate:                       # matrix factorisation trained with BPR (PyTorch), seeded
    kind: bpr_mf
    params: {dim: 16, n_epochs: 40}
evaluate:
  ranking: {metrics: ["ndcg@[10,20]", "recall@[20,100]", "map@100", "mrr@10"], ties: stable}
compare:
  baseline: popularity
  candidates: [candidate]
  method: bootstrap
  n_resamples: 2000
  correction: holm
gate:
  - {metric: ndcg@10,    role: primary,   direction: higher, min_improvement: 0.0}
  - {metric: recall@100, role: guardrail, direction: higher, max_regression: 0.01}
  - {metric: mrr@10,     role: guardrail, direction: higher, max_regression: 0.05, relative: true}
tracking:
  uri: null                        # the harness's store (`harness store`: $HARNESS_HOME/mlflow.db)
output: {output}
"""


def write_demo_config(directory: str | Path) -> Path:
    """Write ``demo.yaml`` into ``directory`` (results go to ``directory/results``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "demo.yaml"
    path.write_text(DEMO_CONFIG.replace("{output}", str(directory / "results")))
    return path
