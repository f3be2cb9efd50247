"""A two-tower retrieval model in PyTorch, trained with in-batch softmax and logQ correction.

Yi et al. (2019), "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
Recommendations", RecSys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._torch_train import TorchBaseline, check_hyper, minibatches, torch_generator


class TwoTower(TorchBaseline):
    """Two towers (user id; item id + log popularity) with an in-batch sampled softmax.

    Parameters
    ----------
    dim : int, default 32
        Embedding and output dimension of both towers.
    hidden : int, default 64
        Hidden width of each tower's MLP.
    n_epochs : int, default 30
    lr : float, default 0.01
        Adam learning rate.
    temperature : float, default 0.1
        Softmax temperature on the cosine scores.
    batch_size : int, default 1024
        Also the number of in-batch negatives.
    seed : int, default 0
    exclude_seen, memory_budget_mb, device
        Passed to :class:`~harness.models.torch_retriever.TorchRetriever`.

    Notes
    -----
    For a batch of positive pairs ``(u_b, i_b)``, logits ``s_bc = cos(q_{u_b}, v_{i_c}) / T
    - log p_{i_c}``, where ``p_i`` is item i's share of the training pairs (the chance it
    appears as an in-batch negative), and the loss is the cross-entropy of the diagonal
    (Yi et al., 2019). Retrieval ranks by ``cos(q_u, v_i)``.
    """

    def __init__(self, *, dim: int = 32, hidden: int = 64, n_epochs: int = 30, lr: float = 0.01,
                 temperature: float = 0.1, batch_size: int = 1024, seed: int = 0,
                 exclude_seen: bool = True, memory_budget_mb: float = 256, device: str = "cpu") -> None:
        check_hyper("two_tower", dim=dim, hidden=hidden, n_epochs=n_epochs, lr=lr,
                    temperature=temperature, batch_size=batch_size)
        self.dim, self.hidden, self.n_epochs, self.lr = dim, hidden, n_epochs, lr
        self.temperature, self.batch_size, self.seed = temperature, batch_size, seed
        self.exclude_seen, self.memory_budget_mb, self.device = exclude_seen, memory_budget_mb, device
        self.module = None

    def _train(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Any:
        import torch
        import torch.nn.functional as F

        from ._torch_modules import TwoTowerModule

        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        feats = torch.as_tensor(np.log1p(counts)[:, None], dtype=torch.float32)
        module = TwoTowerModule(n_users, n_items, feats, self.dim, self.hidden, torch_generator(self.seed))
        log_q = torch.as_tensor(np.log(np.maximum(counts, 1.0) / counts.sum()), dtype=torch.float32)
        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        module.train()
        for _ in range(self.n_epochs):
            for idx in minibatches(rng, len(users), self.batch_size):
                u = torch.as_tensor(users[idx])
                i = torch.as_tensor(items[idx])
                logits = module.query_embeddings(u) @ module.item_embeddings(i).T / self.temperature
                logits = logits - log_q[i][None, :]
                # the same item twice in a batch is not a negative of itself
                same = (i[:, None] == i[None, :]) & ~torch.eye(len(idx), dtype=torch.bool)
                logits = logits.masked_fill(same, float("-inf"))
                loss = F.cross_entropy(logits, torch.arange(len(idx)))
                opt.zero_grad()
                loss.backward()
                opt.step()
        return module
