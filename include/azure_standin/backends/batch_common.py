"""Shared helpers of the Batch data-plane backends: accounts and quotas, VM sizes, times and ETags,
ISO 8601 durations, OData $filter/$select, paging, the Shared Key refusal for gallery-image pools.
"""
from __future__ import annotations

import email.utils
import re
from datetime import timedelta
from typing import Any, Callable

import isodate

from ..core.errors import (
    AccountNotFound, AuthenticationFailed, ConditionNotMet, InvalidPropertyValue, InvalidQueryParameterValue,
    InvalidRequestBody, MissingRequiredProperty, OutOfRangeQueryParameterValue,
)
from . import resource_skus

# -- accounts ----------------------------------------------------------------------------------------

DEFAULT_POOL_QUOTA = 100
DEFAULT_DEDICATED_CORE_QUOTA = 500
DEFAULT_LOW_PRIORITY_CORE_QUOTA = 100
DEFAULT_ACTIVE_JOB_QUOTA = 300


def endpoint(ctx, account: str) -> str:
    """The account's Batch endpoint (what endpoints.json calls `endpoint`)."""
    return f"{ctx.config.base_url}/batch/{account}"


def get_account(ctx, account: str) -> dict:
    for acct in ctx.store.list("batch_account"):
        if str(acct.get("name", "")).lower() == (account or "").lower():
            return acct
    raise AccountNotFound(f"The specified account {account} does not exist.")


def _prop(acct: dict, name: str, default: Any = None) -> Any:
    props = acct.get("properties") or {}
    for src in (props, acct, (acct.get("_sim") or {}).get("quotas") or {}):
        if name in src and src[name] is not None:
            return src[name]
    return default


def account_location(acct: dict) -> str:
    return str(acct.get("location") or "").replace(" ", "").lower()


def quotas(acct: dict) -> dict:
    fam = _prop(acct, "dedicatedCoreQuotaPerVMFamily", None) or []
    return {
        "pool": int(_prop(acct, "poolQuota", DEFAULT_POOL_QUOTA)),
        "dedicated": int(_prop(acct, "dedicatedCoreQuota", DEFAULT_DEDICATED_CORE_QUOTA)),
        "low_priority": int(_prop(acct, "lowPriorityCoreQuota", DEFAULT_LOW_PRIORITY_CORE_QUOTA)),
        "active_jobs": int(_prop(acct, "activeJobAndJobScheduleQuota", DEFAULT_ACTIVE_JOB_QUOTA)),
        "family_enforced": bool(_prop(acct, "dedicatedCoreQuotaPerVMFamilyEnforced", True)),
        "families": {str(f.get("name", "")).lower(): int(f.get("coreQuota", 0)) for f in fam if isinstance(f, dict)},
        # with per-family quotas listed, a family that is not listed has none (as in Azure)
        "family_default": 0 if fam else int(_prop(acct, "dedicatedCoreQuota", DEFAULT_DEDICATED_CORE_QUOTA)),
    }


# -- VM sizes ------------------------------------------------------------------------------------------

def vm_size_info(vm_size: str) -> tuple[int, str] | None:
    """(vCPUs, quota family name) of a VM size, from the VM size table (resource_skus.py, the one source of vCPUs
    and families); None when the table does not list it, which Batch refuses on add as not a VM size it knows."""
    facts = resource_skus.size_facts(vm_size)
    return (facts["vcpus"], facts["family"]) if facts is not None else None


# -- time, ETags ------------------------------------------------------------------------------------

def etag(t: float) -> str:
    """Batch-style ETag: 0x8D + hex ticks (no quotes, as Batch sends it)."""
    ticks = int(t * 10_000_000) + 621_355_968_000_000_000
    return "0x" + format(ticks, "X")


