"""The test suite's own set-up: what keeps ``make test`` to one Spark session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import _one_spark_worker


class _LoadGroup:
    """A pytest config as an xdist worker sees it under ``--dist loadgroup``."""

    def getvalue(self, name: str) -> bool:
        return name == "loadgroup"


def test_a_second_worker_starting_a_spark_session_fails_naming_the_first(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for worker in ("gw0", "gw1"):
        (tmp_path / f"popen-{worker}").mkdir()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    _one_spark_worker(_LoadGroup(), tmp_path / "popen-gw0")  # claims the session
    _one_spark_worker(_LoadGroup(), tmp_path / "popen-gw0")  # its own claim: fine
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    with pytest.raises(pytest.fail.Exception, match=r"worker gw1 starts a second Spark session \(gw0 has one\)"):
        _one_spark_worker(_LoadGroup(), tmp_path / "popen-gw1")
    monkeypatch.delenv("PYTEST_XDIST_WORKER")  # without xdist: nothing to check
    _one_spark_worker(_LoadGroup(), tmp_path / "popen-gw1")

