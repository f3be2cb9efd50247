"""The user's own ids <-> the harness's internal codes, for every input read from a file.

A data set built from files (``build_dataset``) numbers users and items ``0..n-1`` in the
sorted order of their raw ids and keeps the raw id of each code (``dataset.user_ids``,
``dataset.item_ids``). Everything a user writes -- precomputed scores, TREC runs and
qrels, logged feedback -- is in those raw ids, integer or string; ``IdMap.encode`` turns
them into codes and refuses unknown ones with the file, column, count and examples from
both sides. Synthetic data sets have no maps: their ids are the codes ``0..n-1``.

Matching rules (text formats carry no types): against integer raw ids, a text id matches
when it is a canonical integer (``"42"``, not ``"042"`` or ``"42.0"``); against string raw
ids, an integer id matches its decimal text. Floats, booleans and nulls are never ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples

__all__ = ["IdMap", "encode_pairs", "id_maps"]

def _digits_at_most(bound: str) -> str:
    """A regex of the numbers with ``len(bound)`` digits that are <= ``bound``: ``bound``
    itself, or its first i digits, a smaller digit, then any digits."""
    parts = []
    for i, d in enumerate(map(int, bound)):
        low = 1 if i == 0 else 0  # no leading zero
        if d > low:
            rest = len(bound) - i - 1
            parts.append(bound[:i] + (str(low) if d - 1 == low else f"[{low}-{d - 1}]")
                         + (f"[0-9]{{{rest}}}" if rest else ""))
    return "|".join([*parts, bound])


# an id that is a canonical integer (no sign or leading zeros to lose: ``42``, not ``042``)
# within int64, as hashed 64-bit ids are: up to 18 digits, or 19 up to 2^63 - 1 (-2^63)
CANONICAL_INT = (r"^(?:0|-?[1-9][0-9]{0,17}|" + _digits_at_most(str(2**63 - 1)) + "|-(?:"
                 + _digits_at_most(str(2**63)) + "))$")


def _as_id_array(values: Any, *, source: str, column: str) -> np.ndarray:
    """``values`` as an int64 array or an object array of str; anything else is refused."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind in "OUST" or isinstance(getattr(values, "dtype", None), pd.StringDtype):
        obj = np.asarray(arr, dtype=object)
        if len(obj) and pd.api.types.infer_dtype(obj, skipna=False) != "string":
            is_str = pd.Series(obj, dtype=object).map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)  # error path
            bad = obj[~is_str]
            raise DataValidationError(f"{source}: column {column!r}: {len(bad)} of {len(obj)} ids are neither "
                                      f"integers nor strings ({describe_examples(bad)})")
        return obj
    raise DataValidationError(f"{source}: column {column!r} must hold integer or string ids, got dtype "
                              f"{arr.dtype} ({describe_examples(arr[:3])})")