def rfc1123(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def iso(ctx, t: float | None) -> str | None:
    return None if t is None else ctx.clock.iso(t)


def parse_duration(value: Any) -> float | None:
    """Seconds of an ISO 8601 duration (PT15M, PT15M00S, PT1H, P1DT2H, ...) or a JSON number of seconds; None when
    unparsable, negative, or in months/years (no fixed length).

    No "HH:MM:SS" form: the Batch service reads durations as OData Edm.Duration (ISO 8601 only), and no Batch client
    sends another form (azure-batch 15.1's `_timedelta_as_isostr` writes "PT20M00S"-style values; azure-cli 2.91
    validates --resize-timeout with msrest's `deserialize_duration`, i.e. isodate).
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).strip().upper()
    if s in ("P", "PT"):
        return None
    try:
        td = isodate.parse_duration(s)
    except (isodate.ISO8601Error, ValueError):
        return None
    if not isinstance(td, timedelta) or td < timedelta(0):
        return None
    return td.total_seconds()


def format_duration(seconds: float) -> str:
    """Seconds -> ISO 8601 the way Batch answers (PT15M, PT1H30M, PT5M30S)."""
    total = int(round(seconds))
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    out = "P" + (f"{d}D" if d else "")
    t = (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s else "")
    if t or not d:
        out += "T" + (t or "0S")
    return out


# -- errors -------------------------------------------------------------------------------------------

def require_body(body: Any) -> dict:
    if not isinstance(body, dict):
        raise InvalidRequestBody()
    return body


def check_if_match(headers: dict, current_etag: str) -> None:
    want = (headers or {}).get("if-match")
    if want and want.strip() not in ("*", current_etag, f'"{current_etag}"'):
        raise ConditionNotMet()
    none = (headers or {}).get("if-none-match")
    if none and none.strip() in (current_etag, f'"{current_etag}"'):
        raise ConditionNotMet()


ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_id(kind: str, value: Any) -> str:
    if value is None or value == "":
        raise MissingRequiredProperty("id")
    if not isinstance(value, str) or not ID_RE.match(value):
        raise InvalidPropertyValue("id", value, f"The {kind} id can contain any combination of alphanumeric characters "
                                   "including hyphens and underscores, and cannot contain more than 64 characters.")
    return value


# -- Shared Key -------------------------------------------------------------------------------------

SHARED_KEY_DETAIL = ("The specified type of authentication SharedKey is not allowed when external resources of "
                     "type Compute are linked.")


def refuse_shared_key(auth_scheme: str | None) -> None:
    """A Shared Key request on a pool backed by a gallery image: Batch answers 403."""
    if (auth_scheme or "").lower() == "sharedkey":
        raise AuthenticationFailed(
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed "
            "correctly including the signature. " + SHARED_KEY_DETAIL,
            [("AuthenticationErrorDetail", SHARED_KEY_DETAIL)],
        )


# -- OData $filter / $select -----------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
                       r"|(?P<word>[A-Za-z_$][A-Za-z0-9_./$-]*))")


class _FilterParser:
    def __init__(self, text: str):
        self.toks: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot parse filter at {text[pos:]!r}")
            pos = m.end()
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def parse(self) -> Callable[[dict], bool]:
        fn = self.or_()
        if self.i != len(self.toks):
            raise ValueError("trailing tokens in filter")
        return fn

    def or_(self):
        left = self.and_()
        while self.peek()[1] and self.peek()[1].lower() == "or":
            self.take()
            right = self.and_()
            left = (lambda a, b: lambda d: a(d) or b(d))(left, right)
        return left

    def and_(self):
        left = self.not_()
        while self.peek()[1] and self.peek()[1].lower() == "and":
            self.take()
            right = self.not_()
            left = (lambda a, b: lambda d: a(d) and b(d))(left, right)
        return left

    def not_(self):
        if self.peek()[1] and self.peek()[1].lower() == "not":
            self.take()
            inner = self.not_()
            return lambda d: not inner(d)
        return self.cmp()

    def value(self):
        kind, tok = self.take()
        if kind == "str":
            v = tok[1:-1].replace("''", "'")
            return lambda d: v
        if kind == "num":
            n = float(tok)
            return lambda d: n
        if kind == "lp":
            inner = self.or_()
            if self.take()[0] != "rp":
                raise ValueError("missing )")
            return inner
        if kind == "word":
            low = tok.lower()
            if low in ("true", "false"):
                b = low == "true"
                return lambda d: b
            if low == "null":
                return lambda d: None
            if self.peek()[0] == "lp":
                self.take()
                args = [self.or_()]
                while self.peek()[0] == "comma":
                    self.take()
                    args.append(self.or_())
                if self.take()[0] != "rp":
                    raise ValueError("missing )")
                return _func(low, args)
            path = tok.split("/")
            return lambda d: _lookup(d, path)
        raise ValueError(f"unexpected token {tok!r}")

    def cmp(self):
        left = self.value()
        kind, tok = self.peek()
        if kind == "word" and tok.lower() in ("eq", "ne", "gt", "ge", "lt", "le"):
            self.take()
            right = self.value()
            op = tok.lower()
            return lambda d: _compare(op, left(d), right(d))
        return left


def _lookup(d: Any, path: list[str]) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        if p in d:
            d = d[p]
        else:
            low = p.lower()
            d = next((v for k, v in d.items() if k.lower() == low), None)
    return d


def _norm(v: Any) -> Any:
    return v.lower() if isinstance(v, str) else v


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, str):
        try:
            b = float(b)
        except ValueError:
            pass
    a, b = _norm(a), _norm(b)
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if a is None or b is None:
        return False
    try:
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]
    except TypeError:
        return False


def _func(name: str, args: list):
    def s(v):
        return "" if v is None else str(v)

    if name == "startswith" and len(args) == 2:
        return lambda d: s(args[0](d)).lower().startswith(s(args[1](d)).lower())
    if name == "endswith" and len(args) == 2:
        return lambda d: s(args[0](d)).lower().endswith(s(args[1](d)).lower())
    if name in ("substringof",) and len(args) == 2:
        return lambda d: s(args[0](d)).lower() in s(args[1](d)).lower()
    if name == "contains" and len(args) == 2:
        return lambda d: s(args[1](d)).lower() in s(args[0](d)).lower()
    raise ValueError(f"unsupported function {name}")


def compile_filter(text: str | None) -> Callable[[dict], bool]:
    """A predicate for an OData $filter (eq/ne/gt/ge/lt/le, and/or/not, startswith/endswith, paths a/b)."""
    if not text or not text.strip():
        return lambda d: True
    try:
        fn = _FilterParser(text).parse()
        return lambda d: bool(fn(d))
    except (ValueError, IndexError) as e:
        raise InvalidQueryParameterValue(
            "Value for one of the query parameters specified in the request URI is invalid.",
            [("QueryParameterName", "$filter"), ("QueryParameterValue", text), ("Reason", str(e))])


def apply_select(item: dict, select: str | None) -> dict:
    if not select:
        return item
    wanted = {s.strip().lower() for s in select.split(",") if s.strip()}
    return {k: v for k, v in item.items() if k.lower() in wanted or k == "_sim"}


def max_results(value: str | None, default: int = 1000, limit: int = 1000) -> int:
    if value in (None, ""):
        return default
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 1 or n > limit:
        raise OutOfRangeQueryParameterValue(
            "A query parameter specified in the request URI is outside the permissible range.",
            [("QueryParameterName", "maxresults"), ("QueryParameterValue", str(value)),
             ("Reason", f"maxresults must be between 1 and {limit}")])
    return n
