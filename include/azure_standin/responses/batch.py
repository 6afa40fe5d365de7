"""Batch data plane on the wire (``/batch/{account}/...``): routes, status codes and headers azure-batch 15
expects (201 + ETag/Last-Modified/DataServiceId on adds, 202 on delete/resize/reboot/terminate, 200/204
on updates, ``odata.metadata`` and ``odata.nextLink`` on reads). Errors are rendered by routing.op_route.
"""
from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..backends import batch_jobs as jobs
from ..backends import batch_pools as pools
from ..backends import supported_images
from ..backends.batch_common import endpoint, get_account, rfc1123
from .routing import ApiRequest, json_response, op_route

A = "/batch/{account}"


def _ep(ctx, req: ApiRequest) -> str:
    return endpoint(ctx, req.account)


def _meta(ctx, req: ApiRequest, what: str) -> str:
    return f"{_ep(ctx, req)}/$metadata#{what}"


def _entity(ctx, req: ApiRequest, doc: dict, what: str, status: int = 200) -> Response:
    body = {"odata.metadata": _meta(ctx, req, what), **doc}
    headers = {}
    if doc.get("eTag"):
        headers["ETag"] = doc["eTag"]
    if doc.get("_sim", {}).get("modified") or doc.get("lastModified"):
        headers["Last-Modified"] = _rfc(ctx, doc)
    return json_response(body, status, headers)


def _rfc(ctx, doc: dict) -> str:
    from datetime import datetime

    lm = doc.get("lastModified")
    try:
        t = datetime.fromisoformat(str(lm).replace("Z", "+00:00")).timestamp()
    except ValueError:
        t = ctx.clock.now()
    return rfc1123(t)


def _written(ctx, req: ApiRequest, doc: dict, status: int, url: str) -> Response:
    headers = {"DataServiceId": url, "Location": url}
    if doc.get("eTag"):
        headers["ETag"] = doc["eTag"]
        headers["Last-Modified"] = _rfc(ctx, doc)
    return Response(status_code=status, headers=headers)


def _accepted(ctx, req: ApiRequest, doc: dict | None = None, url: str | None = None) -> Response:
    headers = {}
    if url:
        headers["DataServiceId"] = url
    if doc and doc.get("eTag"):
        headers["ETag"] = doc["eTag"]
        headers["Last-Modified"] = _rfc(ctx, doc)
    return Response(status_code=202, headers=headers)


def _list(ctx, req: ApiRequest, items: list[dict], nxt: str | None, what: str) -> Response:
    body = {"odata.metadata": _meta(ctx, req, what), "value": items}
    if nxt is not None:
        params = {k: v for k, v in req.query.items() if k.lower() not in ("api-version", "$skiptoken")}
        params["$skiptoken"] = nxt
        body["odata.nextLink"] = f"{ctx.config.base_url}{req.path}?{urlencode(params)}"
    return json_response(body)


def _q(req: ApiRequest):
    return dict(flt=req.q("$filter"), select=req.q("$select"), maxresults=req.q("maxresults"),
                skip=req.q("$skiptoken"))


# -- account -------------------------------------------------------------------------------------------

def list_supported_images(ctx, req: ApiRequest) -> Response:
    get_account(ctx, req.account)
    items = supported_images.list_filtered(req.q("$filter"), ctx)
    limit = int(req.q("maxresults") or 1000)
    skip = int(req.q("$skiptoken") or 0)
    page = items[skip:skip + limit]
    nxt = str(skip + limit) if skip + limit < len(items) else None
    return _list(ctx, req, page, nxt, "supportedimages")


def list_node_counts(ctx, req: ApiRequest) -> Response:
    items, nxt = pools.node_counts(ctx, req.account, req.q("$filter"), req.q("maxresults"), req.q("$skiptoken"))
    return _list(ctx, req, items, nxt, "poolnodecounts")


# -- pools ---------------------------------------------------------------------------------------------

def pool_add(ctx, req: ApiRequest) -> Response:
    pool = pools.add_pool(ctx, req.account, req.body, req.auth_scheme)
    return _written(ctx, req, pool, 201, pool["url"])


def pool_list(ctx, req: ApiRequest) -> Response:
    items, nxt = pools.list_pools(ctx, req.account, **_q(req))
    return _list(ctx, req, items, nxt, "pools")