@dataclass(frozen=True)
class IdMap:
    """One id space (users or items) of a data set.

    Parameters
    ----------
    space : str
        ``"user"`` or ``"item"``, for messages.
    n : int
        Number of codes, ``0..n-1``.
    raw : ndarray, optional
        ``raw[code]`` is the user's own id of each code (int64 or str, sorted); None: the
        ids are the codes (synthetic data sets).
    """

    space: str
    n: int
    raw: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.raw is not None and len(self.raw) != self.n:
            raise DataValidationError(f"{self.space} id map: {len(self.raw)} raw ids for {self.n} codes")

    @property
    def _index(self) -> pd.Index:
        cache = self.__dict__.setdefault("_cache", {})
        if "index" not in cache:
            raw = self.raw if self.raw is not None else np.arange(self.n)
            cache["index"] = pd.Index(raw if np.asarray(raw).dtype.kind in "iu" else np.asarray(raw, dtype=object))
        return cache["index"]

    @property
    def integer(self) -> bool:
        """True when the ids are integers (or the codes themselves), False when text."""
        return self.raw is None or np.asarray(self.raw).dtype.kind in "iu"

    def examples(self, limit: int = 3) -> np.ndarray:
        """A few known ids, for messages."""
        return (self.raw if self.raw is not None else np.arange(self.n))[:limit]

    def encode(self, values: Any, *, source: str, column: str) -> np.ndarray:
        """Codes of the user's ids ``values``.

        Parameters
        ----------
        values : array-like of int or str, shape (m,)
        source : str
            The file (or frame) the ids come from, for messages.
        column : str
            Its column, for messages.

        Returns
        -------
        ndarray of int64, shape (m,)

        Raises
        ------
        DataValidationError
            Ids of another type, or ids the data set does not know: the message names the
            file, column, count, examples of the unknown ids and of the known ones.
        """
        ids = _as_id_array(values, source=source, column=column)
        codes = np.full(len(ids), -1, dtype=np.int64)
        if ids.dtype.kind in "iu" and self.integer:
            codes = self._index.get_indexer(ids).astype(np.int64)
        elif ids.dtype.kind in "iu":  # integer ids against string raw ids: their decimal text
            codes = self._index.get_indexer(ids.astype(str).astype(object)).astype(np.int64)
        elif self.integer:  # text ids against integer raw ids: canonical integers only
            canonical = pd.Series(ids, dtype=object).str.match(CANONICAL_INT).to_numpy(dtype=bool)
            codes[canonical] = self._index.get_indexer(ids[canonical].astype(np.int64))
        else:
            codes = self._index.get_indexer(ids).astype(np.int64)
        unknown = codes < 0
        if unknown.any():
            bad = pd.unique(ids[unknown])
            # items a score file may rank that nobody interacted with: the catalogue option
            hint = ("; items without interactions (new items) join the catalogue from the data set's item "
                    "table (dataset.catalogue: item_features)" if self.space == "item" else "")
            raise DataValidationError(
                f"{source}: column {column!r}: {int(unknown.sum())} of {len(ids)} rows ({len(bad)} distinct ids) "
                f"name {self.space}s the data set does not know ({describe_examples(bad)}); the data set's "
                f"{self.n} {self.space} ids are its own ids, {describe_examples(self.examples())}{hint}")
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The user's ids of ``codes`` (the codes themselves without a map)."""
        codes = np.asarray(codes)
        return codes if self.raw is None else np.asarray(self.raw)[codes]


def id_maps(dataset: Any) -> tuple[IdMap, IdMap]:
    """``(users, items)`` id maps of an ``InteractionDataset`` (duck-typed: ``n_users``,
    ``n_items`` and optional ``user_ids``, ``item_ids``)."""
    return (IdMap("user", int(dataset.n_users), getattr(dataset, "user_ids", None)),
            IdMap("item", int(dataset.n_items), getattr(dataset, "item_ids", None)))


def id_types(dataset: Any) -> dict[str, str]:
    """``{"user": kind, "item": kind}`` of a data set (as :func:`id_maps`), kind
    ``"integer"`` or ``"text"``: how the data stores its ids."""
    return {m.space: "integer" if m.integer else "text" for m in id_maps(dataset)}


def encode_pairs(frame: pd.DataFrame, dataset: Any, *, source: str) -> pd.DataFrame:
    """A copy of ``frame`` (e.g. qrels from ``read_trec_qrels``, labelled pairs) with its
    ``query_id`` (users) and ``item_id`` columns mapped from the user's ids to codes.

    Raises
    ------
    DataValidationError
        A missing column, or unknown ids (as ``IdMap.encode``).
    """
    missing = [c for c in ("query_id", "item_id") if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: missing column(s) {missing}; has {list(frame.columns)}")
    users, items = id_maps(dataset)
    out = frame.copy()
    out["query_id"] = users.encode(frame["query_id"], source=source, column="query_id")
    out["item_id"] = items.encode(frame["item_id"], source=source, column="item_id")
    return out
