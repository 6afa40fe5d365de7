"""Thin HTTP layer shared by every resource family: request parsing, auth, fault injection, request log.

Each family module exposes `ROUTES` built with `op_route(path, {METHOD: (operation_name, handler)})`.
A handler is a plain function `handler(ctx, req) -> Response` run under the store lock, so backends
need no locking of their own.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.errors import (
    ArmError, AuthError, BatchError, InvalidRequestBody, InvalidRequestContent, MissingApiVersionParameter,
    SubscriptionRequestsThrottled,
)
from ..core.tokens import ARM_AUDIENCES, BATCH_AUDIENCES
from ..core import timings
from . import actions

Handler = Callable[[Any, "ApiRequest"], Response]


@dataclass
class ApiRequest:
    method: str
    path: str
    url: str
    path_params: dict[str, str]
    query: dict[str, str]            # keys as sent
    headers: dict[str, str]          # lower-cased keys
    body: Any
    raw_body: bytes
    base_url: str
    family: str                      # "arm" | "batch"
    op: str
    auth_scheme: str = ""
    claims: dict = field(default_factory=dict)

    @property
    def api_version(self) -> str | None:
        return self.q("api-version")

    @property
    def account(self) -> str | None:
        return self.path_params.get("account")

    def q(self, name: str, default: str | None = None) -> str | None:
        """Query parameter, case-insensitively ($expand, $filter, maxresults...)."""
        lname = name.lower()
        for k, v in self.query.items():
            if k.lower() == lname:
                return v
        return default



# POSTs that change nothing, logged as reads. Pool_EvaluateAutoScale: "This API is primarily for validating an
# autoscale formula, as it simply returns the result without applying the formula to the Pool" (Batch REST docs,
# Pool - Evaluate Auto Scale).
READ_ONLY_POSTS = frozenset({"Pool_EvaluateAutoScale"})

def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if status == 204 or body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(strip_sim(body), status_code=status, headers=headers)


def strip_sim(body: Any) -> Any:
    """Drop private bookkeeping (`_sim`) before anything goes on the wire."""
    if isinstance(body, dict):
        return {k: strip_sim(v) for k, v in body.items() if k != "_sim"}
    if isinstance(body, list):
        return [strip_sim(v) for v in body]
    return body


def _family(path: str) -> str:
    return "batch" if path.startswith("/batch/") else "arm"


def error_response(family: str, status: int, code: str, message: str, base_url: str,
                   headers: dict[str, str] | None = None, values=None) -> Response:
    if family == "batch":
        body = BatchError(status, code, message, values).body(base_url)
    else:
        body = ArmError(status, code, message).body()
    return JSONResponse(body, status_code=status, headers=headers)


_HTTP_FAULT_CODES = {
    429: ("TooManyRequests", "The request is being throttled as the limit has been reached for operation type."),
    500: ("InternalServerError", "The server encountered an internal error. Please retry the request."),
    502: ("BadGateway", "The gateway did not receive a response from the service."),
    503: ("ServiceUnavailable", "The service is unavailable. Please retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
}


def _authenticate(ctx, req: ApiRequest) -> None:
    authz = req.headers.get("authorization")
    if req.family == "batch" and authz and authz.lower().startswith("sharedkey "):
        from ..core import sharedkey

        account = req.account or ""
        acct = next((a for a in ctx.store.list("batch_account") if a.get("name", "").lower() == account.lower()), None)
        keys = ((acct or {}).get("_sim") or {}).get("keys") or []
        if not any(sharedkey.verify(req.method, req.url, req.headers, account, k) for k in keys):
            raise AuthError("AuthenticationFailed", "Server failed to authenticate the request. Make sure the value "
                            "of Authorization header is formed correctly including the signature.", 403)
        req.auth_scheme = "SharedKey"
        return
    req.claims = ctx.tokens.verify(authz, BATCH_AUDIENCES if req.family == "batch" else ARM_AUDIENCES)
    req.auth_scheme = "Bearer"


_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


def _throttle(ctx, req: ApiRequest) -> dict[str, str]:
    """Spend one of ARM's tokens for this authenticated request (core/throttle.py): the
    ``x-ms-ratelimit-remaining-*`` headers its answer carries; SubscriptionRequestsThrottled (429, Retry-After)
    when the switch is on and the principal's or the subscription's bucket is empty. A request that names a
    subscription is throttled in it; any other (``/subscriptions``, ``/tenants``) in the tenant's buckets."""
    m = _SUBSCRIPTION.match(req.path)
    scope, scope_id = ("subscription", m.group(1).lower()) if m else ("tenant", str(req.claims.get("tid", "")))
    principal = str(req.claims.get("oid") or req.claims.get("appid") or req.claims.get("sub") or "")
    decision = ctx.throttle.take(scope, scope_id, principal, req.method)
    if not decision.allowed:
        raise SubscriptionRequestsThrottled(decision.kind, scope_id, principal, decision.retry_after,
                                            decision.headers)
    return decision.headers


