"""Cross-fitted reward models q_hat(x, a, pos) for the model-based off-policy estimators.

``fit_reward_model(feedback, model, n_folds=K, seed=s)`` splits the logged rows into K
folds and, for each fold and position, fits a clone of ``model`` (any scikit-learn or
XGBoost regressor or binary classifier) on the other folds' rows of that position, as
OBP's ``RegressionModel`` does (features: context, then the action's features --
one-hot by default -- and one model per position). Each row's ``q_hat`` comes from a
model that did not see it, which keeps DR's correction term unbiased (Chernozhukov et
al., "Double/debiased machine learning", Econometrics Journal 2018).

Memory
------
Every array this module builds is bounded by ``max_bytes`` (default 1 GiB): design
matrices are built in chunks of (row, action) pairs and never through an
``n_actions x n_actions`` identity. ``q_hat`` for all actions of a batch of rows
(``predict_actions``, ``expected_reward``) takes O(batch x n_actions) memory:

- for linear models (scikit-learn ``LinearRegression``, ``Ridge``, ``Lasso``,
  ``ElasticNet``, ``BayesianRidge``, ``SGDRegressor`` and binary ``LogisticRegression``)
  the score factorises, ``link(x . w_x + f_a . w_a + b)``, so the (batch, n_actions)
  matrix is an outer sum of a per-row and a per-action term; each fitted model is
  checked against its own ``predict`` on sample pairs before this path is used;
- any other model is called on design rows of (row, action) pairs, in chunks of at
  most ``max_bytes``.

The fit's design matrix is ``n_train x (d + n_actions)`` for one-hot actions; a dense
one over ``max_bytes`` is refused with a ``ConfigError`` that names the size, and
``design="sparse"`` builds it as a ``scipy.sparse`` CSR matrix (O(n_train x (d + 1))).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold

from harness.errors import AdapterError, ConfigError, DataValidationError
from harness.types import adapter_call

__all__ = ["DEFAULT_MAX_BYTES", "RewardModelFit", "fit_reward_model"]

DEFAULT_MAX_BYTES = 1 << 30
DESIGNS = ("dense", "sparse")
_FEEDBACK_FIELDS = ("action", "reward", "positions", "len_list", "n_actions", "context", "context_id",
                    "action_context")
# scikit-learn linear models whose prediction is link(X @ coef_ + intercept_)
_LINEAR_REGRESSORS = frozenset({"LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet",
                                "ElasticNetCV", "BayesianRidge", "SGDRegressor"})
_LINEAR_CLASSIFIERS = frozenset({"LogisticRegression", "LogisticRegressionCV"})
# arrays alive at once per row of a batch in expected_reward: pi, q, their product and
# the policy's own temporaries
_ROW_COPIES = 6


def _predict(model: Any, X: Any) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise AdapterError(f"reward model: predict_proba must give 2 classes, got shape {proba.shape}")
        return proba[:, 1]
    return np.asarray(model.predict(X), dtype=np.float64)


def _expit(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z, out=z)


@dataclass(frozen=True)
class _Design:
    """OBP's design matrix ``[context features, action features]`` built for given
    (row, action) pairs; one-hot actions without an identity matrix."""

    context: np.ndarray | None
    action_context: np.ndarray | None
    n_actions: int
    sparse: bool

    @property
    def n_context(self) -> int:
        return 0 if self.context is None else self.context.shape[1]

    @property
    def n_features(self) -> int:
        n_act = self.n_actions if self.action_context is None else self.action_context.shape[1]
        return self.n_context + n_act

    @property
    def bytes_per_row(self) -> int:
        """Bytes of one design row, counting the model's own converted copy."""
        if self.sparse:
            n_act = 1 if self.action_context is None else self.action_context.shape[1]
            return 2 * 16 * (self.n_context + n_act) + 16
        return 2 * 8 * self.n_features

    def rows(self, rows: np.ndarray, actions: np.ndarray) -> Any:
        m, d = len(rows), self.n_context
        if self.sparse:
            import scipy.sparse as sp

            parts = [sp.csr_matrix(self.context[rows])] if self.context is not None else []
            if self.action_context is None:
                parts.append(sp.csr_matrix((np.ones(m), (np.arange(m), actions)), shape=(m, self.n_actions)))
            else:
                parts.append(sp.csr_matrix(self.action_context[actions]))
            return sp.hstack(parts, format="csr")
        X = np.zeros((m, self.n_features))
        if self.context is not None:
            X[:, :d] = self.context[rows]
        if self.action_context is None:
            X[np.arange(m), d + actions] = 1.0
        else:
            X[:, d:] = self.action_context[actions]
        return X


