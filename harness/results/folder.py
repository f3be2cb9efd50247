"""The results folder ``results/<run-id>/``: written completely, atomically, before MLflow.

- ``results.json``: config, dataset fingerprint, metric rows, comparison rows, verdict,
  tracking status;
- ``per_unit.parquet``: long table ``{family, model, unit_id, metric, value}``: every
  per-unit value, the ``family`` column saying what a unit is (a query, a click row,
  a logged row; see ``results.json["families"]``); ``unit_id`` holds the data's own
  ids, int64 when every unit id is an integer, else text (readers see text); per-unit
  values kept by the backend (Spark) are streamed into it batch by batch
  (:class:`PerUnitRows`);
- ``unit_inputs.parquet`` (when a family stores any): long table ``{family, model,
  unit_id, input, value}`` of per-unit model inputs (a click row's label and p) from
  which ``harness compare`` rebuilds ratio-type statistics; never compared itself;
- ``summary.md`` and ``junit.xml`` (see ``harness.results.report``), ``plots/*.png``,
  ``report.html`` (see ``harness.results.html``).

Schema version 2. Folders of version 1 (unit families as id prefixes ``click:<row>``
/ ``log:<row>``, inputs as pseudo-metrics ``calibration:label`` / ``calibration:p``)
are read through :func:`read_results_folder`, which upgrades them in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from harness.datasets.ids import CANONICAL_INT
from harness.errors import ResultsError

if TYPE_CHECKING:  # reading or writing a folder imports no evaluation code (nor its compiled kernels)
    from harness.evaluate.units import UnitTable

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
RESULTS_JSON = "results.json"
PER_UNIT = "per_unit.parquet"
UNIT_INPUTS = "unit_inputs.parquet"
PER_UNIT_COLUMNS = ["family", "model", "unit_id", "metric", "value"]
INPUT_COLUMNS = ["family", "model", "unit_id", "input", "value"]


def new_run_id() -> str:
    """Sortable, unique: ``20261123T101500Z-1a2b3c4d``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class PerUnitRows:
    """The rows of ``per_unit.parquet`` when some model's per-unit values are kept by
    the backend (:class:`~harness.evaluate.units.UnitTable`, e.g. in Spark): the wide
    table of every (family, model), written by :meth:`write` one bounded batch at a
    time, so that this process never holds a whole table. The file is the one
    ``typed_unit_ids(long_table(...))`` gives locally: the same long schema, ``unit_id``
    int64 when every unit id is a canonical integer (asked of each table), else text."""

    parts: list[tuple[str, str, pd.DataFrame | UnitTable]]

    def _integer_ids(self) -> bool:
        rows = 0
        for _, _, table in self.parts:
            if isinstance(table, pd.DataFrame):
                n = len(table) * table.shape[1]
                if n and not canonical_integers(pd.Series(table.index)):
                    return False
            else:
                n = table.n_units * len(table.columns)
                if n and not table.integer_ids():
                    return False
            rows += n
        return rows > 0

    def write(self, path: Path, *, text: bool = False) -> int:
        """Write the long table to ``path``: one Parquet file, its rows in the local order
        (per model, metric by metric, units in ascending id order). A kept table's batches
        are split by metric into temporary Parquet files beside ``path``, then copied into
        it row group by row group; returns the number of rows. ``text``: the ids stay text
        (as :func:`typed_unit_ids`)."""
        import tempfile

        import pyarrow as pa
        import pyarrow.parquet as pq

        integer = not text and self._integer_ids()
        schema: pa.Schema | None = None
        writer: pq.ParquetWriter | None = None
        n_rows = 0

        def arrow(long: pd.DataFrame) -> pa.Table:
            nonlocal schema
            if integer:
                long["unit_id"] = long["unit_id"].astype(np.int64)
            if schema is None:
                schema = pa.Schema.from_pandas(long, preserve_index=False)
            return pa.Table.from_pandas(long, schema=schema, preserve_index=False)

        def emit(table: pa.Table) -> None:
            nonlocal writer, n_rows
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            n_rows += table.num_rows

        try:
            for family, model, table in self.parts:
                if isinstance(table, pd.DataFrame):
                    long = long_table(family, {model: table})
                    if len(long):
                        emit(arrow(long))
                    continue
                with tempfile.TemporaryDirectory(dir=path.parent, prefix=".per_unit-") as scratch:
                    by_metric: dict[int, pq.ParquetWriter] = {}
                    try:
                        for batch in table.batches():
                            long, size = long_table(family, {model: batch}), len(batch)
                            for j in range(batch.shape[1]):  # melt: metric by metric
                                if size:
                                    block = arrow(long.iloc[j * size:(j + 1) * size].reset_index(drop=True))
                                    if j not in by_metric:
                                        by_metric[j] = pq.ParquetWriter(Path(scratch) / f"{j}.parquet", block.schema)
                                    by_metric[j].write_table(block)
                    finally:
                        for part in by_metric.values():
                            part.close()
                    for j in sorted(by_metric):
                        source = pq.ParquetFile(Path(scratch) / f"{j}.parquet")
                        for group in range(source.num_row_groups):
                            emit(source.read_row_group(group))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # no row: the empty table, as locally
            long_table("", {}).to_parquet(path, index=False)
        return n_rows


