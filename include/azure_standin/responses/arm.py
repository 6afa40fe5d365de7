"""ARM wire format for Microsoft.Compute (VMs, disks, snapshots, images, galleries), Microsoft.Network (NICs, virtual
networks, subnets), resource groups, resource providers and Microsoft.Batch accounts. Thin: the rules live in the
backends (resources.py, vms.py, disks.py, images.py, gallery.py, network.py, batch_accounts.py); the tracked
resource types are one table, `ARM_TYPES`, served by one set of generic get / put / delete / list handlers (Batch pools
on the management plane answer differently: responses/batch_arm.py).

Status codes follow what azure-mgmt-compute 39 accepts (checked in its generated operations):
- Snapshots PUT: 202 (new) / 200 (update); Images, Galleries, GalleryImages, GalleryImageVersions PUT:
  201 (new) / 200 (update); all with Azure-AsyncOperation + Retry-After.
- GalleryImageVersions PATCH (Update): 200 with Azure-AsyncOperation, as begin_update expects.
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
from dataclasses import dataclass
from typing import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends import batch_accounts, disks, images, marketplace, network, resource_skus, resources, vms
from ..backends import gallery as g
from ..backends.arm_common import parse_id
from ..core.errors import InvalidParameter, ResourceNotFound
from . import arm_lro
from .routing import ApiRequest, json_response, op_route

S = "/subscriptions/{subscription_id}"
R = S + "/resourceGroups/{resource_group}"


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
    # A child resource without a location of its own (a subnet) keeps its parent's in _sim.location.
    location = body.get("location") or (body.get("_sim") or {}).get("location")
    resp = arm_lro.begin_create(ctx, req, kind, body, location=location, created=created)
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
    """``.../resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d`` ->
    ("Microsoft.Compute/galleries/g/images", "d", "rg"): the type path (with its parents' names) that ARM's
    ResourceNotFound message names, the name, the group."""
    p = parse_id(path)
    return f"{p['namespace']}/{p['parent']}{p['type'].rsplit('/', 1)[-1]}", p["name"], p["resource_group"]


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
            raise ResourceNotFound(rtype, name, rg)
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
    return json_response(resources.get_resource_group(ctx, *_sub_rg(req)))


def rg_head(ctx, req):
    return Response(status_code=204 if resources.resource_group_exists(ctx, *_sub_rg(req)) else 404)


def rg_put(ctx, req):
    body, created = resources.put_resource_group(ctx, *_sub_rg(req), req.body)
    return json_response(body, 201 if created else 200)


def rg_list(ctx, req):
    return _list(resources.list_resource_groups(ctx, _p(req, "subscription_id")))


def provider_get(ctx, req):
    return json_response(resources.get_provider(ctx, _p(req, "subscription_id"), _p(req, "namespace")))


def provider_register(ctx, req):
    return json_response(resources.register_provider(ctx, _p(req, "subscription_id"), _p(req, "namespace")))


def vm_instance_view(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(vms.vm_instance_view(ctx, sub, rg, _p(req, "vm")))


def vm_deallocate(ctx, req):
    sub, rg = _sub_rg(req)
    vm = vms.begin_deallocate(ctx, sub, rg, _p(req, "vm"))
    return _int_retry_after(arm_lro.begin_action(ctx, req, "vm", vm["id"], location=vm["location"], want="deallocated"))


def vm_generalize(ctx, req):
    vms.generalize(ctx, *_sub_rg(req), _p(req, "vm"))
    return Response(status_code=200)


def vm_boot_diagnostics(ctx, req):
    """retrieveBootDiagnosticsData: SAS URIs of the screenshot and the serial console log (served below)."""
    sub, rg = _sub_rg(req)
    vm = vms.get_vm(ctx, sub, rg, _p(req, "vm"))
    minutes = int(req.q("sasUriExpirationTimeInMinutes") or 120)
    expiry = ctx.clock.iso(ctx.clock.now() + 60 * minutes)
    base = f"{ctx.config.base_url}/_bootdiag/{sub}/{rg}/{vm['name']}"
    sas = f"?sv=2022-11-02&se={expiry}&sr=b&sp=r&sig=standin"
    return json_response({"consoleScreenshotBlobUri": f"{base}/screenshot.bmp{sas}",
                          "serialConsoleLogBlobUri": f"{base}/serialconsole.log{sas}"})


def batch_keys(ctx, req):
    sub, rg = _sub_rg(req)
    return json_response(batch_accounts.batch_account_keys(ctx, sub, rg, _p(req, "account_name")))


# --- marketplace images (subscription scope, read-only) ---------------------------------------------------------

_VMIMAGE = S + "/providers/Microsoft.Compute/locations/{location}/publishers/{publisher}/artifacttypes/vmimage" \
    "/offers/{offer}/skus/{sku}/versions"


def _vmimage_names(req: ApiRequest) -> list[str]:
    return [_p(req, n) for n in ("subscription_id", "location", "publisher", "offer", "sku")]


def vmimage_list(ctx, req):
    """A bare JSON array, as VirtualMachineImages_List answers (the SDK deserialises a list, not {value})."""
    top = req.q("$top")
    return json_response(marketplace.list_versions(ctx, *_vmimage_names(req), top=int(top) if top else None,
                                                   orderby=req.q("$orderby")))


def vmimage_get(ctx, req):
    return json_response(marketplace.get_version(ctx, *_vmimage_names(req), _p(req, "version")))


# --- resource SKUs (subscription scope, read-only) ----------------------------------------------------------

_SKU_FILTER = re.compile(r"^\s*location\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def skus_list(ctx, req):
    """ResourceSkus_List (api-version 2021-07-01): {value: [...]} of the subscription, one region with
    ``$filter=location eq '<region>'`` (the only filter the spec documents), every region without one. No
    nextLink: the table fits one page."""
    flt = req.q("$filter")
    location = None
    if flt:
        m = _SKU_FILTER.match(flt)
        if m is None:  # the message is a guess; the spec only documents the location filter
            raise InvalidParameter(f"The filter '{flt}' is not supported. Supported filter: location eq '<location>'.")
        location = m.group(1)
    return _list(resource_skus.skus_for(location, ctx, _p(req, "subscription_id")))


# --- tracked resources: one table, one set of handlers -----------------------------------------------

@dataclass(frozen=True)
class ArmType:
    """One ARM resource type served by the generic handlers below.

    `item` is the resource's path under its resource group; its `{params}` after the group are the names the
    backend functions take, in order: get(ctx, sub, rg, *names[, expand=]), put(ctx, sub, rg, *names, body)
    -> (body, created), delete(ctx, sub, rg, *names) -> (store key, location) | None, and
    list(ctx, sub, rg | None, *parent names) (rg None: the whole subscription). Operation ids (what the request
    log and the fault suite match on) are `{operation}_Get`, `_CreateOrUpdate`, `_Delete`, `_{list_op}` (the list
    under the parent) and `_{list_all_op}` (the subscription-wide list of a top-level type).
    """

    operation: str
    item: str
    kind: str
    get: Callable
    list: Callable
    list_op: str = "ListByResourceGroup"
    list_all_op: str | None = None
    put: Callable | None = None
    delete: Callable | None = None
    patch: Callable | None = None      # same signature as put; answers 200 + Azure-AsyncOperation
    put_new_status: int = 201          # azure-mgmt-compute 39 expects 202 for a new snapshot, 201 otherwise
    faults: str | None = None          # resource_type of the read-path faults (state_spelling, not_found_after_create)
    expand: bool = False               # GET passes $expand

    @property
    def names(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.item)

    @property
    def collection(self) -> str:
        return self.item.rsplit("/", 1)[0]


_COMPUTE = "/providers/Microsoft.Compute"
_NETWORK = "/providers/Microsoft.Network"

ARM_TYPES: list[ArmType] = [
    ArmType("VirtualMachines", _COMPUTE + "/virtualMachines/{vm}", "vm", vms.get_vm, vms.list_vms,
            list_op="List", list_all_op="ListAll", expand=True, put=vms.create_vm, delete=vms.prepare_delete_vm),
    # NICs only as far as a VM needs them: made by its networkInterfaceConfigurations, deleted with it (vms.py).
    ArmType("NetworkInterfaces", _NETWORK + "/networkInterfaces/{name}", "network_interface",
            vms.get_nic, vms.list_nics, list_op="List", list_all_op="ListAll"),
    ArmType("VirtualNetworks", _NETWORK + "/virtualNetworks/{vnet}", "virtual_network", network.get_vnet,
            network.list_vnets, list_op="List", list_all_op="ListAll", put=network.create_vnet,
            delete=network.prepare_delete_vnet),
    ArmType("Subnets", _NETWORK + "/virtualNetworks/{vnet}/subnets/{subnet}", "subnet", network.get_subnet_doc,
            network.list_subnets, list_op="List", put=network.create_subnet, delete=network.prepare_delete_subnet),
    ArmType("VirtualMachineExtensions", _COMPUTE + "/virtualMachines/{vm}/extensions/{ext}", "vm_extension",
            vms.get_vm_extension, vms.list_vm_extensions, list_op="List"),
    ArmType("Disks", _COMPUTE + "/disks/{name}", "disk", disks.get_disk, disks.list_disks, list_all_op="List",
            delete=disks.prepare_delete_disk),
    ArmType("Snapshots", _COMPUTE + "/snapshots/{name}", "snapshot", disks.get_snapshot, disks.list_snapshots,
            list_all_op="List", put=disks.create_snapshot, delete=disks.prepare_delete_snapshot, put_new_status=202,
            faults="snapshots"),
    ArmType("Images", _COMPUTE + "/images/{name}", "image", images.get_image, images.list_images,
            list_all_op="List", put=images.create_image, delete=images.prepare_delete_image, faults="images"),
    ArmType("Galleries", _COMPUTE + "/galleries/{gallery}", "gallery", g.get_gallery, g.list_galleries,
            list_all_op="List", put=g.create_gallery, delete=g.prepare_delete_gallery, faults="galleries"),
    ArmType("GalleryImages", _COMPUTE + "/galleries/{gallery}/images/{image}", "gallery_image", g.get_definition,
            g.list_definitions, list_op="ListByGallery", put=g.create_definition, delete=g.prepare_delete_definition,
            faults="gallery_images"),
    ArmType("GalleryImageVersions", _COMPUTE + "/galleries/{gallery}/images/{image}/versions/{version}",
            "gallery_image_version", g.get_version, g.list_versions, list_op="ListByGalleryImage",
            put=g.create_version, delete=g.prepare_delete_version, patch=g.update_version, faults="versions",
            expand=True),
    ArmType("BatchAccount", "/providers/Microsoft.Batch/batchAccounts/{account_name}", "batch_account",
            batch_accounts.get_batch_account, batch_accounts.list_batch_accounts, list_all_op="List"),
]


def _names(t: ArmType, req: ApiRequest, *, parents_only: bool = False) -> list[str]:
    return [_p(req, n) for n in (t.names[:-1] if parents_only else t.names)]


def _get_handler(t: ArmType):
    def handler(ctx, req):
        kwargs = {"expand": req.q("$expand")} if t.expand else {}
        return json_response(t.get(ctx, *_sub_rg(req), *_names(t, req), **kwargs))
    return _arm_read(t.faults, handler) if t.faults else handler


def _put_handler(t: ArmType):
    def handler(ctx, req):
        return _created(ctx, req, t.kind, t.put(ctx, *_sub_rg(req), *_names(t, req), req.body),
                        new_status=t.put_new_status)
    return _arm_create(t.faults, handler) if t.faults else handler


def _patch_handler(t: ArmType):
    def handler(ctx, req):
        return _created(ctx, req, t.kind, t.patch(ctx, *_sub_rg(req), *_names(t, req), req.body))
    return handler


def _delete_handler(t: ArmType):
    def handler(ctx, req):
        return _deleted(ctx, req, t.kind, t.delete(ctx, *_sub_rg(req), *_names(t, req)))
    return handler


def _list_handler(t: ArmType):
    def handler(ctx, req):
        return _list(t.list(ctx, *_sub_rg(req), *_names(t, req, parents_only=True)))
    return handler


def _list_all_handler(t: ArmType):
    def handler(ctx, req):
        return _list(t.list(ctx, _p(req, "subscription_id")))
    return handler


def _routes(t: ArmType) -> list[Route]:
    routes = []
    if t.list_all_op:
        routes.append(op_route(S + t.collection, {"GET": (f"{t.operation}_{t.list_all_op}", _list_all_handler(t))}))
    routes.append(op_route(R + t.collection, {"GET": (f"{t.operation}_{t.list_op}", _list_handler(t))}))
    ops = {"GET": (f"{t.operation}_Get", _get_handler(t))}
    if t.put:
        ops["PUT"] = (f"{t.operation}_CreateOrUpdate", _put_handler(t))
    if t.delete:
        ops["DELETE"] = (f"{t.operation}_Delete", _delete_handler(t))
    if t.patch:
        ops["PATCH"] = (f"{t.operation}_Update", _patch_handler(t))
    routes.append(op_route(R + t.item, ops))
    return routes


ROUTES: list[Route] = [_ci(r) for r in [
    op_route(S + "/resourcegroups", {"GET": ("ResourceGroups_List", rg_list)}),
    op_route(S + "/resourcegroups/{resource_group}", {
        "GET": ("ResourceGroups_Get", rg_get),
        "HEAD": ("ResourceGroups_CheckExistence", rg_head),
        "PUT": ("ResourceGroups_CreateOrUpdate", rg_put),
    }),
    op_route(S + "/providers/{namespace}", {"GET": ("Providers_Get", provider_get)}),
    op_route(S + "/providers/{namespace}/register", {"POST": ("Providers_Register", provider_register)}),
    *(route for t in ARM_TYPES for route in _routes(t)),
    op_route(S + _COMPUTE + "/skus", {"GET": ("ResourceSkus_List", skus_list)}),
    op_route(_VMIMAGE, {"GET": ("VirtualMachineImages_List", vmimage_list)}),
    op_route(_VMIMAGE + "/{version}", {"GET": ("VirtualMachineImages_Get", vmimage_get)}),
    op_route(R + _COMPUTE + "/virtualMachines/{vm}/deallocate", {"POST": ("VirtualMachines_Deallocate", vm_deallocate)}),
    op_route(R + _COMPUTE + "/virtualMachines/{vm}/generalize", {"POST": ("VirtualMachines_Generalize", vm_generalize)}),
    op_route(R + _COMPUTE + "/virtualMachines/{vm}/retrieveBootDiagnosticsData",
             {"POST": ("VirtualMachines_RetrieveBootDiagnosticsData", vm_boot_diagnostics)}),
    op_route(R + _COMPUTE + "/virtualMachines/{vm}/instanceView",
             {"GET": ("VirtualMachines_InstanceView", vm_instance_view)}),
    op_route(R + "/providers/Microsoft.Batch/batchAccounts/{account_name}/listKeys",
             {"POST": ("BatchAccount_GetKeys", batch_keys)}),
]]


# --- control API (tests, demo): /_control/arm/... ----------------------------------------------------------

async def _control_provider(request: Request):
    """PUT {"subscription_id"?, "namespace", "registrationState"}: set a provider's registration."""
    ctx = request.app.state.ctx
    body = await request.json()
    try:
        with ctx.lock:
            doc = resources.set_provider_registration(ctx, body.get("subscription_id") or ctx.config.subscription_id,
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
            vm = vms.set_power_state(ctx, body["id"], body["state"])
    except KeyError as e:
        return JSONResponse({"error": f"no such VM {e}"}, status_code=404)
    except ValueError as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({"id": vm["id"], "power_state": vm["_sim"]["power_state"]})


async def _control_marketplace_version(request: Request):
    """POST {"publisher", "offer", "sku", "version", "hyper_v_generation"?, "os_disk_gb"?, "data_disks_gb"?, "plan"?,
    "security_type"?}: publish a marketplace image version (a new base: what makes a base-image Asset fire)."""
    ctx = request.app.state.ctx
    body = await request.json()
    try:
        with ctx.lock:
            extra = {k: body[k] for k in ("os_type", "hyper_v_generation", "os_disk_gb", "data_disks_gb", "plan",
                                          "security_type") if k in body}
            doc = marketplace.publish_version(ctx, body["publisher"], body["offer"], body["sku"], body["version"],
                                              **extra)
    except (KeyError, ValueError, TypeError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({k: v for k, v in doc.items() if k != "_sim"}, status_code=201)


async def _control_sku_restriction(request: Request):
    """PUT {"subscription_id"?, "location", "name", "zones"?: ["1"], "reason_code"?, "clear"?: true}: restrict a VM
    size for the subscription in a region (or in some of its zones), as Azure's NotAvailableForSubscription; with
    "clear", lift it."""
    ctx = request.app.state.ctx
    body = await request.json()
    try:
        sub = body.get("subscription_id") or ctx.config.subscription_id
        with ctx.lock:
            if body.get("clear"):
                resource_skus.clear_restriction(ctx, sub, body["location"], body["name"])
                return JSONResponse({"cleared": True})
            doc = resource_skus.set_restriction(ctx, sub, body["location"], body["name"], zones=body.get("zones"),
                                                reason_code=body.get("reason_code") or "NotAvailableForSubscription")
    except (KeyError, ValueError) as e:
        return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse(doc)


async def _boot_diagnostics_blob(request: Request):
    """The serial console log blob retrieveBootDiagnosticsData points at (a SAS URL: no bearer token, as in
    Azure Storage)."""
    ctx = request.app.state.ctx
    p = request.path_params
    with ctx.lock:
        vm = ctx.store.get("vm", vms.vm_id(p["subscription_id"], p["resource_group"], p["vm"]))
        text = vms.serial_log(ctx, vm) if vm is not None else None
    if text is None:
        return JSONResponse({"error": "BlobNotFound"}, status_code=404)
    return Response(text, media_type="text/plain")


CONTROL_ROUTES: list[Route] = [
    Route("/_bootdiag/{subscription_id}/{resource_group}/{vm}/serialconsole.log", _boot_diagnostics_blob,
          methods=["GET"]),
    Route("/_control/marketplace/versions", _control_marketplace_version, methods=["POST"]),
    Route("/_control/arm/providers", _control_provider, methods=["PUT"]),
    Route("/_control/arm/vm_power", _control_vm_power, methods=["PUT"]),
    Route("/_control/arm/sku_restrictions", _control_sku_restriction, methods=["PUT"]),
]
