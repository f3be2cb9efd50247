"""Loading model files without running code from them, unless the config trusts the file.

A pickle -- a ``joblib.dump``-ed scikit-learn estimator, a module saved whole with
``torch.save(module)`` and read back with ``weights_only=False`` -- runs code while it is
loaded, and a config in a pull request can point at one. So the loaders here prefer
formats that don't, and read a pickle only when the model's config says
``trusted: true``:

=================  ==============================================  ====================
model              safe formats                                     pickle (trusted)
=================  ==============================================  ====================
scikit-learn       skops (``.skops``; needs the ``skops`` package)  ``.joblib``, ``.pkl``
PyTorch            TorchScript; a state dict with a named module    a whole module
                   class (``module_class``), or a harness
                   checkpoint (``save_module_checkpoint``)
XGBoost            ``save_model`` JSON (``.json``) or UBJSON        refused: re-save as
                   (``.ubj``)                                       JSON/UBJ
MLflow             ``models:/...``, ``runs:/...`` (its own flavours)
=================  ==============================================  ====================

Every refusal is a ``ConfigError`` that says how to fix it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import zipfile
from pathlib import Path
from typing import Any, Mapping

from harness.errors import ConfigError

__all__ = ["PICKLE_SUFFIXES", "is_pickle_file", "load_estimator", "load_torch_module", "load_xgboost_booster",
           "save_module_checkpoint"]

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".pck")
CHECKPOINT_KEY = "harness_checkpoint"
# first bytes of a pickle (protocol 2+) and of joblib's compressed pickles (zlib, gzip,
# bz2, xz, lzma, lz4)
_PICKLE_MAGIC = (b"\x80", b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda", b"\x1f\x8b", b"BZh",
                 b"\xfd7zXZ", b"\x5d\x00\x00", b"\x04\x22\x4d\x18")


def is_pickle_file(path: Path) -> bool:
    """A pickle (or a joblib-compressed one) by suffix or by its first bytes."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(8)
    return any(head.startswith(m) for m in _PICKLE_MAGIC)


def _need_file(path: str | Path, what: str, kind: str = "model file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what}: {kind} not found: {p}")
    return p


def _check_trusted(trusted: Any, what: str) -> bool:
    if not isinstance(trusted, bool):
        raise ConfigError(f"{what}: trusted must be true or false, got {trusted!r}")
    return trusted


