"""Small shared pieces for training the PyTorch baselines: data, negatives, seeding."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples
from harness.interrupts import interruption_point, interrupts_held


def positive_pairs(train: pd.DataFrame, n_users: int, n_items: int, *, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) training pairs as int64 arrays, ids checked against the id spaces."""
    for col in ("user_id", "item_id"):
        if col not in train.columns:
            raise DataValidationError(f"{source}: train is missing column {col!r}; has {list(train.columns)}")
    if len(train) == 0:
        raise DataValidationError(f"{source}: train is empty (0 rows)")
    u = train["user_id"].to_numpy().astype(np.int64)
    i = train["item_id"].to_numpy().astype(np.int64)
    for name, ids, n in (("user_id", u, n_users), ("item_id", i, n_items)):
        bad = (ids < 0) | (ids >= n)
        if bad.any():
            raise DataValidationError(f"{source}: {int(bad.sum())} train rows have {name} outside "
                                      f"0..{n - 1} ({describe_examples(ids[bad])})")
    keys = np.unique(u * n_items + i)
    return keys // n_items, keys % n_items


def sample_negatives(rng: np.random.Generator, users: np.ndarray, n_items: int, seen_keys: np.ndarray,
                     *, tries: int = 5) -> np.ndarray:
    """One uniform item per user that the user did not interact with (re-drawn on a hit).

    ``seen_keys`` are the sorted ``user * n_items + item`` keys of the training pairs; a
    user who has seen nearly everything may keep a seen item after ``tries`` re-draws.
    """
    neg = rng.integers(0, n_items, size=len(users))
    for _ in range(tries):
        keys = users * n_items + neg
        pos = np.minimum(np.searchsorted(seen_keys, keys), len(seen_keys) - 1)
        hit = seen_keys[pos] == keys
        if not hit.any():
            break
        neg[hit] = rng.integers(0, n_items, size=int(hit.sum()))
    return neg


def minibatches(rng: np.random.Generator, n: int, batch_size: int) -> Iterator[np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into batches; a held Ctrl-C is raised
    between two batches (:func:`~harness.interrupts.interruption_point`)."""
    perm = rng.permutation(n)
    for start in range(0, n, batch_size):
        interruption_point()
        yield perm[start : start + batch_size]


def check_hyper(source: str, **values: Any) -> None:
    """Positive hyperparameters, named in the error when not."""
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{source}: {name} must be > 0, got {value!r}")


def torch_generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(int(seed))


class TorchBaseline:
    """A trained PyTorch retriever: subclasses build and train ``self.module`` in ``_train``;
    retrieval is exact top-k through :class:`~harness.models.torch_retriever.TorchRetriever`."""

    module: Any = None
    exclude_seen: bool = True
    memory_budget_mb: float = 256
    device: str = "cpu"

    def _train(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Any:
        raise NotImplementedError

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "TorchBaseline":
        # Ctrl-C is raised between minibatches, never inside PyTorch (harness.interrupts)
        with interrupts_held():
            return self._fit(train, n_users=n_users, n_items=n_items)

    def _fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "TorchBaseline":
        import torch

        from .torch_retriever import TorchRetriever

        users, items = positive_pairs(train, n_users, n_items, source=type(self).__name__)
        deterministic = torch.are_deterministic_algorithms_enabled()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(getattr(self, "seed", 0)))  # dropout etc. draw from here
            # gradient sums over repeated embedding rows and matmul reductions depend on
            # how work is split across threads; one thread makes training reproducible
            threads = torch.get_num_threads()
            torch.use_deterministic_algorithms(True)
            torch.set_num_threads(1)
            try:
                self.module = self._train(users, items, n_users, n_items)
            finally:
                torch.set_num_threads(threads)
                torch.use_deterministic_algorithms(deterministic)
        self.module.eval()
        self._retriever = TorchRetriever(self.module, exclude_seen=self.exclude_seen,
                                         memory_budget_mb=self.memory_budget_mb, device=self.device,
                                         name=type(self).__name__)
        self._retriever.fit(train, n_users=n_users, n_items=n_items)
        return self

    def retrieve(self, query_ids: np.ndarray, k: int) -> Any:
        if self.module is None:
            raise ConfigError(f"{type(self).__name__}: call fit() before retrieve()")
        return self._retriever.retrieve(query_ids, k)

    def save(self, path: Any) -> None:
        """Save the trained module for ``TorchRetriever(checkpoint=path)``: its state dict,
        class and constructor arguments, which load without unpickling code
        (``harness.models.safe_load.save_module_checkpoint``)."""
        from .safe_load import save_module_checkpoint

        if self.module is None:
            raise ConfigError(f"{type(self).__name__}: call fit() before save()")
        save_module_checkpoint(self.module, path, module_kwargs=self.module.init_kwargs)
