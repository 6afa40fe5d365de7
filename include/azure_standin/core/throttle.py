"""ARM's request throttling as Azure Resource Manager does it since 2024: token buckets.

Source: Microsoft Learn, "Understand how Azure Resource Manager throttles requests"
(learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling, ms.date 05/28/2025):

* "Throttling limits are now applied per region rather than per instance of Azure Resource Manager. This new
  architecture uses a token bucket algorithm": subscription (and tenant) reads: bucket 250, refill 25 per second;
  writes: 200, 10 per second; deletes: 200, 10 per second.
* "The subscription limits apply per subscription, per service principal, and per operation type. There are also
  global subscription limits that are equivalent to 15 times the individual service principal limits for each
  operation type. The global limits apply across all service principals." (15 x the bucket and, as we read
  "limits", 15 x the refill rate; real answers show ``x-ms-ratelimit-remaining-subscription-global-reads: 3749``
  beside ``...-reads: 249``, Microsoft's Managed HSM REST example.)
* An empty bucket answers "429 Too many requests" with a Retry-After of whole seconds ("If you send a request
  before the retry value elapses, your request isn't processed and a new retry value is returned"); the body is
  ARM's ``SubscriptionRequestsThrottled`` (core/errors.py says where its wording was seen).
* "Read requests return a value in the header for the number of remaining read requests. Write requests include a
  value for the number of remaining write requests": ``x-ms-ratelimit-remaining-subscription-reads`` / ``-writes``
  / ``-deletes`` (tenant requests: ``x-ms-ratelimit-remaining-tenant-*``).

One region only: the stand-in is one ARM endpoint. Buckets refill in **wall time**, not the stand-in's simulated
time: the rate they limit is the client's request rate, which runs in real seconds whatever the time scale (a
simulated refill at the demo's 60x would hand out 1,500 reads a real second and never throttle; a test's
``advance`` of the clock would refill every bucket at once). So Retry-After here is real seconds too.
Enforcement is a switch (control API ``PUT /_control/throttle``, ``--arm-throttle`` / ``STANDIN_ARM_THROTTLE``);
off, the buckets still drain and refill and every answer still carries their real level, nothing is refused.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

# Per principal, subscription and operation kind: (bucket size, refill per second). Microsoft Learn's table above.
BUCKETS: dict[str, tuple[float, float]] = {"read": (250, 25.0), "write": (200, 10.0), "delete": (200, 10.0)}
GLOBAL_FACTOR = 15  # the subscription's global buckets, across every principal (same page)
HEADER_KIND = {"read": "reads", "write": "writes", "delete": "deletes"}


def operation_kind(method: str) -> str:
    """``read`` (GET, HEAD), ``delete`` (DELETE) or ``write`` (PUT, PATCH, POST: ARM counts an action POST as a
    write, e.g. a list-keys or power-off)."""
    method = method.upper()
    return "read" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "write"


class TokenBucket:
    """A bucket of ``size`` tokens refilled at ``rate`` per second (continuously; what Azure adds "every second"
    is the same average), full at first. ``now`` is any monotonic seconds."""

    def __init__(self, size: float, rate: float, now: float):
        self.size, self.rate, self.level, self.at = float(size), float(rate), float(size), now

    def refill(self, now: float) -> float:
        if now > self.at:
            self.level = min(self.size, self.level + (now - self.at) * self.rate)
            self.at = now
        return self.level

    def wait_for_token(self) -> float:
        """Seconds until one token is there (0 when one is)."""
        return 0.0 if self.level >= 1 else (1 - self.level) / self.rate


@dataclass
class Decision:
    """One request's answer: ``allowed``, its ``headers`` (the buckets' real levels after it) and, refused, the
    whole seconds to wait and the request's operation ``kind`` (for the error message)."""
    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0
    kind: str = "read"


class Throttle:
    """Every bucket of one stand-in, in memory (a restart fills them again, as a fresh region would look).

    ``enforce``: refuse with 429 when a bucket is empty. ``sizes``: kind -> (size, refill per second) per
    principal, default :data:`BUCKETS` (a test sets small ones through the control API)."""

    def __init__(self, enforce: bool = False, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.default_enforce = bool(enforce)
        self.configure(enforce=enforce, sizes=None)

    def configure(self, enforce: bool | None = None, sizes: dict | None = None) -> None:
        """Switch enforcement and/or set the per-principal bucket sizes (kind -> (size, refill/s); a kind left out
        keeps Azure's); every bucket starts anew, full. Raises ValueError on a bad kind or size."""
        with self._lock:
            if enforce is not None:
                self.enforce = bool(enforce)
            if sizes is not None or not hasattr(self, "sizes"):
                merged = dict(BUCKETS)
                for kind, (size, rate) in (sizes or {}).items():
                    if kind not in BUCKETS:
                        raise ValueError(f"bucket kind must be one of {sorted(BUCKETS)}, got {kind!r}")
                    if not (float(size) >= 1 and float(rate) > 0):
                        raise ValueError(f"{kind} bucket: size must be >= 1 and refill > 0, got {size}, {rate}")
                    merged[kind] = (float(size), float(rate))
                self.sizes = merged
            self._buckets: dict[tuple, TokenBucket] = {}

    def reset(self) -> None:
        """Back to the server's start-up switch and Azure's sizes, every bucket full (the control API's reset)."""
        self.configure(enforce=self.default_enforce, sizes={})

    def _bucket(self, key: tuple, size: float, rate: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(size, rate, now)
        bucket.refill(now)
        return bucket

    def take(self, scope: str, scope_id: str, principal: str, method: str) -> Decision:
        """Spend one token of ``method``'s kind for ``principal`` in ``scope`` (``subscription`` | ``tenant``)
        ``scope_id``, and of the subscription's global bucket; refused (with enforcement on) when either is
        empty, then nothing is spent."""
        kind = operation_kind(method)
        size, rate = self.sizes[kind]
        with self._lock:
            now = self._clock()
            mine = self._bucket((scope, scope_id, principal, kind), size, rate, now)
            buckets = [mine]
            if scope == "subscription":
                buckets.append(self._bucket((scope, scope_id, "*", kind), size * GLOBAL_FACTOR,
                                            rate * GLOBAL_FACTOR, now))
            empty = [b for b in buckets if b.level < 1]
            if empty and self.enforce:
                wait = max(b.wait_for_token() for b in empty)
                return Decision(False, self._headers(scope, kind, buckets), max(1, math.ceil(wait)), kind)
            for b in buckets:
                b.level = max(0.0, b.level - 1)
            return Decision(True, self._headers(scope, kind, buckets), kind=kind)

    @staticmethod
    def _headers(scope: str, kind: str, buckets: list[TokenBucket]) -> dict[str, str]:
        name = f"x-ms-ratelimit-remaining-{scope}-{HEADER_KIND[kind]}"
        out = {name: str(int(buckets[0].level))}
        if len(buckets) > 1:
            out[f"x-ms-ratelimit-remaining-{scope}-global-{HEADER_KIND[kind]}"] = str(int(buckets[1].level))
        return out

    def state(self) -> dict:
        """What the control API shows: the switch, the sizes and every bucket's level now."""
        with self._lock:
            now = self._clock()
            levels = [{"scope": k[0], "id": k[1], "principal": k[2], "kind": k[3], "level": round(b.refill(now), 3)}
                      for k, b in sorted(self._buckets.items())]
            return {"enforce": self.enforce, "global_factor": GLOBAL_FACTOR,
                    "buckets": {k: {"size": s, "refill_per_second": r} for k, (s, r) in self.sizes.items()},
                    "levels": levels}