def pool_get(ctx, req: ApiRequest) -> Response:
    pool = pools.get_pool(ctx, req.account, req.path_params["pool_id"], req.auth_scheme)
    from ..backends.batch_common import apply_select, check_if_match

    if req.headers.get("if-none-match") and req.headers["if-none-match"].strip('"') == pool["eTag"]:
        return Response(status_code=304, headers={"ETag": pool["eTag"]})
    if req.headers.get("if-match"):
        check_if_match(req.headers, pool["eTag"])
    return _entity(ctx, req, apply_select(pool, req.q("$select")), "pools/@Element")


def pool_exists(ctx, req: ApiRequest) -> Response:
    found = pools.pool_exists(ctx, req.account, req.path_params["pool_id"], req.auth_scheme)
    return Response(status_code=200 if found else 404)


def pool_delete(ctx, req: ApiRequest) -> Response:
    pools.delete_pool(ctx, req.account, req.path_params["pool_id"], req.auth_scheme, req.headers)
    return _accepted(ctx, req)


def pool_patch(ctx, req: ApiRequest) -> Response:
    pool = pools.patch_pool(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme, req.headers)
    return _written(ctx, req, pool, 200, pool["url"])


def pool_update_properties(ctx, req: ApiRequest) -> Response:
    pool = pools.replace_properties(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme,
                                   req.headers)
    return _written(ctx, req, pool, 204, pool["url"])


def pool_resize(ctx, req: ApiRequest) -> Response:
    pool = pools.resize_pool(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme, req.headers)
    return _accepted(ctx, req, pool, pool["url"])


def pool_stop_resize(ctx, req: ApiRequest) -> Response:
    pool = pools.stop_resize(ctx, req.account, req.path_params["pool_id"], req.auth_scheme, req.headers)
    return _accepted(ctx, req, pool, pool["url"])


def pool_remove_nodes(ctx, req: ApiRequest) -> Response:
    pool = pools.remove_nodes(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme, req.headers)
    return _accepted(ctx, req, pool, pool["url"])


def pool_enable_auto_scale(ctx, req: ApiRequest) -> Response:
    pool = pools.enable_auto_scale(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme,
                                   req.headers)
    return _written(ctx, req, pool, 200, pool["url"])


def pool_disable_auto_scale(ctx, req: ApiRequest) -> Response:
    pool = pools.disable_auto_scale(ctx, req.account, req.path_params["pool_id"], req.auth_scheme, req.headers)
    return _written(ctx, req, pool, 200, pool["url"])


def pool_evaluate_auto_scale(ctx, req: ApiRequest) -> Response:
    run = pools.evaluate_auto_scale(ctx, req.account, req.path_params["pool_id"], req.body, req.auth_scheme)
    return json_response({"odata.metadata": _meta(ctx, req, "Microsoft.Azure.Batch.Protocol.Entities.AutoScaleRun"),
                          **run})


# -- nodes ---------------------------------------------------------------------------------------------

def node_list(ctx, req: ApiRequest) -> Response:
    items, nxt = pools.list_nodes(ctx, req.account, req.path_params["pool_id"], auth_scheme=req.auth_scheme,
                                  **_q(req))
    return _list(ctx, req, items, nxt, "nodes")


def node_get(ctx, req: ApiRequest) -> Response:
    node = pools.get_node(ctx, req.account, req.path_params["pool_id"], req.path_params["node_id"], req.auth_scheme)
    from ..backends.batch_common import apply_select

    return _entity(ctx, req, apply_select(node, req.q("$select")), "nodes/@Element")


def node_reboot(ctx, req: ApiRequest) -> Response:
    pools.reboot_node(ctx, req.account, req.path_params["pool_id"], req.path_params["node_id"], req.body,
                      req.auth_scheme)
    return _accepted(ctx, req, url=f"{_ep(ctx, req)}/pools/{req.path_params['pool_id']}/nodes/"
                                   f"{req.path_params['node_id']}")


# -- jobs ----------------------------------------------------------------------------------------------

def job_add(ctx, req: ApiRequest) -> Response:
    job = jobs.add_job(ctx, req.account, req.body, req.auth_scheme)
    return _written(ctx, req, job, 201, job["url"])


def job_list(ctx, req: ApiRequest) -> Response:
    items, nxt = jobs.list_jobs(ctx, req.account, **_q(req))
    return _list(ctx, req, items, nxt, "jobs")


def job_list_from_schedule(ctx, req: ApiRequest) -> Response:
    items, nxt = jobs.list_jobs(ctx, req.account, schedule=req.path_params["schedule_id"], **_q(req))
    return _list(ctx, req, items, nxt, "jobs")


