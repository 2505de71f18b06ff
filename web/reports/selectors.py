"""Reads for the reports page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from web.reports.charts import Bar, horizontal_bar_chart
from web.reports.models import ReportRun

#: Bars per chart.
CHART_BARS = 10
#: The window the charts show.
CHART_WINDOW = "7d"


@dataclass(frozen=True)
class ReportPage:
    latest: ReportRun | None
    #: The time of the newest snapshot the latest report covered.
    as_of: datetime | None
    in_flight: ReportRun | None
    failed: ReportRun | None
    charts: list[str]


def report_in_flight() -> ReportRun | None:
    return ReportRun.objects.filter(status__in=ReportRun.IN_FLIGHT).first()


def report_page() -> ReportPage:
    """The last finished report, the run in flight (if any) and a failure newer than the last success."""
    latest = ReportRun.objects.filter(status=ReportRun.Status.DONE).order_by("-finished_at").first()
    failed = ReportRun.objects.filter(status=ReportRun.Status.FAILED).order_by("-finished_at").first()
    if failed is not None and latest is not None and failed.finished_at <= latest.finished_at:
        failed = None
    charts = _charts(latest.result) if latest is not None and latest.result else []
    as_of = latest.result.get("as_of") if latest is not None and latest.result else None
    return ReportPage(
        latest=latest,
        as_of=datetime.fromisoformat(as_of) if as_of else None,
        in_flight=report_in_flight(),
        failed=failed,
        charts=charts,
    )


def _charts(result: dict[str, Any]) -> list[str]:
    window = next((w for w in result.get("windows", []) if w["key"] == CHART_WINDOW), None)
    if window is None:
        return []
    label = window["label"].lower()
    return [
        horizontal_bar_chart(
            title=f"Stars gained by repository, {label}",
            bars=[Bar(repo["full_name"], repo["gained"]) for repo in window["repositories"][:CHART_BARS]],
        ),
        horizontal_bar_chart(
            title=f"Stars gained by language, {label}",
            bars=[Bar(entry["language"], entry["gained"]) for entry in window["languages"][:CHART_BARS]],
        ),
    ]
