"""Builds the stand-in: context, app (every responses module's ROUTES), seeding, endpoints.json."""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import backends, responses
from .core.certs import ensure_certificates, ensure_signing_key
from .core.clock import Clock
from .core.context import StandIn, StandInConfig
from .core.faults import Faults
from .core.store import Store
from .core.throttle import Throttle
from .core.tokens import TokenIssuer


def _modules(package):
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        yield importlib.import_module(f"{package.__name__}.{info.name}")


def build_context(config: StandInConfig, scale: float | None = None, arm_throttle: bool = False) -> StandIn:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(str(config.state_dir / "standin.db"))
    clock = Clock(store.meta_get, store.meta_set, scale)
    tokens = TokenIssuer(ensure_signing_key(config.state_dir), config.tenant_id, config.base_url)
    ctx = StandIn(config=config, store=store, clock=clock, faults=Faults(store), tokens=tokens,
                  throttle=Throttle(enforce=arm_throttle))
    store.bind(ctx)
    for module in _modules(backends):
        register = getattr(module, "register", None)
        if register is not None:
            register(ctx)
    return ctx


def seed(ctx: StandIn) -> dict:
    demo = ctx.store.meta_get("demo")
    if demo is None:
        from .backends.seed import seed_demo

        demo = seed_demo(ctx)
        ctx.store.meta_set("demo", demo)
    return demo


def endpoints(ctx: StandIn, ca_bundle: str) -> dict:
    base = ctx.config.base_url
    accounts = {}
    for acct in ctx.store.list("batch_account"):
        keys = (acct.get("_sim") or {}).get("keys") or []
        accounts[acct["name"]] = {
            "endpoint": f"{base}/batch/{acct['name']}",
            "location": acct["location"],
            "id": acct["id"],
            "primary_key": keys[0] if keys else None,
        }
    return {
        "authority": base,
        "tenant_id": ctx.config.tenant_id,
        "client_id": ctx.config.client_id,
        "client_secret": ctx.config.client_secret,
        "arm": base,
        "subscription_id": ctx.config.subscription_id,
        "ca_bundle": ca_bundle,
        "batch_accounts": accounts,
        "control": f"{base}/_control",
        "demo": ctx.store.meta_get("demo") or {},
        "state_dir": str(ctx.config.state_dir),
        "port": ctx.config.port,
        "pid": os.getpid(),
        "time_scale": ctx.clock.scale,
    }


async def _not_found(request: Request):
    path = request.url.path
    if path.startswith("/batch/"):
        return JSONResponse({"code": "InvalidUri", "message": {"lang": "en-US", "value": f"The requested URI does not represent any resource on the server: {path}"}}, status_code=404)
    return JSONResponse({"error": {"code": "InvalidResourceType", "message": f"The resource type could not be found for path '{path}'."}}, status_code=404)


def build_app(ctx: StandIn, ca_bundle: str) -> Starlette:
    routes: list = []
    control: list = []
    for module in _modules(responses):
        routes.extend(getattr(module, "ROUTES", []) if module.__name__.rsplit(".", 1)[-1] != "control" else [])
        control.extend(getattr(module, "CONTROL_ROUTES", []))
    from .responses import control as control_module

    app = Starlette(routes=control_module.ROUTES + control + routes + [
        Route("/{path:path}", _not_found, methods=["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"]),
    ])
    app.state.ctx = ctx
    app.state.endpoints = lambda: endpoints(ctx, ca_bundle)

    def reset() -> None:
        ctx.store.wipe()
        ctx.throttle.reset()
        seed(ctx)
        # The new seed has new Batch account keys: endpoints.json on disk must say so (issue 7 item 4).
        write_endpoints(ctx.config.state_dir, endpoints(ctx, ca_bundle))

    app.state.reset = reset
    return app


def write_endpoints(state_dir: Path, data: dict) -> Path:
    path = state_dir / "endpoints.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.chmod(tmp, 0o600)   # it holds the local service principal's secret
    tmp.replace(path)
    return path


def prepare(state_dir: Path, port: int, scale: float | None, client_secret: str | None, arm_throttle: bool = False,
            rbac: bool = False):
    """Context + app for a server about to listen on `port` (already bound); `arm_throttle`: ARM refuses with 429
    when a token bucket is empty (core/throttle.py), from the start and after every reset; `rbac`: every Entra ID
    request is checked against Azure RBAC (backends/authorization.py), from the start and after every reset."""
    state_dir = state_dir.resolve()
    certs = ensure_certificates(state_dir)
    config = StandInConfig(state_dir=state_dir, port=port)
    if client_secret:
        config.client_secret = client_secret
    config.extra["rbac"] = rbac
    ctx = build_context(config, scale, arm_throttle)
    seed(ctx)
    return ctx, build_app(ctx, certs["ca"]), certs
