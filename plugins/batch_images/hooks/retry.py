"""azure-core retry policies that read any Retry-After without raising, for every client the hooks build.

azure-core 1.41's ``RetryPolicy.get_retry_after`` parses Retry-After with ``parse_retry_after``, which
raises ``ValueError("Invalid HTTP date")`` on a list such as ``81,120`` or on garbage
(``pipeline/policies/_utils.py``). That error is not an ``AzureError``: a create or read outside a wait
(gallery get-or-create, pool create, cleanup) failed with it, and the task was retried from the top.
These policies read the header with :func:`~batch_images.rules.retry_after.retry_after_from_headers`
instead: an unusable value counts as absent, so the policy falls back to its own exponential backoff, and
no single value is honoured beyond ``MAX_RETRY_AFTER_SECONDS``. Everything else is azure-core's policy
unchanged (which answers are retried, ``retry_total``, backoff).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core.pipeline.policies import AsyncRetryPolicy, RetryPolicy

from batch_images.rules.retry_after import retry_after_from_headers


class _ToleratesRetryAfter:
    def get_retry_after(self, response: Any) -> float | None:
        return retry_after_from_headers(getattr(getattr(response, "http_response", None), "headers", None))


class TolerantRetryPolicy(_ToleratesRetryAfter, RetryPolicy):
    """azure-core's ``RetryPolicy`` whose Retry-After reading never raises."""


class AsyncTolerantRetryPolicy(_ToleratesRetryAfter, AsyncRetryPolicy):
    """azure-core's ``AsyncRetryPolicy`` whose Retry-After reading never raises."""


def retry_policy(aio: bool, client_options: Mapping[str, Any] | None = None) -> RetryPolicy | AsyncRetryPolicy:
    """The retry policy for a sync (``aio=False``) or async client, configured from the ``retry_*`` keys of
    ``client_options`` (e.g. ``{"retry_total": 0}`` for the waiter clients); azure-core's defaults otherwise."""
    kwargs = {k: v for k, v in (client_options or {}).items() if k.startswith("retry_")}
    return AsyncTolerantRetryPolicy(**kwargs) if aio else TolerantRetryPolicy(**kwargs)
