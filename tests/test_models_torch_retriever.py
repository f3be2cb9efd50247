"""TorchRetriever: batched exact top-k against a slow brute force, ties included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from harness.types import Ranking
from harness.errors import AdapterError, ConfigError
from harness.models.torch_retriever import TorchRetriever, query_batch_size, topk_block


class Table(nn.Module):
    """Fixed embedding tables; records the mode it was called in."""

    def __init__(self, Q: np.ndarray, V: np.ndarray) -> None:
        super().__init__()
        self.Q = nn.Parameter(torch.as_tensor(Q, dtype=torch.float32))
        self.V = nn.Parameter(torch.as_tensor(V, dtype=torch.float32))
        self.drop = nn.Dropout(0.5)
        self.calls: list[tuple[bool, bool]] = []

    def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.drop(self.Q[ids])

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.drop(self.V[ids])


def brute_force(Q: np.ndarray, V: np.ndarray, query_ids: np.ndarray, k: int,
                seen: set[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference: every item scored, sorted by (score desc, id asc), one query at a time."""
    items = np.full((len(query_ids), k), -1)
    scores = np.full((len(query_ids), k), -np.inf)
    for r, q in enumerate(query_ids):
        cands = [(-float(np.dot(Q[q], V[i])), i) for i in range(len(V)) if (q, i) not in seen]
        for c, (neg, i) in enumerate(sorted(cands)[:k]):
            items[r, c], scores[r, c] = i, -neg
    return items, scores


def small_int_world(seed: int, n_users: int = 40, n_items: int = 30, dim: int = 3):
    rng = np.random.default_rng(seed)
    # small integer embeddings: exact float32 products and many tied scores
    Q = rng.integers(-2, 3, (n_users, dim)).astype(np.float64)
    V = rng.integers(-2, 3, (n_items, dim)).astype(np.float64)
    u = rng.integers(0, n_users, 300)
    i = rng.integers(0, n_items, 300)
    train = pd.DataFrame({"user_id": u, "item_id": i}).drop_duplicates()
    return Q, V, train


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 29, 30, 45])
@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("budget_mb", [1e-4, 256])  # one query per batch, or all at once
def test_batched_topk_equals_brute_force_with_ties(seed: int, k: int, exclude_seen: bool, budget_mb: float) -> None:
    Q, V, train = small_int_world(seed)
    model = TorchRetriever(Table(Q, V), exclude_seen=exclude_seen, memory_budget_mb=budget_mb)
    model.fit(train, n_users=len(Q), n_items=len(V))
    queries = np.arange(len(Q))[::-1].copy()  # any order of queries
    out = model.retrieve(queries, k)
    seen = set(zip(train["user_id"], train["item_id"])) if exclude_seen else set()
    items, scores = brute_force(Q, V, queries, k, seen)
    np.testing.assert_array_equal(out.items, items)
    np.testing.assert_array_equal(out.scores, scores)
    np.testing.assert_array_equal(out.query_ids, queries)


def test_topk_block_equals_stable_sort_on_heavy_ties() -> None:
    rng = np.random.default_rng(5)
    s = rng.integers(0, 3, (500, 64)).astype(np.float32)
    s[rng.random(s.shape) < 0.2] = -np.inf
    for k in (1, 7, 63, 64):
        values, cols = topk_block(torch.from_numpy(s), k)
        ref = np.argsort(-s, axis=1, kind="stable")[:, :k]  # numpy stable: ties by column asc
        np.testing.assert_array_equal(cols.numpy(), ref)
        np.testing.assert_array_equal(values.numpy(), np.take_along_axis(s, ref, axis=1))


def test_memory_budget_sets_the_query_batch() -> None:
    assert query_batch_size(100_000, 256) == 256 * 2**20 // (100_000 * 8)
    assert query_batch_size(10**9, 1) == 1
    with pytest.raises(ConfigError, match="memory_budget_mb"):
        query_batch_size(10, 0)


