"""ARM wire format for Microsoft.Authorization (api-version 2022-04-01, azure-rest-api-specs
specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01): role definitions and role
assignments at any scope, and the Permissions API; plus the control API's RBAC switch and role assignments for tests.
Thin: the rules are in backends/authorization.py.

Shapes (the spec's examples): RoleAssignments_Create answers 201 (new) / 200 with {id, name, type, properties:
{scope, roleDefinitionId, principalId, principalType, ...}}; RoleDefinitions_CreateOrUpdate 201; deletes 200 with
the deleted body, 204 when there was none; lists {value: [...]}. Permissions_* answer {value: [{actions,
notActions, dataActions, notDataActions}]}; the spec has them for a resource group and a resource, ARM also serves
the subscription's (``Permissions_ListForSubscription`` is the stand-in's name for it).
"""
from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..backends import authorization as rbac
from ..core.errors import ArmError
from ..core.tokens import object_id
from .arm import R, S, _ci
from .routing import ApiRequest, json_response, op_route

_AUTH = "/providers/Microsoft.Authorization"
_PRINCIPAL = re.compile(r"principalId\s+eq\s+'([^']*)'", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"assignedTo\('([^']*)'\)", re.IGNORECASE)
_ROLE_NAME = re.compile(r"roleName\s+eq\s+'([^']*)'", re.IGNORECASE)


def _scope(req: ApiRequest) -> str:
    return "/" + req.path_params["scope"].strip("/")


def _list(rows: list) -> JSONResponse:
    return json_response({"value": rows})


def assignment_put(ctx, req):
    body, created = rbac.put_role_assignment(ctx, _scope(req), req.path_params["name"], req.body)
    return json_response(body, 201 if created else 200)


def _getter(get, param: str):
    """GET of one document at a scope: ``get(ctx, scope, name)``."""
    return lambda ctx, req: json_response(get(ctx, _scope(req), req.path_params[param]))


def _deleter(delete, param: str):
    """DELETE of one document at a scope: ``delete(ctx, scope, name)`` -> the deleted body (200) or None (204)."""
    def handler(ctx, req):
        body = delete(ctx, _scope(req), req.path_params[param])
        return json_response(body, 200 if body else 204)
    return handler


def assignment_list(ctx, req):
    flt = req.q("$filter") or ""
    principal = _PRINCIPAL.search(flt) or _ASSIGNED_TO.search(flt)
    return _list(rbac.list_role_assignments(ctx, _scope(req), at_scope="atscope()" in flt.lower(),
                                            principal_id=principal.group(1) if principal else None))


def definition_put(ctx, req):
    body, _ = rbac.put_role_definition(ctx, _scope(req), req.path_params["guid"], req.body)
    return json_response(body, 201)


def definition_list(ctx, req):
    name = _ROLE_NAME.search(req.q("$filter") or "")
    return _list(rbac.list_role_definitions(ctx, _scope(req), name.group(1) if name else None))


def permissions(ctx, req):
    """The caller's own effective permissions at the path's scope (the path minus the Permissions suffix)."""
    scope = req.path[: -len(_AUTH + "/permissions")]
    return _list(rbac.effective_permissions(ctx, str(req.claims.get("oid") or ""), scope))


