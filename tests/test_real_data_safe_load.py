"""Model files load without running code from them unless the config trusts the file."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from torch import nn

from harness.errors import ConfigError
from harness.models.safe_load import (is_pickle_file, load_estimator, load_torch_module, load_xgboost_booster,
                                      save_module_checkpoint)
from harness.models.torch_retriever import TorchRetriever


class _Marker:
    """Unpickling this creates a file: proof that code from the file ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    return LogisticRegression().fit(X, X[:, 0] > 0), X


# ---------------------------------------------------------------- scikit-learn
def test_a_pickle_is_refused_before_it_is_read_and_says_how_to_fix(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    joblib.dump(_Marker(marker), path)
    with pytest.raises(ConfigError, match=r"is a pickle, and loading a pickle runs code.*skops.*set `trusted: true`"):
        load_estimator(path)
    assert not marker.exists()
    load_estimator(path, trusted=True)
    assert marker.exists()  # the same file does run code once trusted: the refusal was needed


def test_trusted_pickle_loads_the_estimator(tmp_path):
    est, X = _fitted()
    joblib.dump(est, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(load_estimator(tmp_path / "clf.joblib", trusted=True).predict_proba(X),
                                  est.predict_proba(X))


@pytest.mark.parametrize("compress", [0, 1, 3, 9, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)])
def test_pickles_are_recognised_by_content_whatever_the_suffix(tmp_path, compress):
    est, _ = _fitted()
    path = tmp_path / "model.bin"
    joblib.dump(est, path, compress=compress)
    assert is_pickle_file(path)
    with pytest.raises(ConfigError, match="is a pickle"):
        load_estimator(path)


def test_plain_pickle_protocols_are_recognised(tmp_path):
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.dat"
        path.write_bytes(pickle.dumps({"a": 1}, protocol=protocol))
        assert is_pickle_file(path)
    (tmp_path / "model.json").write_text("{}")
    assert not is_pickle_file(tmp_path / "model.json")


@pytest.mark.parametrize("make, kwargs, match", [
    (lambda p: None, {}, r"sklearn: model file not found"),
    (lambda p: p.write_text("{}"), {}, r"neither a skops file \(\.skops\) nor a pickle"),
    (lambda p: p.write_text("{}"), {"trusted": "yes"}, r"trusted must be true or false, got 'yes'"),
])
def test_bad_sklearn_model_files(tmp_path, make, kwargs, match):
    path = tmp_path / "model.json"
    make(path)
    with pytest.raises(ConfigError, match=match):
        load_estimator(path, **kwargs)


@pytest.fixture
def fake_skops(monkeypatch):
    """A stand-in ``skops.io`` recording calls (the real package is optional)."""
    calls = {}
    sio = types.ModuleType("skops.io")
    sio.get_untrusted_types = lambda file: calls.setdefault("untrusted", ["mypkg.Custom"])
    sio.load = lambda file, trusted=None: calls.setdefault("load", (file, trusted)) and "estimator"
    pkg = types.ModuleType("skops")
    pkg.io = sio
    monkeypatch.setitem(sys.modules, "skops", pkg)
    monkeypatch.setitem(sys.modules, "skops.io", sio)
    return calls


def _zip(path: Path) -> None:
    """An (empty) zip archive: what a skops file is, for the stand-in skops.io to read."""
    import zipfile

    with zipfile.ZipFile(path, "w"):
        pass


def test_a_skops_file_that_is_not_one_is_one_line(tmp_path):
    """A text file named .skops: refused before skops reads it, with or without trusted
    (skops raised zipfile.BadZipFile: a traceback and exit 3 from the CLI)."""
    path = tmp_path / "model.skops"
    path.write_text("not a model")
    for trusted in (False, True):
        with pytest.raises(ConfigError, match=r"sklearn: .*model.skops is not a skops file \(not a zip archive\); "
                                              r"save the estimator with `skops.io.dump"):
            load_estimator(path, trusted=trusted)


def test_skops_files_with_untrusted_types_need_trusted(tmp_path, fake_skops):
    path = tmp_path / "model.skops"
    _zip(path)
    with pytest.raises(ConfigError, match=r"types that skops does not trust by default: \['mypkg.Custom'\]"):
        load_estimator(path)
    assert "load" not in fake_skops
    assert load_estimator(path, trusted=True) == "estimator"
    assert fake_skops["load"] == (str(path), ["mypkg.Custom"])


def test_skops_file_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "skops.io", None)  # import fails
    path = tmp_path / "model.skops"
    _zip(path)
    with pytest.raises(ConfigError, match=r"skops package is not installed \(`pip install skops`\)"):
        load_estimator(path)
    joblib.dump({"a": 1}, tmp_path / "m.pkl")
    with pytest.raises(ConfigError, match=r"`pip install skops`, then `skops.io.dump"):
        load_estimator(tmp_path / "m.pkl")


# ---------------------------------------------------------------- PyTorch
class Towers(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int = 3) -> None:
        super().__init__()
        self.user = nn.Parameter(torch.randn(n_users, dim))
        self.item = nn.Parameter(torch.randn(n_items, dim))

    def query_embeddings(self, ids):
        return self.user[ids]

    def item_embeddings(self, ids):
        return self.item[ids]


