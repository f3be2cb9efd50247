"""Launch history: offline deltas next to online lifts, launch by launch, and whether
each offline metric predicts the online result (``harness history RESULTS_ROOT``).

Every ``harness ab`` run whose config has a ``launch`` section records, in its
``results.json["ab"]["launch"]``, the offline comparison of the candidate it launched
(from the ``harness run`` results folder the section names). This module gathers those
records, one row per launch, from a results root or from an MLflow tracking store where
every launch is logged (:mod:`harness.tracking.launches`), and for every (offline metric,
online metric) pair reports Spearman's correlation and the sign agreement with intervals
(:func:`harness.metrics.launch_history.offline_online_agreement`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from harness.errors import ConfigError, ResultsError
from harness.metrics.launch_history import offline_online_agreement
from harness.results.folder import read_results_folder, read_results_json
from harness.spec.ab import ABConfig

HISTORY_JSON = "history.json"


def offline_record(config: ABConfig) -> dict[str, Any] | None:
    """``results.json["ab"]["launch"]`` of an A/B run: the offline run's deltas for the
    launched candidate (absolute and relative), its verdict, and which treatment it is."""
    launch = config.launch
    if launch is None:
        return None
    stored = read_results_folder(launch.offline_results)
    if "ab" in (stored.data.get("families") or {}):  # its "deltas" would be another test's online lifts
        raise ConfigError(f"launch.offline_results: {launch.offline_results} is an A/B test's results folder; "
                          "name the offline `harness run` folder that sent the candidate to this test")
    rows = stored.data.get("comparison") or []
    candidates = list(dict.fromkeys(r["candidate"] for r in rows))
    candidate = launch.candidate or (candidates[0] if len(candidates) == 1 else None)
    if candidate is None and launch.candidate is None and len(candidates) > 1:
        raise ConfigError(f"launch.candidate: {launch.offline_results} compared {len(candidates)} candidates; "
                          f"set launch.candidate to one of {candidates}")
    if candidate is None or candidate not in candidates:
        raise ConfigError(f"launch.candidate: {launch.candidate!r} is not one candidate of "
                          f"{launch.offline_results} (candidates: {candidates})")
    mine = [r for r in rows if r["candidate"] == candidate]
    return {"offline_results": str(launch.offline_results), "offline_run_id": stored.data.get("run_id"),
            "offline_created_at": stored.data.get("created_at"), "candidate": candidate,
            "treatment": launch.treatment or config.variants.treatments[0],
            "offline_verdict": (stored.data.get("verdict") or {}).get("decision"),
            "offline_deltas": {r["metric"]: r["delta"] for r in mine},
            "offline_directions": _directions(stored.data),
            "offline_relative_deltas": {r["metric"]: r.get("relative_delta") for r in mine}}


def _directions(data: dict[str, Any]) -> dict[str, str]:
    """Which way is better for each metric a run's config gates on (its ``direction``)."""
    return {c["metric"]: c.get("direction", "higher") for c in (data.get("config") or {}).get("gate") or []}


def _better_sign(metric: str, declared: dict[str, str]) -> int:
    """+1 when a rise of ``metric`` is an improvement, -1 when a fall is: the direction a
    gate declared for it, else -1 for the errors and losses (ECE, Brier, log loss, ...)."""
    from harness.metrics.calibration import LOWER_IS_BETTER

    direction = declared.get(metric) or ("lower" if metric in LOWER_IS_BETTER else "higher")
    return -1 if direction == "lower" else 1


@dataclass
class History:
    """One row per launch (``launches``: offline deltas ``offline:<metric>``, online lifts
    ``online:<metric>``) and the agreement of every offline/online metric pair."""

    launches: pd.DataFrame
    agreement: pd.DataFrame


def launch_row(data: dict[str, Any], *, relative: bool = True) -> dict[str, Any] | None:
    """One launch of an A/B run's ``results.json`` (None without a launch section): its
    offline deltas ``offline:<metric>`` and online effects ``online:<metric>`` (relative
    lifts by default, else absolute deltas) of the launched treatment."""
    launch = (data.get("ab") or {}).get("launch")
    if not launch:
        return None
    row: dict[str, Any] = {"launch": data["config"]["name"], "run_id": data["run_id"],
                           "created_at": data["created_at"], "treatment": launch["treatment"],
                           "offline_run_id": launch["offline_run_id"],
                           "offline_created_at": launch.get("offline_created_at"),
                           "verdict": (data.get("verdict") or {}).get("decision")}
    row.update({f"offline:{m}": v for m, v in launch["offline_deltas"].items()})
    key = "relative_delta" if relative else "delta"
    online = {c["metric"]: c.get(key) for c in data.get("comparison", []) if c["candidate"] == launch["treatment"]}
    row.update({f"online:{m}": v for m, v in online.items()})
    # which way is an improvement, for the agreement (the table shows the raw deltas)
    offline_dirs, online_dirs = launch.get("offline_directions") or {}, _directions(data)
    row.update({f"better:offline:{m}": _better_sign(m, offline_dirs) for m in launch["offline_deltas"]})
    row.update({f"better:online:{m}": _better_sign(m, online_dirs) for m in online})
    return row


