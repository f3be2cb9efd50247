"""A judged collection from TREC files: the qrels are the judgments, there is no training data.

This is what trec_eval, pytrec_eval and ranx users have: a qrels file and one run file per
system. Queries and documents keep the collection's own ids. A run may retrieve documents
nobody judged (trec_eval reads them as not relevant) and name queries the qrels do not
hold (trec_eval ignores them), so the id spaces are the union of the qrels' ids and the
runs' ids; only queries with judgments are evaluated, and the unjudged ones are counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, for_model

from .base import InteractionDataset
from .ids import encode_pairs
from .predictions import prediction_ids
from .trec import judgments_and_notice

__all__ = ["load_trec_collection"]


def _id_space(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted distinct ids of several files: int64 when every file's ids are integers,
    else text (an integer id then matches its decimal text, as ``IdMap`` matches ids)."""
    if all(p.dtype.kind in "iu" for p in parts):
        return np.unique(np.concatenate(parts).astype(np.int64))
    text = np.concatenate([p.astype(str) for p in parts])
    return np.unique(text).astype(object)


RunFile = str | Path | tuple[str | Path, str]


def _run_ids(run: RunFile, model: str | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`prediction_ids` of one score file; its errors name ``model`` when given."""
    try:
        return prediction_ids(*(run if isinstance(run, tuple) else (run,)))
    except (ConfigError, DataValidationError) as exc:
        if model is None:
            raise
        raise for_model(exc, model) from None


def load_trec_collection(qrels: str | Path, *, runs: Sequence[RunFile] | Mapping[str, RunFile] = (),
                         name: str | None = None) -> InteractionDataset:
    """The data set of a TREC qrels file, with the ids of the runs to be evaluated on it.

    Parameters
    ----------
    qrels : str or Path
        ``qid iter docid rel`` lines (``harness.datasets.trec.read_trec_qrels``), or a
        Parquet table ``query_id, item_id, relevance`` (``read_judgments``).
    runs : sequence of str, Path or (path, format), or a mapping model name -> one
        Score files (TREC runs or tables with ``query_id``, ``item_id``; ``format`` as
        ``harness.datasets.predictions.read_predictions``'s ``fmt``, default by suffix)
        whose query and document ids join the id spaces, so that unjudged documents are
        known (and not relevant) rather than an error. Keyed by model name, an error
        reading one names its model.
    name : str, optional
        Default: ``trec:<qrels file stem>``.

    Returns
    -------
    InteractionDataset
        ``qrels`` in codes with every judged grade (0 included; a negative grade read
        as 0, as in trec_eval), an empty ``train``, ``user_ids``/``item_ids`` the
        collection's own ids, and warnings counting the negative grades and the run
        queries without judgments (not evaluated, as in trec_eval).

    Raises
    ------
    ConfigError, DataValidationError
        From reading the files (missing file, malformed lines, grades that are not integers, duplicates).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from harness.datasets.collection import load_trec_collection
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "q.qrels").write_text("q1 0 d1 2\\nq1 0 d2 0\\nq2 0 d3 1\\n")
    >>> _ = (folder / "a.run").write_text("q1 Q0 d9 1 3.0 a\\nq3 Q0 d1 1 1.0 a\\n")
    >>> ds = load_trec_collection(folder / "q.qrels", runs=[folder / "a.run"])
    >>> ds.n_users, ds.n_items, list(ds.item_ids)
    (3, 4, ['d1', 'd2', 'd3', 'd9'])
    >>> ds.warnings
    ['trec: 1 queries of the runs have no judgments in q.qrels (e.g. q3); they are not evaluated, as in trec_eval']
    """
    judged, negative_grades = judgments_and_notice(qrels)
    run_ids = [_run_ids(run, model) for model, run in (runs.items() if isinstance(runs, Mapping)
                                                        else ((None, run) for run in runs))]
    user_ids = _id_space([judged["query_id"].to_numpy()] + [q for q, _ in run_ids])
    item_ids = _id_space([judged["item_id"].to_numpy()] + [i for _, i in run_ids])
    dataset = InteractionDataset(
        name=name or f"trec:{Path(qrels).stem}",
        train=pd.DataFrame({"user_id": np.empty(0, np.int64), "item_id": np.empty(0, np.int64)}),
        qrels=judged, n_users=len(user_ids), n_items=len(item_ids), user_ids=user_ids, item_ids=item_ids,
        settings={"kind": "trec"})
    coded = encode_pairs(judged, dataset, source=str(qrels))
    dataset.qrels = coded.sort_values(["query_id", "item_id"], kind="stable").reset_index(drop=True)
    if negative_grades:
        dataset.warnings.append(negative_grades)
    judged_queries = np.unique(dataset.qrels["query_id"].to_numpy())
    unjudged = np.setdiff1d(np.arange(len(user_ids)), judged_queries)
    if len(unjudged):
        examples = ", ".join(str(v) for v in user_ids[unjudged[:3]])
        dataset.warnings.append(f"trec: {len(unjudged)} queries of the runs have no judgments in "
                                f"{Path(qrels).name} (e.g. {examples}); they are not evaluated, as in trec_eval")
    dataset.split_stats = {"train_rows": 0, "test_rows": len(dataset.qrels), "users_with_test": len(judged_queries),
                           "users_without_test": len(unjudged)}
    return dataset
