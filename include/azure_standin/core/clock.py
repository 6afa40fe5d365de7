"""Simulated time: one scale factor turns realistic Azure durations into seconds of wall time.

Simulated time is continuous across restarts and scale changes: the clock keeps a (real, simulated)
anchor in the store's meta table and re-anchors whenever the scale changes.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    def __init__(self, meta_get, meta_set, scale: float | None = None):
        self._get = meta_get
        self._set = meta_set
        self._lock = threading.Lock()
        anchor = self._get("clock")
        if anchor is None:
            now = time.time()
            anchor = {"real": now, "sim": now, "scale": float(scale or 60.0)}
            self._set("clock", anchor)
        self._anchor = anchor
        if scale is not None and float(scale) != anchor["scale"]:
            self.set_scale(scale)

    @property
    def scale(self) -> float:
        return self._anchor["scale"]

    def now(self) -> float:
        a = self._anchor
        return a["sim"] + (time.time() - a["real"]) * a["scale"]

    def set_scale(self, scale: float) -> None:
        scale = float(scale)
        if not 0 < scale <= 1_000_000:
            raise ValueError(f"time scale must be in (0, 1e6], got {scale}")
        with self._lock:
            now_real = time.time()
            sim = self.now()
            self._anchor = {"real": now_real, "sim": sim, "scale": scale}
            self._set("clock", self._anchor)

    def advance(self, sim_seconds: float) -> None:
        """Jump simulated time forward (control API: lets a test skip a long wait)."""
        with self._lock:
            a = dict(self._anchor)
            a["sim"] += float(sim_seconds)
            self._anchor = a
            self._set("clock", a)

    def real_seconds(self, sim_seconds: float) -> float:
        return max(0.0, float(sim_seconds)) / self.scale

    def retry_after(self, sim_seconds: float) -> str:
        """Retry-After value (real seconds). Never "0": azure-core then falls back to its 30 s default."""
        return f"{max(0.01, self.real_seconds(sim_seconds)):.3f}"

    @staticmethod
    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")

    def now_iso(self) -> str:
        return self.iso(self.now())
