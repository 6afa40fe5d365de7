"""Compute nodes of a Batch pool, derived (not stored) so pools of thousands of nodes stay cheap.

A pool's ``_sim["segments"]`` records each allocation episode: the node indices it adds (``first`` ..
``first + granted - 1``), when it started, how long allocating ``n`` nodes takes, and which share of
them a fault or the image dooms. Node *i* of a segment appears (state ``creating``) at a deterministic
fraction of the allocation window, then walks creating -> starting -> [waitingforstarttask] -> idle with
per-index phase lengths from ``core/timings.node_boot``. Only per-node overrides are stored
(``_sim["nodes"][str(index)]``: reboot, removal) plus task occupancy (``_sim["busy"]``).

Spot/low-priority preemption (fault ``node_preempted``, recorded on a low-priority segment as
``seg["preempt"]``): the chosen nodes turn ``preempted`` ``PREEMPT_AFTER`` seconds after they are up (at once),
and stay so until ``restore_after`` seconds later (the fault's; default: until the end). As in Batch, a
preempted node still counts in ``currentLowPriorityNodes`` and shows under ``lowPriority`` in
``/nodecounts`` (learn.microsoft.com: BatchPool.CurrentLowPriorityNodes "Spot/Low-priority Compute Nodes
which have been preempted are included in this count"; BatchNodeState.Preempted "Tasks which were running
on the Compute Node when it was preempted will be rescheduled"). Dedicated nodes are never preempted.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ..core import timings
from .batch_common import endpoint, iso

REBOOT_DOWN = 60.0       # rebooting
REBOOT_UP = 45.0         # starting again after the reboot
LEAVE = 60.0             # leavingpool before a removed node is gone
APPEAR_FLOOR = 0.25      # first nodes show up after this share of the allocation window
PREEMPT_AFTER = 0.0      # a doomed Spot node is preempted as soon as it is up (a guess: Azure evicts at any time)

NODE_STATES = ["creating", "idle", "offline", "preempted", "rebooting", "reimaging", "running", "starting",
               "startTaskFailed", "leavingPool", "unknown", "unusable", "waitingForStartTask", "deallocated",
               "deallocating", "upgradingOS"]
_COUNT_KEY = {s.lower(): s for s in NODE_STATES}

_ID_RE = re.compile(r"^tvmps_([0-9a-f]{56})([0-9a-f]{8})_([dp])$")


def node_id(pool_id: str, index: int, dedicated: bool) -> str:
    h = hashlib.sha256(f"{pool_id.lower()}|{index}".encode()).hexdigest()[:56]
    return f"tvmps_{h}{index:08x}_{'d' if dedicated else 'p'}"


def parse_node_id(pool_id: str, nid: str) -> int | None:
    m = _ID_RE.match(nid or "")
    if not m:
        return None
    index = int(m.group(2), 16)
    if node_id(pool_id, index, m.group(3) == "d") != nid:
        return None
    return index


def _selected(j: int, k: int, g: int) -> bool:
    """Exactly k of g positions, spread evenly (deterministic)."""
    if k <= 0 or g <= 0:
        return False
    if k >= g:
        return True
    return math.floor((j + 1) * k / g) > math.floor(j * k / g)


def appear_time(seg: dict, j: int) -> float:
    n = max(1, int(seg["n"]))
    return seg["start"] + seg["dur"] * (APPEAR_FLOOR + (1 - APPEAR_FLOOR) * (j + 1) / n)


def appeared_by(seg: dict, t: float) -> int:
    """How many of the segment's granted nodes have appeared at time t."""
    g = int(seg["granted"])
    if g <= 0 or t < seg["start"]:
        return 0
    n = max(1, int(seg["n"]))
    if seg["dur"] <= 0:
        return g
    x = ((t - seg["start"]) / seg["dur"] - APPEAR_FLOOR) / (1 - APPEAR_FLOOR)
    k = math.floor(x * n + 1e-9)
    k = max(0, min(g, k))
    # guard float edges
    while k < g and appear_time(seg, k) <= t:
        k += 1
    while k > 0 and appear_time(seg, k - 1) > t:
        k -= 1
    return k


@dataclass
class NodeView:
    index: int
    seg: dict
    j: int
    state: str
    since: float
    appear: float
    boot: float            # lastBootTime
    start_task: dict | None  # startTaskInfo (already rendered), None when no start task
    errors: list | None
    running_since: float | None = None


