"""The README and docs/*.md are executed, as written.

- every ```python block runs in a fresh namespace in a temporary working directory;
- every ```yaml block is classified and run: a complete config (name, dataset, models)
  through ``harness run`` on the data it names; a fragment (only models / evaluate / gate
  / dataset / attribution keys) merged into a small base config (``tests.conftest.small_config``)
  and run (by ``harness attribute`` when it has an attribution section), with small copies of the files it points at generated first; a GitHub Actions
  workflow (or a step of one) by running the ``harness`` commands of its ``run:`` scripts;
- the ``harness`` commands of ```bash blocks run when they are cheap; the others are
  listed in ``BASH_SKIPS`` with the reason.

No block is left unclassified: a new block of an unknown shape fails ``test_every_block_is_covered``.
The README's full example runs at its own sizes (about 15 s of CPU, 0.7 GiB peak).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import harness
from harness.apps.cli import app
from tests.conftest import small_config, write_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OK_EXIT = (0, 1)  # gate outcomes; 2 (bad config or input) and 3 (crash) never are
FRAGMENT_KEYS = {"models", "evaluate", "gate", "dataset", "attribution"}
PEAK_RSS_LIMIT = 2 * 1024**3


# ----------------------------------------------------------------------------- extraction
class Block:
    def __init__(self, doc: Path, line: int, lang: str, text: str) -> None:
        self.doc, self.line, self.lang, self.text = doc, line, lang, text

    @property
    def id(self) -> str:
        return f"{self.doc.name}:{self.line}"

    def __repr__(self) -> str:
        return self.id


def _blocks() -> list[Block]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
            out.append(Block(doc, text[: m.start()].count("\n") + 1, m.group(1), m.group(2)))
    return out


BLOCKS = _blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
YAML = [b for b in BLOCKS if b.lang == "yaml"]
BASH = [b for b in BLOCKS if b.lang == "bash"]


def _documents(block: Block) -> list[Any]:
    return [d for d in yaml.safe_load_all(block.text) if d is not None]


def _is_config(doc: Any) -> bool:
    return isinstance(doc, dict) and {"name", "dataset", "models"} <= set(doc)


def _is_fragment(doc: Any) -> bool:
    return isinstance(doc, dict) and bool(doc) and set(doc) <= FRAGMENT_KEYS


def _is_workflow(doc: Any) -> bool:
    """A GitHub Actions workflow, or a list of its steps."""
    if isinstance(doc, dict) and "jobs" in doc:
        return True
    return isinstance(doc, list) and all(isinstance(s, dict) and ("run" in s or "uses" in s) for s in doc)


CONFIGS = [b for b in YAML if all(_is_config(d) for d in _documents(b))]
FRAGMENTS = [(b, i) for b in YAML if all(_is_fragment(d) for d in _documents(b))
             for i in range(len(_documents(b)))]
WORKFLOWS = [b for b in YAML if all(_is_workflow(d) for d in _documents(b))]


def _is_ab_config(doc: Any) -> bool:
    """A ``harness ab`` config (see harness.spec.ab)."""
    return isinstance(doc, dict) and {"name", "variants", "metrics"} <= set(doc)


AB_CONFIGS = [b for b in YAML if all(_is_ab_config(d) for d in _documents(b))]


# ----------------------------------------------------------------------------- helpers
def _cli(args: list[str]) -> Any:
    result = CliRunner().invoke(app, args)
    assert result.exit_code in OK_EXIT, f"harness {' '.join(args)} -> {result.exit_code}:\n{result.output}"
    return result


def _harness_lines(script: str) -> list[str]:
    """``harness ...`` commands of a shell script, continuation lines joined, comments dropped."""
    script = script.replace("\\\n", " ")
    return [line.split(" #", 1)[0].strip() for line in script.splitlines()
            if line.strip().startswith("harness ")]


def _main_config() -> tuple[Block, dict[str, Any]]:
    (block,) = [b for b in CONFIGS if b.doc.name == "README.md"]
    (cfg,) = _documents(block)
    return block, cfg


# ----------------------------------------------------------------------------- coverage
def test_every_block_is_covered() -> None:
    """Each block is python, bash, or a yaml block of a known shape: nothing is skipped silently."""
    known = {b.id for b in PYTHON + BASH + CONFIGS + WORKFLOWS + AB_CONFIGS} | {b.id for b, _ in FRAGMENTS}
    stray = [b.id for b in BLOCKS if b.id not in known and b.lang != "text"]
    assert not stray, f"blocks of an unknown kind or shape (extend tests/test_readme.py): {stray}"
    assert len(CONFIGS) == 1, "the README's Config section holds the one complete config"
    assert PYTHON and FRAGMENTS and WORKFLOWS and AB_CONFIGS


def test_docs_import_only_the_public_api() -> None:
    allowed = re.compile(r"^harness(\.(metrics|models|datasets|spark)(\.\w+)?)?$")
    for block in PYTHON:
        for a, b in re.findall(r"^\s*(?:from\s+(\S+)\s+import|import\s+(\S+))", block.text, flags=re.M):
            name = a or b
            if name.split(".")[0] == "harness":
                assert allowed.match(name), f"{block.id} imports internal module {name}"


# ----------------------------------------------------------------------------- python
# Blocks that use the Spark backend run in the test run's one Spark session (the ``spark``
# fixture, on the Spark tests' xdist worker), which their spark_session() call picks up.
SPARK_PYTHON = [b for b in PYTHON if "harness.spark" in b.text]


@pytest.mark.parametrize("block", [b for b in PYTHON if b not in SPARK_PYTHON], ids=lambda b: b.id)
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_python_block(block, tmp_path, monkeypatch)


@pytest.mark.parametrize("block", SPARK_PYTHON, ids=lambda b: b.id)
def test_spark_python_block_runs(block: Block, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _run_python_block(block, tmp_path, monkeypatch)


def _run_python_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    used = set(re.findall(r"\bharness\.([A-Za-z_]\w*)\b", block.text))
    used |= {n.strip() for names in re.findall(r"^\s*from harness import ([^\n]+)", block.text, flags=re.M)
             for n in names.strip("()").split(",")}
    missing = sorted(n for n in used - {"metrics", "models", "datasets", "spark"} if n not in harness.__all__)
    assert not missing, f"{block.id} uses names harness does not export: {missing}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    code = compile(block.text, f"{block.doc.name}:{block.line}", "exec")
    exec(code, {"__name__": "__readme__"})


# ----------------------------------------------------------------------------- yaml: fragments
def _write_movielens_1m(folder: Path, *, n_users: int = 80, n_items: int = 150, per_user: int = 25) -> pd.DataFrame:
    """A small MovieLens-1M-format folder (ratings.dat, movies.dat, users.dat); returns the ratings."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7
    rows = []
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False, p=popularity / popularity.sum())
        for j, i in enumerate(items):
            rows.append(f"{u}::{i}::{rng.integers(1, 6)}::{978300000 + 1000 * u + 10 * j}\n")
    (folder / "ratings.dat").write_text("".join(rows))
    genres = ["Action", "Comedy", "Drama", "Romance", "Thriller"]
    movies = [f"{i}::Movie {i} (19{50 + i % 50})::{genres[i % 5]}|{genres[(i * 3) % 5]}\n" for i in range(1, n_items + 1)]
    (folder / "movies.dat").write_bytes("".join(movies).encode("latin-1"))
    (folder / "users.dat").write_text("".join(f"{u}::{'MF'[u % 2]}::25::{u % 20}::{10000 + u}\n"
                                              for u in range(1, n_users + 1)))
    return pd.DataFrame([r.split("::")[:2] for r in rows], columns=["user", "item"]).astype(np.int64)


