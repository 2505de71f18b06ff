"""Signals the exports app sends, for whoever wants to watch an export move (metrics, tests)."""

from django.dispatch import Signal

#: Sent from the worker after each chunk's progress is saved, with export_id, rows_written and
#: rows_total. Receivers run in the worker's thread, between chunks.
export_progressed = Signal()
