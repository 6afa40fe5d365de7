"""Waiter registry: small configs that :class:`~batch_images.triggers.base.AzureBaseWaiterTrigger` runs.

Like the Amazon provider's waiters (one generic trigger, many small configs), a waiter is data:

* ``name``: the registry key, what operators pass as ``waiter_name``;
* ``hook``: which hook the probe gets - ``"arm"`` (:class:`~batch_images.hooks.arm.ArmComputeHook`),
  ``"batch"`` (registered by ``waiters/batch.py`` with :func:`register_hook`), or any callable
  ``factory(conn_id, client_options) -> hook``;
* ``probe``: ``async probe(hook, **waiter_args) -> dict`` - the observed state, plain JSON;
* ``evaluate``: ``evaluate(state) -> (status, message)``, status ``"success" | "failure" | "retry"``;
* ``progress``: ``progress(state) -> str``, one log line per poll.

Each waiter module registers its waiters on import (``register(Waiter(...))``). The registry imports
the modules listed in :data:`WAITER_MODULES` lazily and tolerantly: a module that is not there yet is
skipped, a module that is there but broken raises (a broken waiter must not look like a missing one).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["success", "failure", "retry"]
HookFactory = Callable[[str, "dict | None"], Any]

WAITER_MODULES = ("arm", "batch", "roll", "smoke")


@dataclass(frozen=True)
class Waiter:
    name: str
    hook: str | HookFactory
    probe: Callable[..., Awaitable[dict]]
    evaluate: Callable[[dict], tuple[Status, str]]
    progress: Callable[[dict], str]
    description: str = ""


_REGISTRY: dict[str, Waiter] = {}
_HOOKS: dict[str, HookFactory] = {}
_loaded = False
_lock = threading.Lock()


def register(waiter: Waiter) -> Waiter:
    """Add a waiter (idempotent for the same object; a different waiter under a taken name is an error)."""
    current = _REGISTRY.get(waiter.name)
    if current is not None and current is not waiter and current != waiter:
        # Re-importing a module (reload in tests) builds equal-but-new objects: replace quietly.
        if getattr(current.probe, "__qualname__", None) != getattr(waiter.probe, "__qualname__", None):
            raise ValueError(f"a different waiter is already registered as {waiter.name!r}")
    _REGISTRY[waiter.name] = waiter
    return waiter


def register_hook(kind: str, factory: HookFactory) -> None:
    """Say how to build the hook of a kind: ``factory(conn_id, client_options) -> hook``.

    The hook needs ``async close()`` (or sync ``close()``); ``load_connection()`` is used when present.
    """
    _HOOKS[kind] = factory


def _arm_hook(conn_id: str, client_options: dict | None = None):
    from batch_images.hooks.arm import ArmComputeHook

    return ArmComputeHook(azure_conn_id=conn_id, client_options=client_options)


register_hook("arm", _arm_hook)


def load_all() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        for module in WAITER_MODULES:
            qualified = f"{__name__}.{module}"
            try:
                importlib.import_module(qualified)
            except ModuleNotFoundError as err:
                if err.name != qualified:  # the module exists but imports something missing: a real error
                    raise
        _loaded = True


def get_waiter(name: str) -> Waiter:
    if name not in _REGISTRY:
        load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no waiter named {name!r}; known: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def waiter_names() -> list[str]:
    load_all()
    return sorted(_REGISTRY)


def make_hook(waiter: Waiter, conn_id: str, client_options: dict | None = None):
    """A new hook instance for the waiter's probe."""
    if callable(waiter.hook):
        return waiter.hook(conn_id, client_options)
    factory = _HOOKS.get(waiter.hook)
    if factory is None:
        load_all()
        factory = _HOOKS.get(waiter.hook)
    if factory is None:
        raise KeyError(f"waiter {waiter.name!r} needs a {waiter.hook!r} hook and none is registered; "
                       f"call register_hook({waiter.hook!r}, factory) in its waiter module")
    return factory(conn_id, client_options)
