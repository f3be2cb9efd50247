"""TREC run and qrels files, as trec_eval, pytrec_eval and ranx users already have them.

=========  ===============================  ==========================================
file       line (whitespace separated)      DataFrame columns
=========  ===============================  ==========================================
run        ``qid Q0 docid rank score tag``  ``query_id, item_id, score, rank, tag``
qrels      ``qid iter docid rel``           ``query_id, item_id, relevance``
=========  ===============================  ==========================================

Ids keep their text unless every id of the column is a canonical integer (``42``; not
``042``), as in ``harness.datasets.tables.read_table``; they are the user's own ids, to be
mapped to codes with ``harness.datasets.ids.IdMap``. As in trec_eval, the ``Q0`` and
``iter`` fields are not used; a run's order comes from its scores (the ``rank`` field is
kept for reference: ``harness.models.precomputed`` checks it only for table files).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from .ids import CANONICAL_INT
from .tables import describe_rows

__all__ = ["QRELS_TABLE_SUFFIXES", "NegativeGradesWarning", "grades_error", "judgments_and_notice",
           "negative_grades_notice", "read_judgments", "read_trec_qrels", "read_trec_run", "write_trec_run"]

# judgments stored as a table (``query_id, item_id, relevance``) rather than qrels lines
QRELS_TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


class NegativeGradesWarning(UserWarning):
    """Judgments graded below 0 (a collection's junk or spam label, such as the -2 of the
    ClueWeb web track qrels) were read as grade 0: not relevant, no gain, as trec_eval
    and pytrec_eval read them."""


def negative_grades_notice(source: str, n_negative: int, values: object) -> str:
    """What a data set says of ``n_negative`` judgments of ``source`` graded below 0
    (``values``: their distinct grades, ascending), read as 0; the Spark engine says the
    same of a judgments table."""
    return (f"trec: {n_negative} judgments of {Path(source).name} have negative grades "
            f"({describe_examples(values)}); they are read as not relevant (grade 0), as in trec_eval")


def _grades_from_zero(rel: np.ndarray, source: str) -> tuple[np.ndarray, str | None]:
    """``rel`` with its negative grades read as 0, and the notice that counts them."""
    negative = rel < 0
    if not negative.any():
        return rel, None
    return np.where(negative, 0, rel), negative_grades_notice(source, int(negative.sum()), np.unique(rel[negative]))


def grades_error(source: str, n_bad: int, n_rows: int, examples: object) -> DataValidationError:
    """The refusal of judgments whose grades are not whole numbers (the Spark engine's too)."""
    return DataValidationError(f"{source}: column 'relevance' must hold integer grades; {n_bad} of {n_rows} rows "
                               f"do not ({describe_examples(examples)})")


def _warn(notice: str | None) -> None:
    if notice is not None:
        warnings.warn(notice, NegativeGradesWarning, stacklevel=3)


RUN_FIELDS = ("query_id", "q0", "item_id", "rank", "score", "tag")
QRELS_FIELDS = ("query_id", "iteration", "item_id", "relevance")


def _read_fields(path: str | Path, fields: tuple[str, ...], what: str) -> tuple[pd.DataFrame, str]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"TREC {what} file not found: {path}")
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c", skip_blank_lines=True,
                            keep_default_na=False, na_filter=False, index_col=False)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: TREC {what} file is empty (0 lines)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"{path}: not a TREC {what} file ({' '.join(fields)} per line): {exc}") from None
    if len(frame) == 0:
        raise DataValidationError(f"{path}: TREC {what} file is empty (0 lines)")
    if frame.shape[1] != len(fields):
        raise DataValidationError(f"{path}: not a TREC {what} file: lines have {frame.shape[1]} fields, expected "
                                  f"{len(fields)} ({' '.join(fields)})")
    frame.columns = list(fields)
    short = (frame[fields[-1]] == "").to_numpy()
    if short.any():
        raise DataValidationError(f"{path}: {int(short.sum())} lines have fewer than {len(fields)} fields "
                                  f"({' '.join(fields)}), e.g. line {int(np.argmax(short)) + 1} (blank lines "
                                  "not counted)")
    return frame, str(path)


def _ids(values: pd.Series) -> pd.Series:
    """Canonical-integer id columns become int64, others stay text."""
    if values.str.match(CANONICAL_INT).all():
        return values.astype(np.int64)
    return values.astype(object)


def _numbers(values: pd.Series, name: str, column: str, *, integer: bool) -> np.ndarray:
    parsed = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(parsed)
    if integer:
        bad |= ~bad & (parsed != np.round(parsed))
    if bad.any():
        kind = "integers" if integer else "finite numbers"
        raise DataValidationError(f"{name}: field {column!r} must hold {kind}; {int(bad.sum())} of {len(values)} "
                                  f"lines do not ({describe_examples(values.to_numpy()[bad])})")
    return parsed.astype(np.int64) if integer else parsed


def _check_duplicates(frame: pd.DataFrame, name: str, *, rows: str = "line") -> None:
    """Refuse a (query, doc) pair given twice; ``rows``: "line" (a TREC file) or "row" (a table)."""
    dup = frame.duplicated(["query_id", "item_id"]).to_numpy()
    if dup.any():
        what = "(query, doc) lines" if rows == "line" else "(query_id, item_id) rows"
        raise DataValidationError(f"{name}: {int(dup.sum())} duplicate {what} "
                                  f"({describe_rows(frame, dup, rows=rows)})")


