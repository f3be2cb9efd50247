"""Which family class runs each ``evaluate.<key>`` block."""

from __future__ import annotations

from harness.errors import ConfigError
from harness.evaluate.ab import ABFamily
from harness.evaluate.beyond_accuracy import BeyondAccuracyFamily
from harness.evaluate.calibration import CalibrationFamily
from harness.evaluate.family import Family
from harness.evaluate.off_policy import OffPolicyFamily
from harness.evaluate.ranking import RankingFamily
from harness.evaluate.slate import SlateOffPolicyFamily
from harness.spec.config import EvaluateSpec
from harness.spec.families import register_family_spec

# ab measures no model (its variants come from the experiment's data): `harness ab` runs it, and
# a `harness run` config has no evaluate.ab block (harness.spec.config says where to go instead)
FAMILIES: dict[str, type[Family]] = {f.key: f for f in (RankingFamily, BeyondAccuracyFamily, CalibrationFamily,
                                                        OffPolicyFamily, SlateOffPolicyFamily, ABFamily)}


def register_family(family: type[Family]) -> type[Family]:
    """Add a family: ``evaluate.<family.key>`` then takes a ``family.spec_type`` block.

    Usable as a class decorator. Registering the same class again is a no-op.
    """
    if FAMILIES.get(family.key) is family:
        return family
    if family.key in FAMILIES or family.key in EvaluateSpec.model_fields:
        raise ConfigError(f"evaluation family {family.key!r} is already registered")
    register_family_spec(family.key, family.spec_type)
    FAMILIES[family.key] = family
    return family


def family_class(key: str) -> type[Family]:
    """The family class of ``key``; unknown keys are a ``ConfigError``."""
    try:
        return FAMILIES[key]
    except KeyError:
        raise ConfigError(f"unknown evaluation family {key!r}; known: {', '.join(FAMILIES)}") from None
