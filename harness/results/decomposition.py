"""The ``decomposition`` section as a console table and as waterfall figures."""

from __future__ import annotations

import textwrap
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.evaluate.family import FigureDraw

# a waterfall shows this many segments (largest within effects); the rest share one step
MAX_WATERFALL_SEGMENTS = 8


def _fmt(value: Any, spec: str = "+.4f") -> str:
    return "—" if value is None else format(value, spec)


def decomposition_table(section: dict[str, Any]) -> str:
    """Per metric: the total split into within and mix, then one line per segment."""
    level = section["confidence"] * 100
    lines = [f"decomposition by {section['by']}: {section['before']} -> {section['after']} "
             f"(within-segment + mix shift = total; {level:g}% simultaneous intervals per segment)"]
    for metric, entry in section["metrics"].items():
        lines += ["", f"{metric}: {entry['before']:.4f} -> {entry['after']:.4f}  total {entry['total']:+.4f} = "
                      f"within {entry['within']:+.4f} + mix {entry['mix']:+.4f}"]
        lines.append(f"  {'segment':<24} {'share before':>12} {'share after':>11} {'delta':>8} "
                     f"{'interval':>20} {'within':>8} {'mix':>8}")
        for s in entry["segments"]:
            ci = "—" if s["ci_low"] is None else f"[{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]"
            lines.append(f"  {s['segment'][:24]:<24} {s['share_before']:>12.1%} {s['share_after']:>11.1%} "
                         f"{_fmt(s['delta']):>8} {ci:>20} {s['within']:>+8.4f} {s['mix']:>+8.4f}")
        if entry["warning"]:
            lines.append(f"  WARNING: {entry['warning']}")
    return "\n".join(lines)


def _steps(entry: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    """Waterfall steps: each segment's within effect (its average share times its delta,
    the interval scaled alike), the largest first, the rest pooled, then the mix shift."""
    nan = float("nan")
    rows = sorted(entry["segments"], key=lambda s: -abs(s["within"]))
    steps = []
    for s in rows[:MAX_WATERFALL_SEGMENTS]:
        weight = (s["share_before"] + s["share_after"]) / 2
        low, high = ((nan, nan) if s["ci_low"] is None else (weight * s["ci_low"], weight * s["ci_high"]))
        steps.append((s["segment"], s["within"], low, high))
    rest = rows[MAX_WATERFALL_SEGMENTS:]
    if rest:
        steps.append((f"{len(rest)} other segments", sum(s["within"] for s in rest), nan, nan))
    steps.append(("mix shift", entry["mix"], nan, nan))
    return steps


def decomposition_figures(section: dict[str, Any]) -> dict[str, FigureDraw]:
    """``decomposition_<metric>`` -> waterfall: before, each segment's within effect, the
    mix shift, after (``@`` written ``_at_`` in the file name); drawn when saved."""
    from harness.evaluate.plots import plot_attribution_waterfall

    figures: dict[str, FigureDraw] = {}
    for metric, entry in section["metrics"].items():
        notes = textwrap.wrap(entry["warning"], 110) if entry["warning"] else None
        figures[f"decomposition_{metric.replace('@', '_at_')}"] = partial(
            plot_attribution_waterfall, metric, (section["before"], entry["before"]),
            (section["after"], entry["after"]), _steps(entry), notes,
            title=f"{metric}: change by {section['by']} (within each segment, then the mix shift)")
    return figures