@dataclass(frozen=True)
class _LinearForm:
    """``q(x, a) = link(x . w_x + per_action[a] + intercept)``."""

    w_context: np.ndarray
    per_action: np.ndarray
    intercept: float
    logistic: bool

    def scores(self, context: np.ndarray | None, n_rows: int) -> np.ndarray:
        """(n_rows, n_actions) scores of the rows whose context features are ``context``."""
        row_term = np.full(n_rows, self.intercept) if context is None else context @ self.w_context + self.intercept
        q = row_term[:, None] + self.per_action[None, :]
        return _expit(q) if self.logistic else q


def _linear_form(model: Any, design: _Design) -> _LinearForm | None:
    """The factorised form of a fitted scikit-learn linear model, else None."""
    name = type(model).__name__
    if not type(model).__module__.startswith("sklearn.linear_model"):
        return None
    coef, intercept = getattr(model, "coef_", None), getattr(model, "intercept_", 0.0)
    if name in _LINEAR_REGRESSORS and coef is not None and np.ndim(coef) == 1:
        logistic = False
    elif name in _LINEAR_CLASSIFIERS and coef is not None and np.shape(coef)[0] == 1 \
            and len(getattr(model, "classes_", ())) == 2:
        coef, intercept, logistic = coef[0], np.ravel(intercept)[0], True
    else:
        return None
    coef = np.asarray(coef, dtype=np.float64)
    if coef.shape != (design.n_features,):
        return None
    d = design.n_context
    w_act = coef[d:]
    per_action = w_act.copy() if design.action_context is None else design.action_context @ w_act
    return _LinearForm(coef[:d], per_action, float(np.ravel(intercept)[0]), logistic)


