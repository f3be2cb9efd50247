"""mlflow/start.sh and stop.sh start and stop a real, healthy tracking server."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, migrated_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.mlflow_server
def test_start_and_stop_scripts(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "MLFLOW_PORT": str(port), "HARNESS_MLFLOW_DATA": str(tmp_path / "data"),
           "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{migrated_store(tmp_path / 'store.db')}",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    try:
        out = subprocess.run(["bash", str(ROOT / "mlflow/start.sh")], env=env, capture_output=True,
                             text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        assert f"http://127.0.0.1:{port}" in out.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
        again = subprocess.run(["bash", str(ROOT / "mlflow/start.sh")], env=env, capture_output=True, text=True)
        assert "already running" in again.stdout
    finally:
        stop = subprocess.run(["bash", str(ROOT / "mlflow/stop.sh")], env=env, capture_output=True, text=True)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert not (tmp_path / "data" / "server.pid").exists()
