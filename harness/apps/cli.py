"""The ``harness`` command line. Exit codes: 0 pass, 1 gate failed (or inconclusive), 130 Ctrl-C,
2 bad configuration or input, 3 any other error; ``harness ab`` adds 4: INVALID (sample
ratio mismatch).

stdout carries results (tables, verdict); stderr carries progress and warnings. Heavy
modules (torch, mlflow) are imported inside commands so that ``--help`` is instant.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from typer.core import TyperGroup

from harness.errors import HarnessError, InterruptedAfterWriting

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Evaluate recommender models, compare them, gate launches, log to MLflow.")


class InconclusivePolicy(str, Enum):
    passes = "pass"
    fails = "fail"


REQUIRE_GATE_HELP = "Exit 1 when no gate decided anything (no compare section or no criteria)."
# options that `run` and `attribute` share (the same outcome, the same exit codes)
OUTPUT_OPTION = typer.Option(None, "--output", "-o", help="Results root (default: config's output).")
INCONCLUSIVE_OPTION = typer.Option(InconclusivePolicy.fails, help="Exit code policy for INCONCLUSIVE.")
PROGRESS_OPTION = typer.Option(True, help="Show progress bars on stderr.")
REQUIRE_GATE_OPTION = typer.Option(False, "--require-gate", help=REQUIRE_GATE_HELP)
PLOTS_OPTION = typer.Option(True, "--plots/--no-plots",
                            help="Draw the figures (plots/*.png, the report's charts); --no-plots for a gate that "
                                 "reads only the verdict: most of a small run's time.")


def _quiet_root_logging() -> None:
    """The CLI speaks through its own stderr lines. A library that logs to the root logger
    without configuring it makes logging print there (it configures the root on first
    use): py4j logs every Spark call cut by Ctrl-C, with a traceback, at ERROR."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


