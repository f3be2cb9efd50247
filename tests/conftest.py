"""Shared fixtures: small evaluation configs and a real MLflow tracking server."""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib.abc
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

VENV_BIN = Path(sys.executable).parent

# OpenMP's threads (numba's parallel kernels, XGBoost, PyTorch) spin after each parallel
# region by default, waiting for the next one: with two workers on two cores they burn
# the CPU the other worker needs, and a small evaluate_ranking call costs ~35 ms of CPU
# instead of ~3 ms. Passive waiting changes no result (the kernels give the same bits
# whatever the threads do); it is set before any OpenMP runtime loads, here and so in
# the xdist workers and every subprocess a test starts, which inherit the environment.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set (CI images and containers
# often set it): the project's modules are then compiled once per run, not once in every
# `harness` subprocess and Spark Python worker a test starts, and pytest's rewritten test
# modules are reused by the next run (collection: ~13 -> ~9 CPU-s per xdist worker).
# __pycache__ is git-ignored; a module's source, not its cache, decides what runs.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def small_config(tmp_path: Path, *, candidate: dict[str, Any] | None = None,
                 tracking: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """A fast config: 300 users x 200 items, popularity baseline vs a candidate."""
    cfg: dict[str, Any] = {
        "name": "test-eval",
        "seed": 7,
        "dataset": {"kind": "synthetic", "n_users": 300, "n_items": 200, "dim": 8},
        "models": {
            "popularity": {"kind": "popularity"},
            "candidate": candidate or {"kind": "oracle", "params": {"noise": 0.5}},
        },
        "evaluate": {"ranking": {"metrics": ["ndcg@10", "recall@[10,50]"]}},
        "compare": {"baseline": "popularity", "candidates": ["candidate"], "n_resamples": 500},
        "gate": [
            {"metric": "ndcg@10", "role": "primary", "direction": "higher"},
            {"metric": "recall@50", "role": "guardrail", "direction": "higher", "max_regression": 0.02},
        ],
        "tracking": tracking if tracking is not None else {"enabled": False},
        "output": str(tmp_path / "results"),
    }
    cfg.update(overrides)
    return cfg


