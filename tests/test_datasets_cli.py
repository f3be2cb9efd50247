"""End to end: `harness run` and `harness validate` on a MovieLens-100K folder written here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.datasets.movielens import GENRES_100K, load_movielens_dataset

from conftest import VENV_BIN
from typer.testing import CliRunner

from harness.apps.cli import app

SPLIT = {"kind": "leave_last_out", "k": 2}
RELEVANCE = {"from": "rating", "threshold": 4}


def write_ml100k(folder: Path, *, n_users: int = 60, n_items: int = 40, seed: int = 0) -> Path:
    """A popularity-skewed MovieLens-100K folder: u.data, u.item (latin-1), u.genre."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    pop = 1.0 / np.arange(1, n_items + 1)
    lines = []
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(6, 15)), replace=False, p=pop / pop.sum())
        for t, i in enumerate(items):
            rating = int(np.clip(round(5 - i / 10 + rng.normal(0, 0.7)), 1, 5))
            lines.append(f"{u}\t{i}\t{rating}\t{880000000 + 1000 * t + u}\n")
    (folder / "u.data").write_text("".join(lines))
    (folder / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(GENRES_100K)))
    rows = [f"{i}|Film {i} (199{i % 10})|01-Jan-1995||http://x|" + "|".join("1" if (i + g) % 7 == 0 else "0"
                                                                          for g in range(19)) + "\n"
            for i in range(1, n_items + 1)]
    (folder / "u.item").write_bytes("".join(rows).encode("latin-1"))
    return folder


def config(tmp_path: Path, folder: Path) -> Path:
    cfg = {
        "name": "ml100k-e2e",
        "seed": 3,
        "dataset": {"kind": "movielens", "path": str(folder), "split": SPLIT, "relevance": RELEVANCE},
        "models": {"random": {"kind": "random"}, "popularity": {"kind": "popularity"}},
        "evaluate": {"ranking": {"metrics": ["ndcg@10", "recall@10"]}},
        "compare": {"baseline": "random", "candidates": ["popularity"], "n_resamples": 200},
        "tracking": {"enabled": False},
        "output": str(tmp_path / "results"),
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def harness(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed command, in a fresh process (as CI runs it)."""
    return subprocess.run([str(VENV_BIN / "harness"), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def in_process(*args: str | Path):
    """The same CLI in this process (fast; for the error paths)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def test_run_on_movielens_100k(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    cfg = config(tmp_path, folder)
    out = harness("run", cfg, "--no-progress")
    assert out.returncode == 0, out.stderr
    results = json.loads(next((tmp_path / "results").glob("*/results.json")).read_text())
    expected = load_movielens_dataset(folder, split=SPLIT, relevance=RELEVANCE, seed=3)
    assert results["dataset"]["fingerprint"] == expected.fingerprint
    assert results["dataset"]["settings"]["format"] == "100k"
    rows = {(r["model"], r["metric"]): r for r in results["metrics"]}
    n_queries = int((expected.qrels.groupby("query_id")["relevance"].max() >= 1).sum())
    assert rows[("popularity", "ndcg@10")]["n_units"] == n_queries
    # on a popularity-skewed world with ratings falling with the item id, popularity beats random
    assert rows[("popularity", "ndcg@10")]["value"] > rows[("random", "ndcg@10")]["value"]


def test_validate_checks_the_data(tmp_path: Path) -> None:
    folder = write_ml100k(tmp_path / "ml-100k")
    cfg = config(tmp_path, folder)
    ok = in_process("validate", cfg)
    assert ok.exit_code == 0, ok.stderr
    assert "dataset movielens-100k:ml-100k: 60 users" in ok.stdout and "valid" in ok.stdout
    assert not (tmp_path / "results").exists()  # nothing was run
    with open(folder / "u.data", "a") as f:
        f.write("1\t2\t9\t880000000\n2\t3\t0\t880000001\n")
    bad = in_process("validate", cfg)
    assert bad.exit_code == 2
    assert "interactions.rating: values outside [0.5, 5.0] (2 rows" in bad.stderr
    (folder / "u.data").unlink()
    missing = in_process("validate", cfg)
    assert missing.exit_code == 2 and "cannot tell the format" in missing.stderr


@pytest.mark.parametrize("split", [{"kind": "temporal", "cutoff": 0}, {"kind": "leave_last_out", "k": 50}])
def test_run_refuses_an_empty_test_split(tmp_path: Path, split: dict) -> None:
    folder = write_ml100k(tmp_path / "ml", n_users=10)
    cfg = config(tmp_path, folder)
    data = yaml.safe_load(cfg.read_text())
    data["dataset"]["split"] = split
    if split["kind"] == "temporal":
        data["dataset"]["split"]["cutoff"] = 2_000_000_000  # after every timestamp
    cfg.write_text(yaml.safe_dump(data))
    out = in_process("run", cfg, "--no-progress")
    assert out.exit_code == 2 and "no interaction was held out" in out.stderr
