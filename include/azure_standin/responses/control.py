"""The test-control API under /_control (loopback only, no auth): time scale, faults, request log, reset.

Documented in docs/standin.md. Backends may add routes by exporting CONTROL_ROUTES.
"""
from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _ctx(request: Request):
    return request.app.state.ctx


async def health(request: Request):
    ctx = _ctx(request)
    return JSONResponse({"status": "ok", "base_url": ctx.config.base_url, "scale": ctx.clock.scale})


async def endpoints(request: Request):
    return JSONResponse(request.app.state.endpoints())


async def clock(request: Request):
    ctx = _ctx(request)
    if request.method == "PUT":
        body = await request.json()
        try:
            with ctx.lock:
                if "scale" in body:
                    ctx.clock.set_scale(float(body["scale"]))
                if "advance_seconds" in body:
                    ctx.clock.advance(float(body["advance_seconds"]))
        except (TypeError, ValueError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({"scale": ctx.clock.scale, "now": ctx.clock.now(), "now_iso": ctx.clock.now_iso()})


async def faults(request: Request):
    ctx = _ctx(request)
    with ctx.lock:
        if request.method == "POST":
            try:
                spec = ctx.faults.add(await request.json())
            except ValueError as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            return JSONResponse(spec, status_code=201)
        if request.method == "DELETE":
            ctx.faults.clear()
            return JSONResponse({"cleared": True})
        return JSONResponse({"value": ctx.faults.list()})


async def throttle(request: Request):
    """ARM's token buckets (core/throttle.py). PUT ``{"enforce": true|false, "buckets": {"read": {"size": 5,
    "refill_per_second": 1}, ...}}`` (either key; a kind left out keeps Azure's size) switches 429s on or off and
    starts every bucket anew, full; GET shows the switch, the sizes and every bucket's level. A reset restores the
    server's start-up switch (``--arm-throttle``) and Azure's sizes."""
    ctx = _ctx(request)
    if request.method == "PUT":
        body = await request.json()
        try:
            sizes = {kind: (float(b["size"]), float(b["refill_per_second"]))
                     for kind, b in (body.get("buckets") or {}).items()} if "buckets" in body else None
            ctx.throttle.configure(enforce=body.get("enforce"), sizes=sizes)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return JSONResponse({"error": f"bad throttle settings: {e!s}"}, status_code=400)
    return JSONResponse(ctx.throttle.state())


def summarize(rows: list[dict]) -> dict:
    """Counts per operation, writes, faults and the smallest gap a client left after a Retry-After."""
    counts = Counter(f"{r['family']}:{r['op']}" for r in rows)
    writes = [r for r in rows if r["write"] and r["family"] in ("arm", "batch") and r["status"] < 400]
    return {
        "total": len(rows),
        "counts": dict(sorted(counts.items())),
        "writes": len(writes),
        "write_attempts": sum(1 for r in rows if r["write"] and r["family"] in ("arm", "batch")),
        "faults": sum(1 for r in rows if r["fault"]),
        "by_family": dict(Counter(r["family"] for r in rows)),
        "last_id": rows[-1]["id"] if rows else 0,
    }


async def requests_log(request: Request):
    ctx = _ctx(request)
    with ctx.lock:
        if request.method == "DELETE":
            ctx.store.clear_requests()
            return JSONResponse({"cleared": True})
        since = int(request.query_params.get("since", "0"))
        rows = ctx.store.requests(since)
    out = summarize(rows)
    if request.query_params.get("items") in ("1", "true"):
        out["items"] = rows
    return JSONResponse(out)


async def token(request: Request):
    """Mint a token with chosen claims (expired, other audience, other tenant) for auth tests."""
    ctx = _ctx(request)
    body = await request.json()
    access = ctx.tokens.issue(
        body.get("audience", "https://management.azure.com"),
        body.get("client_id", ctx.config.client_id),
        tenant_id=body.get("tenant_id"),
        lifetime=int(body.get("expires_in", 3600)),
    )
    return JSONResponse({"access_token": access})


async def reset(request: Request):
    """Forget every resource, fault and logged request, and seed the demo fixture again."""
    app = request.app
    with _ctx(request).lock:
        app.state.reset()
    return JSONResponse(app.state.endpoints())


ROUTES = [
    Route("/_control/health", health, methods=["GET"]),
    Route("/_control/endpoints", endpoints, methods=["GET"]),
    Route("/_control/clock", clock, methods=["GET", "PUT"]),
    Route("/_control/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_control/requests", requests_log, methods=["GET", "DELETE"]),
    Route("/_control/tokens", token, methods=["POST"]),
    Route("/_control/throttle", throttle, methods=["GET", "PUT"]),
    Route("/_control/reset", reset, methods=["POST"]),
]