def test_eval_mode_no_grad_and_determinism() -> None:
    Q, V, train = small_int_world(3)
    module = Table(Q, V)
    module.train()
    model = TorchRetriever(module).fit(train, n_users=len(Q), n_items=len(V))
    a = model.retrieve(np.arange(len(Q)), 10)
    b = model.retrieve(np.arange(len(Q)), 10)  # dropout would change b if train mode leaked
    np.testing.assert_array_equal(a.items, b.items)
    assert module.calls and all(c == (False, False) for c in module.calls)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_checkpoint_round_trip_pickled_and_torchscript(tmp_path: Path) -> None:
    Q, V, train = small_int_world(4)
    direct = TorchRetriever(Table(Q, V)).fit(train, n_users=len(Q), n_items=len(V))
    expected = direct.retrieve(np.arange(len(Q)), 8)
    torch.save(Table(Q, V), tmp_path / "m.pt")

    class Scripted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.Q = torch.as_tensor(Q, dtype=torch.float32)
            self.V = torch.as_tensor(V, dtype=torch.float32)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.Q[ids]

        @torch.jit.export
        def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
            return self.Q[ids]

        @torch.jit.export
        def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
            return self.V[ids]

    torch.jit.save(torch.jit.script(Scripted()), str(tmp_path / "m.ts"))
    for name in ("m.pt", "m.ts"):
        # m.pt is a whole pickled module: loaded only when trusted (harness.models.safe_load)
        loaded = TorchRetriever(checkpoint=tmp_path / name, trusted=name == "m.pt").fit(train, n_users=len(Q),
                                                                                      n_items=len(V))
        got = loaded.retrieve(np.arange(len(Q)), 8)
        np.testing.assert_array_equal(got.items, expected.items)
        np.testing.assert_array_equal(got.scores, expected.scores)


class Broken(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        out = torch.ones(len(ids), 4)
        if self.kind == "nan":
            out[ids == 7] = float("nan")
        if self.kind == "shape":
            return torch.ones(len(ids) + 1, 4)
        if self.kind == "dim":
            return torch.ones(len(ids), 3)
        if self.kind == "raise":
            raise RuntimeError("tower exploded")
        return out

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(ids), 4)


@pytest.mark.parametrize("kind, match", [
    ("nan", r"Broken.*NaN or infinite values for 1 rows of batch 0 \(queries 0\..*e\.g\. id 7"),
    ("shape", r"must return a \(10, d\) tensor for batch 0"),
    ("dim", r"dimension 3 but item embeddings 4"),
    ("raise", r"model 'TorchRetriever\(Broken\)' raised RuntimeError in query_embeddings\(\) for batch 0 "
              r"\(queries 0\.\.9\): tower exploded"),
])
def test_bad_module_outputs_are_adapter_errors(kind: str, match: str) -> None:
    train = pd.DataFrame({"user_id": [0], "item_id": [0]})
    model = TorchRetriever(Broken(kind)).fit(train, n_users=10, n_items=5)
    with pytest.raises(AdapterError, match=match):
        model.retrieve(np.arange(10), 3)


def test_bad_construction_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of module and checkpoint"):
        TorchRetriever()
    with pytest.raises(ConfigError, match="has no method 'user_vectors'"):
        TorchRetriever(Broken("ok"), query_method="user_vectors")
    with pytest.raises(ConfigError, match="checkpoint not found"):
        TorchRetriever(checkpoint=tmp_path / "missing.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "state.pt")
    with pytest.raises(ConfigError, match="not an nn.Module"):
        TorchRetriever(checkpoint=tmp_path / "state.pt")
    with pytest.raises(AdapterError, match="call fit"):
        TorchRetriever(Broken("ok")).retrieve(np.arange(3), 2)


def test_result_is_a_valid_ranking_with_padding() -> None:
    Q, V, _ = small_int_world(6, n_items=5)
    train = pd.DataFrame({"user_id": [0, 0, 0], "item_id": [0, 1, 2]})
    out = TorchRetriever(Table(Q, V)).fit(train, n_users=len(Q), n_items=5).retrieve(np.array([0, 1]), 4)
    assert isinstance(out, Ranking)
    assert (out.items[0, 2:] == -1).all() and np.isneginf(out.scores[0, 2:]).all()
    assert set(out.items[0, :2]) == {3, 4}
    assert (out.items[1] != -1).all()


def test_unknown_query_ids_are_named() -> None:
    Q, V, train = small_int_world(7)
    model = TorchRetriever(Table(Q, V)).fit(train, n_users=len(Q), n_items=len(V))
    with pytest.raises(AdapterError, match=r"2 query ids outside the training users 0\.\.39 \(e\.g\. 40, -1\)"):
        model.retrieve(np.array([0, 40, -1]), 3)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 12)),
              elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0])),
       st.integers(1, 14))
def test_topk_block_property_equals_stable_sort(s: np.ndarray, k: int) -> None:
    values, cols = topk_block(torch.from_numpy(s.copy()), k)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(cols.numpy(), ref)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(s, ref, axis=1))