def job_get(ctx, req: ApiRequest) -> Response:
    from ..backends.batch_common import apply_select

    job = jobs.get_job(ctx, req.account, req.path_params["job_id"], req.auth_scheme)
    return _entity(ctx, req, apply_select(job, req.q("$select")), "jobs/@Element")


def job_delete(ctx, req: ApiRequest) -> Response:
    jobs.delete_job(ctx, req.account, req.path_params["job_id"], req.auth_scheme)
    return _accepted(ctx, req)


def job_terminate(ctx, req: ApiRequest) -> Response:
    jobs.terminate_job(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme)
    job = jobs.get_job(ctx, req.account, req.path_params["job_id"], req.auth_scheme)
    return _accepted(ctx, req, job, job["url"])


def job_patch(ctx, req: ApiRequest) -> Response:
    job = jobs.update_job(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme, req.headers)
    return _written(ctx, req, job, 200, job["url"])


def job_replace(ctx, req: ApiRequest) -> Response:
    job = jobs.update_job(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme, req.headers,
                          replace=True)
    return _written(ctx, req, job, 200, job["url"])


def job_disable(ctx, req: ApiRequest) -> Response:
    job = jobs.disable_job(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme, req.headers)
    return _accepted(ctx, req, job, job["url"])


def job_enable(ctx, req: ApiRequest) -> Response:
    job = jobs.enable_job(ctx, req.account, req.path_params["job_id"], req.auth_scheme, req.headers)
    return _accepted(ctx, req, job, job["url"])


def job_task_counts(ctx, req: ApiRequest) -> Response:
    counts = jobs.task_counts(ctx, req.account, req.path_params["job_id"], req.auth_scheme)
    return json_response({"odata.metadata": _meta(ctx, req, "taskcounts/@Element"), **counts})


# -- job schedules -----------------------------------------------------------------------------------

def schedule_add(ctx, req: ApiRequest) -> Response:
    doc = jobs.add_schedule(ctx, req.account, req.body, req.auth_scheme)
    return _written(ctx, req, doc, 201, doc["url"])


def schedule_list(ctx, req: ApiRequest) -> Response:
    items, nxt = jobs.list_schedules(ctx, req.account, **_q(req))
    return _list(ctx, req, items, nxt, "jobschedules")


def schedule_get(ctx, req: ApiRequest) -> Response:
    from ..backends.batch_common import apply_select

    doc = jobs.get_schedule(ctx, req.account, req.path_params["schedule_id"], req.auth_scheme)
    return _entity(ctx, req, apply_select(doc, req.q("$select")), "jobschedules/@Element")


def schedule_exists(ctx, req: ApiRequest) -> Response:
    return Response(status_code=200 if jobs.schedule_exists(ctx, req.account, req.path_params["schedule_id"]) else 404)


def schedule_patch(ctx, req: ApiRequest) -> Response:
    doc = jobs.update_schedule(ctx, req.account, req.path_params["schedule_id"], req.body, req.auth_scheme)
    return _written(ctx, req, doc, 200, doc["url"])


def schedule_replace(ctx, req: ApiRequest) -> Response:
    doc = jobs.update_schedule(ctx, req.account, req.path_params["schedule_id"], req.body, req.auth_scheme,
                               replace=True)
    return _written(ctx, req, doc, 200, doc["url"])


def schedule_delete(ctx, req: ApiRequest) -> Response:
    jobs.delete_schedule(ctx, req.account, req.path_params["schedule_id"], req.auth_scheme)
    return _accepted(ctx, req)


def schedule_terminate(ctx, req: ApiRequest) -> Response:
    jobs.terminate_schedule(ctx, req.account, req.path_params["schedule_id"], req.auth_scheme)
    return _accepted(ctx, req)


# -- tasks ---------------------------------------------------------------------------------------------

def task_add(ctx, req: ApiRequest) -> Response:
    task = jobs.add_task(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme)
    return _written(ctx, req, task, 201, task["url"])


def task_add_collection(ctx, req: ApiRequest) -> Response:
    results = jobs.add_task_collection(ctx, req.account, req.path_params["job_id"], req.body, req.auth_scheme)
    return json_response({"odata.metadata": _meta(ctx, req, "taskaddresult"), "value": results})


def task_list(ctx, req: ApiRequest) -> Response:
    items, nxt = jobs.list_tasks(ctx, req.account, req.path_params["job_id"], auth_scheme=req.auth_scheme, **_q(req))
    return _list(ctx, req, items, nxt, "tasks")


