"""How Azure's state strings read: one rule for every place that reads a provisioningState or a
per-region replication state (pure: no Airflow, no Azure SDK).

Azure services spell states differently: both ``Canceled`` and ``Cancelled`` are in use among ARM
resource providers, Compute and Batch included (ARM RPC repository, issue 144), and casing varies
(``succeeded``, ``FAILED``). azure-core's own LRO polling compares terminal states lower-cased
(``azure.core.polling.base_polling``: ``_SUCCEEDED = frozenset(["succeeded"])``,
``_FAILED = frozenset(["canceled", "failed"])``, azure-core 1.41). So do we, and the British
``cancelled``, which azure-core does not know, counts as canceled too.

Functions take the raw value (``str`` or ``None``) and return booleans or the canonical spelling;
``None`` and unknown states are "not terminal".
"""

from __future__ import annotations

SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELED = "Canceled"
NOT_FOUND = "NotFound"  # our own marker: a GET answered 404

# Canonical spelling of every state a reader compares against, keyed by its folded form.
_CANONICAL = {
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "canceled": CANCELED,
    "cancelled": CANCELED,
    "creating": "Creating",
    "updating": "Updating",
    "deleting": "Deleting",
    "migrating": "Migrating",
    "completed": "Completed",
    "replicating": "Replicating",
    "notfound": NOT_FOUND,
}
_BAD = frozenset({FAILED, CANCELED})


def fold(state: str | None) -> str:
    """``"  Cancelled "`` -> ``"canceled"``: lower-cased, trimmed, the British spelling folded in."""
    text = (state or "").strip().lower()
    return "canceled" if text == "cancelled" else text


def canonical(state: str | None) -> str | None:
    """The one spelling the project uses (``"FAILED"`` -> ``"Failed"``); an unknown state is kept as given."""
    if state is None:
        return None
    return _CANONICAL.get(fold(state), state)


def is_state(state: str | None, *names: str) -> bool:
    """``is_state("succeeded", "Succeeded")`` -> True: compares case-insensitively, both canceled spellings."""
    have = fold(state)
    return bool(have) and any(have == fold(n) for n in names)


def is_succeeded(state: str | None) -> bool:
    return fold(state) == "succeeded"


def is_failed(state: str | None) -> bool:
    """Failed or canceled in any spelling: a terminal failure."""
    return canonical(state) in _BAD


def is_terminal(state: str | None) -> bool:
    return is_succeeded(state) or is_failed(state)


def is_in_progress(state: str | None) -> bool:
    """An operation is still running on the resource (Creating/Updating/Deleting/Migrating, any case)."""
    return fold(state) in ("creating", "updating", "deleting", "migrating")