def _write_interactions(root: Path, spec: dict[str, Any], *, n_users: int = 80, n_items: int = 120) -> pd.DataFrame:
    """Parquet/CSV interaction logs in the columns the spec maps (string ids), and the item
    and user tables it names; returns the log."""
    rng = np.random.default_rng(1)
    cols = spec["columns"]
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    cut = pd.Timestamp(spec["split"]["cutoff"]) if "cutoff" in spec.get("split", {}) else None
    start, end = pd.Timestamp("2024-05-01", tz="UTC"), pd.Timestamp("2024-06-30", tz="UTC")
    users = np.array([f"u{u:03d}" for u in range(n_users)])
    items = np.array([f"sku-{i:04d}" for i in range(n_items)])
    ts = cols.get("timestamp", "ts")
    rows = []
    for u in users:
        chosen = rng.choice(items, size=20, replace=False)
        times = start + (end - start) * np.sort(rng.random(20))
        if cut is not None:  # every user has rows on both sides of the cut
            times[-3:] = cut + pd.Timedelta(days=1) + pd.to_timedelta(np.arange(3), unit="h")
        for i, when in zip(chosen, times):
            rows.append({cols["user"]: u, cols["item"]: i, cols.get("rating", "rating"): int(rng.integers(1, 6)),
                         cols.get("label", "label"): int(rng.random() < 0.4), ts: when})
    log = pd.DataFrame(rows)
    months = log[ts].dt.month
    for k, path in enumerate(paths):  # one file per month when the spec names several
        _write_table(log[months == months.min() + k] if len(paths) > 1 else log, root / path)
    if "item_features" in spec:
        f = spec["item_features"]
        sep = f.get("category_separator", "|")
        _write_table(pd.DataFrame({f.get("id_column") or cols["item"]: items, "price": rng.uniform(1, 50, n_items),
                                   f.get("category_column") or "tags": [sep.join(["a", "b", "c"][: 1 + k % 3])
                                                                        for k in range(n_items)]}), root / f["path"])
    if "user_features" in spec:
        f = spec["user_features"]
        _write_table(pd.DataFrame({f.get("id_column") or cols["user"]: users, "age": rng.integers(18, 70, n_users)}),
                     root / f["path"])
    return log.rename(columns={cols["user"]: "user", cols["item"]: "item"})