def op_route(path: str, ops: dict[str, tuple[str, Handler]]) -> Route:
    """A route whose methods map to (Azure operation name, handler)."""

    async def endpoint(request: Request) -> Response:
        ctx = request.app.state.ctx
        method = request.method.upper()
        # Starlette adds HEAD to GET routes: answer it with the GET handler (Batch's pool_exists uses HEAD).
        op, handler = ops.get(method) or ops["GET"]
        raw = await request.body()
        family = _family(request.url.path)
        base_url = ctx.config.base_url
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
            bad_json = True
        else:
            bad_json = False
        req = ApiRequest(
            method=method, path=request.url.path, url=str(request.url),
            path_params=dict(request.path_params),
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers=headers, body=body, raw_body=raw, base_url=base_url, family=family, op=op,
        )
        write = method not in ("GET", "HEAD") and op not in READ_ONLY_POSTS
        fault_name = None
        retry_after = None
        delay = 0.0
        ratelimit: dict[str, str] = {}
        with ctx.lock:
            try:
                fault = ctx.faults.take("http", method=method, op=op, path=req.path)
                if fault is not None and fault.get("status") is None and fault.get("delay"):
                    # a slow answer, not an error: served as usual, then held back `delay` real seconds
                    delay, fault = float(fault["delay"]), None
                    fault_name = "delay"
                if fault is not None and fault.get("after"):
                    # A 5xx that comes after the service committed the write (a gateway timing out on a slow
                    # answer): Batch's and ARM's guidance is that a 5xx or a timeout on a write may or may not have
                    # taken effect, so a client retries with the same ids and treats 409 JobExists / TaskExists as
                    # done (azure-batch create_tasks says so for task collections). The handler runs, its answer
                    # is replaced by the fault's; an error the handler raised stands.
                    _authenticate(ctx, req)
                    actions.authorize(ctx, req)
                    handler(ctx, req)
                if fault is not None:
                    status = int(fault.get("status", 503))
                    code, message = _HTTP_FAULT_CODES.get(status, ("InternalServerError", "Injected fault."))
                    # a refusal (e.g. 400 InvalidParameter) names its own code and message
                    code, message = fault.get("code") or code, fault.get("message") or message
                    hdrs = {}
                    if fault.get("retry_after") is not None:
                        retry_after = float(ctx.clock.retry_after(float(fault["retry_after"])))
                        hdrs["Retry-After"] = ctx.clock.retry_after(float(fault["retry_after"]))
                    elif fault.get("retry_after_header") is not None:
                        # sent verbatim: the odd values gateways send ("81,120", "soon", "-5", "")
                        hdrs["Retry-After"] = str(fault["retry_after_header"])
                    fault_name = f"http{status}"
                    response = error_response(family, status, code, message, base_url, hdrs)
                else:
                    _authenticate(ctx, req)
                    if family == "arm":
                        ratelimit = _throttle(ctx, req)
                    actions.authorize(ctx, req)   # Azure RBAC, when the switch is on (responses/actions.py)
                    if bad_json:
                        raise (InvalidRequestBody()
                               if family == "batch" else InvalidRequestContent("The request content was invalid and could not be deserialized."))
                    if family == "arm" and not req.api_version:
                        raise MissingApiVersionParameter(
                            "The api-version query parameter (?api-version=) is required for all requests.")
                    response = handler(ctx, req)
            except AuthError as e:
                hdrs = {}
                if family == "arm":
                    hdrs["WWW-Authenticate"] = (
                        f'Bearer authorization_uri="{base_url}/{ctx.config.tenant_id}", error="invalid_token", '
                        f'error_description="{e.code}"'
                    )
                response = error_response(family, e.status, e.code, e.message, base_url, hdrs)
            except SubscriptionRequestsThrottled as e:
                retry_after = float(e.headers["Retry-After"])
                fault_name = "throttled"
                response = JSONResponse(e.body(), status_code=e.status, headers=e.headers)
            except ArmError as e:
                response = JSONResponse(e.body(), status_code=e.status, headers=e.headers)
            except BatchError as e:
                response = JSONResponse(e.body(base_url), status_code=e.status, headers=e.headers)
            response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
            # Azure's Date header is the service's clock: here the simulated one (uvicorn's is off, __main__.py), so
            # a client that ages resources by it agrees with their timeCreated / creationTime.
            response.headers["Date"] = email.utils.formatdate(ctx.clock.now(), usegmt=True)
            if family == "batch":
                response.headers["request-id"] = response.headers["x-ms-request-id"]
                if "client-request-id" in headers:
                    response.headers["client-request-id"] = headers["client-request-id"]
            else:
                # the buckets' real levels, on every ARM answer past authentication (an injected fault or a
                # refused token never reached ARM's throttle)
                response.headers.update(ratelimit)
            if response.status_code == 202 or "azure-asyncoperation" in response.headers:
                response.headers.setdefault("Retry-After", ctx.clock.retry_after(timings.ARM_RETRY_AFTER))
            ctx.store.log_request(
                real_ts=time.time(), sim_ts=ctx.clock.now(), family=family, method=method, path=req.path,
                op=op, status=response.status_code, write=int(write), fault=fault_name, retry_after=retry_after,
            )
        if delay:
            await asyncio.sleep(delay)
        return response

    endpoint.ops = ops   # read by actions.operation_actions (the operation -> RBAC action table)
    return Route(path, endpoint, methods=list(ops), name=None)