def folder_records(root: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """``results.json`` of every results folder under ``root``, and why each one that
    cannot be read (damaged, a newer schema) was left out."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"history: {root} is not a folder of results")
    out, unreadable = [], []
    for path in sorted(root.rglob("results.json")):
        try:
            out.append(read_results_json(path.parent))
        except ResultsError as exc:
            unreadable.append(str(exc))
    return out, unreadable


def launch_history(records: Iterable[dict[str, Any]], *, confidence: float = 0.95, relative: bool = True,
                   source: str = "the results") -> History:
    """Every launch among ``records`` (``results.json`` of A/B runs: from results folders,
    :func:`folder_records`, or an MLflow store, :func:`harness.tracking.launches.logged_launches`),
    in launch order, and the agreement of every offline/online metric pair. Online lifts
    are relative (``relative_delta``) by default, else absolute; offline deltas are
    absolute (the scale the offline gate reads)."""
    rows = [row for data in records if (row := launch_row(data, relative=relative)) is not None]
    launches = pd.DataFrame(rows)
    if launches.empty:
        raise ConfigError(f"history: no A/B results with a launch section in {source} (run harness ab with "
                          "launch.offline_results in its config)")
    # launch order: the A/B test's time, then (tests of the same second) the offline run's
    launches = launches.sort_values(["created_at", "offline_created_at"], kind="stable").reset_index(drop=True)
    # a metric's sign is there in every launch that has the metric (NaN elsewhere, as its value)
    better = launches[[c for c in launches.columns if c.startswith("better:")]]
    launches = launches.drop(columns=list(better.columns))
    offline = [c for c in launches.columns if c.startswith("offline:")]
    online = [c for c in launches.columns if c.startswith("online:")]
    pairs = []
    for off in offline:
        for on in online:
            # both sides oriented so that + is an improvement: agreement means "predicts wins"
            a = offline_online_agreement(launches[off].to_numpy(dtype=float) * better[f"better:{off}"].to_numpy(),
                                         launches[on].to_numpy(dtype=float) * better[f"better:{on}"].to_numpy(),
                                         confidence=confidence)
            pairs.append({"offline_metric": off.removeprefix("offline:"), "online_metric": on.removeprefix("online:"),
                          "offline_better": _way(better[f"better:{off}"]), "online_better": _way(better[f"better:{on}"]),
                          "launches": a.n, "spearman": a.spearman, "spearman_ci_low": a.spearman_ci_low,
                          "spearman_ci_high": a.spearman_ci_high, "sign_agreement": a.sign_agreement,
                          "sign_ci_low": a.sign_ci_low, "sign_ci_high": a.sign_ci_high, "signed": a.n_signed})
    return History(launches, pd.DataFrame(pairs))


def _way(signs: pd.Series) -> str:
    """How a metric's improvement was read over the launches that have it: higher, lower,
    or mixed."""
    ways = {"higher" if s > 0 else "lower" for s in signs.dropna()}
    return ways.pop() if len(ways) == 1 else "mixed"


def _better_note(way: str) -> str:
    """An axis label's note when a rise is not what is better."""
    return "" if way == "higher" else f" ({way} is better)" if way == "lower" else " (direction mixed)"


def history_figure(history: History) -> Any:
    """Offline delta vs online lift, one panel per (offline, online) metric pair (at most 6),
    each launch a point, with Spearman's rho in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = history.agreement.head(6)
    cols = min(3, len(pairs))
    rows_ = int(np.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows_, cols, figsize=(4 * cols, 3.4 * rows_), squeeze=False)
    for ax, (_, p) in zip(axes.ravel(), pairs.iterrows()):
        x = history.launches[f"offline:{p['offline_metric']}"].to_numpy(dtype=float)
        y = history.launches[f"online:{p['online_metric']}"].to_numpy(dtype=float) * 100
        ax.scatter(x, y)
        ax.axhline(0, color="grey", lw=1)
        ax.axvline(0, color="grey", lw=1)
        # the points are the raw deltas; the agreement read each metric in its better direction
        ax.set_xlabel(f"offline delta {p['offline_metric']}" + _better_note(p["offline_better"]))
        ax.set_ylabel(f"online lift {p['online_metric']} (%)" + _better_note(p["online_better"]))
        ax.set_title(f"rho={p['spearman']:.2f} [{p['spearman_ci_low']:.2f}, {p['spearman_ci_high']:.2f}], "
                     f"sign {p['sign_agreement']:.0%}", fontsize=9)
    for ax in axes.ravel()[len(pairs):]:
        ax.set_visible(False)
    fig.suptitle(f"offline vs online over {len(history.launches)} launches")
    fig.tight_layout()
    return fig