def read_trec_run(path: str | Path) -> pd.DataFrame:
    """Read a TREC run file.

    Parameters
    ----------
    path : str or Path
        Lines ``qid Q0 docid rank score tag``.

    Returns
    -------
    DataFrame
        ``query_id``, ``item_id`` (the file's ids: int64 when every id is a canonical
        integer, else str), ``score`` (float64), ``rank`` (int64), ``tag`` (str).

    Raises
    ------
    ConfigError
        The file does not exist.
    DataValidationError
        Empty file, lines with another number of fields, non-numeric scores or ranks,
        duplicate (query, doc) lines.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from harness.datasets.trec import read_trec_run
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "run.txt"
    >>> _ = f.write_text("u1 Q0 m7 1 2.5 bm25\\nu1 Q0 m9 2 1.0 bm25\\n")
    >>> read_trec_run(f)[["query_id", "item_id", "score"]].to_dict("list")
    {'query_id': ['u1', 'u1'], 'item_id': ['m7', 'm9'], 'score': [2.5, 1.0]}
    """
    frame, name = _read_fields(path, RUN_FIELDS, "run")
    out = pd.DataFrame({"query_id": _ids(frame["query_id"]), "item_id": _ids(frame["item_id"]),
                        "score": _numbers(frame["score"], name, "score", integer=False),
                        "rank": _numbers(frame["rank"], name, "rank", integer=True),
                        "tag": frame["tag"].astype(object)})
    _check_duplicates(out, name)
    return out


def read_trec_qrels(path: str | Path) -> pd.DataFrame:
    """Read a TREC qrels file.

    Parameters
    ----------
    path : str or Path
        Lines ``qid iter docid rel`` (``iter`` is not used, as in trec_eval).

    Returns
    -------
    DataFrame
        ``query_id``, ``item_id`` (as in ``read_trec_run``), ``relevance`` (int64 >= 0:
        a negative grade, a collection's junk label, is read as 0, not relevant, as
        trec_eval reads it; a :class:`NegativeGradesWarning` counts them).

    Raises
    ------
    ConfigError
        The file does not exist.
    DataValidationError
        Empty file, lines with another number of fields, relevance that is not an
        integer, duplicate (query, doc) lines.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from harness.datasets.trec import read_trec_qrels
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "qrels.txt"
    >>> _ = f.write_text("1 0 10 2\\n1 0 11 0\\n")
    >>> read_trec_qrels(f).to_dict("list")
    {'query_id': [1, 1], 'item_id': [10, 11], 'relevance': [2, 0]}
    """
    frame, notice = _qrels_lines(path)
    _warn(notice)
    return frame


def _qrels_lines(path: str | Path) -> tuple[pd.DataFrame, str | None]:
    frame, name = _read_fields(path, QRELS_FIELDS, "qrels")
    rel, notice = _grades_from_zero(_numbers(frame["relevance"], name, "relevance", integer=True), name)
    out = pd.DataFrame({"query_id": _ids(frame["query_id"]), "item_id": _ids(frame["item_id"]), "relevance": rel})
    _check_duplicates(out, name)
    return out, notice


def read_judgments(path: str | Path) -> pd.DataFrame:
    """A collection's judgments: a TREC qrels file, or a Parquet or CSV table with
    columns ``query_id``, ``item_id``, ``relevance`` (the form a warehouse export or a
    Spark job writes; the Spark engine reads the Parquet table where it computes). A
    CSV's ids stay text unless every one is a canonical integer, as for score files.

    Returns the frame of :func:`read_trec_qrels` (ids as stored, ``relevance`` int64),
    with the same checks: integer grades (negative ones read as 0, with a
    :class:`NegativeGradesWarning`), no duplicate (query, doc) pair, not empty.
    """
    frame, notice = judgments_and_notice(path)
    _warn(notice)
    return frame


def judgments_and_notice(path: str | Path) -> tuple[pd.DataFrame, str | None]:
    """:func:`read_judgments`, and the notice of its negative grades (None when there
    is none) returned for a data set's warnings instead of warned."""
    if Path(path).suffix.lower() not in QRELS_TABLE_SUFFIXES:
        return _qrels_lines(path)
    from .tables import read_table

    name = str(path)
    frame = read_table(path, columns=["query_id", "item_id", "relevance"], id_columns=["query_id", "item_id"])
    if len(frame) == 0:
        raise DataValidationError(f"{name}: judgments table is empty (0 rows)")
    raw = frame["relevance"].to_numpy()
    if raw.dtype.kind in "OUST":  # grades written as text: the table's type, not its values
        raise DataValidationError(f"{name}: column 'relevance' stores text (dtype {raw.dtype}, "
                                  f"{describe_examples(pd.unique(raw))}), not integer grades; store it as integers, "
                                  "e.g. frame['relevance'] = frame['relevance'].astype(int) before writing the table")
    rel = raw.astype(np.float64) if raw.dtype.kind in "iuf" else np.full(len(raw), np.nan)
    bad = ~np.isfinite(rel) | (rel != np.round(rel))
    if bad.any():
        raise grades_error(name, int(bad.sum()), len(raw), raw[bad])
    grades, notice = _grades_from_zero(rel.astype(np.int64), name)
    out = pd.DataFrame({"query_id": frame["query_id"], "item_id": frame["item_id"], "relevance": grades})
    _check_duplicates(out, name, rows="row")
    return out, notice


def write_trec_run(run: pd.DataFrame, path: str | Path, *, tag: str = "harness") -> Path:
    """Write ``query_id, item_id, score`` rows as a TREC run (ranks by score descending,
    ties by item id ascending within each query)."""
    ordered = run.sort_values(["query_id", "score", "item_id"], ascending=[True, False, True], kind="stable")
    rank = ordered.groupby("query_id", sort=False).cumcount() + 1
    lines = (ordered["query_id"].astype(str) + " Q0 " + ordered["item_id"].astype(str) + " " + rank.astype(str)
             + " " + ordered["score"].map(repr) + f" {tag}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
