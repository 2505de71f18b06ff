"""What each GitHub poll saw: the poll itself and one row per repository in its top 100.

The trending page reads the latest successful poll; reports and exports read the whole history.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import models

#: The only pages the trending list links to; any other URL a poll stored is shown as plain text.
LINK_SCHEME, LINK_HOST = "https", "github.com"


class Poll(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        CHANGED = "changed", "New data"
        UNCHANGED = "unchanged", "No change"
        NOT_MODIFIED = "not_modified", "Not modified (304)"
        RATE_LIMITED = "rate_limited", "Rate limited"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.RUNNING)
    etag = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    repository_count = models.PositiveIntegerField(default=0)
    # GitHub asked not to be called again before this time (rate limit reset or Retry-After):
    # polls until then are skipped without a request.
    retry_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Poll {self.pk} at {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class RepositorySnapshot(models.Model):
    """One repository as one successful poll saw it. GitHub's nulls are stored as empty strings."""

    poll = models.ForeignKey(Poll, on_delete=models.CASCADE, related_name="snapshots")
    fetched_at = models.DateTimeField(db_index=True)
    rank = models.PositiveSmallIntegerField()
    github_id = models.BigIntegerField()
    full_name = models.CharField(max_length=200, db_index=True)
    html_url = models.URLField(max_length=300)
    description = models.TextField(blank=True, default="")
    language = models.CharField(max_length=100, blank=True, default="", db_index=True)
    license = models.CharField(max_length=100, blank=True, default="")
    stars = models.PositiveIntegerField()
    forks = models.PositiveIntegerField()
    open_issues = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["fetched_at", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["poll", "rank"], name="one_repository_per_rank_per_poll")
        ]
        indexes = [models.Index(fields=["full_name", "fetched_at"])]

    def __str__(self) -> str:
        return f"#{self.rank} {self.full_name} ({self.stars} stars)"

    @property
    def link(self) -> str:
        """html_url when it is an https page on github.com, else "": what GitHub sends is not trusted
        to be a safe link (javascript:, another host, a look-alike such as github.com@example.com)."""
        try:
            parts = urlsplit(self.html_url)
        except ValueError:
            return ""
        if parts.scheme == LINK_SCHEME and parts.netloc == LINK_HOST and parts.path.startswith("/"):
            return self.html_url
        return ""