# the gate's warnings are in the verdict the command prints (its WARNING lines)
_IN_THE_VERDICT = ("SkewWarning", "ResampleFloorWarning")


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Python warnings as one stderr line each (no source path or code line); the gate's
    own are left to the verdict, which says them already."""
    if category.__name__ not in _IN_THE_VERDICT:
        print(f"warning: {category.__name__}: {message}", file=sys.stderr)


# Set by main(): this process is the `harness` console script, whose signal handling is its own.
_CONSOLE = False


def _decided(code: int) -> typer.Exit:
    """The command's exit, once its outcome is decided (folder, MLflow and output written).

    In the console script, Ctrl-C is ignored from here on: Python's shutdown (tearing
    down MLflow, SQLAlchemy, numba and their modules) takes a second or so, and a SIGINT
    there killed the process (-2, "130" in a shell) after it had printed a PASS, so a CI
    job read an interrupted run. An ignored SIGINT stays ignored through the shutdown
    (Python restores the default disposition only over handlers of its own)."""
    if _CONSOLE:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return typer.Exit(code)


def _guard(body: Callable[[], int]) -> None:
    """Run a command body and map its outcome and errors to exit codes."""
    _quiet_root_logging()
    # MLflow's download bars (a runs:/ baseline, compare or history from a store) are not the
    # command's progress: they printed even under --no-progress. The user's own setting wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            code = body()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise _decided(exc.exit_code) from None
    except typer.Exit as exc:
        raise _decided(exc.exit_code) from None
    except InterruptedAfterWriting as exc:  # Ctrl-C while logging: the folder is whole
        if exc.logged_run is not None:
            print(f"interrupted after logging to MLflow (parent run {exc.logged_run}): the results folder "
                  f"{exc.folder} is complete, its record still says pending; 'harness sync {exc.folder.parent}' "
                  "records the logged run (it uploads nothing twice)", file=sys.stderr)
        else:
            print(f"interrupted while logging to MLflow: the results folder {exc.folder} is complete (tracking "
                  f"pending); upload it with 'harness sync {exc.folder.parent}'", file=sys.stderr)
        raise _decided(130) from None
    except KeyboardInterrupt:  # Ctrl-C: results folders are written whole or not at all
        print("interrupted: nothing was written (a results folder appears only when complete)", file=sys.stderr)
        raise _decided(130) from None
    except Exception as exc:  # anything unexpected is exit 3, with the traceback for a bug report
        traceback.print_exc(file=sys.stderr)
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        raise _decided(3) from None
    raise _decided(code)


def _run_config(config_path: Path, output: Optional[Path], inconclusive: InconclusivePolicy,
                progress: bool, require_gate: bool = False, plots: bool = True) -> int:
    from harness.apps.validate import load_config
    from harness.results.report import console_summary
    from harness.apps.run import run as run_eval

    config = load_config(config_path)
    outcome = run_eval(config, output=output, progress=progress, inconclusive=inconclusive.value,
                       require_gate=require_gate, plots=plots)
    print(console_summary(outcome.result))
    print(f"\nresults: {outcome.results_dir}\nreport:  {outcome.results_dir / 'report.html'}")
    ui = (outcome.result.tracking.get("ui") or {}).get("parent")
    if ui:
        print(f"MLflow:  {ui}")
    return outcome.exit_code


@app.command()
def run(
    config: Path = typer.Argument(..., help="YAML evaluation config."),
    output: Optional[Path] = OUTPUT_OPTION,
    inconclusive: InconclusivePolicy = INCONCLUSIVE_OPTION,
    progress: bool = PROGRESS_OPTION,
    require_gate: bool = REQUIRE_GATE_OPTION,
    plots: bool = PLOTS_OPTION,
) -> None:
    """Evaluate the models of CONFIG, compare them, apply the gate and log to MLflow."""
    _guard(lambda: _run_config(config, output, inconclusive, progress, require_gate, plots))


@app.command()
def attribute(
    config: Path = typer.Argument(..., help="YAML config with an 'attribution' section and two pipeline models."),
    output: Optional[Path] = OUTPUT_OPTION,
    inconclusive: InconclusivePolicy = INCONCLUSIVE_OPTION,
    progress: bool = PROGRESS_OPTION,
    require_gate: bool = REQUIRE_GATE_OPTION,
    plots: bool = PLOTS_OPTION,
) -> None:
    """Attribute each metric's change between two pipelines to their stages (Shapley values,
    interactions, ceiling), with intervals; apply the gate criteria that name attributions."""

    def body() -> int:
        from harness.apps.attribute import attribute as run_attribution
        from harness.apps.attribute import print_outcome
        from harness.apps.validate import load_config

        outcome = run_attribution(load_config(config), output=output, progress=progress,
                                  inconclusive=inconclusive.value, require_gate=require_gate, plots=plots)
        print_outcome(outcome)
        return outcome.exit_code

    _guard(body)


@app.command()
def decompose(
    before: str = typer.Argument(..., help="Results folder (or MLflow run id) of the earlier run."),
    after: str = typer.Argument(..., help="Results folder (or MLflow run id) of the later run."),
    segments: Path = typer.Option(..., "--segments", help="CSV/Parquet table: unit id -> segment column(s)."),
    by: str = typer.Option(..., "--by", help="The segment column of --segments (surface, cohort, ...)."),
    id_column: str = typer.Option("unit_id", help="The unit id column of --segments."),
    segments_after: Optional[Path] = typer.Option(
        None, help="Segments of the AFTER run's units, when they differ (default: --segments for both)."),
    before_model: Optional[str] = typer.Option(None, help="Model in BEFORE (default: its only model)."),
    after_model: Optional[str] = typer.Option(None, help="Model in AFTER (default: its only model, or its one "
                                                         "compared candidate)."),
    family: Optional[str] = typer.Option(None, help="Family of the metrics (default: ranking, or the only one)."),
    metrics: Optional[str] = typer.Option(None, help="Comma-separated metrics (default: all in both runs)."),
    missing: str = typer.Option("error", help="Units without a segment: error | separate (a segment of their own)."),
    confidence: float = typer.Option(0.95, help="Simultaneous level of the per-segment intervals."),
    output: Path = typer.Option(Path("results"), "--output", "-o", help="Results root."),
    track: bool = typer.Option(True, help="Log the results folder to MLflow (after it is on disk)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri",
                                               help="MLflow URI (run ids, logging; default: the harness store)."),
    plots: bool = PLOTS_OPTION,
) -> None:
    """Which segment moved each metric between two runs: within-segment effect + mix shift
    (traffic moving between segments) = total change, per-segment intervals, Simpson's paradox."""

    def body() -> int:
        from harness.apps.decompose import decompose_runs
        from harness.apps.run import resolve_tracking_uri, save_and_track
        from harness.apps.validate import check_output
        from harness.results.decomposition import decomposition_figures, decomposition_table
        from harness.results.report import markdown_summary

        root = check_output(output, fix="pass another folder with --output")
        names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        result = decompose_runs(before, after, segments=segments, by=by, id_column=id_column,
                                segments_after=segments_after, before_model=before_model, after_model=after_model,
                                family=family, metrics=names, missing=missing, confidence=confidence,
                                tracking_uri=tracking_uri)
        section = result.extra["decomposition"]
        folder = save_and_track(result, root, {"summary.md": markdown_summary(result)},
                                figures=decomposition_figures(section), plots=plots,
                                tracking_uri=resolve_tracking_uri(tracking_uri) if track else None)
        print(decomposition_table(section))
        print(f"\nresults: {folder}\nreport:  {folder / 'report.html'}")
        return 0

    _guard(body)