def _write_trec_qrels(path: Path, *, n_topics: int = 40, n_docs: int = 200) -> pd.DataFrame:
    """A graded qrels file in string ids (``topic-N``, ``doc-N``); returns its (user, item) pairs."""
    rng = np.random.default_rng(3)
    topics = np.repeat([f"topic-{t}" for t in range(n_topics)], 15)
    docs = np.concatenate([rng.choice(n_docs, 15, replace=False) for _ in range(n_topics)])
    judged = pd.DataFrame({"user": topics, "item": [f"doc-{d}" for d in docs]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{q} 0 {d} {g}\n" for q, d, g in zip(judged["user"], judged["item"],
                                                                    rng.integers(0, 3, len(judged)))))
    return judged


def _write_table(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False) if path.suffix in (".parquet", ".pq") else table.to_csv(path, index=False)


def _write_inputs(root: Path, cfg: dict[str, Any], log: pd.DataFrame | None) -> None:
    """Every file the config's models and families point at, in the data's own ids: the
    synthetic world's codes, or the ids of the interaction ``log`` written for it."""
    from harness.datasets import make_synthetic

    rng = np.random.default_rng(2)
    data = None
    if log is None:
        d = cfg["dataset"]
        data = make_synthetic(n_users=d["n_users"], n_items=d["n_items"], dim=d["dim"], seed=cfg["seed"])
        users, items = np.arange(data.n_users), np.arange(data.n_items)
    else:
        users, items = np.unique(log["user"]), np.unique(log["item"])
    scores = rng.normal(size=(len(users), len(items)))
    if data is not None:
        scores += data.truth["true_scores"]
    top = np.argsort(-scores, axis=1)[:, :60]
    rows = np.repeat(np.arange(len(users)), top.shape[1])
    ranked = pd.DataFrame({"query_id": users[rows], "item_id": items[top.ravel()],
                           "score": np.take_along_axis(scores, top, axis=1).ravel()})
    labelled = pd.DataFrame({"query_id": rng.choice(users, 400), "item_id": rng.choice(items, 400)}
                            ).drop_duplicates(ignore_index=True)
    for spec in cfg["models"].values():
        params = spec.get("params", {})
        if spec["kind"] == "precomputed":
            path = root / params["path"]
            if params.get("format") == "trec" or path.suffix in (".run", ".trec", ".txt"):
                run = ranked[~ranked["query_id"].isin(users[::10])] if params.get("missing") == "empty" else ranked
                rank = run.groupby("query_id").cumcount() + 1  # a run lacking judged topics exercises `missing`
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(f"{q} Q0 {i} {r} {s:.6f} spark\n" for q, i, r, s in
                                        zip(run["query_id"], run["item_id"], rank, run["score"])))
            elif params.get("missing") == "empty":  # a query the file lacks exercises `missing`
                _write_table(ranked[~ranked["query_id"].isin(users[::10])], path)
            else:  # scores, and probabilities for every labelled pair (calibration)
                u, i = users.searchsorted(labelled["query_id"]), items.searchsorted(labelled["item_id"])
                extra = labelled.assign(score=scores[u, i])
                table = pd.concat([ranked, extra]).drop_duplicates(["query_id", "item_id"], ignore_index=True)
                _write_table(table.assign(p=1 / (1 + np.exp(-table["score"]))), path)
        elif spec["kind"] == "sklearn":
            from sklearn.linear_model import LogisticRegression

            from harness.models.features import interaction_features

            assert data is not None, "sklearn models are shown on the synthetic data set"
            features = interaction_features(data.train, data.n_users, data.n_items, seed=cfg["seed"])
            pairs = pd.DataFrame({"query_id": rng.integers(0, data.n_users, 3000),
                                  "item_id": rng.integers(0, data.n_items, 3000)})
            label = data.truth["true_relevance"][pairs["query_id"], pairs["item_id"]] > 0
            estimator = LogisticRegression(max_iter=500).fit(features.build(pairs), label)
            path = root / params["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".skops":
                import skops.io

                skops.io.dump(estimator, path)
            else:
                import joblib

                joblib.dump(estimator, path)
    evaluate = cfg.get("evaluate", {})
    labels = (evaluate.get("calibration") or {}).get("labels")
    if labels:
        c = {"user": "user_id", "item": "item_id", "label": "label", **labels.get("columns", {})}
        _write_table(pd.DataFrame({c["user"]: labelled["query_id"], c["item"]: labelled["item_id"],
                                   c["label"]: rng.integers(0, 2, len(labelled))}), root / labels["path"])
    feedback = (evaluate.get("off_policy") or {}).get("feedback")
    if isinstance(feedback, dict):
        c = {"context": "user_id", "action": "item_id", "reward": "reward", "propensity": "propensity",
             **feedback.get("columns", {})}
        n = 2000
        _write_table(pd.DataFrame({c["context"]: rng.choice(users, n), c["action"]: rng.choice(items, n),
                                   c["reward"]: rng.integers(0, 2, n), c["propensity"]: np.full(n, 1 / len(items))}),
                     root / feedback["path"])
    slates = (evaluate.get("slate_off_policy") or {}).get("feedback")
    if slates:
        c = {"slate": "slate_id", "context": "user_id", "action": "item_id", "position": "position",
             "reward": "reward", "propensity": "propensity", **slates.get("columns", {})}
        n, k = 500, 3  # uniform logging: slot j's item drawn among the items not yet shown
        shown = np.stack([rng.choice(items, k, replace=False) for _ in range(n)])
        _write_table(pd.DataFrame({c["slate"]: np.repeat([f"s{j}" for j in range(n)], k),
                                   c["context"]: np.repeat(rng.choice(users, n), k), c["action"]: shown.ravel(),
                                   c["position"]: np.tile(np.arange(k), n), c["reward"]: rng.integers(0, 2, n * k),
                                   c["propensity"]: np.tile(1 / (len(items) - np.arange(k)), n)}),
                     root / slates["path"])


def _fragment_config(fragment: dict[str, Any], root: Path) -> dict[str, Any]:
    """The fragment merged into the small base config, with the files it names written."""
    cfg = small_config(root)
    cfg["output"] = "results"
    log = None
    if "dataset" in fragment:
        spec = copy.deepcopy(fragment["dataset"])
        if spec.get("kind") == "movielens":
            log = _write_movielens_1m(root / spec["path"])
        elif spec.get("kind") == "interactions":
            log = _write_interactions(root, spec)
        elif spec.get("kind") == "trec":
            log = _write_trec_qrels(root / spec["qrels"])
        cfg["dataset"] = spec
        if spec.get("kind", "synthetic") != "synthetic":  # oracle models need the synthetic world
            cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "item_knn"}}
    if "models" in fragment:
        cfg["models"] = copy.deepcopy(fragment["models"])
        first, *rest = list(cfg["models"])
        cfg["compare"] = {"baseline": first, "candidates": rest, "n_resamples": 500}
    if "evaluate" in fragment:
        cfg["evaluate"] = copy.deepcopy(fragment["evaluate"])
        cfg["gate"] = []
    if "gate" in fragment:
        cfg["gate"] = copy.deepcopy(fragment["gate"])
    if "attribution" in fragment:
        cfg["attribution"] = copy.deepcopy(fragment["attribution"])
    _write_inputs(root, cfg, log)
    return cfg


