"""The ``harness`` command line. Exit codes: 0 pass, 1 gate failed (or inconclusive), 130 Ctrl-C,
2 bad configuration or input, 3 any other error.

stdout carries results (tables, verdict); stderr carries progress and warnings. Heavy
modules (torch, mlflow) are imported inside commands so that ``--help`` is instant.
"""

from __future__ import annotations

import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Callable, Optional

import typer

from harness.errors import HarnessError

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


def _guard(body: Callable[[], int]) -> None:
    """Run a command body and map its outcome and errors to exit codes."""
    try:
        code = body()
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:  # Ctrl-C: results folders are written whole or not at all
        print("interrupted: nothing was written (a results folder appears only when complete)", file=sys.stderr)
        raise typer.Exit(130) from None
    except Exception as exc:  # anything unexpected is exit 3, with the traceback for a bug report
        traceback.print_exc(file=sys.stderr)
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        raise typer.Exit(3) from None
    raise typer.Exit(code)


def _run_config(config_path: Path, output: Optional[Path], inconclusive: InconclusivePolicy,
                progress: bool, require_gate: bool = False) -> int:
    from harness.apps.validate import load_config
    from harness.results.report import console_summary
    from harness.apps.run import run as run_eval

    config = load_config(config_path)
    outcome = run_eval(config, output=output, progress=progress, inconclusive=inconclusive.value,
                       require_gate=require_gate)
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
) -> None:
    """Evaluate the models of CONFIG, compare them, apply the gate and log to MLflow."""
    _guard(lambda: _run_config(config, output, inconclusive, progress, require_gate))


@app.command()
def attribute(
    config: Path = typer.Argument(..., help="YAML config with an 'attribution' section and two pipeline models."),
    output: Optional[Path] = OUTPUT_OPTION,
    inconclusive: InconclusivePolicy = INCONCLUSIVE_OPTION,
    progress: bool = PROGRESS_OPTION,
    require_gate: bool = REQUIRE_GATE_OPTION,
) -> None:
    """Attribute each metric's change between two pipelines to their stages (Shapley values,
    interactions, ceiling), with intervals; apply the gate criteria that name attributions."""

    def body() -> int:
        from harness.apps.attribute import attribute as run_attribution
        from harness.apps.attribute import print_outcome
        from harness.apps.validate import load_config

        outcome = run_attribution(load_config(config), output=output, progress=progress,
                                  inconclusive=inconclusive.value, require_gate=require_gate)
        print_outcome(outcome)
        return outcome.exit_code

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

        checked = dry_run(config, output=output)
        cfg = checked.config
        if cfg.dataset.kind in ("movielens", "interactions", "trec"):  # files exist, schema holds, split is non-empty
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
        from harness.results.html import write_report

        print(write_report(results, output=output))
        return 0

    _guard(body)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