SPEC = f"{__name__}:Towers"


def test_state_dict_with_a_named_module_class_loads_without_unpickling(tmp_path):
    module = Towers(5, 7)
    torch.save(module.state_dict(), tmp_path / "state.pt")
    loaded = load_torch_module(tmp_path / "state.pt", module_class=SPEC, module_kwargs={"n_users": 5, "n_items": 7})
    assert isinstance(loaded, Towers)
    torch.testing.assert_close(loaded.item, module.item)
    with pytest.raises(ConfigError, match=r"holds a state dict \(2 tensors\), not an nn.Module; set params module_class"):
        load_torch_module(tmp_path / "state.pt")
    with pytest.raises(ConfigError, match=r"cannot build .*Towers .*module_kwargs \{'n_users': 5, 'n_items': 8\}"):
        load_torch_module(tmp_path / "state.pt", module_class=SPEC, module_kwargs={"n_users": 5, "n_items": 8})


@pytest.mark.parametrize("spec, match", [
    ("os.path", r"module_class must be 'package.module:ClassName', got 'os.path'"),
    ("os:path", r"module_class 'os:path' is not a torch.nn.Module subclass"),
    ("no_such_pkg_xyz:Net", r"module_class 'no_such_pkg_xyz:Net' cannot be imported"),
])
def test_bad_module_class(tmp_path, spec, match):
    torch.save(Towers(2, 2).state_dict(), tmp_path / "state.pt")
    with pytest.raises(ConfigError, match=match):
        load_torch_module(tmp_path / "state.pt", module_class=spec)


def test_whole_pickled_module_needs_trusted_and_no_code_runs_before(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"payload": _Marker(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match=r"evil.pt is a pickle.*TorchScript.*module_class.*`trusted: true`"):
        load_torch_module(tmp_path / "evil.pt")
    assert not marker.exists()
    module = Towers(3, 4)
    torch.save(module, tmp_path / "whole.pt")
    with pytest.raises(ConfigError, match="is a pickle"):
        TorchRetriever(checkpoint=tmp_path / "whole.pt")
    loaded = TorchRetriever(checkpoint=tmp_path / "whole.pt", trusted=True).module
    torch.testing.assert_close(loaded.user, module.user)


def test_harness_checkpoint_round_trip_through_torch_retriever(tmp_path):
    module = Towers(4, 6)
    save_module_checkpoint(module, tmp_path / "ckpt.pt", module_kwargs={"n_users": 4, "n_items": 6})
    retriever = TorchRetriever(checkpoint=tmp_path / "ckpt.pt", exclude_seen=False)
    import pandas as pd

    retriever.fit(pd.DataFrame({"user_id": [0], "item_id": [0]}), n_users=4, n_items=6)
    got = retriever.retrieve(np.arange(4), 6)
    scores = (module.user @ module.item.T).detach().numpy()
    np.testing.assert_array_equal(got.items, np.argsort(-scores, axis=1, kind="stable"))


def test_bpr_and_two_tower_save_safe_checkpoints(tmp_path):
    import pandas as pd

    from harness.models.mf import BPRMF
    from harness.models.two_tower import TwoTower

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user_id": rng.integers(0, 20, 200), "item_id": rng.integers(0, 15, 200)}).drop_duplicates()
    for model in (BPRMF(seed=0, n_epochs=2), TwoTower(seed=0, n_epochs=2)):
        model.fit(train, n_users=20, n_items=15)
        path = tmp_path / f"{type(model).__name__}.pt"
        model.save(path)
        served = TorchRetriever(checkpoint=path).fit(train, n_users=20, n_items=15)  # not trusted: no pickle
        a, b = model.retrieve(np.arange(20), 5), served.retrieve(np.arange(20), 5)
        np.testing.assert_array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


# ---------------------------------------------------------------- XGBoost
def test_xgboost_json_and_ubj_load_and_pickles_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    ranker = xgb.XGBRanker(n_estimators=3, max_depth=2).fit(X, y, qid=np.repeat(np.arange(4), 10))
    for suffix in (".json", ".ubj"):
        ranker.save_model(tmp_path / f"m{suffix}")
        booster = load_xgboost_booster(tmp_path / f"m{suffix}")
        np.testing.assert_allclose(booster.predict(xgb.DMatrix(X)), ranker.predict(X), rtol=1e-6)
    joblib.dump(ranker, tmp_path / "m.joblib")
    with pytest.raises(ConfigError, match=r"m.joblib is a pickle; .*save_model\('model.json'\)"):
        load_xgboost_booster(tmp_path / "m.joblib")
    # a file XGBoost cannot read: one line, without XGBoost's C++ location and stack trace
    (tmp_path / "m.txt").write_text("not a model")
    with pytest.raises(ConfigError, match=r"m.txt is not an XGBoost model file XGBoost can read") as bad:
        load_xgboost_booster(tmp_path / "m.txt")
    assert "\n" not in str(bad.value) and "Stack trace" not in str(bad.value) and ".cc:" not in str(bad.value)
