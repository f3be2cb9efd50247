"""A missing id (an empty CSV cell, a null) is refused where a table is read, naming the
file, the column, the count and the rows: an empty id is no id, and read as the text ""
it became a user, an item or a query nobody has, scored and counted as one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.datasets.experiment import iter_batches
from harness.datasets.tables import read_table
from harness.errors import DataValidationError


@pytest.mark.parametrize("cell", ["", "   "])
def test_an_empty_csv_id_is_refused_naming_file_column_and_row(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(f"query_id,item_id,score\nq1,a,1.0\nq1,b,0.9\nq2,{cell},0.5\nq2,c,0.3\nq3,,0.1\n")
    with pytest.raises(DataValidationError, match=rf"{path}: column 'item_id' has 2 missing id\(s\) .*row\(s\) 3, 5"):
        read_table(path, id_columns=["query_id", "item_id"])
    assert len(read_table(path, id_columns=["query_id"])) == 5  # only id columns are checked


def test_a_null_parquet_id_is_refused_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "scores.parquet"
    pd.DataFrame({"query_id": ["q1", None, "q2"], "item_id": [1, 2, 3], "score": [0.1, 0.2, 0.3]}).to_parquet(path)
    with pytest.raises(DataValidationError, match=r"column 'query_id' has 1 missing id\(s\) .*row\(s\) 2\)"):
        read_table(path, id_columns=["query_id", "item_id"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_streamed_batches_name_the_row_in_the_whole_file(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(10_000)], "variant": "control", "clicks": 1.0})
    frame.loc[7_321, "user_id"] = None
    path = tmp_path / f"exp.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    with pytest.raises(DataValidationError, match=r"column 'user_id' has 1 missing id\(s\) .*row\(s\) 7322\)"):
        for _ in iter_batches(path, columns=["user_id", "variant", "clicks"], id_columns=["user_id", "variant"],
                              unit_columns=["user_id"], batch_rows=1000):
            pass


def test_harness_ab_with_an_empty_unit_id_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "exp.csv"
    data.write_text("user_id,variant,revenue\nu1,control,1.0\n,treatment,2.0\nu3,treatment,0.5\nu4,control,0.2\n")
    cfg = {"name": "ab", "columns": {"variant": "variant", "unit": "user_id"},
           "variants": {"control": "control", "treatments": ["treatment"]},
           "metrics": {"revenue": {"mean": "revenue"}},
           "gate": [{"metric": "revenue", "role": "primary", "direction": "higher"}],
           "tracking": {"enabled": False}, "output": str(tmp_path / "results")}
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["ab", str(data), "--config", str(tmp_path / "ab.yaml")])
    assert result.exit_code == 2, result.output
    assert f"error: {data}: column 'user_id' has 1 missing id(s) (empty or null; row(s) 2)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_an_id_column_the_file_lacks_is_named_with_the_files_columns(tmp_path: Path) -> None:
    """An item-features table keyed by another column than the interactions' item column
    (``columns.item: sku`` and a file with ``item_id``): a clear error, not a KeyError."""
    path = tmp_path / "items.csv"
    path.write_text("item_id,genre\n1,a\n2,b\n")
    with pytest.raises(DataValidationError, match=r"items.csv: columns \['sku'\] not found \(columns: \['item_id', 'genre'\]\)"):
        read_table(path, id_columns=["sku"])