@pytest.mark.parametrize("block,index", FRAGMENTS, ids=lambda x: x.id if isinstance(x, Block) else f"doc{x}")
def test_yaml_fragment_runs(block: Block, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _fragment_config(_documents(block)[index], tmp_path)
    path = write_config(tmp_path, cfg)
    _cli(["validate", str(path)])
    # a block with an attribution section is run by the command that decides its criteria
    result = _cli(["attribute" if "attribution" in cfg else "run", str(path), "--no-progress"])
    assert "results:" in result.stdout


# ----------------------------------------------------------------------------- yaml: the full example
_PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys, time
    from harness.apps.cli import app
    start = time.perf_counter()
    try:
        app(sys.argv[1:])
        code = 0
    except SystemExit as exc:
        code = exc.code
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"code": code, "peak_bytes": peak, "seconds": time.perf_counter() - start}), file=sys.stderr)
""")


def test_main_config_runs_end_to_end_under_2_gib(tmp_path: Path) -> None:
    """The README's Config section at its own sizes, through the README's own
    `harness run eval.yaml ...` line, in a subprocess whose peak resident memory is
    measured (``getrusage``)."""
    block, cfg = _main_config()
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (line,) = [c for b in BASH for c in _harness_lines(b.text)
               if c.startswith("harness run eval.yaml") and "[" not in c]  # not the synopsis
    args = shlex.split(line)[1:]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - started
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    print(f"README config ({block.id}, its own sizes): exit {report['code']}, "
          f"{wall:.1f} s wall, peak RSS {report['peak_bytes'] / 2**20:.0f} MiB")
    assert report["code"] in OK_EXIT, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert report["peak_bytes"] < PEAK_RSS_LIMIT, f"peak RSS {report['peak_bytes'] / 2**30:.2f} GiB"
    (folder,) = [p for p in (tmp_path / "results").iterdir() if not p.name.startswith(".")]
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    assert list(per_unit.columns) == ["family", "model", "unit_id", "metric", "value"]
    data = json.loads((folder / "results.json").read_text())
    assert data["schema_version"] == 2 and "notices" in data
    assert set(data["families"]) == {"ranking", "beyond_accuracy", "calibration", "off_policy"}
    assert set(data["families"]["calibration"]["skipped_models"]) == {"prod", "candidate"}  # no predict_proba
    assert data["tracking"]["status"] == "logged"


# ----------------------------------------------------------------------------- yaml: CI workflows
def test_ci_workflow_commands_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `harness` commands of docs/ci-gate.md's workflow steps, on small runs: the
    evaluate-and-gate step, then the compare step against stored baseline results."""
    monkeypatch.chdir(tmp_path)
    commands = [c for b in WORKFLOWS for d in _documents(b) for c in _workflow_commands(d)]
    assert commands, "the CI docs show harness commands"
    cfg = small_config(tmp_path)
    cfg["models"] = {"prod": {"kind": "popularity"}, "candidate": {"kind": "oracle", "params": {"noise": 0.5}}}
    cfg["compare"] = {"baseline": "prod", "candidates": ["candidate"], "n_resamples": 500}
    write_config(tmp_path, cfg)  # eval.yaml
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump({"gate": cfg["gate"]}))
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "run":
            _cli(args)
        elif args[0] == "compare":
            # the baseline: main's stored results (a folder of a run of prod); the candidate:
            # a run that evaluated only the candidate, on the same data
            base_run = _run_small(tmp_path, cfg, {"prod": cfg["models"]["prod"]}, "base-runs")
            shutil.copytree(base_run, tmp_path / args[1])
            cand_run = _run_small(tmp_path, cfg, {"candidate": cfg["models"]["candidate"]}, "cand-runs")
            shutil.copytree(cand_run, tmp_path / args[2])
            result = _cli(args)
            assert (tmp_path / "compared").is_dir() and "GATE" in result.stdout
        else:
            pytest.fail(f"no handler for the CI command {command!r}")