def _start_task_info(ctx, seg: dict, t: float, st_start: float, st_len: float, failed: bool, retries: int) -> dict:
    if t < st_start + st_len:
        return {"state": "running", "startTime": iso(ctx, st_start), "retryCount": 0}
    info = {"state": "completed", "startTime": iso(ctx, st_start), "endTime": iso(ctx, st_start + st_len),
            "exitCode": 0, "retryCount": retries, "result": "success"}
    if failed:
        stf = seg.get("stf") or {}
        code = int(stf.get("exit_code", 1))
        info.update(exitCode=code, result="failure", failureInfo={
            "category": "usererror",
            "code": stf.get("code") or "FailureExitCode",
            "message": stf.get("message") or "The task exited with an exit code representing a failure",
            "details": [{"name": "Message", "value": "The task exited with an exit code representing a failure"}],
        })
    return info


def node_view(ctx, pool: dict, seg: dict, j: int, t: float) -> NodeView | None:
    """State of node j of a segment at time t; None when it does not exist (yet, or any more)."""
    sim = pool["_sim"]
    index = seg["first"] + j
    if j >= int(seg["granted"]):
        return None
    appear = appear_time(seg, j)
    if t < appear:
        return None
    ov = (sim.get("nodes") or {}).get(str(index)) or {}
    leave = ov.get("leave")
    if leave is not None:
        if t >= leave[1]:
            return None
    deleting = sim.get("deleting")
    c, s, st = timings.node_boot(index)
    g = int(seg["granted"])
    doomed_image = seg.get("all_unusable")
    unusable_fault = seg.get("unusable") and _selected(g - 1 - j, int(seg["unusable"]["k"]), g)
    stf_fault = seg.get("stf") and _selected(j, int(seg["stf"]["k"]), g)
    has_st = bool(seg.get("start_task"))
    wait = bool(seg.get("wait"))
    retries = int(seg.get("st_retries", 0))

    reboot = ov.get("reboot")
    if reboot is not None and t >= reboot:
        base = reboot + REBOOT_DOWN
        boot = base
        healed = True
        if t < base:
            state, since = "rebooting", reboot
            return _finish(ctx, pool, seg, j, index, state, since, appear, reboot, None, None, leave, deleting, t)
        ready = base + REBOOT_UP
        if t < ready:
            return _finish(ctx, pool, seg, j, index, "starting", base, appear, boot, None, None, leave, deleting, t)
    else:
        healed = False
        boot = appear + c
        if t < appear + c:
            return _finish(ctx, pool, seg, j, index, "creating", appear, appear, appear, None, None, leave, deleting, t)
        ready = appear + c + s
        if t < ready:
            return _finish(ctx, pool, seg, j, index, "starting", appear + c, appear, boot, None, None, leave, deleting, t)

    # agent is up; a reboot heals a fault unless it is sticky (a broken start task fails again after it)
    if doomed_image or (unusable_fault and (not healed or seg["unusable"].get("sticky"))):
        src = doomed_image or seg["unusable"]
        errors = [{"code": src.get("code") or "NodeUnusable", "message": src.get("message") or
                   "The node is unusable: the Batch node agent could not start on it.",
                   "errorDetails": [{"name": k, "value": str(v)} for k, v in (src.get("details") or {}).items()]}]
        return _finish(ctx, pool, seg, j, index, "unusable", ready, appear, boot, None, errors, leave, deleting, t)
    failed = bool(stf_fault) and (not healed or bool(seg["stf"].get("sticky")))
    st_info = _start_task_info(ctx, seg, t, ready, st, failed, retries) if has_st else None
    if has_st and wait:
        if t < ready + st:
            return _finish(ctx, pool, seg, j, index, "waitingforstarttask", ready, appear, boot, st_info, None,
                           leave, deleting, t)
        if failed:
            return _finish(ctx, pool, seg, j, index, "starttaskfailed", ready + st, appear, boot, st_info, None,
                           leave, deleting, t)
        idle_since = ready + st
    else:
        idle_since = ready
    preempt = seg.get("preempt")
    if preempt and not seg["dedicated"] and _selected(j, int(preempt["k"]), g):
        at = idle_since + PREEMPT_AFTER
        back = preempt.get("restore_after")
        if at <= t and (back is None or t < at + float(back)):
            return _finish(ctx, pool, seg, j, index, "preempted", at, appear, boot, st_info, None, leave, deleting, t)
    # running a task?
    for iv in (sim.get("busy") or {}).get(str(index), []):
        s0, e0 = iv[0], iv[1]
        if s0 <= t < e0:
            v = _finish(ctx, pool, seg, j, index, "running", s0, appear, boot, st_info, None, leave, deleting, t)
            if v is not None:
                v.running_since = s0
            return v
        if e0 <= t and e0 > idle_since:
            idle_since = e0
    return _finish(ctx, pool, seg, j, index, "idle", idle_since, appear, boot, st_info, None, leave, deleting, t)


