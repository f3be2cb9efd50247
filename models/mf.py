"""Matrix factorisation trained with BPR, in PyTorch.

Rendle et al. (2009), "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._torch_train import TorchBaseline, check_hyper, minibatches, sample_negatives, torch_generator


class BPRMF(TorchBaseline):
    """Matrix factorisation with an item bias, trained by BPR with sampled negatives.

    Parameters
    ----------
    dim : int, default 16
        Latent dimension.
    n_epochs : int, default 40
        Passes over the distinct training pairs.
    lr : float, default 0.05
        Adam learning rate.
    reg : float, default 1e-4
        L2 penalty on the embeddings of each batch.
    batch_size : int, default 4096
    seed : int, default 0
        Seeds initialisation, shuffling and negative sampling.
    exclude_seen, memory_budget_mb, device
        Passed to :class:`~harness.models.torch_retriever.TorchRetriever`.

    Notes
    -----
    ``x_ui = <P_u, Q_i> + b_i``; per (user, seen item i, unseen item j) the loss is
    ``-log sigmoid(x_ui - x_uj) + reg (||P_u||^2 + ||Q_i||^2 + ||Q_j||^2)`` (Rendle et
    al., 2009). Retrieval is the exact top-k of ``x_u.``.
    """

    def __init__(self, *, dim: int = 16, n_epochs: int = 40, lr: float = 0.05, reg: float = 1e-4,
                 batch_size: int = 4096, seed: int = 0, exclude_seen: bool = True,
                 memory_budget_mb: float = 256, device: str = "cpu") -> None:
        check_hyper("bpr_mf", dim=dim, n_epochs=n_epochs, lr=lr, batch_size=batch_size)
        if reg < 0:
            check_hyper("bpr_mf", reg=reg)
        self.dim, self.n_epochs, self.lr, self.reg = dim, n_epochs, lr, reg
        self.batch_size, self.seed = batch_size, seed
        self.exclude_seen, self.memory_budget_mb, self.device = exclude_seen, memory_budget_mb, device
        self.module = None

    def _train(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Any:
        import torch
        import torch.nn.functional as F

        from ._torch_modules import MFModule

        module = MFModule(n_users, n_items, self.dim, torch_generator(self.seed))
        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.seed)
        seen_keys = users * n_items + items  # sorted: positive_pairs returns sorted keys
        module.train()
        for _ in range(self.n_epochs):
            for idx in minibatches(rng, len(users), self.batch_size):
                u = torch.as_tensor(users[idx])
                i = torch.as_tensor(items[idx])
                j = torch.as_tensor(sample_negatives(rng, users[idx], n_items, seen_keys))
                pu, qi, qj = module.user[u], module.item[i], module.item[j]
                x = (pu * (qi - qj)).sum(1) + module.item_bias[i] - module.item_bias[j]
                loss = -F.logsigmoid(x).mean() + self.reg * (pu.pow(2).sum() + qi.pow(2).sum()
                                                             + qj.pow(2).sum()) / len(idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
        return module