def _workflow_commands(doc: Any) -> list[str]:
    steps = doc if isinstance(doc, list) else [s for job in doc["jobs"].values() for s in job["steps"]]
    return [c for s in steps if isinstance(s.get("run"), str) for c in _harness_lines(s["run"])]


def _run_small(root: Path, cfg: dict[str, Any], models: dict[str, Any], name: str) -> Path:
    one = {**copy.deepcopy(cfg), "models": models, "output": str(root / name)}
    one.pop("compare"), one.pop("gate")
    _cli(["run", str(write_config(root, one, f"{name}.yaml")), "--no-progress"])
    (folder,) = list((root / name).iterdir())
    return folder


# ----------------------------------------------------------------------------- bash
# commands of ```bash blocks that are not run here, and why
BASH_SKIPS = {
    "make demo": "creates .venv and runs the 2000 x 1000 demo with MLflow (make targets are CI's job)",
    "make test-quick": "runs this suite without the slow and mlflow_server tests",
    "make test": "runs this whole suite",
    "harness run eval.yaml [": "synopsis with placeholders",
    "harness validate eval.yaml [": "synopsis with placeholders",
    "harness demo [": "synopsis with placeholders",
    "harness sync [": "synopsis with placeholders",
    "harness compare BASELINE": "synopsis with placeholders",
    "harness report RESULTS_DIR": "synopsis with placeholders (tests/test_html_report.py runs it)",
    "harness store [": "synopsis with placeholders (tests/test_tracking.py runs it)",
    "harness attribute eval.yaml [": "synopsis with placeholders",
    "harness decompose BEFORE": "synopsis with placeholders (tests/test_decomposition_runs.py runs it)",
    "harness run eval.yaml --": "run by test_main_config_runs_end_to_end_under_2_gib (the README config)",
    "harness ab experiment.parquet": "run by test_ab_config_runs (the README A/B config, on generated data)",
    "harness history results/": "needs A/B runs with launch sections: run by tests/test_ab_history.py",
    "harness history --mlflow": "needs launches logged to MLflow: run by tests/test_ab_history.py",
    "harness ab DATA": "synopsis with placeholders",
    "harness ab plan (": "synopsis with placeholders",
    "harness history [": "synopsis with placeholders",
}