def _finish(ctx, pool, seg, j, index, state, since, appear, boot, st_info, errors, leave, deleting, t) -> NodeView:
    if leave is not None and t >= leave[0]:
        state, since = "leavingpool", leave[0]
    elif deleting is not None and t >= deleting:
        state, since = "leavingpool", deleting
    return NodeView(index=index, seg=seg, j=j, state=state, since=since, appear=appear, boot=boot,
                    start_task=st_info, errors=errors)


def iter_nodes(ctx, pool: dict, t: float | None = None) -> Iterator[NodeView]:
    """Every node of the pool that exists at t, in index order."""
    t = ctx.clock.now() if t is None else t
    for seg in pool["_sim"].get("segments", []):
        upto = appeared_by(seg, t)
        for j in range(upto):
            v = node_view(ctx, pool, seg, j, t)
            if v is not None:
                yield v


def find_node(ctx, pool: dict, nid: str, t: float | None = None) -> NodeView | None:
    t = ctx.clock.now() if t is None else t
    index = parse_node_id(pool["id"], nid)
    if index is None:
        return None
    for seg in pool["_sim"].get("segments", []):
        if seg["first"] <= index < seg["first"] + int(seg["granted"]):
            v = node_view(ctx, pool, seg, index - seg["first"], t)
            if v is not None and node_id(pool["id"], index, seg["dedicated"]) == nid:
                return v
    return None


def count_current(ctx, pool: dict, t: float, dedicated: bool) -> int:
    """currentDedicatedNodes / currentLowPriorityNodes without rendering nodes."""
    total = 0
    gone = 0
    nodes = pool["_sim"].get("nodes") or {}
    for seg in pool["_sim"].get("segments", []):
        if bool(seg["dedicated"]) != dedicated:
            continue
        total += appeared_by(seg, t)
    for key, ov in nodes.items():
        leave = ov.get("leave")
        if leave is not None and t >= leave[1] and bool(ov.get("dedicated", True)) == dedicated:
            gone += 1
    return max(0, total - gone)


def committed(pool: dict, dedicated: bool) -> int:
    """Nodes the pool holds or is allocating (for core quotas): granted minus removed."""
    sim = pool["_sim"]
    n = sum(int(s["granted"]) for s in sim.get("segments", []) if bool(s["dedicated"]) == dedicated)
    n -= sum(1 for ov in (sim.get("nodes") or {}).values()
             if ov.get("leave") is not None and bool(ov.get("dedicated", True)) == dedicated)
    return max(0, n)


def ip_address(index: int) -> str:
    return f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{(index & 255)}" if index >= 4 else f"10.0.0.{index + 4}"


def render(ctx, account: str, pool: dict, v: NodeView, t: float) -> dict[str, Any]:
    dedicated = bool(v.seg["dedicated"])
    nid = node_id(pool["id"], v.index, dedicated)
    sim = pool["_sim"]
    busy = (sim.get("busy") or {}).get(str(v.index), [])
    done = [iv for iv in busy if iv[1] <= t]
    ok = [iv for iv in done if len(iv) < 3 or iv[2] == 0]
    running = [iv for iv in busy if iv[0] <= t < iv[1]]
    body: dict[str, Any] = {
        "id": nid,
        "url": f"{endpoint(ctx, account)}/pools/{pool['id']}/nodes/{nid}",
        "state": v.state,
        "schedulingState": "enabled",
        "stateTransitionTime": iso(ctx, v.since),
        "lastBootTime": iso(ctx, v.boot),
        "allocationTime": iso(ctx, v.appear),
        "ipAddress": ip_address(v.index + 4),
        "affinityId": f"TVM:{nid}",
        "vmSize": pool.get("vmSize"),
        "totalTasksRun": len(done) + len(running),
        "runningTasksCount": len(running),
        "runningTaskSlotsCount": len(running),
        "totalTasksSucceeded": len(ok),
        "isDedicated": dedicated,
        "endpointConfiguration": {"inboundEndpoints": [{
            "name": ("SSHRule.0" if (sim.get("image") or {}).get("os_type", "linux") == "linux" else "RDPRule.0"),
            "protocol": "tcp", "publicIPAddress": "127.0.0.1",
            "publicFQDN": f"dns{hashlib.sha256(pool['id'].lower().encode()).hexdigest()[:12]}-"
                          f"{pool['id'].lower()}.{(sim.get('location') or 'local')}.cloudapp.azure.com",
            "frontendPort": 50000 + (v.index % 15000),
            "backendPort": 22 if (sim.get("image") or {}).get("os_type", "linux") == "linux" else 3389}]},
        "nodeAgentInfo": {"version": "1.12.12", "lastUpdateTime": iso(ctx, v.boot)},
    }
    if v.seg.get("start_task_body"):
        body["startTask"] = v.seg["start_task_body"]
    if v.start_task is not None:
        body["startTaskInfo"] = v.start_task
    if v.errors:
        body["errors"] = v.errors
    img = dict(((pool.get("virtualMachineConfiguration") or {}).get("imageReference") or {}))
    exact = v.seg.get("exact_version") or (sim.get("image") or {}).get("exact_version")
    if exact:
        img["exactVersion"] = exact
    if img:
        body["virtualMachineInfo"] = {"imageReference": img}
    if running:
        body["recentTasks"] = [{"taskUrl": iv[3] if len(iv) > 3 else None, "taskState": "running"}
                               for iv in running if len(iv) > 3]
    return body