def task_get(ctx, req: ApiRequest) -> Response:
    from ..backends.batch_common import apply_select

    task = jobs.get_task(ctx, req.account, req.path_params["job_id"], req.path_params["task_id"], req.auth_scheme)
    return _entity(ctx, req, apply_select(task, req.q("$select")), "tasks/@Element")


def _file_headers(ctx, req: ApiRequest, entry: dict, length: int) -> dict:
    from datetime import datetime

    def rfc(value: str) -> str:
        return rfc1123(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())

    props = entry["properties"]
    return {"Content-Length": str(length), "Content-Type": "application/octet-stream",
            "ocp-batch-file-isdirectory": "false", "ocp-batch-file-url": entry["url"],
            "ocp-batch-file-mode": props["fileMode"], "ocp-creation-time": rfc(props["creationTime"]),
            "Last-Modified": rfc(props["lastModified"])}


def _byte_range(value: str | None, size: int) -> tuple[int, int]:
    """``ocp-range: bytes=start-end`` (end inclusive, optional) as a slice; absent or unreadable: the whole file."""
    import re

    m = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", value or "")
    if not m:
        return 0, size
    start = min(int(m.group(1)), size)
    end = size if not m.group(2) else min(int(m.group(2)) + 1, size)
    return start, max(start, end)


def task_file_get(ctx, req: ApiRequest) -> Response:
    p = req.path_params
    data, entry = jobs.get_task_file(ctx, req.account, p["job_id"], p["task_id"], p["file_path"], req.auth_scheme)
    if req.method == "HEAD":
        return Response(status_code=200, headers=_file_headers(ctx, req, entry, len(data)))
    start, end = _byte_range(req.headers.get("ocp-range"), len(data))
    # 200 with the range's bytes (the spec and azure-batch 15 know no 206 here)
    return Response(content=data[start:end], status_code=200, headers=_file_headers(ctx, req, entry, end - start))


def task_file_list(ctx, req: ApiRequest) -> Response:
    p = req.path_params
    return _list(ctx, req, jobs.list_task_files(ctx, req.account, p["job_id"], p["task_id"], req.auth_scheme), None,
                 "files")