def _bash_commands() -> list[tuple[Block, str]]:
    return [(b, line.split(" #", 1)[0].strip()) for b in BASH for line in b.text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_bash_commands_run_or_are_skipped_for_a_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`harness validate eval.yaml` runs on the README config (at its own sizes: a dry run
    fits nothing); every other command is in BASH_SKIPS."""
    monkeypatch.chdir(tmp_path)
    _, cfg = _main_config()
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    ran = []
    for block, command in _bash_commands():
        if any(command.startswith(prefix) for prefix in BASH_SKIPS):
            continue
        args = shlex.split(command)
        if args[:3] == ["harness", "ab", "plan"]:  # cheap: a formula
            result = _cli(args[1:])
            assert result.exit_code == 0 and ("units needed" in result.stdout or "detectable" in result.stdout)
            continue
        assert args[:2] == ["harness", "validate"], f"{block.id}: no runner or skip reason for {command!r}"
        result = _cli(args[1:])
        assert result.exit_code == 0 and "valid" in result.stdout
        ran.append(command)
    assert ran, "the README shows a concrete harness validate command"


# ----------------------------------------------------------------------------- yaml: A/B configs
def _write_experiment(cfg: dict[str, Any], path: Path, n: int = 4000) -> None:
    """Per-unit experiment data with every column the A/B config names, split as planned."""
    rng = np.random.default_rng(2)
    variants = cfg["variants"]
    names = [variants["control"], *variants["treatments"]]
    split = variants.get("split") or {v: 1.0 for v in names}
    shares = np.array([split[v] for v in names], dtype=float)
    cols = cfg.get("columns", {})
    data: dict[str, Any] = {cols.get("variant", "variant"): rng.choice(names, n, p=shares / shares.sum())}
    if cols.get("unit"):
        data[cols["unit"]] = np.arange(n)
    if cols.get("cluster"):
        data[cols["cluster"]] = rng.integers(0, 50, n)
    if cols.get("window"):  # a holdout: rows of (user, week); every user id once here
        data[cols["window"]] = rng.integers(1, 5, n)
    holdout = cfg.get("holdout") or {}
    if holdout.get("surface"):  # the launches' surfaces and one more
        surfaces = sorted({x["surface"] for x in holdout["launches"] if x.get("surface")}) + ["other"]
        data[holdout["surface"]] = rng.choice(surfaces, n)
    for spec in cfg["metrics"].values():
        pairs = [spec["ratio"]] if "ratio" in spec else []
        cov = spec.get("covariate")
        pairs += [cov] if isinstance(cov, list) else []
        for num, den in pairs:
            data[den] = rng.poisson(30, n) + 1
            data[num] = rng.binomial(data[den], 0.05)
        if "proportion" in spec:
            data[spec["proportion"]] = (rng.random(n) < 0.1).astype(int)
        for col in [spec.get("mean"), cov if isinstance(cov, str) else None]:
            if col:
                data[col] = rng.gamma(2.0, 5.0, n)
    pd.DataFrame(data).to_parquet(path)


@pytest.mark.parametrize("block", AB_CONFIGS, ids=lambda b: b.id)
def test_ab_config_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's A/B config runs as written through ``harness ab`` on generated data."""
    monkeypatch.chdir(tmp_path)
    (cfg,) = _documents(block)
    _write_experiment(cfg, tmp_path / "experiment.parquet")
    (tmp_path / "ab.yaml").write_text(block.text)
    result = _cli(["ab", "experiment.parquet", "--config", "ab.yaml"])
    assert "SRM: ok" in result.stdout
    assert len(list((tmp_path / cfg.get("output", "results")).glob("*/statistics.csv"))) == 1