def write_config(tmp_path: Path, cfg: dict[str, Any], name: str = "eval.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


_STORE_TEMPLATE: Path | None = None
_INITIALIZE_TABLES: Any = None  # MLflow's own, before _TemplateStores wraps it
# pip requirements of the pyfunc models tests log: given, so that MLflow does not infer
# them (a subprocess that loads the model and records what it imports, ~10 CPU-s a
# model); no test reads a logged model's requirements.
NO_INFERENCE = ["mlflow"]


def _store_template() -> Path:
    """An empty SQLite tracking store with MLflow's current schema (no experiment yet),
    made once a process: a new store runs every one of MLflow's schema migrations, about
    3 CPU-s."""
    global _STORE_TEMPLATE
    if _STORE_TEMPLATE is None:
        import tempfile

        import sqlalchemy
        from mlflow.store.db import utils

        template = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
        engine = sqlalchemy.create_engine(f"sqlite:///{template}")
        (_INITIALIZE_TABLES or utils._initialize_tables)(engine)
        engine.dispose()  # close the pool's connections before the file is copied
        _STORE_TEMPLATE = template
    return _STORE_TEMPLATE


def migrated_store(path: Path) -> Path:
    """Put an empty SQLite tracking store with MLflow's current schema at ``path``: the
    very file MLflow would have made (same tables, same schema version), copied."""
    shutil.copyfile(_store_template(), path)
    return path


class _TemplateStores(importlib.abc.MetaPathFinder):
    """Stores that MLflow creates in a test process (a run's default store, a URI a test
    configures) start as a copy of :func:`_store_template` instead of running the schema
    migrations again: MLflow's ``_initialize_tables`` is wrapped when its module is first
    imported (a finder, so that a test run without MLflow never imports it)."""

    MODULE = "mlflow.store.db.utils"

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.MODULE:
            return None
        sys.meta_path.remove(self)  # the real finders find it; this one only wraps it
        spec = importlib.util.find_spec(name)
        run_module = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            global _INITIALIZE_TABLES
            run_module(module)
            _INITIALIZE_TABLES = module._initialize_tables

            def initialize_from_template(engine: Any) -> None:
                db = engine.url.database
                if engine.url.get_backend_name() != "sqlite" or not db or db == ":memory:":
                    return _INITIALIZE_TABLES(engine)
                engine.dispose()  # no connection open on the file it replaces
                shutil.copyfile(_store_template(), db)

            module._initialize_tables = initialize_from_template

        spec.loader.exec_module = exec_module
        return spec


class MlflowServer:
    def __init__(self, root: Path, port: int | None = None) -> None:
        """A server to start on ``port`` (default: a free one), or, given the port of one
        already started, a handle that only waits for it (:meth:`wait_healthy`)."""
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        self.launch()
        self.wait_healthy(timeout)

    def launch(self, *, template: bool = True) -> None:
        """Start the server process and return at once (see :meth:`wait_healthy`). Its
        new store is a copy of this process's template, or, without ``template``, made
        by the server itself (MLflow's migrations run in the server process, not here)."""
        mlflow_bin = shutil.which("mlflow", path=str(VENV_BIN)) or "mlflow"
        db = self.root / "mlflow.db"
        if template and not db.exists():  # a restart keeps its store
            migrated_store(db)
        # No job runner: it is a third Python process (MLflow's GenAI jobs), which the
        # harness never uses, and it costs as much CPU to start as the server itself.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--backend-store-uri", f"sqlite:///{db}",
             "--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"],
            stdout=open(self.root / "server.log", "ab"), stderr=subprocess.STDOUT,
            start_new_session=True, env=env)

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited:\n" + (self.root / "server.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # a server answers within ~5 s of starting: poll often
        raise RuntimeError(f"mlflow server not healthy after {timeout}s")

    def kill(self) -> None:
        """The server dies at once (SIGKILL), as in a crash: no graceful shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(20)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.proc = None


class Outage:
    """A TCP relay on a port of its own in front of a live server, which goes down and
    comes back at the test's word: :meth:`down` closes the port and every open
    connection at once (the client's next request is refused, or cut mid-exchange, as
    when a server process is killed), :meth:`up` listens on the same port again. The
    server behind keeps its store, as a crashed server restarted on it would; starting
    a second ``mlflow server`` for that costs ~10 CPU-s a start."""

    def __init__(self, target: str) -> None:
        self.target = ("127.0.0.1", int(target.rsplit(":", 1)[1]))
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        # shutdown() first: close() alone does not wake a thread blocked in accept or recv
        # on the socket, and the port would stay open until it returns
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class SharedServer:
    """Under xdist, one ``mlflow server`` for every worker, started by the controller
    before the workers (its start, ~10 CPU-s, overlaps their start-up and collection
    instead of being paid once per worker when its first test needs it). The server
    migrates its own store: made here, from the template, the controller would import
    MLflow and run the migrations (~3 s) before it starts any worker."""

    def __init__(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="harness-mlflow-server-"))
        self.server = MlflowServer(self.root)
        self.server.launch(template=False)

    def pytest_configure_node(self, node: Any) -> None:  # xdist hook: what a worker is told
        node.workerinput["harness_mlflow_port"] = self.server.port

    def stop(self) -> None:
        self.server.kill()  # its store is deleted next: a graceful shutdown (~1.5 s) keeps nothing
        shutil.rmtree(self.root, ignore_errors=True)


def _wants_shared_server(config: pytest.Config) -> bool:
    return (not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist")
            and bool(config.getoption("numprocesses", None))
            and "not mlflow_server" not in (config.getoption("markexpr", "") or ""))


def pytest_configure(config: pytest.Config) -> None:
    """Compile (or load from numba's on-disk cache) every kernel once, here in the main
    process, before xdist starts its workers: on a fresh clone the workers then load the
    cached kernels instead of each compiling them at the same time. Under xdist, also
    launch the workers' shared MLflow server (:class:`SharedServer`). In every process,
    MLflow stores made in tests start from a migrated template (:class:`_TemplateStores`)."""
    if "mlflow.store.db.utils" not in sys.modules:
        sys.meta_path.insert(0, _TemplateStores())
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    if _wants_shared_server(config):
        shared = SharedServer()
        config.pluginmanager.register(shared, "harness-shared-mlflow-server")
    from harness.metrics._warm import warm  # what `make install` runs; here a cache load

    warm()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every test has run: the objects alive now (MLflow's, PyTorch's, Spark's modules
    and caches) stay alive until the process exits, so after one last collection (which
    finalises the last tests' garbage, reporting an exception raised in a ``__del__``)
    the full collections that follow (pytest's, five in a row, then the interpreter's at
    exit) need not walk them again: 2-3 s at the end of each worker."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.pluginmanager.get_plugin("harness-shared-mlflow-server")
    if shared is not None:
        shared.stop()


def _uses_module_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a module-scoped fixture of its own module (conftest's, such
    as ``one_blas_thread``, cost nothing to set up again)."""
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::")[0]
    return info is not None and any(d.scope == "module" and d.baseid == module
                                    for defs in info.name2fixturedefs.values() for d in defs)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers (its hook runs first otherwise)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the live server are marked ``mlflow_server``, those that use the
    Spark session ``spark`` (deselect them with ``-m "not mlflow_server and not spark"``)."""
    groups = config.pluginmanager.hasplugin("xdist")  # its marker is unknown under -p no:xdist
    for item in items:
        if "mlflow_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mlflow_server)
        if "spark" in getattr(item, "fixturenames", ()):
            # one Spark session per test run: every Spark test on one xdist worker
            # (``--dist loadgroup``, as the Makefile runs the suite)
            if groups:
                item.add_marker(pytest.mark.xdist_group("spark"))
            item.add_marker(pytest.mark.spark)
        elif groups and _uses_module_fixture(item):
            # a module's shared fixture (trained models, a browser) built once, on one
            # worker, instead of once on each worker its tests are dealt to
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    # the Spark group first: its worker starts the JVM at once and the other worker takes
    # the rest, instead of a few minutes of Spark tests left for the end on one worker
    items.sort(key=lambda item: "spark" not in getattr(item, "fixturenames", ()))


# Driver memory of the test session: small, so that the larger-than-memory test means it.
# (256 MiB, with Spark's test-only reserved memory lowered, halves that test's rows but
# keeps the heap near full through the other tests: the collector's time cost more.)
SPARK_DRIVER_MEMORY = "512m"
# The tests' data are tiny and the session short: what costs is starting the JVM and
# compiling Spark's own code. C1 only (no C2 recompiles), one JIT thread and the serial
# collector halve the JVM's CPU on two cores; no whole-stage codegen, expressions
# interpreted rather than compiled one Janino class each (factoryMode, a test setting of
# Spark's: a config run's JVM CPU 6.6 -> 4.8 s) and no adaptive re-planning skip
# compiles and extra jobs per query. Same results: these change how Spark runs a plan,
# not what it computes.
SPARK_TEST_CONF = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=1 -XX:+UseSerialGC",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
}


def _one_spark_worker(config: pytest.Config, basetemp: Path) -> None:
    """Under ``--dist loadgroup`` every Spark test runs on one xdist worker: the first
    worker to start a session claims it (a file beside the workers' temporary folders);
    a second one means the groups were lost (a second JVM: a minute of CPU and memory),
    which fails loudly instead of silently slowing the suite."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None or not config.getvalue("loadgroup"):
        return
    claim = basetemp.parent / "spark-session-worker"
    try:
        with open(claim, "x") as f:
            f.write(worker)
    except FileExistsError:
        owner = claim.read_text()
        if owner != worker:
            pytest.fail(f"worker {worker} starts a second Spark session ({owner} has one): --dist loadgroup did "
                        "not keep the Spark tests on one worker; check pytest and pytest-xdist against "
                        "constraints.txt (pytest 9.2 ignores the ids xdist 3.8 gives its groups)")


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] SparkSession for the whole test run. Without pyspark or Java the Spark
    tests FAIL, saying what to install: a skip would hide a missing install step in CI."""
    _one_spark_worker(request.config, tmp_path_factory.getbasetemp())
    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("the Spark tests need pyspark: pip install -c constraints.txt -e '.[test]' (make install does)")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("the Spark tests need Java 17+: apt-get install default-jre-headless (.ci/run does)")
    from harness.spark import spark_session

    session = spark_session("local[2]", app_name="harness-tests",
                            conf={"spark.driver.memory": SPARK_DRIVER_MEMORY, **SPARK_TEST_CONF})
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def nothing_left_cached(request: pytest.FixtureRequest) -> Iterator[None]:
    """The test's runs leave no persisted Spark table behind: a run that finishes or fails
    frees what it cached, for the session outlives it (a notebook's, a service's). For
    the modules of config runs; the Python API's results stay cached until released."""
    if "spark" not in request.fixturenames:  # a test without the session: nothing to cache
        yield
        return
    context = request.getfixturevalue("spark").sparkContext
    before = context._jsc.getPersistentRDDs().size()
    yield
    after = context._jsc.getPersistentRDDs().size()
    assert after <= before, f"{after - before} persisted Spark table(s) left by the test"


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own default MLflow store and leaves MLflow's globals as it found
    them, so that no test writes to the repository's mlflow.db or sees another's URI."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'default-mlflow.db'}")
    yield
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        while mlflow.active_run() is not None:
            mlflow.end_run()


