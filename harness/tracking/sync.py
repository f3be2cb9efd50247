"""``harness sync``: log results folders whose tracking status is ``pending`` (and a folder
of a run with tracking disabled when it is named on its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import ResultsError, TrackingError
from harness.results.folder import RESULTS_JSON, read_results_json, update_tracking


@dataclass
class SyncReport:
    lines: list[str] = field(default_factory=list)
    all_logged: bool = True


def results_folders(root: Path) -> list[Path]:
    if (root / RESULTS_JSON).is_file():
        return [root]
    if not root.is_dir():
        raise ResultsError(f"no results folder at {root}")
    return sorted(p for p in root.iterdir() if (p / RESULTS_JSON).is_file())


def sync_results(root: str | Path, uri: str | None = None) -> SyncReport:
    """Log every pending results folder under ``root``; already logged ones are left alone,
    and so are runs with tracking disabled unless ``root`` is that one folder (asked for by
    name, it is logged)."""
    from harness.tracking.log import log_results
    from harness.tracking.store import resolve_uri

    report = SyncReport()
    for folder in results_folders(Path(root)):
        data = read_results_json(folder)
        status = data.get("tracking", {}).get("status")
        if status == "logged":
            report.lines.append(f"{folder.name}: already logged")
            continue
        if status == "disabled" and folder != Path(root):
            report.lines.append(f"{folder.name}: tracking disabled in its config, not logged "
                                f"(harness sync {folder} logs it)")
            continue
        configured = uri or data.get("tracking", {}).get("uri") or (data["config"].get("tracking") or {}).get("uri")
        target = resolve_uri(configured)
        try:
            tracking = log_results(folder, data, target)
        except TrackingError as exc:
            report.all_logged = False
            report.lines.append(f"{folder.name}: still pending ({exc})")
            continue
        update_tracking(folder, tracking)
        report.lines.append(f"{folder.name}: logged to {target} (parent run {tracking['mlflow_run_ids']['parent']})")
    if not report.lines:
        report.lines.append(f"nothing to sync under {root}")
    return report
