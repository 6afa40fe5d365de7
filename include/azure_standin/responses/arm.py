"""ARM wire format for Microsoft.Compute (VMs, disks, snapshots, images, galleries), resource groups,
resource providers and Microsoft.Batch accounts. Thin: the rules live in backends/compute.py and
backends/gallery.py.

Status codes follow what azure-mgmt-compute 39 accepts (checked in its generated operations):
- Snapshots PUT: 202 (new) / 200 (update); Images, Galleries, GalleryImages, GalleryImageVersions PUT:
  201 (new) / 200 (update); all with Azure-AsyncOperation + Retry-After.
- DELETE: 202 with Location + Azure-AsyncOperation while it runs, 204 when there is nothing to delete.
- Retry-After is always an integer number of seconds: the SDK deserialises that header as "int" on
  201/202 answers (a value like "0.25" makes it raise).
ARM paths are case-insensitive (azure-mgmt-resource sends "resourcegroups"): every route here
matches without regard to case.
"""
from __future__ import annotations

import json
import math
import re

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends import compute as c
from ..backends import gallery as g
from . import arm_lro
from .routing import ApiRequest, json_response, op_route

S = "/subscriptions/{subscription_id}"
R = S + "/resourceGroups/{resource_group}"
C = R + "/providers/Microsoft.Compute"
SC = S + "/providers/Microsoft.Compute"
B = R + "/providers/Microsoft.Batch/batchAccounts"


def _ci(route: Route) -> Route:
    """Make a route match its path case-insensitively (ARM ids are case-insensitive)."""
    route.path_regex = re.compile(route.path_regex.pattern, re.IGNORECASE)
    return route


def _int_retry_after(resp: Response) -> Response:
    value = resp.headers.get("retry-after")
    if value is not None:
        try:
            secs = max(1, math.ceil(float(value)))
        except ValueError:
            secs = 1
        resp.headers["Retry-After"] = str(secs)
    return resp


def _p(req: ApiRequest, name: str) -> str:
    return req.path_params[name]


def _sub_rg(req: ApiRequest) -> tuple[str, str]:
    return _p(req, "subscription_id"), _p(req, "resource_group")


def _list(rows: list[dict]) -> Response:
    return json_response({"value": rows})


def _created(ctx, req: ApiRequest, kind: str, result: tuple[dict, bool], *, new_status: int = 201) -> Response:
    body, created = result
    resp = arm_lro.begin_create(ctx, req, kind, body, location=body["location"], created=created)
    if created and new_status != 201:
        resp.status_code = new_status
    return _int_retry_after(resp)


def _deleted(ctx, req: ApiRequest, kind: str, target: tuple[str, str] | None) -> Response:
    if target is None:
        return json_response(None, 204)
    key, location = target
    return _int_retry_after(arm_lro.begin_delete(ctx, req, kind, key, location=location))


# --- faults on the ARM read path (kinds state_spelling, not_found_after_create) ----------------------

def _provider_type_and_name(path: str) -> tuple[str, str, str]:
    """``.../resourceGroups/rg/providers/Microsoft.Compute/snapshots/s1`` -> ("Microsoft.Compute/snapshots", "s1", "rg")."""
    head, _, tail = path.rstrip("/").partition("/providers/")
    rtype, _, name = tail.rpartition("/")
    rg = head.rsplit("/", 1)[-1]
    return rtype, name, rg


def _arm_create(resource_type: str, handler):
    """A PUT that made a new resource arms a matching `not_found_after_create` fault for that resource:
    its next `reads` GETs (default 2) answer 404, as ARM does while its caches catch up after a create
    (azure-rest-api-specs issue 10148, azure-sdk-for-python issue 14282; how many reads, and for how long,
    is a guess)."""
    def wrapped(ctx, req):
        resp = handler(ctx, req)
        if resp.status_code in (201, 202):  # a new resource (200 is an update)
            name = _provider_type_and_name(req.path)[1]
            fault = ctx.faults.take("not_found_after_create", resource_type=resource_type, name=name)
            if fault is not None:
                ctx.store.put("stale_read", req.path.rstrip("/").lower(), {"reads": int(fault.get("reads", 2))})
        return resp
    return wrapped


def _respell(body: dict, state: str, spelling: str) -> None:
    """Write ``spelling`` wherever ``body`` reports ``state`` (provisioningState, replication states)."""
    props = body.get("properties") or {}
    if str(props.get("provisioningState", "")).lower() == state.lower():
        props["provisioningState"] = spelling
    rs = props.get("replicationStatus") or {}
    if str(rs.get("aggregatedState", "")).lower() == state.lower():
        rs["aggregatedState"] = spelling
    for entry in rs.get("summary") or []:
        if str(entry.get("state", "")).lower() == state.lower():
            entry["state"] = spelling


