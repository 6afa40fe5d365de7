"""Server side of Azure Batch's Shared Key scheme (``Authorization: SharedKey {account}:{signature}``).

The string to sign is the one azure-batch 15's ``BatchSharedKeyAuthPolicy`` (azure/batch/_patch.py) builds:

    METHOD\\n
    content-encoding\\n content-language\\n content-length\\n content-md5\\n content-type\\n date\\n
    if-modified-since\\n if-match\\n if-none-match\\n if-unmodified-since\\n range\\n
    {ocp-* header name lower-cased}:{value}\\n          (every header whose name contains "ocp-", sorted)
    /{account}{url path}
    \\n{query name}:{first value}                     (query names sorted, blank values skipped)

signed with HMAC-SHA256 under the base64-decoded account key, base64-encoded. For a method other than
GET/HEAD a missing content-length counts as "0" (the client signs before the transport runs). Empty
header values count as absent.

The server cannot know exactly how the transport rewrote the request, so a few equivalent renderings
are tried (path as received / percent-decoded / re-encoded; content-length "0" vs "" on GET/HEAD, which
some transports add). All comparisons are constant time.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, quote, unquote, urlparse

HEADERS_TO_SIGN = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def _header_pairs(headers) -> list[tuple[str, str]]:
    """(lower-cased name, value) pairs from a dict, a Starlette Headers, or an iterable of pairs."""
    if hasattr(headers, "raw"):  # starlette.datastructures.Headers: keep duplicates, bytes
        return [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers.raw]
    if isinstance(headers, Mapping):
        items: Iterable = headers.items()
    else:
        items = headers
    out = []
    for k, v in items:
        if isinstance(k, bytes):
            k = k.decode("latin-1")
        if isinstance(v, bytes):
            v = v.decode("latin-1")
        out.append((str(k).lower(), str(v)))
    return out


def parse_authorization(value: str | None) -> tuple[str, str] | None:
    """``"SharedKey account:signature"`` -> (account, signature); None if it is not that shape."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "sharedkey" or ":" not in rest:
        return None
    account, _, signature = rest.strip().rpartition(":")
    if not account or not signature:
        return None
    return account, signature


def string_to_sign(method: str, path: str, query: str, headers: list[tuple[str, str]], account: str,
                   content_length_override: str | None = None) -> str:
    method = method.upper()
    hdr: dict[str, str] = {}
    for k, v in headers:
        if v and k not in hdr:
            hdr[k] = v
    if content_length_override is not None:
        if content_length_override:
            hdr["content-length"] = content_length_override
        else:
            hdr.pop("content-length", None)
    if method not in ("GET", "HEAD") and "content-length" not in hdr:
        hdr["content-length"] = "0"
    s = method + "\n"
    s += "\n".join(hdr.get(h, "") for h in HEADERS_TO_SIGN) + "\n"
    ocp = sorted((k, v) for k, v in headers if "ocp-" in k and v)
    for k, v in ocp:
        s += f"{k}:{v}\n"
    s += f"/{account}{path}"
    q = parse_qs(query)
    for name in sorted(q):
        value = q[name][0]
        if value:
            s += f"\n{name}:{value}"
    return s


def sign(key_b64: str, text: str) -> str:
    key = base64.b64decode(key_b64.encode("utf-8"))
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("utf-8")


def _path_variants(path: str) -> list[str]:
    out = [path]
    for p in (unquote(path), quote(unquote(path), safe="/-_.~!$&'()*+,;=:@")):
        if p not in out:
            out.append(p)
    return out


def verify(method: str, url: str, headers, account_name: str, key_b64: str) -> bool:
    """True when the request's ``Authorization: SharedKey`` header is a valid signature by ``key_b64``.

    ``url`` is the request URL as received (absolute or just path+query); ``headers`` any mapping or
    sequence of (name, value) pairs, or Starlette ``Headers``.
    """
    pairs = _header_pairs(headers)
    auth = next((v for k, v in pairs if k == "authorization"), None)
    parsed = parse_authorization(auth)
    if parsed is None:
        return False
    account, signature = parsed
    if account.lower() != (account_name or "").lower():
        return False
    try:
        base64.b64decode(key_b64.encode("utf-8"), validate=True)
        given = base64.b64decode(signature.encode("utf-8"), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        return False
    u = urlparse(url)
    method = method.upper()
    cl_variants: list[str | None] = [None]
    if method in ("GET", "HEAD"):
        cl_variants.append("")  # transport added "Content-Length: 0" the client never signed
    ok = False
    for path in _path_variants(u.path or "/"):
        for cl in cl_variants:
            expected = base64.b64decode(sign(key_b64, string_to_sign(method, path, u.query, pairs, account, cl)))
            # no early exit: keep timing independent of which variant matched
            ok = hmac.compare_digest(expected, given) or ok
    return ok
