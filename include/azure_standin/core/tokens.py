"""Entra ID access tokens: issued for the client-credentials flow, checked on every ARM/Batch call."""
from __future__ import annotations

import time
import uuid

import jwt

ARM_AUDIENCES = {"https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/"}
BATCH_AUDIENCES = {"https://batch.core.windows.net/", "https://batch.core.windows.net"}
TOKEN_LIFETIME = 3600

from .errors import AuthError  # noqa: E402


def object_id(client_id: str) -> str:
    """The object id (``oid``) of the stand-in's service principal for application ``client_id``: what role
    assignments name as ``principalId``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{client_id}"))


def audience_for_scope(scope: str) -> str:
    """'https://batch.core.windows.net//.default' -> 'https://batch.core.windows.net/' (as Entra ID does)."""
    first = scope.split()[0] if scope else ""
    return first[: -len("/.default")] if first.endswith("/.default") else first


class TokenIssuer:
    def __init__(self, signing_key, tenant_id: str, issuer_base: str):
        self._key = signing_key
        self._public = signing_key.public_key()
        self.tenant_id = tenant_id
        self.issuer_base = issuer_base

    def issue(self, audience: str, client_id: str, tenant_id: str | None = None, lifetime: int = TOKEN_LIFETIME) -> str:
        tid = tenant_id or self.tenant_id
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tid}/",
            "iat": now,
            "nbf": now - 5,
            "exp": now + lifetime,
            "tid": tid,
            "appid": client_id,
            "azp": client_id,
            "oid": object_id(client_id),
            "sub": object_id(client_id),
            "idtyp": "app",
            "ver": "1.0",
            "uti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": "standin-1"})

    def verify(self, authorization: str | None, audiences: set[str]) -> dict:
        """Claims of a valid bearer token for one of `audiences`; AuthError with Azure's code otherwise."""
        if not authorization:
            raise AuthError("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("AuthenticationFailed", "Authentication failed. The 'Authorization' header is not of the Bearer scheme.")
        try:
            claims = jwt.decode(token, self._public, algorithms=["RS256"], options={"verify_aud": False, "verify_exp": False})
        except jwt.PyJWTError:
            raise AuthError("InvalidAuthenticationToken", "The access token is invalid.")
        if claims.get("exp", 0) < time.time():
            raise AuthError(
                "ExpiredAuthenticationToken",
                "The access token expiry UTC time '%s' is earlier than current UTC time." % time.strftime(
                    "%m/%d/%Y %H:%M:%S", time.gmtime(claims.get("exp", 0))
                ),
            )
        if claims.get("aud") not in audiences:
            raise AuthError(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{claims.get('aud')}'. "
                f"It should exactly match with one of the allowed audiences {sorted(audiences)}.",
            )
        if claims.get("tid") != self.tenant_id:
            raise AuthError(
                "InvalidAuthenticationTokenTenant",
                f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match the tenant "
                f"'https://sts.windows.net/{self.tenant_id}/' associated with this subscription.",
            )
        return claims
