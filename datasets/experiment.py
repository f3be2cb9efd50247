"""Per-unit experiment data (one row per user: variant, metric columns, pre-period
covariates, optional unit, cluster and segment ids) read from Parquet/CSV, checked at the
door and reduced to sufficient statistics batch by batch (:func:`reduce_units`), so that
memory is bounded by one batch whatever the number of users."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from harness.metrics.ab import VariantMoments, add_moments, cluster_totals, segment_moments, variant_moments

from .tables import missing_labels


# rows read, checked and reduced at a time: about this many bytes of float64 values a batch
BATCH_BYTES = 64 << 20
BATCH_ROWS = 1 << 20  # at most


@dataclass(frozen=True)
class ExperimentUnits:
    """Checked per-unit data: ``values`` (n_units x k, float64) of ``columns``, each
    unit's variant as a code into ``variants``, optional ``clusters`` ids."""

    values: np.ndarray
    columns: tuple[str, ...]
    codes: np.ndarray
    variants: tuple[str, ...]
    clusters: np.ndarray | None
    source: str
    segments: np.ndarray | None = None
    segment_names: tuple[str, ...] = ()


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (first 16 hex digits), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def data_fingerprint(location: str | Path) -> str | None:
    """:func:`file_fingerprint` of a file; of a folder (a Parquet dataset written by Spark),
    the digest of its files' relative paths and bytes in path order; None for a catalog
    table, whose content only the engine that reads it can see."""
    path = Path(location)
    if path.is_file():
        return file_fingerprint(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for part in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))):
        digest.update(str(part.relative_to(path)).encode())
        digest.update(bytes.fromhex(file_fingerprint(part)))
    return digest.hexdigest()[:16]


def check_units(frame: pd.DataFrame, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                binary: Sequence[str] = (), counts: Sequence[str] = (), source: str = "experiment data",
                row_offset: int = 0, require_all: bool = True) -> ExperimentUnits:
    """Check a per-unit table and return its arrays.

    Refused, naming the column, the count and examples: a missing column; a metric column
    that is not numeric or has NaN/inf values; a ``binary`` (proportion) column with
    values other than 0/1; a ``counts`` column (a ratio metric's denominator: impressions,
    sessions) with negative values; a variant not in ``variants``; a planned variant without units;
    duplicated ``unit`` ids; missing ``cluster`` ids. Row numbers in messages count from
    ``row_offset`` (the frame is a batch of a larger file); ``require_all=False`` leaves
    the check that every variant has units to the caller (a batch may lack one).
    """
    need = [variant, *columns, *[c for c in (unit, cluster, segment) if c]]
    missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: column(s) {missing} not found (columns: {list(frame.columns)})")
    if len(frame) == 0:
        raise DataValidationError(f"{source}: no rows")
    absent = missing_labels(frame[variant])
    if absent.any():
        rows = np.flatnonzero(absent)[:3] + row_offset + 1
        raise DataValidationError(f"{source}: column {variant!r} has {int(absent.sum())} row(s) with no variant "
                                  f"(empty or null; row(s) {', '.join(map(str, rows))})")
    labels = frame[variant].astype(str).to_numpy()
    names = list(variants)
    known = np.isin(labels, names)
    if not known.all():
        bad = pd.unique(labels[~known])
        raise DataValidationError(f"{source}: column {variant!r} has {int((~known).sum())} row(s) of variant(s) "
                                  f"not in the config ({describe_examples(bad)}); configured: {names}")
    codes = pd.Categorical(labels, categories=names).codes.astype(np.int64)
    empty = [n for n, c in zip(names, np.bincount(codes, minlength=len(names))) if c == 0]
    if empty and require_all:
        raise DataValidationError(f"{source}: no units in variant(s) {empty}")
    cols = list(dict.fromkeys(columns))
    for col in cols:
        if not pd.api.types.is_numeric_dtype(frame[col]):  # bool counts as 0/1
            raise DataValidationError(f"{source}: column {col!r} is not numeric (dtype {frame[col].dtype}, "
                                      f"{describe_examples(frame[col].head(3))})")
    values = np.column_stack([frame[c].to_numpy(dtype=np.float64) for c in cols]) if cols else np.zeros((len(frame), 0))
    bad = ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = np.flatnonzero(bad[:, j])
        raise DataValidationError(f"{source}: column {cols[j]!r} has {rows.size} NaN/inf value(s), e.g. at row(s) "
                                  f"{', '.join(map(str, rows[:3] + row_offset + 1))}")
    for col in binary:
        v = values[:, cols.index(col)]
        off = (v != 0) & (v != 1)
        if off.any():
            raise DataValidationError(f"{source}: proportion column {col!r} must be 0/1; {int(off.sum())} row(s) "
                                      f"are not ({describe_examples(np.unique(v[off]))})")
    for col in counts:
        v = values[:, cols.index(col)]
        if (v < 0).any():
            raise negative_counts_error(source, col, int((v < 0).sum()), np.unique(v[v < 0]))
    if unit:
        dup = frame[unit][frame[unit].duplicated()]
        if len(dup):
            raise DataValidationError(f"{source}: column {unit!r} has {len(dup)} duplicated unit id(s) "
                                      f"({describe_examples(pd.unique(dup))}); one row per unit")
    clusters = None
    if cluster:
        ids = frame[cluster]
        if ids.isna().any():
            raise DataValidationError(f"{source}: cluster column {cluster!r} has {int(ids.isna().sum())} missing id(s)")
        clusters = ids.to_numpy()
    segments, segment_names = label_codes(frame, segment, what="segment", source=source) if segment else (None, ())
    return ExperimentUnits(values, tuple(cols), codes, tuple(names), clusters, source, segments, segment_names)