@pytest.fixture(autouse=True)
def no_figure_left_open() -> Iterator[None]:
    """No test leaves a matplotlib figure open: pyplot keeps every figure it made until
    it is closed, so a leak in the harness's drawing code grows a notebook's or a
    service's memory run after run (and here, every later test's)."""
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None and plt.get_fignums():
        labels = [plt.figure(n).get_label() or str(n) for n in plt.get_fignums()]
        plt.close("all")
        pytest.fail(f"{len(labels)} matplotlib figure(s) left open: {labels}")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` on a free 127.0.0.1 port with a temporary SQLite store:
    under xdist the controller's (:class:`SharedServer`), else this process's own."""
    shared_port = getattr(request.config, "workerinput", {}).get("harness_mlflow_port")
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), port=shared_port)
    if shared_port is not None:
        server.wait_healthy(timeout=300)
        yield server
        return
    server.start()
    yield server
    server.stop()


@pytest.fixture
def unreachable_uri() -> str:
    """An http URI on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def one_blas_thread() -> Iterator[None]:
    """Thousands of tiny matrix products: BLAS threads only add contention there."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


@functools.lru_cache(maxsize=16)
def _unit_labels(n_units: int, n_metrics: int) -> tuple[Any, Any]:
    import pandas as pd

    return pd.Index([f"q{i}" for i in range(n_units)]), pd.Index([f"m{j}@10" for j in range(n_metrics)])


def paired_frames(base: Any, cand: Any) -> dict[str, Any]:
    """Per-unit tables of a baseline "prod" and a candidate "cand" (units q0.., metrics m0@10..).
    The labels are built once per shape: simulations call this thousands of times."""
    import pandas as pd

    index, cols = _unit_labels(*base.shape)
    return {"prod": pd.DataFrame(base, index=index, columns=cols),
            "cand": pd.DataFrame(cand, index=index, columns=cols)}
