"""The package installs as one `harness` package and stays light to import."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["harness", "harness.metrics", "harness.models", "harness.datasets",
                                  "harness.apps.cli", "harness.apps.run", "harness.tracking.log"])
def test_subpackages_import(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name


def test_subpackages_map_to_their_folders() -> None:
    import harness.datasets
    import harness.metrics
    import harness.models

    for module, folder in [(harness.metrics, "metrics"), (harness.models, "models"),
                           (harness.datasets, "datasets")]:
        assert Path(module.__file__).resolve().parent == ROOT / folder


def test_mlflow_folder_is_not_a_package() -> None:
    assert (ROOT / "mlflow").is_dir()
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    import mlflow

    assert "site-packages" in mlflow.__file__ or "dist-packages" in mlflow.__file__


def test_light_imports_do_not_pull_heavy_dependencies() -> None:
    code = ("import sys, harness, harness.metrics, harness.datasets, harness.apps.cli, harness.spec.config;"
            "heavy = [m for m in ('torch', 'mlflow', 'xgboost') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_reading_and_rendering_a_results_folder_compiles_no_kernel() -> None:
    """The results layer (read a folder, render its report) imports no evaluation code: on
    a fresh install the compiled kernels' first import costs ~40 CPU-s, which a report
    or ``harness compare`` of stored folders must not pay."""
    code = ("import sys, harness.results.html, harness.results.folder;"
            "print(','.join(m for m in sys.modules if m.startswith(('harness.evaluate', 'harness.metrics.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_is_fast_and_lists_commands() -> None:
    harness_bin = Path(sys.executable).parent / "harness"
    start = time.perf_counter()
    out = subprocess.run([str(harness_bin), "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    for command in ("run", "demo", "validate", "sync"):
        assert command in out.stdout
    assert elapsed < 5.0  # generous on a loaded 2-core CI box; typically ~0.3 s


def test_wheel_builds_with_all_subpackages(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    import zipfile

    wheel = next(tmp_path.glob("recsys_harness-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("harness/__init__.py", "harness/metrics/__init__.py",
                     "harness/models/__init__.py", "harness/datasets/__init__.py",
                     "harness/templates/report.html.j2", "harness/templates/section.html.j2"):
        assert expected in names
    assert not any(n.startswith("mlflow/") for n in names)
    # installed from the wheel (not editable), the report finds its templates there
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import harness.results.html as h; from harness.results.sections import ReportData;"
            "page = h.render_report(ReportData({'config': {'name': 'wheel'}, 'run_id': 'r'}));"
            "print(h.__file__); print('<h1>wheel</h1>' in page)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target)})
    where, rendered = out.stdout.split()
    assert where.startswith(str(target)) and rendered == "True"
