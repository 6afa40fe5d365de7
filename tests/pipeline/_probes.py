"""Record what each deferrable wait's first probe (``triggers.base.probe_before_defer``) answered.

A deferrable wait looks once in the worker before it defers; at the tests' time scale a resource is often ready
by then, so the wait ends without a deferral. Tests that check *what a wait saw* (the failure that made a
sensor repair a pool, the targets it read) or *which waits ran, in order*, read these records beside the
deferrals. The real probe runs against the stand-in; this only wraps it to keep its answers.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from batch_images.triggers import base


@contextmanager
def recorded_probes() -> Iterator[list[tuple[str, dict | None]]]:
    """Yield a list that fills with ``(waiter_name, answer)`` per probe, in order; ``answer`` is the event the
    probe ended the wait with, or None when the task deferred."""
    records: list[tuple[str, dict | None]] = []
    real = base.probe_before_defer

    def recording(waiter_name, *args, **kwargs):
        answer = real(waiter_name, *args, **kwargs)
        records.append((waiter_name, answer))
        return answer

    base.probe_before_defer = recording  # every wait calls it through the module (batch_images/waiting.py)
    try:
        yield records
    finally:
        base.probe_before_defer = real