ROUTES: list[Route] = [_ci(r) for r in [
    op_route(S + _AUTH + "/permissions", {"GET": ("Permissions_ListForSubscription", permissions)}),
    op_route(R + _AUTH + "/permissions", {"GET": ("Permissions_ListForResourceGroup", permissions)}),
    op_route(R + "/providers/{resource:path}" + _AUTH + "/permissions",
             {"GET": ("Permissions_ListForResource", permissions)}),
    op_route("/{scope:path}" + _AUTH + "/roleAssignments", {"GET": ("RoleAssignments_ListForScope", assignment_list)}),
    op_route("/{scope:path}" + _AUTH + "/roleAssignments/{name}", {
        "PUT": ("RoleAssignments_Create", assignment_put), "GET": ("RoleAssignments_Get", _getter(rbac.get_role_assignment, "name")),
        "DELETE": ("RoleAssignments_Delete", _deleter(rbac.delete_role_assignment, "name"))}),
    op_route("/{scope:path}" + _AUTH + "/roleDefinitions", {"GET": ("RoleDefinitions_List", definition_list)}),
    op_route("/{scope:path}" + _AUTH + "/roleDefinitions/{guid}", {
        "PUT": ("RoleDefinitions_CreateOrUpdate", definition_put), "GET": ("RoleDefinitions_Get", _getter(rbac.get_role_definition, "guid")),
        "DELETE": ("RoleDefinitions_Delete", _deleter(rbac.delete_role_definition, "guid"))}),
]]


# --- control API (tests, demo): /_control/rbac, /_control/role_assignments ------------------------------------

async def _control_rbac(request: Request):
    """PUT {"enforce": true|false}: switch RBAC checks on or off (a reset restores the start-up switch, ``--rbac``);
    GET: the switch."""
    ctx = request.app.state.ctx
    with ctx.lock:
        if request.method == "PUT":
            body = await request.json()
            if not isinstance(body.get("enforce"), bool):
                return JSONResponse({"error": "enforce must be true or false"}, status_code=400)
            rbac.set_enforce(ctx, body["enforce"])
        return JSONResponse({"enforce": rbac.enforcing(ctx)})


def _principal(ctx, body: dict) -> str:
    """The principal's object id: ``principal_id`` as given, or the service principal of ``client_id`` (default:
    the stand-in's own)."""
    return body.get("principal_id") or object_id(body.get("client_id") or ctx.config.client_id)


async def _control_role_assignments(request: Request):
    """POST {"principal_id" | "client_id", "role" (built-in name or GUID), "scope"}: assign a role (201);
    PUT {"principal_id" | "client_id", "roles": [{"role", "scope"}]}: replace that principal's assignments;
    DELETE {"id"} one assignment, or {"principal_id" | "client_id"} all of that principal's;
    GET [?principal_id=...]: the assignments."""
    ctx = request.app.state.ctx
    body = await request.json() if request.method in ("POST", "PUT", "DELETE") else {}
    try:
        with ctx.lock:
            if request.method == "POST":
                return JSONResponse(rbac.assign(ctx, _principal(ctx, body), body["role"], body["scope"]),
                                    status_code=201)
            if request.method == "PUT":
                rows = rbac.replace_assignments(ctx, _principal(ctx, body),
                                                [(r["role"], r["scope"]) for r in body["roles"]])
                return JSONResponse({"value": rows})
            if request.method == "DELETE":
                if body.get("id"):
                    scope, _, name = body["id"].rpartition("/providers/Microsoft.Authorization/roleAssignments/")
                    return JSONResponse({"deleted": rbac.delete_role_assignment(ctx, scope, name) is not None})
                rbac.replace_assignments(ctx, _principal(ctx, body), [])
                return JSONResponse({"deleted": True})
            principal = request.query_params.get("principal_id")
            return JSONResponse({"value": rbac.list_role_assignments(ctx, "", principal_id=principal)})
    except KeyError as e:
        return JSONResponse({"error": f"missing {e}"}, status_code=400)
    except ArmError as e:  # an unknown role, a scope the role is not assignable at
        return JSONResponse({"error": e.message}, status_code=400)


async def _control_operation_actions(request: Request):
    """GET: every operation the stand-in serves with the RBAC action it needs (responses/actions.py)."""
    from .actions import operation_actions

    return JSONResponse({"value": operation_actions(request.app.routes)})


CONTROL_ROUTES: list[Route] = [
    Route("/_control/rbac", _control_rbac, methods=["GET", "PUT"]),
    Route("/_control/role_assignments", _control_role_assignments, methods=["GET", "POST", "PUT", "DELETE"]),
    Route("/_control/rbac/actions", _control_operation_actions, methods=["GET"]),
]
