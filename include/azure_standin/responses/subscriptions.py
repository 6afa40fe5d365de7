"""ARM wire format for Microsoft.Resources subscriptions, tenants and locations (what `az login` and
`az account` read). Thin: the rules live in backends/subscriptions.py.
"""
from __future__ import annotations

from starlette.routing import Route

from ..backends import subscriptions as s
from .arm import _ci
from .routing import json_response, op_route


def sub_list(ctx, req):
    return json_response({"value": s.list_subscriptions(ctx)})


def sub_get(ctx, req):
    return json_response(s.get_subscription(ctx, req.path_params["subscription_id"]))


def locations_list(ctx, req):
    return json_response({"value": s.list_locations(ctx, req.path_params["subscription_id"])})


def tenant_list(ctx, req):
    return json_response({"value": s.list_tenants(ctx)})


ROUTES: list[Route] = [_ci(r) for r in [
    op_route("/subscriptions", {"GET": ("Subscriptions_List", sub_list)}),
    op_route("/subscriptions/{subscription_id}", {"GET": ("Subscriptions_Get", sub_get)}),
    op_route("/subscriptions/{subscription_id}/locations", {"GET": ("Subscriptions_ListLocations", locations_list)}),
    op_route("/tenants", {"GET": ("Tenants_List", tenant_list)}),
]]
