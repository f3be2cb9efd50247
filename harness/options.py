"""Validators of options: one function per kind of option, one error class, one message style.

An *option* is a setting the caller chooses (a keyword argument or a config value): a
confidence level, a method name, a resample count, a clipping constant. A bad option is
refused with :class:`~harness.errors.ConfigError`; bad *data* (arrays, tables, ids) is
refused elsewhere with :class:`~harness.errors.DataValidationError`. Every message starts
with the option's name, as the user spelled it (``confidence``, ``compare.method``), and
says what is allowed and what was given::

    confidence: must be in (0, 1), got 1.5
    method: unknown value 'anova'; use one of bootstrap, bca, t_test
    n_resamples: must be an integer >= 10, got 3

Each validator returns the value converted to its plain Python type (``float``, ``int``,
``str``), so callers write ``confidence = check_confidence(confidence)`` once, at the door.
The config schema (``harness.spec.config``) calls them with ``name=""``: its messages
already start with the key's path (``compare.confidence: must be in (0, 1), got 1.5``).

This is a bottom module: it imports only :mod:`harness.errors`, so that every layer
(metrics, datasets, models, spec, engine) can use it.

Examples
--------
>>> from harness.options import check_choice, check_confidence
>>> check_confidence(0.9)
0.9
>>> check_choice("bca", ("bootstrap", "bca"), name="method")
'bca'
>>> check_choice("anova", ("bootstrap", "bca"), name="method")
Traceback (most recent call last):
...
harness.errors.ConfigError: method: unknown value 'anova'; use one of bootstrap, bca
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable

from harness.errors import ConfigError

__all__ = ["check_bounds", "check_choice", "check_confidence", "check_integer", "check_number", "check_probability"]


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _say(name: str, text: str) -> str:
    """``"<name>: <text>"``; just the text when ``name`` is empty (the config schema,
    whose error messages already start with the key's path)."""
    return f"{name}: {text}" if name else text


def _fmt(value: float) -> str:
    """``inf`` and integral floats the way a user writes them: 1, 0.5, inf."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:g}"


def check_choice(value: object, choices: Iterable[str], *, name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ConfigError``.

    >>> from harness.options import check_choice

    >>> check_choice("holm", ("holm", "bh", "none"), name="correction")
    'holm'
    """
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise ConfigError(_say(name, f"unknown value {value!r}; use one of {', '.join(options)}"))
    return value


def check_number(value: object, *, name: str, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (or an infinite bound, when the range allows it) in the
    interval from ``low`` to ``high``; ``low_open``/``high_open`` exclude the ends.

    The message writes the interval in the usual notation: ``[0, 0.5)``, ``(0, inf)``.

    >>> from harness.options import check_number

    >>> check_number(0.1, name="eps", low=0, high=0.5, high_open=True)
    0.1
    >>> check_number(0.7, name="eps", low=0, high=0.5, high_open=True)
    Traceback (most recent call last):
    ...
    harness.errors.ConfigError: eps: must be in [0, 0.5), got 0.7
    """
    interval = f"{'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if not _is_real(value):
        raise ConfigError(_say(name, f"must be a number in {interval}, got {value!r}"))
    x = float(value)  # type: ignore[arg-type]
    below = x <= low if low_open else x < low
    above = x >= high if high_open else x > high
    if below or above or math.isnan(x):
        raise ConfigError(_say(name, f"must be in {interval}, got {value!r}"))
    return x


def check_confidence(value: object, *, name: str = "confidence") -> float:
    """A confidence level, in the open interval (0, 1).

    Every interval of the harness (t, Wald, Wilson, bootstrap, Fieller, sign-flip
    inversion) is defined for any level strictly between 0 and 1; 0 and 1 are refused
    (the interval would be empty or the whole line).

    >>> from harness.options import check_confidence

    >>> check_confidence(1.5)
    Traceback (most recent call last):
    ...
    harness.errors.ConfigError: confidence: must be in (0, 1), got 1.5
    """
    return check_number(value, name=name, low=0.0, high=1.0, low_open=True, high_open=True)


def check_probability(value: object, *, name: str, low_open: bool = False, high_open: bool = False) -> float:
    """A probability (a significance level, a mixing weight, a mass threshold) in [0, 1],
    with either end excluded on request.

    >>> from harness.options import check_probability

    >>> check_probability(0.05, name="alpha", low_open=True, high_open=True)
    0.05
    """
    return check_number(value, name=name, low=0.0, high=1.0, low_open=low_open, high_open=high_open)


def check_integer(value: object, *, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (Python or NumPy; not a bool, not a float) >= ``minimum`` and, when
    given, <= ``maximum``.

    >>> from harness.options import check_integer

    >>> check_integer(3, name="n_resamples", minimum=10)
    Traceback (most recent call last):
    ...
    harness.errors.ConfigError: n_resamples: must be an integer >= 10, got 3
    """
    rule = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ConfigError(_say(name, f"must be {rule}, got {value!r}"))
    x = int(value)
    if x < minimum or (maximum is not None and x > maximum):
        raise ConfigError(_say(name, f"must be {rule}, got {value!r}"))
    return x


def check_bounds(value: object, *, name: str = "bounds") -> tuple[float, float] | None:
    """None, or a range ``(low, high)`` of numbers (infinite ends allowed) with
    low <= high, returned as a pair of floats.

    >>> from harness.options import check_bounds

    >>> check_bounds((0, float("inf")))
    (0.0, inf)
    >>> check_bounds((1, 0))
    Traceback (most recent call last):
    ...
    harness.errors.ConfigError: bounds: must be a pair (low, high) with low <= high, got (1, 0)
    """
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_real(v) and not math.isnan(float(v)) for v in pair) \
            or float(pair[0]) > float(pair[1]):
        raise ConfigError(_say(name, f"must be a pair (low, high) with low <= high, got {value!r}"))
    return float(pair[0]), float(pair[1])