def _states_in(body: dict) -> list[str]:
    props = body.get("properties") or {}
    rs = props.get("replicationStatus") or {}
    found = [props.get("provisioningState"), rs.get("aggregatedState")] + [e.get("state") for e in rs.get("summary") or []]
    return list(dict.fromkeys(s for s in found if isinstance(s, str)))


def _arm_read(resource_type: str, handler):
    """GET of one resource, with the read-path faults:

    - a `stale_read` left by `not_found_after_create`: ARM's 404 ResourceNotFound body (the backend's own),
      counted down per GET;
    - `state_spelling` [resource_type, name_regex, state]: a state the body reports (provisioningState, a
      replication region's state or the aggregated one) equal to match `state` is sent as `spelling`
      (e.g. Cancelled, canceled, FAILED, succeeded): ARM services do spell states differently (ARM RPC
      repository, issue 144). The stored resource is unchanged: only the wire answer differs.
    """
    def wrapped(ctx, req):
        key = req.path.rstrip("/").lower()
        stale = ctx.store.get("stale_read", key)
        if stale is not None:
            left = int(stale.get("reads", 0)) - 1
            if left > 0:
                ctx.store.put("stale_read", key, {"reads": left})
            else:
                ctx.store.delete("stale_read", key)
            rtype, name, rg = _provider_type_and_name(req.path)
            raise c.not_found(rtype, name, rg)
        resp = handler(ctx, req)
        if resp.status_code != 200:
            return resp
        body = json.loads(resp.body)
        name = _provider_type_and_name(req.path)[1]
        respelled = False
        for state in _states_in(body):
            fault = ctx.faults.take("state_spelling", resource_type=resource_type, name=name, state=state)
            if fault is not None:
                _respell(body, state, str(fault.get("spelling", state)))
                respelled = True
        if not respelled:
            return resp
        return JSONResponse(body, status_code=200, headers={
            k: v for k, v in resp.headers.items() if k.lower() not in ("content-length", "content-type")})
    return wrapped


# --- resource groups and providers -----------------------------------------------------------------

def rg_get(ctx, req):
    return json_response(c.get_resource_group(ctx, *_sub_rg(req)))


def rg_head(ctx, req):
    return Response(status_code=204 if c.resource_group_exists(ctx, *_sub_rg(req)) else 404)


def rg_put(ctx, req):
    body, created = c.put_resource_group(ctx, *_sub_rg(req), req.body)
    return json_response(body, 201 if created else 200)


def rg_list(ctx, req):
    return _list(c.list_resource_groups(ctx, _p(req, "subscription_id")))


def provider_get(ctx, req):
    return json_response(c.get_provider(ctx, _p(req, "subscription_id"), _p(req, "namespace")))


def provider_register(ctx, req):
    return json_response(c.register_provider(ctx, _p(req, "subscription_id"), _p(req, "namespace")))


# --- virtual machines ----------------------------------------------------------------------------------

def vm_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_vm(ctx, sub, rg, _p(req, "vm"), expand=req.q("$expand")))


def vm_instance_view(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.vm_instance_view(ctx, sub, rg, _p(req, "vm")))


def vm_list(ctx, req):
    return _list(c.list_vms(ctx, *_sub_rg(req)))


def vm_list_all(ctx, req):
    return _list(c.list_vms(ctx, _p(req, "subscription_id")))


def ext_list(ctx, req):
    sub, rg = _sub_rg(req)
    return _list(c.list_vm_extensions(ctx, sub, rg, _p(req, "vm")))


def ext_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_vm_extension(ctx, sub, rg, _p(req, "vm"), _p(req, "ext")))


# --- disks -----------------------------------------------------------------------------------------------

def disk_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_disk(ctx, sub, rg, _p(req, "name")))


def disk_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "disk", c.prepare_delete_disk(ctx, sub, rg, _p(req, "name")))


def disk_list_rg(ctx, req):
    return _list(c.list_disks(ctx, *_sub_rg(req)))


def disk_list(ctx, req):
    return _list(c.list_disks(ctx, _p(req, "subscription_id")))


# --- snapshots -------------------------------------------------------------------------------------------

def snap_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_snapshot(ctx, sub, rg, _p(req, "name")))


def snap_put(ctx, req):
    sub, rg = _sub_rg(req)
    return _created(ctx, req, "snapshot", c.create_snapshot(ctx, sub, rg, _p(req, "name"), req.body), new_status=202)


def snap_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "snapshot", c.prepare_delete_snapshot(ctx, sub, rg, _p(req, "name")))


def snap_list_rg(ctx, req):
    return _list(c.list_snapshots(ctx, *_sub_rg(req)))


