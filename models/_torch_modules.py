"""The ``nn.Module`` classes of the PyTorch baselines.

Kept at module level (and apart from the adapters, which import torch lazily) so that
checkpoints name them by ``package.module:ClassName`` and load again with
``TorchRetriever(checkpoint=...)``. ``init_kwargs`` gives the constructor arguments that
rebuild an empty module of the same shape for ``load_state_dict`` (see
``harness.models.safe_load.save_module_checkpoint``).
"""

from __future__ import annotations

import torch
from torch import nn


class MFModule(nn.Module):
    """``score(u, i) = <P_u, Q_i> + b_i``, exposed as embeddings ``[P_u, 1]`` and ``[Q_i, b_i]``."""

    def __init__(self, n_users: int, n_items: int, dim: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.init_kwargs = {"n_users": n_users, "n_items": n_items, "dim": dim}
        self.user = nn.Parameter(0.1 * torch.randn(n_users, dim, generator=generator))
        self.item = nn.Parameter(0.1 * torch.randn(n_items, dim, generator=generator))
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.user[ids], torch.ones(len(ids), 1, device=self.user.device)], dim=1)

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.item[ids], self.item_bias[ids, None]], dim=1)


class TwoTowerModule(nn.Module):
    """Query tower on a user-id embedding; item tower on an item-id embedding plus item features.

    Each tower is ``Linear -> ReLU -> Linear``; outputs are L2-normalised so that the
    inner product is a cosine, scaled by a temperature in the loss.
    """

    def __init__(self, n_users: int, n_items: int, item_features: torch.Tensor, dim: int, hidden: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        # the features are a buffer (in the state dict); zeros of their shape rebuild the module
        self.init_kwargs = {"n_users": n_users, "n_items": n_items, "dim": dim, "hidden": hidden,
                            "item_features": torch.zeros(tuple(item_features.shape))}
        self.user = nn.Parameter(0.1 * torch.randn(n_users, dim, generator=generator))
        self.item = nn.Parameter(0.1 * torch.randn(n_items, dim, generator=generator))
        self.register_buffer("item_features", item_features.float())
        self.user_tower = self._tower(dim, hidden, dim, generator)
        self.item_tower = self._tower(dim + item_features.shape[1], hidden, dim, generator)

    @staticmethod
    def _tower(n_in: int, hidden: int, n_out: int, generator: torch.Generator | None) -> nn.Sequential:
        tower = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
        for layer in (tower[0], tower[2]):
            bound = 1.0 / n_in ** 0.5 if layer is tower[0] else 1.0 / hidden ** 0.5
            with torch.no_grad():
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        return tower

    def query_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.user_tower(self.user[ids]), dim=1)

    def item_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.item[ids], self.item_features[ids]], dim=1)
        return nn.functional.normalize(self.item_tower(x), dim=1)
