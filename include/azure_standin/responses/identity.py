"""Entra ID endpoints for the client-credentials flow (what MSAL / azure-identity call)."""
from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..core.tokens import TOKEN_LIFETIME, audience_for_scope


def _log(ctx, request: Request, op: str, status: int) -> None:
    import time

    ctx.store.log_request(real_ts=time.time(), sim_ts=ctx.clock.now(), family="identity",
                          method=request.method, path=request.url.path, op=op, status=status, write=0,
                          fault=None, retry_after=None)


def _aad_error(error: str, code: int, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": f"AADSTS{code}: {description}",
                         "error_codes": [code]}, status_code=status)


async def openid_configuration(request: Request):
    ctx = request.app.state.ctx
    tenant = request.path_params["tenant"]
    base = f"{ctx.config.base_url}/{tenant}"
    with ctx.lock:
        if tenant not in (ctx.config.tenant_id, "organizations", "common"):
            _log(ctx, request, "OpenIdConfiguration", 400)
            return _aad_error("invalid_tenant", 90002, f"Tenant '{tenant}' not found.", 400)
        _log(ctx, request, "OpenIdConfiguration", 200)
    return JSONResponse({
        "issuer": f"{ctx.config.base_url}/{tenant}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "tenant_region_scope": "EU",
    })


async def jwks(request: Request):
    import json

    import jwt

    ctx = request.app.state.ctx
    key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(ctx.tokens._public))
    key.update({"kid": "standin-1", "use": "sig", "alg": "RS256"})
    return JSONResponse({"keys": [key]})


async def token(request: Request):
    ctx = request.app.state.ctx
    tenant = request.path_params["tenant"]
    form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    with ctx.lock:
        if tenant != ctx.config.tenant_id:
            resp = _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                              "have the correct tenant ID and are signing into the correct cloud.", 400)
        elif form.get("grant_type") != "client_credentials":
            resp = _aad_error("unsupported_grant_type", 70003, "The app requested an unsupported grant type.", 400)
        elif form.get("client_id") != ctx.config.client_id:
            resp = _aad_error("unauthorized_client", 700016, f"Application with identifier '{form.get('client_id')}' "
                              f"was not found in the directory '{tenant}'.", 400)
        elif form.get("client_secret") != ctx.config.client_secret:
            resp = _aad_error("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being "
                              "sent in the request is the client secret value, not the client secret ID.", 401)
        else:
            audience = audience_for_scope(form.get("scope", ""))
            access = ctx.tokens.issue(audience, form["client_id"])
            resp = JSONResponse({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                                 "ext_expires_in": TOKEN_LIFETIME, "access_token": access})
        _log(ctx, request, "Token", resp.status_code)
    return resp


ROUTES = [
    Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/{tenant}/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/{tenant}/discovery/v2.0/keys", jwks, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
]
