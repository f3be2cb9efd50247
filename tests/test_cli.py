"""The CLI's exit codes on real configs: 0 pass, 1 regression, 2 bad config/input, 3 other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import small_config, write_config

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _only_results_dir(root: Path) -> Path:
    dirs = [p for p in root.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_run_passes_with_a_better_candidate(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, small_config(tmp_path))
    result = _invoke("run", str(cfg), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "GATE: PASS" in result.stdout
    folder = _only_results_dir(tmp_path / "results")
    data = json.loads((folder / "results.json").read_text())
    assert data["verdict"]["decision"] == "PASS"
    assert {r["model"] for r in data["metrics"]} == {"popularity", "candidate"}
    assert data["dataset"]["fingerprint"] and data["config_hash"]
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    assert list(per_unit.columns) == ["family", "model", "unit_id", "metric", "value"]
    assert set(per_unit["family"]) == {"ranking"}
    # per-unit values are the units behind the means
    row = next(r for r in data["metrics"] if r["model"] == "candidate" and r["metric"] == "ndcg@10")
    sel = per_unit[(per_unit.model == "candidate") & (per_unit.metric == "ndcg@10")]
    assert len(sel) == row["n_units"]
    assert sel["value"].mean() == pytest.approx(row["value"], abs=1e-12)
    assert (folder / "summary.md").read_text().startswith("## ")
    assert "<testsuite" in (folder / "junit.xml").read_text()


def test_no_plots_writes_the_same_results_without_figures(tmp_path: Path) -> None:
    """``--no-plots``: no ``plots/`` and no chart in report.html; every number, the
    verdict, per_unit.parquet, summary.md and junit.xml as with the figures."""
    import matplotlib.pyplot as plt

    cfg = write_config(tmp_path, small_config(tmp_path))
    folders = {}
    for flag in ("--plots", "--no-plots"):
        result = _invoke("run", str(cfg), "--no-progress", "--output", str(tmp_path / flag), flag)
        assert result.exit_code == 0, result.output
        folders[flag] = _only_results_dir(tmp_path / flag)
    drawn, bare = folders["--plots"], folders["--no-plots"]
    assert not plt.get_fignums()  # each figure drawn when saved, and closed
    assert (drawn / "plots" / "ranking_curves.png").is_file() and not (bare / "plots").exists()
    drawn_report, bare_report = ((f / "report.html").read_text() for f in (drawn, bare))
    assert "<img" in drawn_report and "<img" not in bare_report
    # the report says why it has no charts, and only when it has none
    assert "no-figures" not in drawn_report and 'class="no-figures"' in bare_report and "--no-plots" in bare_report
    a, b = (json.loads((f / "results.json").read_text()) for f in (drawn, bare))
    for key in ("metrics", "comparison", "verdict", "dataset", "config_hash"):
        assert a[key] == b[key], key
    assert pd.read_parquet(drawn / "per_unit.parquet").equals(pd.read_parquet(bare / "per_unit.parquet"))
    for name in ("summary.md", "junit.xml"):
        assert (drawn / name).read_text().replace(drawn.name, "") == (bare / name).read_text().replace(bare.name, "")


def test_run_fails_on_a_regression(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, small_config(tmp_path, candidate={"kind": "random"}))
    result = _invoke("run", str(cfg), "--no-progress")
    assert result.exit_code == 1, result.output
    assert "GATE: FAIL" in result.stdout


def test_inconclusive_exit_code_policy(tmp_path: Path) -> None:
    # the candidate is the baseline itself under another name: no difference to find
    cfg_dict = small_config(tmp_path, candidate={"kind": "popularity"})
    cfg = write_config(tmp_path, cfg_dict)
    result = _invoke("run", str(cfg), "--no-progress")
    assert result.exit_code == 1 and "GATE: INCONCLUSIVE" in result.stdout
    result = _invoke("run", str(cfg), "--no-progress", "--inconclusive", "pass")
    assert result.exit_code == 0 and "GATE: INCONCLUSIVE" in result.stdout


@pytest.mark.parametrize("text, message", [
    ("name: [unclosed\n", "malformed YAML"),
    ("- just\n- a list\n", "expected a mapping"),
])
def test_malformed_yaml_exits_2(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _invoke("run", str(path))
    assert result.exit_code == 2
    assert message in result.stderr


def test_unknown_key_exits_2_and_names_the_key(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["ranking"]["cutof"] = 10
    result = _invoke("run", str(write_config(tmp_path, cfg)))
    assert result.exit_code == 2
    assert "evaluate.ranking.cutof: unknown key" in result.stderr
    assert not (tmp_path / "results").exists()  # nothing half-written


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = _invoke("run", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2 and "config file not found" in result.stderr


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["models"].__setitem__("candidate", {"kind": "telepathy"}), "unknown adapter kind 'telepathy'"),
    (lambda c: c["compare"].__setitem__("baseline", "prod"), "compare.baseline: 'prod' is not one of models"),
    (lambda c: c["gate"].append({"metric": "map@5", "role": "primary"}), "'map@5' is not evaluated"),
    (lambda c: c["gate"].append({"metric": "ndcg@10", "role": "guardrail"}), "needs max_regression"),
    (lambda c: c["evaluate"]["ranking"].__setitem__("metrics", ["ndcg@x"]), "cannot parse 'ndcg@x'"),
    (lambda c: c["evaluate"]["ranking"].__setitem__("metrics", ["bleu@10"]), "unknown metric 'bleu'"),
    (lambda c: c["dataset"].__setitem__("n_users", "many"), "dataset"),
    (lambda c: c["models"]["candidate"].__setitem__("params", {"noise": -1.0}), "noise must be >= 0"),
])
def test_bad_configs_exit_2_with_a_clear_message(tmp_path: Path, mutate, message: str) -> None:
    cfg = small_config(tmp_path)
    mutate(cfg)
    result = _invoke("run", str(write_config(tmp_path, cfg)), "--no-progress")
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_validate(tmp_path: Path) -> None:
    good = _invoke("validate", str(write_config(tmp_path, small_config(tmp_path))))
    assert good.exit_code == 0 and "valid" in good.stdout
    cfg = small_config(tmp_path)
    cfg["surprise"] = 1
    bad = _invoke("validate", str(write_config(tmp_path, cfg, "bad.yaml")))
    assert bad.exit_code == 2 and "surprise: unknown key" in bad.stderr


def test_unexpected_errors_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.apps.run

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(harness.apps.run, "load_dataset", explode)
    result = _invoke("run", str(write_config(tmp_path, small_config(tmp_path))))
    assert result.exit_code == 3 and "disk on fire" in result.stderr


def test_console_script_end_to_end(tmp_path: Path) -> None:
    """The installed `harness` script, as CI calls it: stdout has the verdict, stderr progress."""
    cfg = write_config(tmp_path, small_config(tmp_path, candidate={"kind": "random"}))
    proc = subprocess.run([str(Path(sys.executable).parent / "harness"), "run", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "GATE: FAIL" in proc.stdout
    assert "results written to" in proc.stderr and "GATE" not in proc.stderr


def test_ctrl_c_inside_a_library_that_logs_to_the_root_logger_prints_no_traceback() -> None:
    """What py4j does when Ctrl-C cuts a Spark call: ``logging.exception`` on the
    unconfigured root logger (which would print the traceback), then the interrupt. The
    CLI prints its one line and exits 130."""
    import subprocess
    import sys

    code = ("import logging, typer\n"
            "from harness.apps.cli import _guard\n"
            "def body():\n"
            "    try:\n"
            "        raise KeyboardInterrupt\n"
            "    except KeyboardInterrupt:\n"
            "        logging.exception('KeyboardInterrupt while sending command.')\n"
            "        raise\n"
            "try:\n"
            "    _guard(body)\n"
            "except typer.Exit as e:\n"
            "    raise SystemExit(e.exit_code)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 130, out.stderr
    assert out.stderr.strip() == "interrupted: nothing was written (a results folder appears only when complete)"


def test_ctrl_c_exits_130_without_a_traceback_or_a_partial_folder(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    cfg = small_config(tmp_path, candidate={"kind": "bpr_mf", "params": {"dim": 8, "n_epochs": 100000}})
    path = write_config(tmp_path, cfg)
    # Ctrl-C as a terminal sends it: a suite started in the background (``make test &``,
    # some CI runners) hands its processes SIGINT ignored, and Python keeps it ignored
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), "run", str(path), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    seen = ""
    while "fitting candidate" not in seen and time.monotonic() < deadline:  # wait until the model trains
        seen += proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)  # generous: Ctrl-C stops training within one minibatch
    assert proc.returncode == 130, seen + err
    assert "interrupted" in err and "Traceback" not in err
    results = tmp_path / "results"
    assert not results.exists() or not any(results.iterdir())


def test_ctrl_c_after_the_outcome_keeps_the_commands_exit_code(tmp_path: Path) -> None:
    """A Ctrl-C once the command has written its folder, logged and printed its verdict
    (here: sent by the process itself as ``main()`` returns; a user's lands in Python's
    second-long shutdown) leaves the verdict's exit code: it killed the process with
    SIGINT (-2), read by a CI job as an interrupted run. The process's ``harness``
    console script is ``main()``."""
    import signal
    import subprocess
    import sys

    path = write_config(tmp_path, small_config(tmp_path))
    script = ("import os, signal, sys\n"
              "from harness.apps.cli import main\n"
              "sys.argv = ['harness', 'run', sys.argv[1], '--no-progress', '--no-plots']\n"
              "try:\n    main()\n"
              "except SystemExit:\n    os.kill(os.getpid(), signal.SIGINT)\n    raise\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr[-2000:])
    assert "GATE:" in proc.stdout and "Traceback" not in proc.stderr


def test_report_and_compare_refuse_an_output_they_cannot_write_before_writing(tmp_path: Path) -> None:
    """``report -o`` an existing folder or under an unwritable one, ``compare -o`` a file or
    an uncreatable folder: exit 2 with one line naming the path, no traceback and no
    temporary file left (they were IsADirectoryError / FileNotFoundError tracebacks)."""
    cfg = small_config(tmp_path)
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"]).exit_code in (0, 1)
    (folder,) = (tmp_path / "results").iterdir()
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "a-file").write_text("")
    cases = [(["report", str(folder), "-o", str(tmp_path / "a-folder")], f"output file {tmp_path / 'a-folder'}: is a folder"),
             (["report", str(folder), "-o", "/proc/no/r.html"], "output folder /proc/no: not writable"),
             (["compare", str(folder), str(folder), "-o", str(tmp_path / "a-file")], "is a file, not a folder"),
             (["compare", str(folder), str(folder), "-o", "/proc/no"], "output folder /proc/no: not writable")]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert list((tmp_path / "a-folder").iterdir()) == []


def test_a_closed_output_pipe_keeps_the_commands_exit_code(tmp_path: Path) -> None:
    """``harness run ... | head -1``: the reader is gone before the result is printed; the
    run still writes its folder and exits with the gate's code (CI reads it through
    ``pipefail``), without a BrokenPipeError traceback (it was exit 3)."""
    cfg = small_config(tmp_path)
    path = write_config(tmp_path, cfg)
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harness"), "run", str(path), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # every write to stdout now fails with EPIPE
    err = proc.stderr.read()
    proc.wait(timeout=300)
    reference = runner.invoke(app, ["run", str(path), "--no-progress"])
    assert proc.returncode == reference.exit_code and proc.returncode in (0, 1), err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert len(list((tmp_path / "results").iterdir())) == 2  # both runs wrote their folder


def test_ctrl_c_while_logging_to_mlflow_says_the_folder_is_complete(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C after the results folder is written (during MLflow logging): exit 130, the
    folder kept whole with tracking pending, and a message that says so and how to upload
    it, not "nothing was written"; harness sync then logs it."""
    import harness.tracking.log as tracking

    real = tracking.log_results

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "log_results", interrupted)
    cfg = small_config(tmp_path, tracking={"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 130, result.output
    (folder,) = (tmp_path / "results").iterdir()
    assert (f"interrupted while logging to MLflow: the results folder {folder} is complete (tracking pending); "
            f"upload it with 'harness sync {tmp_path / 'results'}'") in result.output
    assert "nothing was written" not in result.output
    assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "pending"
    monkeypatch.setattr(tracking, "log_results", real)
    assert runner.invoke(app, ["sync", str(tmp_path / "results")]).exit_code == 0
    assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "logged"


def test_ctrl_c_after_logging_says_the_run_is_logged_and_sync_records_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C once MLflow has the run, while the folder's own tracking record is written:
    exit 130, and the message names the logged parent run (it said "tracking pending",
    "upload it"); harness sync then records that run, without logging a second one."""
    from mlflow.tracking import MlflowClient

    import harness.apps.run as run_module

    real = run_module.update_tracking

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "update_tracking", interrupted)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = small_config(tmp_path, tracking={"uri": uri})
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 130, result.output
    (folder,) = (tmp_path / "results").iterdir()
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg["name"]]
    parents = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    assert (f"interrupted after logging to MLflow (parent run {parents[0].info.run_id}): the results folder "
            f"{folder} is complete") in result.output and "upload it" not in result.output
    assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "pending"
    monkeypatch.setattr(run_module, "update_tracking", real)
    assert runner.invoke(app, ["sync", str(tmp_path / "results")]).exit_code == 0
    data = json.loads((folder / "results.json").read_text())["tracking"]
    assert data["status"] == "logged" and data["mlflow_run_ids"]["parent"] == parents[0].info.run_id
    assert len([r for r in client.search_runs([experiment.experiment_id])
                if "mlflow.parentRunId" not in r.data.tags]) == 1


def test_python_warnings_are_one_line_and_the_gates_are_left_to_the_verdict(capsys, monkeypatch) -> None:
    """A library's warning is one stderr line (it printed the source path and code line);
    the gate's SkewWarning is not repeated, the verdict's WARNING lines carry it. MLflow's
    download bars are off unless the user turned them on."""
    import warnings

    import typer

    from harness.apps.cli import _guard
    from harness.metrics.stats import SkewWarning

    def body() -> int:
        warnings.warn("skewed per-unit values", SkewWarning)
        warnings.warn("a library's notice", UserWarning)
        return 0

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    with pytest.raises(typer.Exit) as done:
        _guard(body)
    assert done.value.exit_code == 0
    assert capsys.readouterr().err == "warning: UserWarning: a library's notice\n"
    import os

    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")
    with pytest.raises(typer.Exit):
        _guard(lambda: 0)
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"