@dataclass
class EvalResult:
    """Everything one evaluation produced, ready to be written and logged."""

    run_id: str
    created_at: str
    config: dict[str, Any]
    config_hash: str
    dataset: dict[str, Any]
    metrics: list[dict[str, Any]]
    per_unit: pd.DataFrame | PerUnitRows  # PerUnitRows: streamed to the file, never held whole
    inputs: pd.DataFrame | None = None
    comparison: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=lambda: {"status": "pending", "uri": None,
                                                              "mlflow_run_ids": {}})
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "config": self.config,
            "config_hash": self.config_hash,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "comparison": self.comparison,
            "verdict": self.verdict,
            "tracking": self.tracking,
            **self.extra,
        }

    @property
    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _clean_floats(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_floats(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean_floats(data), indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_results(result: EvalResult, output: str | Path, extra_files: dict[str, str] | None = None,
                  figures: dict[str, Callable[[], Any]] | None = None,
                  finalize: Callable[[Path, dict[str, Any]], object] | None = None) -> Path:
    """Write the results folder completely under a temporary name, then rename it.

    ``figures`` (name -> a function drawing a matplotlib figure) are drawn and saved as
    ``plots/<name>.png``, one at a time;
    ``finalize(folder, results_json)`` then adds what is made from the written folder
    (the HTML report). A crash leaves either no folder or a complete one, never a
    half-written one.
    """
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    final = root / result.run_id
    tmp = root / f".tmp-{result.run_id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_json_atomic(tmp / RESULTS_JSON, result.to_json_dict())
        text = text_ids(result)
        if isinstance(result.per_unit, PerUnitRows):
            result.per_unit.write(tmp / PER_UNIT, text=text)
        else:
            typed_unit_ids(result.per_unit, text=text).to_parquet(tmp / PER_UNIT, index=False)
        if result.inputs is not None and len(result.inputs):
            typed_unit_ids(result.inputs, text=text).to_parquet(tmp / UNIT_INPUTS, index=False)
        for name, text in (extra_files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        if figures:  # here only: reading a folder imports no evaluation code
            from harness.evaluate.plots import save_figure

            for name, draw in figures.items():
                save_figure(draw(), tmp / "plots" / f"{name}.png")
        if finalize is not None:
            finalize(tmp, result.to_json_dict())
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def update_tracking(results_dir: Path, tracking: dict[str, Any]) -> None:
    """Record the tracking status in ``results.json`` (atomically)."""
    data = read_results_json(results_dir)
    data["tracking"] = tracking
    write_json_atomic(Path(results_dir) / RESULTS_JSON, data)


def read_results_json(results_dir: str | Path) -> dict[str, Any]:
    path = Path(results_dir) / RESULTS_JSON
    if not path.is_file():
        raise ResultsError(f"no {RESULTS_JSON} in {results_dir}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    if data.get("schema_version") not in READABLE_VERSIONS:
        raise ResultsError(f"{path}: schema_version {data.get('schema_version')!r} is not one this harness "
                           f"reads ({', '.join(map(str, READABLE_VERSIONS))})")
    return data


def typed_unit_ids(table: pd.DataFrame, *, text: bool = False) -> pd.DataFrame:
    """``table`` as written to disk: ``unit_id`` int64 when every unit id is a canonical
    integer (as the loaders read integer ids), so that the file joins to the user's own
    tables on an integer key; any text id keeps the whole column text, and so does
    ``text`` (the data stores its ids as text: ``"101"`` stays ``"101"``)."""
    units = table["unit_id"].astype(str)
    if len(units) and not text and canonical_integers(units):
        return table.assign(unit_id=units.astype(np.int64))
    return table


def text_ids(result: "EvalResult") -> bool:
    """True when the run's data stores its user (query) ids as text (``results.json``'s
    ``dataset.id_types``; folders written before it was recorded: False)."""
    return ((result.dataset or {}).get("id_types") or {}).get("user") == "text"


def canonical_integers(ids: pd.Series) -> bool:
    """True when every id, as text, is a canonical integer (``CANONICAL_INT``)."""
    return bool(ids.astype(str).str.match(CANONICAL_INT).all())


def long_table(family: str, per_model: dict[str, pd.DataFrame], *, name: str = "metric") -> pd.DataFrame:
    """Long table ``{family, model, unit_id, <name>, value}`` of per-model wide tables
    (indexed by unit id, one column per metric or input)."""
    frames = []
    for model, wide in per_model.items():
        long = wide.rename_axis("unit_id").reset_index().melt(id_vars="unit_id", var_name=name,
                                                               value_name="value")
        long.insert(0, "model", model)
        long.insert(0, "family", family)
        frames.append(long)
    columns = ["family", "model", "unit_id", name, "value"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    out["unit_id"] = out["unit_id"].astype(str)
    out["value"] = out["value"].astype(np.float64)
    return out[columns]


@dataclass
class StoredRun:
    """A results folder read back: ``results.json`` and both long tables (schema 2 shape),
    ``unit_id`` as the files store it (int64 when every unit id is an integer, so that it
    joins to the user's own integer-keyed tables; text otherwise)."""

    path: Path
    data: dict[str, Any]
    per_unit: pd.DataFrame
    inputs: pd.DataFrame


def read_results_folder(path: str | Path) -> StoredRun:
    """Read a results folder of any readable schema version, upgraded to version 2."""
    path = Path(path)
    data = read_results_json(path)
    if not (path / PER_UNIT).is_file():
        raise ResultsError(f"no {PER_UNIT} in {path}")
    try:
        per_unit = pd.read_parquet(path / PER_UNIT)
        inputs = (pd.read_parquet(path / UNIT_INPUTS) if (path / UNIT_INPUTS).is_file()
                  else pd.DataFrame(columns=INPUT_COLUMNS))
    except Exception as exc:  # pyarrow raises its own types for a damaged file
        raise ResultsError(f"{path}: cannot read the per-unit tables ({type(exc).__name__}: {exc})") from None
    if data["schema_version"] == 1:
        data, per_unit, inputs = _upgrade_v1(data, per_unit)
    missing = set(PER_UNIT_COLUMNS) - set(per_unit.columns)
    if missing:
        raise ResultsError(f"{path}/{PER_UNIT} lacks column(s) {sorted(missing)}")
    per_unit["model"] = per_unit["model"].astype(str)
    return StoredRun(path, data, per_unit, inputs)


def wide_table(rows: pd.DataFrame, column: str = "metric") -> pd.DataFrame:
    """Rows of a long table as units x ``column`` (metric or input) values, in first-seen
    column order, indexed by the unit id as text: the key per-unit frames use in memory,
    whether the file stores the ids as integers or as text."""
    table = rows.assign(unit_id=rows["unit_id"].astype(str)).pivot(index="unit_id", columns=column, values="value")
    table.columns.name = None
    return table[list(dict.fromkeys(rows[column]))]


# schema 1: the unit family was the unit id's prefix; these pseudo-metrics were inputs
_V1_PREFIXES = {"click:": "calibration", "log:": "off_policy"}
_V1_INPUTS = {"calibration:label": "label", "calibration:p": "p"}
_V1_PER_USER = ("novelty", "arp", "ild")


def _upgrade_v1(data: dict[str, Any], long: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Schema-1 tables and results.json in the schema-2 shape (in memory only)."""
    units = long["unit_id"].astype(str)
    family = pd.Series("ranking", index=long.index, dtype=object)
    bare = units.copy()
    for prefix, name in _V1_PREFIXES.items():
        has = units.str.startswith(prefix)
        family[has] = name
        bare[has] = units[has].str.slice(len(prefix))
    metric_name = long["metric"].astype(str).str.split("@").str[0]
    family[(family == "ranking") & metric_name.isin(_V1_PER_USER)] = "beyond_accuracy"
    table = long.assign(family=family, unit_id=bare)
    is_input = table["metric"].isin(list(_V1_INPUTS))
    inputs = table[is_input].rename(columns={"metric": "input"})
    inputs["input"] = inputs["input"].map(_V1_INPUTS)
    per_unit = table[~is_input]
    config = data.get("config") or {}
    evaluate = config.get("evaluate") or {}
    estimates = (data.get("off_policy") or {}).get("estimates") or {}
    families: dict[str, Any] = {}
    for name in dict.fromkeys(per_unit["family"]):
        metrics = list(dict.fromkeys(per_unit.loc[per_unit["family"] == name, "metric"]))
        caps: dict[str, dict[str, str]] = {}
        if name == "calibration":  # ratio-type metrics were compared from the stored inputs
            metrics += [m for m in (evaluate.get("calibration") or {}).get("metrics", []) if m not in metrics
                        and m in ("ece", "mce", "normalized_entropy", "oe_ratio")]
        if name == "off_policy":
            caps = {model: {r["estimator"]: "too little overlap with the logs in the source run: "
                            + str(r.get("overlap_reason") or "low effective sample size")
                            for r in rows if r.get("low_overlap", r.get("low_ess"))}
                    for model, rows in estimates.items()}
        families[name] = {"compared": metrics, "caps": caps}
    data = {**data, "schema_version": SCHEMA_VERSION, "families": families}
    return data, per_unit[PER_UNIT_COLUMNS].reset_index(drop=True), inputs[INPUT_COLUMNS].reset_index(drop=True)
