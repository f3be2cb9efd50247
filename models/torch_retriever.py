"""Exact top-k retrieval from any PyTorch module's query and item embeddings.

Scores are inner products ``q_u . v_i``. Queries are processed in batches sized so that
one batch's score block fits a memory budget; each block is reduced with
``torch.topk``. ``torch.topk`` orders equal scores arbitrarily, so the harness order
(score descending, item id ascending) is restored exactly: rows whose k-th score is
tied with an item outside the chosen set are redone with a stable sort, and every
row's top k is re-sorted by (score desc, id asc).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from harness.types import PAD_ITEM, PAD_SCORE, Ranking, adapter_call
from harness.errors import AdapterError, ConfigError, describe_examples
from harness.interrupts import interruption_point, interrupts_held
from harness.datasets.base import seen_matrix

from .safe_load import load_torch_module

DEFAULT_MEMORY_BUDGET_MB = 256
# bytes per cell of a score block: the float32 score, and as much again of slack for
# torch.topk's workspace and the allocator
_BYTES_PER_CELL = 8


def query_batch_size(n_items: int, memory_budget_mb: float) -> int:
    """Queries per batch so that a ``(batch, n_items)`` block stays within the budget."""
    if memory_budget_mb <= 0:
        raise ConfigError(f"memory_budget_mb must be > 0, got {memory_budget_mb}")
    return max(1, int(memory_budget_mb * 2**20) // (max(n_items, 1) * _BYTES_PER_CELL))


def topk_block(scores: Any, k: int) -> tuple[Any, Any]:
    """Exact top-k of a score block in the harness order.

    Parameters
    ----------
    scores : torch.Tensor of shape (n, m)
        Column j is item j; ``-inf`` marks excluded items. No NaN.
    k : int
        Items to keep per row (``min(k, m)`` are returned).

    Returns
    -------
    (values, columns) : torch.Tensor of shape (n, min(k, m))
        Sorted by value descending, ties by column ascending — the same as a full
        stable descending sort of each row cut at k.
    """
    import torch

    k_eff = min(k, scores.shape[1])
    if k_eff < scores.shape[1]:
        # one extra value shows a tie across the boundary: the (k+1)-th largest equals
        # the k-th exactly when more items reach the k-th value than are kept, and then
        # topk may have kept the wrong ones; redo those rows with a stable sort
        values, cols = torch.topk(scores, k_eff + 1, dim=1, largest=True, sorted=True)
        straddle = values[:, k_eff] == values[:, k_eff - 1] if k_eff > 0 else values[:, 0] != values[:, 0]
        values, cols = values[:, :k_eff], cols[:, :k_eff]
        if bool(straddle.any()):
            rows = straddle.nonzero().squeeze(1)
            v, c = torch.sort(scores[rows], dim=1, descending=True, stable=True)
            values[rows], cols[rows] = v[:, :k_eff], c[:, :k_eff]
    else:
        values, cols = torch.topk(scores, k_eff, dim=1, largest=True, sorted=True)
    # within the kept set: column ascending, then a stable sort by value descending
    by_col = torch.argsort(cols, dim=1)
    cols, values = cols.gather(1, by_col), values.gather(1, by_col)
    by_val = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_val), cols.gather(1, by_val)


class TorchRetriever:
    """Exact top-k retriever over the embeddings of an ``nn.Module``.

    Parameters
    ----------
    module : torch.nn.Module, optional
        Has a method returning query embeddings for a LongTensor of query ids and one
        returning item embeddings for a LongTensor of item ids (``(n, d)`` each).
    checkpoint : str or Path, optional
        Instead of ``module``: a TorchScript archive, a state dict (with
        ``module_class``), a harness checkpoint (``BPRMF.save``), or -- with ``trusted`` --
        a module saved whole with ``torch.save(module)`` (see ``harness.models.safe_load``).
    trusted : bool, default False
        Allow a checkpoint that is a pickled module (loading it runs code from the file).
    module_class : str, optional
        ``"package.module:ClassName"`` of the ``nn.Module`` a state-dict checkpoint fills.
    module_kwargs : dict, optional
        Its constructor arguments.
    query_method, item_method : str
        Names of those two methods.
    exclude_seen : bool, default True
        Leave out items the user interacted with in the training data given to ``fit``.
    memory_budget_mb : float, default 256
        Bound on one batch's score block (float32 scores plus workspace).
    device : str, default "cpu"
        Torch device for the matrix products and top-k (e.g. ``"cuda"``).
    name : str, optional
        Used in error messages.

    Notes
    -----
    ``score(u, i) = <query_emb(u), item_emb(i)>``; top-k by ``torch.topk`` per batch with
    ties resolved exactly (see :func:`topk_block`). The module runs in eval mode under
    ``torch.no_grad()``.
    """

    def __init__(self, module: Any = None, *, checkpoint: str | Path | None = None,
                 query_method: str = "query_embeddings", item_method: str = "item_embeddings",
                 exclude_seen: bool = True, memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                 device: str = "cpu", name: str | None = None, trusted: bool = False,
                 module_class: str | None = None, module_kwargs: dict[str, Any] | None = None) -> None:
        if (module is None) == (checkpoint is None):
            raise ConfigError("torch_retriever: give exactly one of module and checkpoint")
        self.module = module if module is not None else load_torch_module(
            checkpoint, trusted=trusted, module_class=module_class, module_kwargs=module_kwargs)  # type: ignore[arg-type]
        for method in (query_method, item_method):
            if not callable(getattr(self.module, method, None)):
                raise ConfigError(f"torch_retriever: the module ({type(self.module).__name__}) has no "
                                  f"method {method!r}")
        query_batch_size(1, memory_budget_mb)
        self.query_method, self.item_method = query_method, item_method
        self.exclude_seen = exclude_seen
        self.memory_budget_mb = memory_budget_mb
        self.device = device
        self.name = name or (f"TorchRetriever({str(checkpoint)!r})" if checkpoint else
                             f"TorchRetriever({type(self.module).__name__})")
        self._items: Any = None
        self._seen: sp.csr_matrix | None = None
        self.n_items = 0

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "TorchRetriever":
        """Compute the item embeddings once and remember seen items; the module is not trained."""
        self.n_items = n_items
        self._seen = seen_matrix(train, n_users, n_items) if self.exclude_seen else None
        self._items = None
        with interrupts_held():  # Ctrl-C after the item embeddings, never inside PyTorch
            self.item_embeddings()
        return self

    def _call(self, method: str, ids: np.ndarray, what: str) -> Any:
        import torch

        self.module.eval()
        # ids go where the module's weights are (a module moved to a GPU stays there)
        weights = next(iter(self.module.parameters()), None) if hasattr(self.module, "parameters") else None
        where = weights.device if weights is not None else "cpu"
        with adapter_call(self.name, method, where=f"for {what}"), torch.no_grad():
            out = getattr(self.module, method)(torch.as_tensor(ids, dtype=torch.long, device=where))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(ids):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise AdapterError(f"{self.name}: {method}() must return a ({len(ids)}, d) tensor for {what}, "
                               f"got {shape}")
        if not out.is_floating_point():
            raise AdapterError(f"{self.name}: {method}() returned dtype {out.dtype} for {what}; need floats")
        bad = ~torch.isfinite(out).all(dim=1)
        if bool(bad.any()):
            raise AdapterError(f"{self.name}: {method}() returned NaN or infinite values for "
                               f"{int(bad.sum())} rows of {what} (e.g. id {int(ids[int(bad.nonzero()[0, 0])])})")
        return out.to(device=self.device, dtype=torch.float32)

    def item_embeddings(self) -> Any:
        """The ``(n_items, d)`` item embedding matrix on ``device`` (computed once)."""
        if self.n_items < 1:
            raise AdapterError(f"{self.name}: call fit() before retrieve()")
        if self._items is None:
            self._items = self._call(self.item_method, np.arange(self.n_items), "all items")
        return self._items

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        query_ids = np.asarray(query_ids, dtype=np.int64)
        items = self.item_embeddings()
        if self._seen is not None:
            unknown = (query_ids < 0) | (query_ids >= self._seen.shape[0])
            if unknown.any():
                raise AdapterError(f"{self.name}: {int(unknown.sum())} query ids outside the training users "
                                   f"0..{self._seen.shape[0] - 1} ({describe_examples(query_ids[unknown])})")
        batch = query_batch_size(self.n_items, self.memory_budget_mb)
        k_eff = min(k, self.n_items)
        out_items = np.empty((len(query_ids), k_eff), dtype=np.int64)
        out_scores = np.empty((len(query_ids), k_eff))
        with interrupts_held():  # Ctrl-C is raised between batches, never inside PyTorch
            for b, start in enumerate(range(0, len(query_ids), batch)):
                interruption_point()
                self._retrieve_batch(query_ids[start : start + batch], start, b, items, k_eff,
                                     out_items, out_scores)
        return Ranking(query_ids, out_items, out_scores).padded(k)

    def _retrieve_batch(self, q: np.ndarray, start: int, b: int, items: Any, k_eff: int,
                        out_items: np.ndarray, out_scores: np.ndarray) -> None:
        """Score one batch of queries against every item and write its top ``k_eff`` rows."""
        import torch

        where = f"batch {b} (queries {start}..{start + len(q) - 1})"
        emb = self._call(self.query_method, q, where)
        if emb.shape[1] != items.shape[1]:
            raise AdapterError(f"{self.name}: query embeddings have dimension {emb.shape[1]} but item "
                               f"embeddings {items.shape[1]} ({where})")
        with torch.no_grad():
            scores = emb @ items.T
            if self._seen is not None:
                rows, cols = self._seen[q].nonzero()
                scores[torch.as_tensor(rows, device=self.device),
                       torch.as_tensor(cols, device=self.device)] = float("-inf")
            values, cols_t = topk_block(scores, k_eff)
        values_np = values.double().cpu().numpy()
        if np.isposinf(values_np).any():
            raise AdapterError(f"{self.name}: scores overflow to +inf in {where}")
        real = np.isfinite(values_np)
        out_items[start : start + len(q)] = np.where(real, cols_t.cpu().numpy(), PAD_ITEM)
        out_scores[start : start + len(q)] = np.where(real, values_np, PAD_SCORE)
