"""ARM wire format for Microsoft.Batch/batchAccounts/pools (api-version 2024-07-01, what azure-mgmt-batch 18.0.0
accepts): Pool_Create answers 200 with the pool and its ETag (no long-running create in the spec), Pool_Delete 202 with
Location + Azure-AsyncOperation (final-state-via location) or 204, Pool_Get / Pool_ListByBatchAccount 200. The rules
and the translation to the data plane's pool documents are in backends/batch_arm_pools.py.
"""
from __future__ import annotations

from starlette.routing import Route

from ..backends import batch_arm_pools as arm_pools
from . import arm_lro
from .arm import R, _ci, _int_retry_after
from .routing import ApiRequest, json_response, op_route

_POOLS = R + "/providers/Microsoft.Batch/batchAccounts/{account_name}/pools"


def _names(req: ApiRequest) -> tuple[str, str, str]:
    p = req.path_params
    return p["subscription_id"], p["resource_group"], p["account_name"]


def pool_get(ctx, req):
    body = arm_pools.get_pool(ctx, *_names(req), req.path_params["pool_name"])
    return json_response(body, headers={"ETag": body["etag"]} if body.get("etag") else None)


def pool_list(ctx, req):
    return json_response({"value": arm_pools.list_pools(ctx, *_names(req))})


def pool_create(ctx, req):
    body, _ = arm_pools.create_pool(ctx, *_names(req), req.path_params["pool_name"], req.body,
                                    auth_scheme=req.auth_scheme, if_none_match=req.headers.get("if-none-match"))
    return json_response(body, 200, {"ETag": body["etag"]} if body.get("etag") else None)


def pool_delete(ctx, req):
    target = arm_pools.delete_pool(ctx, *_names(req), req.path_params["pool_name"], auth_scheme=req.auth_scheme)
    if target is None:
        return json_response(None, 204)
    key, location = target
    return _int_retry_after(arm_lro.accept_delete(ctx, req, "batch_pool", key, location=location))


ROUTES: list[Route] = [_ci(r) for r in [
    op_route(_POOLS, {"GET": ("Pool_ListByBatchAccount", pool_list)}),
    op_route(_POOLS + "/{pool_name}", {
        "GET": ("Pool_Get", pool_get),
        "PUT": ("Pool_Create", pool_create),
        "DELETE": ("Pool_Delete", pool_delete),
    }),
]]
