"""The harness's exception hierarchy.

A leaf module that imports nothing of the harness, so that every layer (``harness.metrics``,
``harness.datasets``, ``harness.models`` and the engine) can raise the same errors
without depending on the engine. Each error also subclasses the matching builtin, so
``except ValueError`` in user code keeps working.

The CLI maps these to exit codes: ``ConfigError`` and ``DataValidationError`` -> 2,
every other ``HarnessError`` -> 3.
"""

from __future__ import annotations

import sys

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""

    exit_code: int = 3


class ConfigError(HarnessError, ValueError):
    """The evaluation config is malformed: unknown key, wrong type, missing file."""

    exit_code = 2


class DataValidationError(HarnessError, ValueError):
    """Input data breaks a rule: NaN scores, duplicate rows, out-of-range values."""

    exit_code = 2


class AdapterError(HarnessError, RuntimeError):
    """A model adapter failed or returned output of the wrong shape or dtype."""

    exit_code = 3


class TrackingError(HarnessError, RuntimeError):
    """The MLflow tracking server could not be reached or refused a request."""

    exit_code = 3


class ResultsError(HarnessError, ValueError):
    """A results folder is missing, unreadable or of an unknown schema version."""

    exit_code = 2


def say(message: str) -> None:
    """A notice for the user, on stderr (stdout carries the results), flushed at once."""
    print(message, file=sys.stderr, flush=True)


def plain_value(value: object) -> object:
    """A NumPy scalar as the Python value it holds (JSON-ready, and printed without its
    type: ``7``, not ``np.int64(7)``); any other value as it is."""
    return value.item() if hasattr(value, "item") else value  # type: ignore[union-attr]


def for_model(exc: HarnessError, model: str) -> HarnessError:
    """``exc`` as the same kind of error naming the config's ``model`` (``model 'prod':
    ...``), for an adapter or a file reader whose own message names only its file or
    class; an error that names the model already is returned as it is."""
    if str(exc).startswith((f"models.{model}", f"model {model!r}", f"{model}:")):
        return exc
    return type(exc)(f"model {model!r}: {exc}")


def describe_examples(values: object, limit: int = 3) -> str:
    """Format the first ``limit`` offending values for an error message."""
    items = list(values)[:limit]  # type: ignore[call-overload]
    text = ", ".join(repr(plain_value(v)) for v in items)
    return f"e.g. {text}" if text else ""


class InterruptedAfterWriting(KeyboardInterrupt):
    """Ctrl-C after the results folder was written whole (while logging to MLflow): the
    folder stays, tracking ``pending``, for ``harness sync``. Not a :class:`HarnessError`:
    it is an interrupt, exit code 130, with its own message."""

    def __init__(self, folder: Path, *, logged_run: str | None = None) -> None:
        super().__init__(str(folder))
        self.folder = folder
        self.logged_run = logged_run  # the MLflow parent run, when logging had completed