@app.command()
def validate(
    config: Path = typer.Argument(..., help="YAML evaluation config."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results root to check (default: config's)."),
) -> None:
    """Dry run: check the config, data, model files and parameters, family inputs and the
    output folder, exactly as `run` would, without fitting a model."""

    def body() -> int:
        from harness.apps.validate import validate as dry_run
        from harness.datasets.interactions import describe_dataset

        from harness.evaluate.sources import SourceCollection

        checked = dry_run(config, output=output)
        cfg = checked.config
        if isinstance(checked.dataset, SourceCollection):
            print(checked.dataset.describe())
        elif cfg.dataset.kind in ("movielens", "interactions", "trec"):  # files exist, schema holds, split is non-empty
            print(describe_dataset(checked.dataset))
        families = ", ".join(cfg.evaluate.blocks())
        print(f"{config}: valid ({len(cfg.models)} models built, families: {families}, "
              f"{len(cfg.gate)} gate criteria, output {cfg.output if output is None else output} writable)")
        return 0

    _guard(body)


@app.command()
def demo(
    dir: Path = typer.Option(Path(".harness-demo"), "--dir", help="Where to write the example config and results."),
    progress: bool = typer.Option(True, help="Show progress bars on stderr."),
) -> None:
    """Write an example config for the built-in synthetic data set and run it."""

    def body() -> int:
        from harness.apps.demo import write_demo_config

        path = write_demo_config(dir)
        print(f"wrote example config {path}", file=sys.stderr)
        return _run_config(path, None, InconclusivePolicy.fails, progress)

    _guard(body)


@app.command()
def sync(
    results: Path = typer.Argument(Path("results"), help="A results root or one results folder."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri", help="Log here instead of the URI each result was meant for."),
) -> None:
    """Upload results that could not be logged to MLflow, exactly once."""

    def body() -> int:
        from harness.tracking.sync import sync_results

        report = sync_results(results, uri=tracking_uri)
        for line in report.lines:
            print(line)
        return 0 if report.all_logged else 3

    _guard(body)


@app.command()
def compare(
    baseline: str = typer.Argument(..., help="Baseline results folder or MLflow run id."),
    candidate: str = typer.Argument(..., help="Candidate results folder or MLflow run id."),
    baseline_model: Optional[str] = typer.Option(None, help="Model in BASELINE (default: its only model)."),
    candidate_model: Optional[str] = typer.Option(
        None, help="Model in CANDIDATE (default: its only model, or the one candidate its config compared)."),
    gate: Optional[Path] = typer.Option(None, "--gate", help="YAML gate criteria (default: the candidate run's)."),
    metrics: Optional[str] = typer.Option(None, help="Comma-separated metrics (default: all in both runs)."),
    method: Optional[str] = typer.Option(None, help="auto | bootstrap | bca | t_test | randomization."),
    n_resamples: Optional[int] = typer.Option(None, help="Bootstrap resamples / random sign flips."),
    confidence: Optional[float] = typer.Option(None, help="Two-sided interval level."),
    correction: Optional[str] = typer.Option(None, help="holm | bh | none."),
    seed: Optional[int] = typer.Option(None, help="Resampling seed (default: the candidate run's)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write results.json, summary.md, junit.xml under this folder."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow URI for run ids."),
    inconclusive: InconclusivePolicy = typer.Option(InconclusivePolicy.fails, help="Exit code policy for INCONCLUSIVE."),
    require_gate: bool = typer.Option(False, "--require-gate", help=REQUIRE_GATE_HELP),
) -> None:
    """Compare two evaluated runs unit by unit and apply the gate (exit 0 PASS, 1 FAIL)."""

    def body() -> int:
        from harness.apps.compare import compare_runs
        from harness.spec.config import load_gate_file
        from harness.results.report import console_summary, junit_xml, markdown_summary
        from harness.results.folder import write_results
        from harness.results.html import write_report
        from harness.apps.run import exit_code_for
        from harness.apps.validate import check_output

        if output is not None:  # before anything is compared, not after
            check_output(output, fix="pass another folder with --output")
        criteria = load_gate_file(str(gate)) if gate is not None else None
        names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        result, verdict = compare_runs(
            baseline, candidate, baseline_model=baseline_model, candidate_model=candidate_model,
            gate=criteria, metrics=names, method=method, n_resamples=n_resamples, confidence=confidence,
            correction=correction, seed=seed, tracking_uri=tracking_uri)
        print(console_summary(result))
        if output is not None:
            folder = write_results(result, output, {"summary.md": markdown_summary(result),
                                                    "junit.xml": junit_xml(result)}, finalize=write_report)
            print(f"\nresults: {folder}")
        return exit_code_for(verdict, inconclusive=inconclusive.value, require_gate=require_gate)

    _guard(body)


@app.command()
def report(
    results: Path = typer.Argument(..., help="A results folder (results/<run-id>)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="HTML file to write (default: RESULTS/report.html)."),
) -> None:
    """Write the self-contained HTML report of a results folder (verdict, gate, families, provenance)."""

    def body() -> int:
        from harness.apps.validate import check_output_file
        from harness.results.html import write_report

        if output is not None:
            check_output_file(output, fix="pass another file with --output")
        print(write_report(results, output=output))
        return 0

    _guard(body)


class _AnalyzeByDefault(TyperGroup):
    """``harness ab DATA ...`` runs ``harness ab analyze DATA ...``; ``harness ab plan`` plans."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["analyze", *args]
        return super().parse_args(ctx, args)


ab_app = typer.Typer(cls=_AnalyzeByDefault, add_completion=False, no_args_is_help=True,
                     help="Analyse an A/B test (harness ab DATA --config AB.yaml) or plan one (harness ab plan).")
app.add_typer(ab_app, name="ab")


@ab_app.command("analyze")
def ab_analyze(
    data: Path = typer.Argument(..., help="Per-unit Parquet/CSV (or a statistics table with input: statistics); "
                                                  "with engine kind spark: Parquet file/folder or db.table."),
    config: Path = typer.Option(..., "--config", "-c", help="YAML A/B config."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Results root (default: config's output)."),
    inconclusive: InconclusivePolicy = typer.Option(InconclusivePolicy.fails, help="Exit code policy for INCONCLUSIVE."),
    require_gate: bool = typer.Option(False, "--require-gate", help=REQUIRE_GATE_HELP),
    plots: bool = PLOTS_OPTION,
) -> None:
    """Analyse an experiment and gate it: exit 0 PASS, 1 FAIL/INCONCLUSIVE, 2 bad input, 4 INVALID (SRM)."""

    def body() -> int:
        from harness.apps.ab import run_ab, srm_line
        from harness.results.report import console_summary
        from harness.spec.ab import load_ab_config

        outcome = run_ab(load_ab_config(config), data, output=output, inconclusive=inconclusive.value,
                         require_gate=require_gate, plots=plots)
        print(console_summary(outcome.result))
        print(srm_line(outcome.result))
        print(f"\nresults: {outcome.results_dir}")
        return outcome.exit_code

    _guard(body)


@ab_app.command("plan")
def ab_plan(
    std_dev: Optional[float] = typer.Option(None, "--std-dev", help="Per-unit standard deviation of the metric."),
    baseline_rate: Optional[float] = typer.Option(None, "--baseline-rate",
                                                  help="A proportion's baseline rate p (SD = sqrt(p(1-p)))."),
    baseline_mean: Optional[float] = typer.Option(None, "--baseline-mean",
                                                  help="The metric's baseline mean, to read effects as relative."),
    mde: Optional[float] = typer.Option(None, "--mde", help="Smallest effect worth detecting -> units needed."),
    relative: bool = typer.Option(False, "--relative", help="--mde is relative to the baseline mean/rate."),
    n_units: Optional[int] = typer.Option(None, "--n-units", help="Units available (both arms) -> MDE."),
    alpha: float = typer.Option(0.05, help="Significance level."),
    power: float = typer.Option(0.8, help="Power."),
    allocation: float = typer.Option(0.5, help="Share of units in the treatment."),
    sides: int = typer.Option(2, help="1 or 2-sided test."),
    variance_reduction: float = typer.Option(0.0, help="Variance CUPED removes (rho^2 of the pre-period covariate)."),
    tests: int = typer.Option(1, "--tests", help="Metrics x treatments tested (planned at alpha / tests)."),
    sequential: bool = typer.Option(False, "--sequential", help="Plan for always-valid monitoring."),
) -> None:
    """Power planning: units needed for --mde, or the MDE of --n-units (exit 0, or 2 on bad input)."""

    def body() -> int:
        import numpy as np

        from harness.errors import ConfigError
        from harness.metrics.ab_power import ab_arm_sizes, ab_mde, ab_sample_size

        if (std_dev is None) == (baseline_rate is None):
            raise ConfigError("ab plan: give exactly one of --std-dev or --baseline-rate")
        if (mde is None) == (n_units is None):
            raise ConfigError("ab plan: give exactly one of --mde (-> units needed) or --n-units (-> MDE)")
        if baseline_rate is not None and not 0 < baseline_rate < 1:
            raise ConfigError(f"--baseline-rate: must be in (0, 1), got {baseline_rate}")
        sd = std_dev if std_dev is not None else float(np.sqrt(baseline_rate * (1 - baseline_rate)))
        base = baseline_mean if baseline_mean is not None else baseline_rate
        if relative and not base:
            raise ConfigError("--relative needs a non-zero --baseline-mean or --baseline-rate")
        opts = dict(alpha=alpha, power=power, allocation=allocation, sides=sides,
                    variance_reduction=variance_reduction, n_tests=tests, sequential=sequential)
        design = (f"alpha={alpha:g} ({sides}-sided{f', /{tests} tests' if tests > 1 else ''}), power={power:g}, "
                  f"allocation={allocation:g}, variance reduction={variance_reduction:g}, "
                  f"{'always-valid' if sequential else 'fixed horizon'}, sd={sd:.6g}")
        try:
            if mde is not None:
                effect = mde * base if relative else mde
                treatment, control = ab_arm_sizes(ab_sample_size(effect, sd, **opts), allocation)
                print(f"units needed: {treatment + control:,} in all ({treatment:,} treatment, "
                      f"{control:,} control) to detect {effect:.6g}"
                      + (f" ({mde:.4g} relative)" if relative else "") + f"; {design}")
            else:
                m = ab_mde(n_units, sd, **opts)
                rel = f" ({m / base:+.4%} of the baseline {base:g})" if base else ""
                print(f"minimum detectable effect with {n_units:,} units: {m:.6g}{rel}; {design}")
        except ConfigError as exc:  # the planning functions name their parameters: say the flag instead
            head, sep, rest = str(exc).partition(": ")
            param, space, value = head.partition(" ")  # "std_dev" or "effect 1e-09"
            if not sep or param not in _PLAN_FLAGS:
                raise
            raise ConfigError(f"{_PLAN_FLAGS[param]}{space}{value}: {rest}") from None
        return 0

    _guard(body)


# ab plan's flags, by the name of the planning functions' parameters (harness.metrics.ab_power)
_PLAN_FLAGS = {"std_dev": "--std-dev", "effect": "--mde", "n_units": "--n-units", "alpha": "--alpha",
               "power": "--power", "allocation": "--allocation", "sides": "--sides",
               "variance_reduction": "--variance-reduction", "n_tests": "--tests"}


@app.command()
def store(
    artifacts: bool = typer.Option(False, "--artifacts", help="Print the artifact root instead."),
) -> None:
    """Print the default MLflow store that `run`, `sync` and `make ui` share ($HARNESS_HOME)."""

    def body() -> int:
        from harness.tracking.store import default_artifact_root, default_store_uri

        print(default_artifact_root() if artifacts else default_store_uri())
        return 0

    _guard(body)


@app.command()
def history(
    results: Optional[Path] = typer.Argument(None, help="A results root holding harness ab runs with a launch "
                                             "section (default: results; not with --mlflow)."),
    mlflow: bool = typer.Option(False, "--mlflow", help="Read the launches logged to MLflow (the default store, "
                                "$HARNESS_HOME, unless --tracking-uri) instead of results folders."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store to read (implies --mlflow)."),
    experiment: Optional[list[str]] = typer.Option(None, "--experiment", help="MLflow experiment(s) to read "
                                                   "(repeatable; default: all; implies --mlflow)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write history.json and history.png "
                                          "(default: RESULTS/history, or ./history with --mlflow)."),
    confidence: float = typer.Option(0.95, help="Interval level."),
    absolute: bool = typer.Option(False, "--absolute", help="Online effects as absolute deltas (default: relative)."),
) -> None:
    """Offline deltas vs online lifts over launches: Spearman and sign agreement per metric pair."""

    def body() -> int:
        import json

        from harness.apps.history import HISTORY_JSON, folder_records, history_figure, launch_history
        from harness.apps.validate import check_output
        from harness.evaluate.plots import save_figure
        from harness.errors import ConfigError
        from harness.options import check_confidence
        from harness.results.folder import write_json_atomic

        from_mlflow = mlflow or tracking_uri is not None or bool(experiment)
        if from_mlflow and results is not None:
            raise ConfigError(f"history: read either the results folders under {results} or an MLflow store "
                              "(--mlflow, --tracking-uri, --experiment), not both")
        if from_mlflow:
            from harness.tracking.launches import logged_launches
            from harness.tracking.store import resolve_uri

            uri = resolve_uri(tracking_uri)
            records, source = logged_launches(uri, experiments=experiment), f"the MLflow store {uri}"
            out = output or Path("history")
        else:
            root = results or Path("results")
            (records, unreadable), source, out = folder_records(root), str(root), output or root / "history"
            if unreadable:
                print(f"NOTE: history: {len(unreadable)} results folder(s) under {root} cannot be read and are left "
                      f"out, e.g. {unreadable[0]}", file=sys.stderr)
        hist = launch_history(records, confidence=check_confidence(confidence), relative=not absolute, source=source)
        check_output(out, fix="pass --output a folder you can write")  # before printing, as every command
        with _wide_tables():
            print(hist.launches.to_string(index=False))
            print()
            print(hist.agreement.to_string(index=False))
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / HISTORY_JSON, {"launches": json.loads(hist.launches.to_json(orient="records")),
                                                "agreement": json.loads(hist.agreement.to_json(orient="records"))})
        save_figure(history_figure(hist), out / "history.png")
        print(f"\nhistory: {out / HISTORY_JSON}, {out / 'history.png'}")
        return 0

    _guard(body)


def _wide_tables() -> Any:
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format)


class _ReaderGoneSafe:
    """``sys.stdout`` that drops what it can no longer write once the reading end of a pipe
    has closed (``harness run ... | head -1``): the command still finishes (its folder,
    MLflow) and exits with its own code, which CI reads with ``pipefail``, instead of a
    BrokenPipeError traceback and exit 3."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return int(self._stream.write(text))
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        import os

        self._gone = True
        # what is still buffered, and the interpreter's flush at exit, go nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main() -> None:
    global _CONSOLE
    _CONSOLE = True
    sys.stdout = _ReaderGoneSafe(sys.stdout)
    app()


if __name__ == "__main__":
    main()