ROUTES = [
    op_route(f"{A}/supportedimages", {"GET": ("Account_ListSupportedImages", list_supported_images)}),
    op_route(f"{A}/nodecounts", {"GET": ("Account_ListPoolNodeCounts", list_node_counts)}),
    op_route(f"{A}/pools", {"POST": ("Pool_Add", pool_add), "GET": ("Pool_List", pool_list)}),
    op_route(f"{A}/pools/{{pool_id}}", {
        "GET": ("Pool_Get", pool_get), "HEAD": ("Pool_Exists", pool_exists),
        "DELETE": ("Pool_Delete", pool_delete), "PATCH": ("Pool_Patch", pool_patch),
    }),
    op_route(f"{A}/pools/{{pool_id}}/updateproperties", {"POST": ("Pool_UpdateProperties", pool_update_properties)}),
    op_route(f"{A}/pools/{{pool_id}}/resize", {"POST": ("Pool_Resize", pool_resize)}),
    op_route(f"{A}/pools/{{pool_id}}/stopresize", {"POST": ("Pool_StopResize", pool_stop_resize)}),
    op_route(f"{A}/pools/{{pool_id}}/removenodes", {"POST": ("Pool_RemoveNodes", pool_remove_nodes)}),
    op_route(f"{A}/pools/{{pool_id}}/enableautoscale", {"POST": ("Pool_EnableAutoScale", pool_enable_auto_scale)}),
    op_route(f"{A}/pools/{{pool_id}}/disableautoscale",
             {"POST": ("Pool_DisableAutoScale", pool_disable_auto_scale)}),
    op_route(f"{A}/pools/{{pool_id}}/evaluateautoscale",
             {"POST": ("Pool_EvaluateAutoScale", pool_evaluate_auto_scale)}),
    op_route(f"{A}/pools/{{pool_id}}/nodes", {"GET": ("ComputeNode_List", node_list)}),
    op_route(f"{A}/pools/{{pool_id}}/nodes/{{node_id}}", {"GET": ("ComputeNode_Get", node_get)}),
    op_route(f"{A}/pools/{{pool_id}}/nodes/{{node_id}}/reboot", {"POST": ("ComputeNode_Reboot", node_reboot)}),
    op_route(f"{A}/jobs", {"POST": ("Job_Add", job_add), "GET": ("Job_List", job_list)}),
    op_route(f"{A}/jobs/{{job_id}}", {"GET": ("Job_Get", job_get), "DELETE": ("Job_Delete", job_delete),
                                     "PATCH": ("Job_Patch", job_patch), "PUT": ("Job_Update", job_replace)}),
    op_route(f"{A}/jobs/{{job_id}}/disable", {"POST": ("Job_Disable", job_disable)}),
    op_route(f"{A}/jobs/{{job_id}}/enable", {"POST": ("Job_Enable", job_enable)}),
    op_route(f"{A}/jobs/{{job_id}}/terminate", {"POST": ("Job_Terminate", job_terminate)}),
    op_route(f"{A}/jobs/{{job_id}}/taskcounts", {"GET": ("Job_GetTaskCounts", job_task_counts)}),
    op_route(f"{A}/jobs/{{job_id}}/tasks", {"POST": ("Task_Add", task_add), "GET": ("Task_List", task_list)}),
    op_route(f"{A}/jobs/{{job_id}}/addtaskcollection", {"POST": ("Task_AddCollection", task_add_collection)}),
    op_route(f"{A}/jobs/{{job_id}}/tasks/{{task_id}}", {"GET": ("Task_Get", task_get)}),
    op_route(f"{A}/jobs/{{job_id}}/tasks/{{task_id}}/files", {"GET": ("File_ListFromTask", task_file_list)}),
    op_route(f"{A}/jobs/{{job_id}}/tasks/{{task_id}}/files/{{file_path:path}}", {
        "GET": ("File_GetFromTask", task_file_get), "HEAD": ("File_GetPropertiesFromTask", task_file_get)}),
    op_route(f"{A}/jobschedules", {"POST": ("JobSchedule_Add", schedule_add), "GET": ("JobSchedule_List", schedule_list)}),
    op_route(f"{A}/jobschedules/{{schedule_id}}", {
        "GET": ("JobSchedule_Get", schedule_get), "HEAD": ("JobSchedule_Exists", schedule_exists),
        "PATCH": ("JobSchedule_Patch", schedule_patch), "PUT": ("JobSchedule_Update", schedule_replace),
        "DELETE": ("JobSchedule_Delete", schedule_delete),
    }),
    op_route(f"{A}/jobschedules/{{schedule_id}}/terminate", {"POST": ("JobSchedule_Terminate", schedule_terminate)}),
    op_route(f"{A}/jobschedules/{{schedule_id}}/jobs", {"GET": ("Job_ListFromJobSchedule", job_list_from_schedule)}),
]


# -- control API: /_control/batch/... ----------------------------------------------------------------

_QUOTA_FIELDS = ("dedicatedCoreQuota", "lowPriorityCoreQuota", "poolQuota", "activeJobAndJobScheduleQuota",
                 "dedicatedCoreQuotaPerVMFamilyEnforced", "dedicatedCoreQuotaPerVMFamily")


async def _control_quotas(request: Request):
    """PUT {"account", <any of the account's quota properties>}: what a quota increase request does."""
    ctx = request.app.state.ctx
    body = await request.json()
    with ctx.lock:
        try:
            acct = get_account(ctx, body.get("account") or "")
        except Exception as e:  # BatchError
            return JSONResponse({"error": str(e)}, status_code=404)
        props = acct.setdefault("properties", {})
        for f in _QUOTA_FIELDS:
            if f in body:
                props[f] = body[f]
        ctx.store.put("batch_account", acct["id"], acct)
    return JSONResponse({f: props.get(f) for f in _QUOTA_FIELDS})


async def _control_supported_images(request: Request):
    """PUT {"node_agent_sku_id", "batch_support_end_of_life": ISO 8601 | null}: move a node agent's retirement date
    (what GET /supportedimages reports as batchSupportEndOfLife for every image of that agent)."""
    ctx = request.app.state.ctx
    body = await request.json()
    with ctx.lock:
        try:
            overrides = supported_images.set_end_of_life(ctx, body["node_agent_sku_id"],
                                                         body.get("batch_support_end_of_life"))
        except (KeyError, ValueError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
    return JSONResponse({"batchSupportEndOfLife": overrides})


CONTROL_ROUTES = [Route("/_control/batch/quotas", _control_quotas, methods=["PUT"]),
                  Route("/_control/batch/supported_images", _control_supported_images, methods=["PUT"])]