def snap_list(ctx, req):
    return _list(c.list_snapshots(ctx, _p(req, "subscription_id")))


# --- images ----------------------------------------------------------------------------------------------

def image_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_image(ctx, sub, rg, _p(req, "name")))


def image_put(ctx, req):
    sub, rg = _sub_rg(req)
    return _created(ctx, req, "image", c.create_image(ctx, sub, rg, _p(req, "name"), req.body))


def image_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "image", c.prepare_delete_image(ctx, sub, rg, _p(req, "name")))


def image_list_rg(ctx, req):
    return _list(c.list_images(ctx, *_sub_rg(req)))


def image_list(ctx, req):
    return _list(c.list_images(ctx, _p(req, "subscription_id")))


# --- galleries -------------------------------------------------------------------------------------------

def gallery_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(g.get_gallery(ctx, sub, rg, _p(req, "gallery")))


def gallery_put(ctx, req):
    sub, rg = _sub_rg(req)
    return _created(ctx, req, "gallery", g.create_gallery(ctx, sub, rg, _p(req, "gallery"), req.body))


def gallery_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "gallery", g.prepare_delete_gallery(ctx, sub, rg, _p(req, "gallery")))


def gallery_list_rg(ctx, req):
    return _list(g.list_galleries(ctx, *_sub_rg(req)))


def gallery_list(ctx, req):
    return _list(g.list_galleries(ctx, _p(req, "subscription_id")))


def def_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(g.get_definition(ctx, sub, rg, _p(req, "gallery"), _p(req, "image")))


def def_put(ctx, req):
    sub, rg = _sub_rg(req)
    return _created(ctx, req, "gallery_image",
                    g.create_definition(ctx, sub, rg, _p(req, "gallery"), _p(req, "image"), req.body))


def def_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "gallery_image",
                    g.prepare_delete_definition(ctx, sub, rg, _p(req, "gallery"), _p(req, "image")))


def def_list(ctx, req):
    sub, rg = _sub_rg(req)
    return _list(g.list_definitions(ctx, sub, rg, _p(req, "gallery")))


def ver_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(g.get_version(ctx, sub, rg, _p(req, "gallery"), _p(req, "image"), _p(req, "version"),
                                       expand=req.q("$expand")))


def ver_put(ctx, req):
    sub, rg = _sub_rg(req)
    return _created(ctx, req, "gallery_image_version",
                    g.create_version(ctx, sub, rg, _p(req, "gallery"), _p(req, "image"), _p(req, "version"), req.body))


def ver_delete(ctx, req):
    sub, rg = _sub_rg(req)
    return _deleted(ctx, req, "gallery_image_version",
                    g.prepare_delete_version(ctx, sub, rg, _p(req, "gallery"), _p(req, "image"), _p(req, "version")))


def ver_list(ctx, req):
    sub, rg = _sub_rg(req)
    return _list(g.list_versions(ctx, sub, rg, _p(req, "gallery"), _p(req, "image")))


# --- Batch accounts (management plane) -------------------------------------------------------------------

def batch_get(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.get_batch_account(ctx, sub, rg, _p(req, "account_name")))