def label_codes(frame: pd.DataFrame, column: str, *, what: str, source: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A label column (segment, window) as codes into its sorted distinct labels (as text);
    a missing label is an error naming the column and the count."""
    labels = frame[column]
    absent = missing_labels(labels)
    if absent.any():  # an empty CSV cell is no label, not a segment named ''
        raise DataValidationError(f"{source}: {what} column {column!r} has {int(absent.sum())} missing value(s)")
    cat = pd.Categorical(labels.astype(str))
    return cat.codes.astype(np.int64), tuple(str(c) for c in cat.categories)


@dataclass(frozen=True)
class _Names:
    need: list[str]
    ids: list[str]


def _names(kwargs: dict[str, Any]) -> _Names:
    ids = [kwargs[k] for k in ("unit", "cluster", "segment", "window") if kwargs.get(k)]
    return _Names(list(dict.fromkeys([kwargs["variant"], *kwargs["columns"], *ids])), [kwargs["variant"], *ids])


def iter_batches(path: str | Path, *, columns: Sequence[str], id_columns: Sequence[str] = (),
                 unit_columns: Sequence[str] = (), float_columns: Sequence[str] = (),
                 batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The file's ``columns`` as DataFrames of at most ``batch_rows`` rows (Parquet) or
    blocks of about ``batch_rows`` x 64 bytes (CSV: the streaming reader, id columns kept
    as text, ``float_columns`` read as float64 in every block, so that a block does not
    infer another type than the first). A missing file is a ``ConfigError``, an
    unreadable one or a missing id in ``unit_columns`` a ``DataValidationError`` (the other
    text columns' gaps, segments and windows, get their own messages from the caller)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from .tables import _column_names, check_ids_present, unreadable_table

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    delim = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    have = _column_names(path, delim)
    missing = [c for c in columns if c not in have]
    if missing:
        raise DataValidationError(f"{path}: columns {missing} not found (columns: {have})")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            # pre_buffer off and one thread: memory is one row group, not a read-ahead of the file
            batches = pq.ParquetFile(path, pre_buffer=False).iter_batches(
                batch_size=batch_rows, columns=list(columns), use_threads=False)
        else:
            block = int(min(64 << 20, max(1 << 14, batch_rows * 64)))
            types = {**{c: pa.float64() for c in float_columns}, **{c: pa.string() for c in id_columns}}
            batches = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block),
                                     parse_options=pacsv.ParseOptions(delimiter=delim),
                                     convert_options=pacsv.ConvertOptions(include_columns=list(columns),
                                                                          column_types=types))
        offset = 0
        for batch in batches:
            check_ids_present(batch, unit_columns, path, row_offset=offset)
            offset += batch.num_rows
            yield batch.to_pandas()
    except (OSError, pa.ArrowInvalid) as exc:
        raise unreadable_table(path, exc, have) from None


@dataclass
class UnitStatistics:
    """Per-unit data reduced to sufficient statistics: ``moments`` per variant, per segment
    and variant when segmented (``segments``, segments in sorted order); per cluster when
    ``clustered`` (columns then end with the unit count ``UNITS``)."""

    moments: list[VariantMoments]
    segments: dict[str, list[VariantMoments]] | None
    n_units: int
    n_clusters: int | None
    clustered: bool
    windows: dict[str, list[VariantMoments]] | None = None


def unit_clusters(unit: str | None, cluster: str | None) -> str | None:
    """What the clusters are when each is one unit's rows (``cluster`` is the ``unit``
    column: a holdout's (unit, window) rows), for
    :func:`harness.metrics.ab.mixed_clusters_error`; None for clusters of units."""
    return f"unit(s) ({unit!r} column)" if unit is not None and cluster == unit else None


def negative_counts_error(source: str, column: str, n_rows: int, examples: object) -> DataValidationError:
    """The refusal of a ratio metric's denominator below 0 (both engines say it)."""
    return DataValidationError(f"{source}: column {column!r}, a ratio metric's denominator, must be >= 0; "
                               f"{n_rows} row(s) are not ({describe_examples(examples)})")


def _add(acc: list[VariantMoments] | None, part: list[VariantMoments]) -> list[VariantMoments]:
    return part if acc is None else [add_moments([a, b]) for a, b in zip(acc, part)]


def reduce_units(path: str | Path, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                 unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                 window: str | None = None, binary: Sequence[str] = (), counts: Sequence[str] = (),
                 cluster_robust: bool = True, batch_rows: int | None = None) -> UnitStatistics:
    """Stream a per-unit file batch by batch: check each batch (:func:`check_units`), reduce
    it to moments, add them up. With ``cluster`` and ``cluster_robust`` each batch is
    reduced to per-cluster partial totals, combined at the end (memory: one batch plus
    one row per cluster). ``batch_rows`` defaults to about ``BATCH_BYTES`` of values
    (8 bytes x columns a row; at most ``BATCH_ROWS``). Unit ids are checked for duplicates
    over the whole file (the id column alone is kept).

    ``window`` (a time window id: week, day) makes the rows (unit, window) pairs, as in a
    long-term holdout: ``windows`` then holds each window's row-level moments (each unit
    once a window), unit ids may repeat across windows but not within one, and the whole
    experiment is clustered by ``cluster`` (pass the unit column to cluster by unit)."""
    names = _names(dict(variant=variant, columns=columns, unit=unit, cluster=cluster, segment=segment,
                        window=window))
    units = unit_clusters(unit, cluster)
    cols = list(dict.fromkeys(columns))
    if batch_rows is None:
        batch_rows = int(min(BATCH_ROWS, max(4096, BATCH_BYTES // (8 * max(len(cols), 1)))))
    acc: list[VariantMoments] | None = None
    seg_acc: dict[str, list[VariantMoments]] = {}
    partial: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
    unit_ids: list[np.ndarray] = []
    cluster_ids: list[np.ndarray] = []
    seg_index: dict[str, int] = {}
    win_index: dict[str, int] = {}
    win_acc: dict[str, list[VariantMoments]] = {}
    offset = 0
    for frame in iter_batches(path, columns=names.need, id_columns=names.ids, unit_columns=[unit] if unit else [],
                              float_columns=cols, batch_rows=batch_rows):
        if len(frame) == 0:
            continue
        u = check_units(frame, variant=variant, columns=cols, variants=variants, cluster=cluster, segment=segment,
                        binary=binary, counts=counts, source=str(path), row_offset=offset, require_all=False)
        if window:
            win_codes, win_names = label_codes(frame, window, what="window", source=str(path))
            local = np.array([win_index.setdefault(g, len(win_index)) for g in win_names], dtype=np.int64)
            _reduce(u.values, u.codes, local[win_codes], variants, cols, win_index, win_acc)
        if unit:
            unit_ids.append(frame[unit].astype(str).to_numpy() + ("\x1f" + frame[window].astype(str).to_numpy()
                                                                    if window else ""))
        seg = None
        if u.segments is not None:  # batch-local codes -> codes of one growing vocabulary
            local = np.array([seg_index.setdefault(g, len(seg_index)) for g in u.segment_names], dtype=np.int64)
            seg = local[u.segments]
        if u.clusters is not None and cluster_robust:
            t = cluster_totals(u.values, u.codes, u.clusters, columns=cols, segments=seg, units=units)
            partial.append((t.ids, t.values, t.variants, t.segments))
        else:
            if u.clusters is not None:
                cluster_ids.append(pd.unique(u.clusters))
            _reduce(u.values, u.codes, seg, variants, cols, seg_index, seg_acc)
            if seg is None:
                acc = _add(acc, variant_moments(u.values, u.codes, names=variants, columns=cols))
        offset += len(frame)
    if offset == 0:
        raise DataValidationError(f"{path}: no rows")
    if unit_ids:
        ids = pd.Series(np.concatenate(unit_ids))
        dup = ids[ids.duplicated()]
        if len(dup):
            if window:
                raise DataValidationError(f"{path}: {len(dup)} duplicated ({unit}, {window}) pair(s) "
                                          f"({describe_examples(pd.unique(dup.str.replace(chr(31), ', ')))}); "
                                          "one row per unit and window")
            raise DataValidationError(f"{path}: column {unit!r} has {len(dup)} duplicated unit id(s) "
                                      f"({describe_examples(pd.unique(dup))}); one row per unit")
    n_clusters = None
    clustered = bool(partial)
    if clustered:
        ids_, vals, arms, segs = (np.concatenate([p[i] for p in partial]) if partial[0][i] is not None else None
                                  for i in range(4))
        t = cluster_totals(vals[:, :-1], arms, ids_, columns=cols, segments=segs, counts=vals[:, -1], units=units)
        n_clusters = int(t.values.shape[0])
        cols = list(t.columns)
        if t.segments is None:
            acc = variant_moments(t.values, t.variants, names=variants, columns=cols)
        else:
            _reduce(t.values, t.variants, t.segments, variants, cols, seg_index, seg_acc)
    elif cluster_ids:
        n_clusters = int(pd.unique(np.concatenate(cluster_ids)).size)
    segments = None
    if seg_index:
        segments = {g: seg_acc[g] for g in sorted(seg_acc)}
        acc = [add_moments([part[v] for part in segments.values()]) for v in range(len(variants))]
    if acc is None:
        raise DataValidationError(f"{path}: no rows")
    empty = [m.variant for m in acc if m.n == 0]
    if empty:
        raise DataValidationError(f"{path}: no units in variant(s) {empty}")
    windows = {g: win_acc[g] for g in sorted(win_acc, key=natural_order)} if win_acc else None
    return UnitStatistics(acc, segments, offset, n_clusters, clustered, windows)


def natural_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (week 2 before week 10), then text."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)


def _reduce(values: np.ndarray, arms: np.ndarray, seg: np.ndarray | None, variants: Sequence[str],
            cols: Sequence[str], seg_index: dict[str, int], seg_acc: dict[str, list[VariantMoments]]) -> None:
    """Add one batch's per-segment moments into ``seg_acc`` (nothing without segments)."""
    if seg is None:
        return
    labels = list(seg_index)
    parts = segment_moments(values, arms, seg, names=variants, segment_names=labels, columns=cols)
    for g, part in parts.items():
        if sum(m.n for m in part):
            seg_acc[g] = part if g not in seg_acc else _add(seg_acc[g], part)


@dataclass(frozen=True)
class PeriodGroup:
    """Rows of one ``surface`` (None: every row) cut into launch periods by the sorted
    window labels ``starts`` (a window w is in period #{s in starts : s <= w})."""

    label: str
    surface: str | None
    starts: tuple[str, ...]


def reduce_periods(path: str | Path, *, variant: str, unit: str, window: str, columns: Sequence[str],
                   variants: Sequence[str], groups: Sequence[PeriodGroup], surface: str | None = None,
                   batch_rows: int | None = None) -> list[VariantMoments]:
    """Each unit's totals of ``columns`` and of its row count (``ROWS``) per group and launch
    period, reduced to one :class:`VariantMoments` per variant over units (columns named
    by :func:`harness.metrics.holdout.period_column`). Streamed batch by batch: a batch
    becomes per-unit partial totals (one ``bincount`` per column over unit x slot),
    combined at the end, so memory holds one batch plus one row per unit. A unit in two
    variants is an error (:func:`harness.metrics.ab.cluster_totals`)."""
    from harness.metrics.holdout import ROWS, period_column

    cols = list(dict.fromkeys(columns))
    need = list(dict.fromkeys([variant, unit, window, *cols, *([surface] if surface else [])]))
    ids_ = [variant, unit, window, *([surface] if surface else [])]
    slots = [(g, p) for g in groups for p in range(len(g.starts) + 1)]
    names = [period_column(c, g.label, p) for c in (*cols, ROWS) for g, p in slots]
    if batch_rows is None:
        batch_rows = int(min(BATCH_ROWS, max(4096, BATCH_BYTES // (8 * max(len(names), 1)))))
    keys = {g.label: sorted(natural_order(s) for s in g.starts) for g in groups}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    offset = 0
    for frame in iter_batches(path, columns=need, id_columns=ids_, unit_columns=[unit], float_columns=cols,
                              batch_rows=batch_rows):
        if len(frame) == 0:
            continue
        u = check_units(frame, variant=variant, columns=cols, variants=variants, source=str(path),
                        row_offset=offset, require_all=False)
        win_codes, win_names = label_codes(frame, window, what="window", source=str(path))
        # units by hashing (no sort of text ids), then each unit's variant (one per unit, else an error)
        inverse, unit_ids = pd.factorize(frame[unit].to_numpy())
        per_unit = cluster_totals(np.zeros((len(frame), 0)), u.codes, inverse, columns=[],
                                  units=unit_clusters(unit, unit), names=unit_ids)
        surf = label_codes(frame, surface, what="surface", source=str(path)) if surface else None
        values = np.column_stack([u.values, np.ones(len(frame))])
        wide = np.zeros((unit_ids.size, values.shape[1] * len(slots)))
        base = 0
        for g in groups:  # a handful of groups; each maps the batch's few window labels to periods
            period = np.array([launch_period(keys[g.label], w) for w in win_names], dtype=np.int64)[win_codes]
            mine = np.ones(len(frame), dtype=bool)
            if g.surface is not None and surf is not None:
                codes, labels = surf
                mine = codes == (labels.index(g.surface) if g.surface in labels else -1)
            cell = inverse[mine] * len(slots) + base + period[mine]
            for c in range(values.shape[1]):
                wide[:, c * len(slots):(c + 1) * len(slots)] += np.bincount(
                    cell, weights=values[mine, c], minlength=unit_ids.size * len(slots)).reshape(-1, len(slots))
            base += len(g.starts) + 1
        parts.append((np.asarray(unit_ids), wide, per_unit.variants))
        offset += len(frame)
    if offset == 0:
        raise DataValidationError(f"{path}: no rows")
    ids, vals, arms = (np.concatenate([p[i] for p in parts]) for i in range(3))
    codes, uniques = pd.factorize(ids)
    t = cluster_totals(vals, arms, codes, columns=names, counts=np.zeros(ids.size), units=unit_clusters(unit, unit),
                       names=np.asarray(uniques))
    out = variant_moments(t.values[:, :-1], t.variants, names=variants, columns=names)
    empty = [m.variant for m in out if m.n < 2]
    if empty:
        raise DataValidationError(f"{path}: variant(s) {empty} have fewer than 2 units")
    return out


def launch_period(starts: list[tuple[int, float, str]], label: str) -> int:
    """How many launch starts are at or before the window ``label`` (natural order)."""
    key = natural_order(label)
    return sum(1 for s in starts if s <= key)