def _skops_available() -> bool:
    """Whether skops is installed, found without importing it: ``skops.io`` imports ~5 CPU-s
    of modules, which the message about a pickle does not need."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"] is not None
    try:
        return importlib.util.find_spec("skops.io") is not None
    except (ImportError, ValueError):
        return False


def _pickle_refusal(path: Path, what: str, safe: str) -> ConfigError:
    return ConfigError(
        f"{what}: {path} is a pickle, and loading a pickle runs code stored in the file (a config in a pull "
        f"request could point at any file). Save the model in a format that runs no code ({safe}), or, if you "
        f"made this file or otherwise trust it, set `trusted: true` in this model's params")


def load_estimator(path: str | Path, *, trusted: bool = False) -> Any:
    """A fitted scikit-learn estimator from a skops file, or from a pickle when trusted.

    Parameters
    ----------
    path : str or Path
        ``.skops`` (``skops.io.dump``), or ``.joblib``/``.pkl`` (``joblib.dump``/``pickle.dump``).
    trusted : bool, default False
        Read a pickle (runs code from the file), or a skops file whose types are not on
        skops' default trusted list.

    Returns
    -------
    estimator

    Raises
    ------
    ConfigError
        Missing file; a pickle without ``trusted``; a skops file without the ``skops``
        package, or with untrusted types (listed) without ``trusted``; another format;
        a file that cannot be read.
    """
    what = "sklearn"
    p = _need_file(path, what)
    trusted = _check_trusted(trusted, what)
    safe = ("skops: `skops.io.dump(estimator, 'model.skops')`" if _skops_available()
            else "skops: `pip install skops`, then `skops.io.dump(estimator, 'model.skops')`")
    if p.suffix.lower() == ".skops":
        if not zipfile.is_zipfile(p):  # a skops file is a zip archive (skops raised BadZipFile)
            raise ConfigError(f"{what}: {p} is not a skops file (not a zip archive); save the estimator "
                              "with `skops.io.dump(estimator, 'model.skops')`")
        if not _skops_available():
            raise ConfigError(f"{what}: {p} is a skops file but the skops package is not installed "
                              "(`pip install skops`)")
        sio = importlib.import_module("skops.io")
        untrusted = list(sio.get_untrusted_types(file=str(p)))
        if untrusted and not trusted:
            raise ConfigError(f"{what}: {p} holds types that skops does not trust by default: {untrusted}; "
                              "review them and set `trusted: true` in this model's params to load it")
        try:
            return sio.load(str(p), trusted=untrusted or None)
        except Exception as exc:
            raise ConfigError(f"{what}: cannot load {p}: {type(exc).__name__}: {exc}") from exc
    if not is_pickle_file(p):
        raise ConfigError(f"{what}: {p} is neither a skops file (.skops) nor a pickle ({', '.join(PICKLE_SUFFIXES)})")
    if not trusted:
        raise _pickle_refusal(p, what, safe)
    import pickle

    import joblib

    try:
        return joblib.load(p)
    except (pickle.UnpicklingError, ValueError, EOFError, KeyError, AttributeError, ImportError) as exc:
        raise ConfigError(f"{what}: cannot load {p}: {exc}") from exc


def _import_class(spec: str, what: str) -> Any:
    """``"package.module:ClassName"`` -> the class, which must be a ``torch.nn.Module``."""
    import torch

    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(f"{what}: module_class must be 'package.module:ClassName', got {spec!r}")
    mod_name, cls_name = spec.split(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what}: module_class {spec!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ConfigError(f"{what}: module_class {spec!r} is not a torch.nn.Module subclass")
    return cls


def _module_from_state(state: Mapping[str, Any], spec: str, kwargs: Mapping[str, Any], what: str, path: Path) -> Any:
    cls = _import_class(spec, what)
    try:
        module = cls(**dict(kwargs))
        module.load_state_dict(dict(state), strict=True)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot build {spec} from {path} (module_kwargs {dict(kwargs)}): {exc}") from exc
    return module


def load_torch_module(path: str | Path, *, trusted: bool = False, module_class: str | None = None,
                      module_kwargs: Mapping[str, Any] | None = None) -> Any:
    """A ``torch.nn.Module`` from a TorchScript archive, a state dict with a named class,
    a harness checkpoint, or (trusted only) a whole pickled module.

    Parameters
    ----------
    path : str or Path
    trusted : bool, default False
        Allow ``torch.load(weights_only=False)`` of a module saved whole (runs code).
    module_class : str, optional
        ``"package.module:ClassName"`` of an ``nn.Module`` to build and fill with a state
        dict (``torch.save(module.state_dict(), path)``), read with ``weights_only=True``.
    module_kwargs : dict, optional
        Constructor arguments of ``module_class``.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ConfigError
        Missing or unreadable file; a state dict without ``module_class``; a whole
        pickled module without ``trusted``; anything that is not a module.
    """
    import pickle

    import torch

    what = "torch_retriever"
    p = _need_file(path, what, "checkpoint")
    trusted = _check_trusted(trusted, what)
    if module_kwargs is not None and not isinstance(module_kwargs, Mapping):
        raise ConfigError(f"{what}: module_kwargs must be a mapping, got {type(module_kwargs).__name__}")
    if _is_torchscript(p):
        try:
            return torch.jit.load(str(p), map_location="cpu")
        except RuntimeError as exc:
            raise ConfigError(f"{what}: cannot load TorchScript checkpoint {p}: {exc}") from exc
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # not plain weights: a pickled object
        if not trusted:
            raise _pickle_refusal(p, what, "TorchScript `torch.jit.save(torch.jit.script(module), path)`, or "
                                  "`torch.save(module.state_dict(), path)` with params module_class: "
                                  "'package.module:ClassName' and module_kwargs") from exc
        obj = None
    except Exception as exc:
        raise ConfigError(f"{what}: cannot load checkpoint {p}: {type(exc).__name__}: {exc}") from exc
    if obj is None:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ConfigError(f"{what}: cannot load checkpoint {p}: {type(exc).__name__}: {exc}") from exc
    if isinstance(obj, torch.nn.Module):
        return obj
    if isinstance(obj, Mapping) and CHECKPOINT_KEY in obj:
        spec = module_class or obj.get("module_class")
        return _module_from_state(obj["state_dict"], spec, module_kwargs or obj.get("module_kwargs", {}), what, p)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if module_class is None:
            raise ConfigError(f"{what}: checkpoint {p} holds a state dict ({len(obj)} tensors), not an nn.Module; "
                              "set params module_class: 'package.module:ClassName' (and module_kwargs) to build "
                              "the module it belongs to")
        return _module_from_state(obj, module_class, module_kwargs or {}, what, p)
    raise ConfigError(f"{what}: checkpoint {p} holds a {type(obj).__name__}, not an nn.Module (save the module "
                      "itself, its state dict with module_class, or a TorchScript archive)")


def save_module_checkpoint(module: Any, path: str | Path, *, module_kwargs: Mapping[str, Any]) -> Path:
    """Save ``module`` as a checkpoint that loads without unpickling code: its state dict,
    its class (``package.module:ClassName``) and constructor arguments (numbers, strings,
    tensors), read back by ``load_torch_module`` with ``weights_only=True``."""
    import torch

    cls = type(module)
    payload = {CHECKPOINT_KEY: 1, "module_class": f"{cls.__module__}:{cls.__qualname__}",
               "module_kwargs": dict(module_kwargs), "state_dict": module.state_dict()}
    torch.save(payload, str(path))
    return Path(path)


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder; ``torch.save`` zips have none."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def load_xgboost_booster(path: str | Path) -> Any:
    """An ``xgboost.Booster`` from ``save_model`` JSON/UBJSON (never a pickle).

    Raises
    ------
    ConfigError
        Missing file; a pickle (``joblib.dump`` of an ``XGBRanker``: re-save it with
        ``model.save_model('model.json')``); a file XGBoost cannot read.
    """
    import xgboost as xgb

    what = "xgboost_ranker"
    p = _need_file(path, what)
    if is_pickle_file(p):
        raise ConfigError(f"{what}: {p} is a pickle; XGBoost models load without running code from "
                          "`model.save_model('model.json')` (or .ubj): re-save it in that format")
    booster = xgb.Booster()
    try:
        booster.load_model(str(p))
    except xgb.core.XGBoostError as exc:
        # XGBoost's message carries its C++ source location and stack trace: keep its reason
        reason = str(exc).split("Stack trace:")[0].strip().splitlines()[0]
        reason = reason.split(": ", 2)[-1] if reason.startswith("[") else reason
        raise ConfigError(f"{what}: {p} is not an XGBoost model file XGBoost can read (save one with "
                          f"`model.save_model('model.json')` or .ubj): {reason}") from exc
    return booster