def batch_keys(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(c.batch_account_keys(ctx, sub, rg, _p(req, "account_name")))


def batch_list_rg(ctx, req):
    return _list(c.list_batch_accounts(ctx, *_sub_rg(req)))


def batch_list(ctx, req):
    return _list(c.list_batch_accounts(ctx, _p(req, "subscription_id")))


ROUTES: list[Route] = [_ci(r) for r in [
    op_route(S + "/resourcegroups", {"GET": ("ResourceGroups_List", rg_list)}),
    op_route(S + "/resourcegroups/{resource_group}", {
        "GET": ("ResourceGroups_Get", rg_get),
        "HEAD": ("ResourceGroups_CheckExistence", rg_head),
        "PUT": ("ResourceGroups_CreateOrUpdate", rg_put),
    }),
    op_route(S + "/providers/{namespace}", {"GET": ("Providers_Get", provider_get)}),
    op_route(S + "/providers/{namespace}/register", {"POST": ("Providers_Register", provider_register)}),

    op_route(SC + "/virtualMachines", {"GET": ("VirtualMachines_ListAll", vm_list_all)}),
    op_route(C + "/virtualMachines", {"GET": ("VirtualMachines_List", vm_list)}),
    op_route(C + "/virtualMachines/{vm}", {"GET": ("VirtualMachines_Get", vm_get)}),
    op_route(C + "/virtualMachines/{vm}/instanceView", {"GET": ("VirtualMachines_InstanceView", vm_instance_view)}),
    op_route(C + "/virtualMachines/{vm}/extensions", {"GET": ("VirtualMachineExtensions_List", ext_list)}),
    op_route(C + "/virtualMachines/{vm}/extensions/{ext}", {"GET": ("VirtualMachineExtensions_Get", ext_get)}),

    op_route(SC + "/disks", {"GET": ("Disks_List", disk_list)}),
    op_route(C + "/disks", {"GET": ("Disks_ListByResourceGroup", disk_list_rg)}),
    op_route(C + "/disks/{name}", {"GET": ("Disks_Get", disk_get), "DELETE": ("Disks_Delete", disk_delete)}),

    op_route(SC + "/snapshots", {"GET": ("Snapshots_List", snap_list)}),
    op_route(C + "/snapshots", {"GET": ("Snapshots_ListByResourceGroup", snap_list_rg)}),
    op_route(C + "/snapshots/{name}", {
        "GET": ("Snapshots_Get", _arm_read("snapshots", snap_get)),
        "PUT": ("Snapshots_CreateOrUpdate", _arm_create("snapshots", snap_put)),
        "DELETE": ("Snapshots_Delete", snap_delete),
    }),

    op_route(SC + "/images", {"GET": ("Images_List", image_list)}),
    op_route(C + "/images", {"GET": ("Images_ListByResourceGroup", image_list_rg)}),
    op_route(C + "/images/{name}", {
        "GET": ("Images_Get", _arm_read("images", image_get)),
        "PUT": ("Images_CreateOrUpdate", _arm_create("images", image_put)),
        "DELETE": ("Images_Delete", image_delete),
    }),

    op_route(SC + "/galleries", {"GET": ("Galleries_List", gallery_list)}),
    op_route(C + "/galleries", {"GET": ("Galleries_ListByResourceGroup", gallery_list_rg)}),
    op_route(C + "/galleries/{gallery}", {
        "GET": ("Galleries_Get", _arm_read("galleries", gallery_get)),
        "PUT": ("Galleries_CreateOrUpdate", _arm_create("galleries", gallery_put)),
        "DELETE": ("Galleries_Delete", gallery_delete),
    }),
    op_route(C + "/galleries/{gallery}/images", {"GET": ("GalleryImages_ListByGallery", def_list)}),
    op_route(C + "/galleries/{gallery}/images/{image}", {
        "GET": ("GalleryImages_Get", _arm_read("gallery_images", def_get)),
        "PUT": ("GalleryImages_CreateOrUpdate", _arm_create("gallery_images", def_put)),
        "DELETE": ("GalleryImages_Delete", def_delete),
    }),
    op_route(C + "/galleries/{gallery}/images/{image}/versions",
             {"GET": ("GalleryImageVersions_ListByGalleryImage", ver_list)}),
    op_route(C + "/galleries/{gallery}/images/{image}/versions/{version}", {
        "GET": ("GalleryImageVersions_Get", _arm_read("versions", ver_get)),
        "PUT": ("GalleryImageVersions_CreateOrUpdate", _arm_create("versions", ver_put)),
        "DELETE": ("GalleryImageVersions_Delete", ver_delete),
    }),

    op_route(S + "/providers/Microsoft.Batch/batchAccounts", {"GET": ("BatchAccount_List", batch_list)}),
    op_route(B, {"GET": ("BatchAccount_ListByResourceGroup", batch_list_rg)}),
    op_route(B + "/{account_name}", {"GET": ("BatchAccount_Get", batch_get)}),
    op_route(B + "/{account_name}/listKeys", {"POST": ("BatchAccount_GetKeys", batch_keys)}),
]]


# --- control API (tests, demo): /_control/arm/... ----------------------------------------------------------

async def _control_provider(request: Request):
    """PUT {"subscription_id"?, "namespace", "registrationState"}: set a provider's registration."""
    ctx = request.app.state.ctx
    body = await request.json()
    try:
        with ctx.lock:
            doc = c.set_provider_registration(ctx, body.get("subscription_id") or ctx.config.subscription_id,
                                              body["namespace"], body["registrationState"])
    except (KeyError, ValueError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({k: v for k, v in doc.items() if k != "_sim"})


async def _control_vm_power(request: Request):
    """PUT {"id": vm id, "state": running|stopped|deallocated|...}."""
    ctx = request.app.state.ctx
    body = await request.json()
    try:
        with ctx.lock:
            vm = c.set_power_state(ctx, body["id"], body["state"])
    except KeyError as e:
        return JSONResponse({"error": f"no such VM {e}"}, status_code=404)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({"id": vm["id"], "power_state": vm["_sim"]["power_state"]})


CONTROL_ROUTES: list[Route] = [
    Route("/_control/arm/providers", _control_provider, methods=["PUT"]),
    Route("/_control/arm/vm_power", _control_vm_power, methods=["PUT"]),
]
