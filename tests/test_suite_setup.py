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



class _Plugins:
    def __init__(self, xdist: bool) -> None:
        self.xdist = xdist

    def hasplugin(self, name: str) -> bool:
        return name == "xdist" and self.xdist


class _Config:
    def __init__(self, xdist: bool) -> None:
        self.pluginmanager = _Plugins(xdist)


class _Item:
    def __init__(self, fixtures: tuple[str, ...]) -> None:
        self.fixturenames = fixtures
        self.nodeid = "tests/test_x.py::test_x"
        self.markers: list[str] = []

    def add_marker(self, mark: pytest.MarkDecorator) -> None:
        self.markers.append(mark.name)


@pytest.mark.parametrize("xdist", [True, False])
def test_spark_tests_are_marked_and_grouped_only_where_xdist_is_loaded(xdist: bool) -> None:
    """``-p no:xdist`` (one process) leaves out xdist's group marker, which is unknown
    there (``--strict-markers`` would refuse it); the ``spark`` marker stays, and the
    Spark tests still come first."""
    from tests.conftest import pytest_collection_modifyitems

    items = [_Item(("tmp_path",)), _Item(("spark", "tmp_path"))]
    pytest_collection_modifyitems(_Config(xdist), items)
    assert items[0].fixturenames[0] == "spark"
    assert items[0].markers == (["xdist_group", "spark"] if xdist else ["spark"])
    assert items[1].markers == []
