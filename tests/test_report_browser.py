"""In a real browser (headless Chromium): the report opens from disk with the network off,
renders at phone and laptop widths without errors, and the MLflow UI of a real server
shows the verdict in its runs table.

Screenshots go to ``$HARNESS_SCREENSHOTS`` when set (to look at them), else to tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

import harness
from tests.browser import Browser, is_blank
from tests.conftest import MlflowServer, small_config

WIDTHS = {"phone": (390, True), "laptop": (1366, False)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> dict[str, Any]:
    """A gated run (ranking + calibration) logged to a real server; its results folder."""
    tmp = tmp_path_factory.mktemp("browser")
    cfg = small_config(tmp, name="browser-check", tracking={"uri": mlflow_server.uri})
    cfg["evaluate"]["calibration"] = {"metrics": ["ece", "brier"], "n_bins": 10, "n_per_user": 5}
    cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "oracle_clicks"}}
    outcome = harness.run(harness.parse_config(cfg), progress=False)
    return {"dir": outcome.results_dir, "data": json.loads((outcome.results_dir / "results.json").read_text())}


def _keep(shot: Path) -> None:
    target = os.environ.get("HARNESS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


@pytest.mark.slow
@pytest.mark.mlflow_server
@pytest.mark.parametrize("device", list(WIDTHS))
def test_report_renders_offline_without_errors(browser: Browser, logged_run: dict[str, Any], device: str,
                                               tmp_path: Path) -> None:
    width, mobile = WIDTHS[device]
    report = logged_run["dir"] / "report.html"
    log = browser.open(report.as_uri(), width=width, mobile=mobile, offline=True)
    assert log.console_errors == [] and log.exceptions == [] and log.failed_requests == []
    # everything fits the screen: wide tables scroll inside their own box, not the page
    assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert browser.evaluate("document.querySelector('#verdict .decision').innerText") == \
        logged_run["data"]["verdict"]["decision"]
    shot = browser.screenshot(tmp_path / f"report-{device}.png")
    _keep(shot)
    assert not is_blank(shot)


@pytest.mark.slow
@pytest.mark.mlflow_server
def test_mlflow_runs_table_shows_the_verdict(browser: Browser, logged_run: dict[str, Any], tmp_path: Path) -> None:
    tracking = logged_run["data"]["tracking"]
    url = tracking["ui"]["experiment"]
    assert "workflowType=machine_learning" in url
    log = browser.open(url, width=1600, height=1000)
    assert log.exceptions == []
    decision = logged_run["data"]["verdict"]["decision"]
    # the runs table: the parent run named by its verdict, with the gate_verdict metric column
    browser.wait_for("document.body.innerText.includes('gate_verdict')", timeout=90)
    text = browser.evaluate("document.body.innerText")
    assert f"{decision} · browser-check" in text
    shot = browser.screenshot(tmp_path / "mlflow-runs.png")
    _keep(shot)
    assert not is_blank(shot)
