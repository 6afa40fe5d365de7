"""The one validation error of the project.

Every check that rejects input raises :class:`InvalidInput`, so an operator, a DAG author or a
test always learns three things: which field, which value, and how to fix it. It subclasses
``ValueError`` so generic ``except ValueError`` handlers (and Airflow's param validation) still
catch it.
"""

from __future__ import annotations

from typing import Any

# Long values (a whole YAML mapping, a huge string) would drown the message; the field path
# already says where to look.
_MAX_VALUE_REPR = 200


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_REPR:
        text = text[: _MAX_VALUE_REPR - 3] + "..."
    return text


class InvalidInput(ValueError):
    """A value that fails validation.

    ``str(err)`` reads ``"<field>: <value!r> is not valid: <reason>. Fix: <fix>"``.
    """

    def __init__(self, field: str, value: Any, reason: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason.rstrip(". ")
        self.fix = fix
        super().__init__(f"{field}: {_short_repr(value)} is not valid: {self.reason}. Fix: {fix}")

    def __reduce__(self):  # keep it picklable (exceptions cross process boundaries in Airflow)
        return (type(self), (self.field, self.value, self.reason, self.fix))