def empty_counts() -> dict[str, int]:
    d = {s: 0 for s in NODE_STATES}
    d["total"] = 0
    return d


def counts(ctx, pool: dict, t: float | None = None) -> dict[str, dict[str, int]]:
    t = ctx.clock.now() if t is None else t
    out = {"dedicated": empty_counts(), "lowPriority": empty_counts()}
    for v in iter_nodes(ctx, pool, t):
        bucket = out["dedicated" if v.seg["dedicated"] else "lowPriority"]
        bucket[_COUNT_KEY.get(v.state, "unknown")] += 1
        bucket["total"] += 1
    return out


def preempted_at(pool: dict, index: int) -> float | None:
    """When node `index` is (or will be) preempted, from its segment's fault record; None if never."""
    for seg in pool["_sim"].get("segments", []):
        if seg["first"] <= index < seg["first"] + int(seg["granted"]):
            preempt = seg.get("preempt")
            j = index - seg["first"]
            if not preempt or seg["dedicated"] or not _selected(j, int(preempt["k"]), int(seg["granted"])):
                return None
            appear = appear_time(seg, j)
            c, s, st = timings.node_boot(index)
            ready = appear + c + s + (st if seg.get("start_task") and seg.get("wait") else 0.0)
            return ready + PREEMPT_AFTER
    return None


def interrupted_at(pool: dict | None, index: int, task_url: str, start: float, end: float) -> tuple[float, str] | None:
    """When, and how, a task running on node `index` from `start` to `end` lost its node: (time, "requeue" or
    "terminate"), or None if it did not.

    Batch requeues (or terminates) a running task when its node goes away under it: the pool is deleted
    ("any Tasks running on existing Compute Nodes are terminated and requeued", Pool - Delete in the Batch
    REST reference), the node is removed or the pool shrunk (nodeDeallocationOption: requeue by default,
    "terminate" completes the task with a failure; taskcompletion/retaineddata let it finish, so they never
    interrupt it), rebooted or reimaged (nodeRebootOption, requeue by default), or preempted
    (BatchNodeState.Preempted). Derived from the pool's persisted records, so it holds whenever the task is read.
    """
    if pool is None:
        return start, "requeue"  # the pool is gone: its deletion interrupted the task (the exact time is lost)
    sim = pool["_sim"]
    marks: list[tuple[float, str]] = []
    if sim.get("deleting") is not None:
        marks.append((sim["deleting"], "requeue"))
    ov = (sim.get("nodes") or {}).get(str(index)) or {}
    if ov.get("leave") is not None:
        marks.append((ov["leave"][0], "terminate" if ov.get("deallocation") == "terminate" else "requeue"))
    for iv in (sim.get("busy") or {}).get(str(index), []):
        if len(iv) > 3 and iv[3] == task_url and iv[1] < end:
            marks.append((iv[1], "requeue"))  # a reboot ended the occupancy early
    p = preempted_at(pool, index)
    if p is not None:
        marks.append((p, "requeue"))
    hits = [m for m in marks if start <= m[0] < end]
    return min(hits) if hits else None


def running_until(pool: dict, index: int, t: float) -> float | None:
    """When the task node `index` runs at time t ends (None: the node runs no task at t)."""
    for iv in (pool["_sim"].get("busy") or {}).get(str(index), []):
        if iv[0] <= t < iv[1]:
            return iv[1]
    return None
