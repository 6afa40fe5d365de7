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


def shared_key_refused(field: str, conn_id: str) -> InvalidInput:
    """The refusal of an ``azure_batch`` connection that signs with Shared Key (login/password = account name
    and key): Batch rejects Shared Key for pools on gallery images. One wording for preflight's check and the
    pool operator's (``BatchPoolHook.require_entra_id``); ``field`` is the input naming the connection."""
    return InvalidInput(
        field, conn_id,
        "the connection authenticates with a Shared Key (login/password = account name/key); Batch refuses Shared "
        "Key for pools on gallery images (SharedKey is not allowed when external resources of type Compute are "
        "linked)",
        "remove login and password from the azure_batch connection and set extra credential_conn_id to an Entra ID "
        "(azure) connection whose identity has a role on the Batch account and the gallery image")
