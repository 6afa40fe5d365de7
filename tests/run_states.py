"""What "every task succeeded" means for a build run: the roll-only version step (``ready_existing_versions``,
docs/operations.md "Roll back") is skipped in every build run; any other task that did not succeed is a failure."""
from __future__ import annotations

from collections.abc import Mapping

BUILD_RUN_SKIPS = frozenset({"ready_existing_versions"})


def not_succeeded(states: Mapping) -> dict:
    """The entries of ``states`` (task -> state; a task may be a ``(task_id, map_index)`` pair) that neither
    succeeded nor are a build run's expected skip."""
    def name(task) -> str:
        return task[0] if isinstance(task, tuple) else str(task).split("[")[0]

    return {t: s for t, s in states.items() if s != "success" and not (s == "skipped" and name(t) in BUILD_RUN_SKIPS)}