@dataclass
class RewardModelFit:
    """Fitted fold models and the cross-fitted predictions at the logged actions.

    Attributes
    ----------
    feedback : LoggedFeedback
    q_hat : ndarray of shape (n,)
        ``q_hat(x_i, a_i, pos_i)`` from the model of the fold that left row i out.
    fold : ndarray of int, shape (n,)
    models : list of list
        ``models[fold][position]``.
    max_bytes : int, default ``DEFAULT_MAX_BYTES`` (1 GiB)
        Memory budget of every design matrix and (batch, n_actions) block built here.
    design : {"dense", "sparse"}, default "dense"
        How the action one-hot (and context) features reach the model.
    """

    feedback: Any  # harness.datasets.LoggedFeedback
    q_hat: np.ndarray
    fold: np.ndarray
    models: list[list[Any]] = field(repr=False)
    max_bytes: int = DEFAULT_MAX_BYTES
    design: Literal["dense", "sparse"] = "dense"
    _linear: list[list[_LinearForm | None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        fb = self.feedback
        self._design = _Design(fb.context, fb.action_context, int(fb.n_actions), self.design == "sparse")

    @property
    def n_actions(self) -> int:
        return int(self.feedback.n_actions)

    def _groups(self, rows: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(fold, position, indices into rows)`` of each fold model's share of ``rows``."""
        fold, pos = self.fold[rows], self.feedback.positions[rows]
        for f, per_pos in enumerate(self.models):
            for p in range(len(per_pos)):
                sel = np.nonzero((fold == f) & (pos == p))[0]
                if sel.size:
                    yield f, p, sel

    def _pair_chunk(self) -> int:
        return max(1, self.max_bytes // self._design.bytes_per_row)

    def _predict_pairs(self, model: Any, n_pairs: int,
                       pairs: Callable[[int, int], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The model on design rows of ``n_pairs`` (row, action) pairs, in chunks under the
        budget; ``pairs(start, stop)`` gives the chunk's rows and actions."""
        out = np.empty(n_pairs)
        step = self._pair_chunk()
        for start in range(0, n_pairs, step):
            stop = min(n_pairs, start + step)
            rows, actions = pairs(start, stop)
            out[start:stop] = _predict(model, self._design.rows(rows, actions))
        return out

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Cross-fitted ``q_hat`` of logged rows ``rows`` (their context and position)
        for other ``actions`` (same length)."""
        rows, actions = np.asarray(rows), np.asarray(actions)
        out = np.empty(len(rows))
        for f, p, sel in self._groups(rows):
            r, a = rows[sel], actions[sel]
            out[sel] = self._predict_pairs(self.models[f][p], len(sel), lambda s, e: (r[s:e], a[s:e]))
        return out

    def predict_actions(self, rows: np.ndarray) -> np.ndarray:
        """Cross-fitted ``q_hat(x_i, a, pos_i)`` of logged rows ``rows`` for every action.

        Parameters
        ----------
        rows : ndarray of int, shape (m,)

        Returns
        -------
        ndarray of shape (m, n_actions)
            Memory O(m x n_actions) plus at most ``max_bytes`` of design rows.
        """
        rows = np.asarray(rows)
        n_act = self.n_actions
        out = np.empty((len(rows), n_act))
        ctx = self.feedback.context
        for f, p, sel in self._groups(rows):
            r = rows[sel]
            form = self._linear[f][p] if self._linear else None
            if form is not None:
                out[sel] = form.scores(None if ctx is None else ctx[r], len(r))
                continue
            pairs = lambda s, e, r=r: (r[np.arange(s, e) // n_act], np.arange(s, e) % n_act)  # noqa: E731
            out[sel] = self._predict_pairs(self.models[f][p], len(r) * n_act, pairs).reshape(len(r), n_act)
        return out

    def batch_rows(self, batch_size: int | None = None) -> int:
        """Logged rows per batch of (batch, n_actions) blocks that fit ``max_bytes``."""
        rows = max(1, self.max_bytes // (self.n_actions * 8 * _ROW_COPIES))
        return rows if batch_size is None else max(1, min(rows, int(batch_size)))

    def expected_reward(self, policy: Any, *, contexts: np.ndarray | None = None,
                        batch_size: int | None = None) -> np.ndarray:
        """Cross-fitted ``v_hat[i] = sum_a pi_e(a | x_i, pos_i) q_hat(x_i, a, pos_i)``.

        Parameters
        ----------
        policy : object
            With ``distribution_at(contexts, positions) -> (batch, n_actions)`` (the
            policies of ``harness.models.policies``).
        contexts : ndarray, optional
            What the policy reads per logged row; defaults to the feedback's
            ``context_id``, else its ``context`` features.
        batch_size : int, optional
            Upper bound on rows per batch; the batch is otherwise the largest whose
            (batch, n_actions) blocks fit ``max_bytes`` (see ``batch_rows``).

        Returns
        -------
        ndarray of shape (n,)
            Memory O(batch x n_actions), never n_actions ** 2.
        """
        fb = self.feedback
        n = len(fb)
        if contexts is None:
            contexts = fb.context_id if fb.context_id is not None else fb.context
        if contexts is None or len(contexts) != n:
            raise DataValidationError(f"contexts: need one per logged row ({n}); the feedback has no "
                                      f"context_id or context features")
        distinct = self._distinct_rows(np.asarray(contexts))
        todo = np.arange(n) if distinct is None else distinct[0]
        out = np.empty(len(todo))
        step = self.batch_rows(batch_size)
        for start in range(0, len(todo), step):
            rows = todo[start:start + step]
            pi = np.asarray(policy.distribution_at(contexts[rows], fb.positions[rows]), dtype=np.float64)
            if pi.shape != (len(rows), self.n_actions):
                raise AdapterError(f"{type(policy).__name__}.distribution_at: expected shape "
                                   f"({len(rows)}, {self.n_actions}), got {pi.shape}")
            out[start:start + len(rows)] = np.einsum("ij,ij->i", pi, self.predict_actions(rows))
        return out if distinct is None else out[distinct[1]]

    def _distinct_rows(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(representative rows, inverse)`` when logged rows repeat (fold, position,
        integer context) with the same context features -- each such row has the same
        ``v_hat`` -- and there are at most half as many distinct ones as rows; else None."""
        fb, n = self.feedback, len(self.feedback)
        if contexts.ndim != 1 or contexts.dtype.kind not in "iu" or n < 2:
            return None
        n_ctx, n_pos = int(contexts.max()) + 1, int(fb.len_list)
        if len(self.models) * n_pos * n_ctx >= 2**62:
            return None
        key = (self.fold * n_pos + fb.positions) * n_ctx + contexts.astype(np.int64)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        if 2 * len(first) > n:
            return None
        if fb.context is not None and not np.array_equal(fb.context[first[inverse]], fb.context):
            return None  # the same context id with different features: every row apart
        return first, inverse.ravel()


def _check_linear_form(form: _LinearForm | None, model: Any, design: _Design, rows: np.ndarray,
                       rng: np.random.Generator) -> _LinearForm | None:
    """Keep ``form`` only if it reproduces ``model``'s own predictions on sample pairs."""
    if form is None:
        return None
    r = rows[rng.integers(0, len(rows), 16)]
    a = rng.integers(0, design.n_actions, 16)
    fast = form.scores(None if design.context is None else design.context[r], 16)[np.arange(16), a]
    ref = _predict(model, design.rows(r, a))
    return form if np.allclose(fast, ref, rtol=1e-9, atol=1e-12) else None


def fit_reward_model(feedback: Any, model: Any, *, n_folds: int = 3, seed: int = 0,
                     max_bytes: int = DEFAULT_MAX_BYTES,
                     design: Literal["dense", "sparse"] = "dense") -> RewardModelFit:
    """Fit ``model`` clones by K-fold cross-fitting, one per (fold, position).

    Parameters
    ----------
    feedback : LoggedFeedback
        Needs ``context`` features (or relies on the action features alone).
    model : scikit-learn / XGBoost estimator
        A regressor (``predict``) or a binary classifier (``predict_proba``); cloned.
    n_folds : int, default 3
        K >= 2. Folds are a shuffled ``KFold`` with ``random_state=seed``.
    seed : int, default 0
    max_bytes : int, default 1 GiB
        Memory budget of each design matrix and (batch, n_actions) block.
    design : {"dense", "sparse"}, default "dense"
        ``"dense"``: NumPy design rows ``[context, one-hot action]`` as OBP builds them;
        refused when the largest fold's training matrix exceeds ``max_bytes``.
        ``"sparse"``: a ``scipy.sparse`` CSR matrix, for estimators that accept sparse
        input (scikit-learn's linear models; XGBoost then treats unstored entries --
        zeros -- as missing, which changes its splits).

    Returns
    -------
    RewardModelFit

    Raises
    ------
    ConfigError
        ``max_bytes`` or ``design`` invalid, or a dense design over the budget.
    DataValidationError
        Feedback of the wrong type, ``n_folds`` out of range, a fold without rows.
    AdapterError
        The model lacks fit/predict or fails on the design.
    """
    missing = [a for a in _FEEDBACK_FIELDS if not hasattr(feedback, a)]
    if missing:  # duck-typed: models/ does not import harness.datasets
        raise DataValidationError(f"feedback must be a LoggedFeedback (harness.datasets); "
                                  f"{type(feedback).__name__} lacks {missing}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ConfigError(f"reward model: max_bytes must be a positive integer (bytes), got {max_bytes!r}")
    if design not in DESIGNS:
        raise ConfigError(f"reward model: design must be one of {list(DESIGNS)}, got {design!r}")
    n = len(feedback)
    if not isinstance(n_folds, int) or not 2 <= n_folds <= n:
        raise DataValidationError(f"n_folds must be an integer in [2, {n}] (rows), got {n_folds!r}")
    if not (hasattr(model, "fit") and (hasattr(model, "predict") or hasattr(model, "predict_proba"))):
        raise AdapterError(f"reward model {type(model).__name__} needs fit and predict / predict_proba")
    fold = np.empty(n, dtype=np.int64)
    for f, (_, test) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(np.arange(n))):
        fold[test] = f
    pos = feedback.positions
    fit = RewardModelFit(feedback, np.empty(n), fold, [], max_bytes=int(max_bytes), design=design)
    dm = fit._design
    if design == "dense":
        counts = np.bincount(fold * feedback.len_list + pos, minlength=n_folds * feedback.len_list)
        per_pos = counts.reshape(n_folds, feedback.len_list)
        largest = int((per_pos.sum(axis=0) - per_pos).max())  # training rows of the largest fit
        need = largest * dm.bytes_per_row
        if need > max_bytes:
            raise ConfigError(
                f"reward model: the dense design matrix needs {need / 2**30:.2f} GiB ({largest} training rows x "
                f"{dm.n_features} features: {dm.n_context} context + {dm.n_features - dm.n_context} action), over "
                f"max_bytes={max_bytes} ({max_bytes / 2**30:.2f} GiB); use design='sparse' (one-hot actions as a "
                "scipy.sparse matrix, for estimators that accept sparse input) or raise max_bytes")
    rng = np.random.default_rng(seed)
    for f in range(n_folds):
        models, forms = [], []
        for p in range(feedback.len_list):
            train = np.nonzero((fold != f) & (pos == p))[0]
            if train.size == 0:
                raise DataValidationError(f"fold {f}, position {p}: no training rows")
            fitted = clone(model)
            with adapter_call(type(model).__name__, "fit", what="reward model",
                              where=f"on the {design} design ({len(train)} rows x {dm.n_features} features)"):
                fitted.fit(dm.rows(train, feedback.action[train]), feedback.reward[train])
            models.append(fitted)
            forms.append(_check_linear_form(_linear_form(fitted, dm), fitted, dm, train, rng))
        fit.models.append(models)
        fit._linear.append(forms)
    fit.q_hat = fit.predict(np.arange(n), feedback.action)
    return fit
