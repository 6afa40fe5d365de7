"""Batch pools (data plane): add/get/list/delete/patch/update properties/resize/stop resize/remove
nodes, pool node counts, compute nodes (list/get/reboot). Documents of kind ``batch_pool``, key
``"{account}/{pool_id}"`` lower-cased (pool ids are case-insensitive for uniqueness).

Rules applied on add from ``virtualMachineImageId`` (what is decided synchronously vs. at allocation):

* image version missing / not accessible  -> 400 InvalidPropertyValue (virtualMachineImageId)
* definition Specialized                  -> 400 InvalidPropertyValue (virtualMachineImageId)
* nodeAgentSKUId unknown to the account   -> 400 InvalidPropertyValue (nodeAgentSKUId)
* agent SKU OS != image OS                -> 400 InvalidPropertyValue (nodeAgentSKUId)
* no replica in the account's region      -> 400 InvalidPropertyValue (virtualMachineImageId)
* replica in region not Completed yet     -> accepted; allocation fails: resizeErrors AllocationFailed, 0 nodes
* vmSize cannot boot the image's Hyper-V
  generation, or is not offered in the
  account's region (resource_skus table)  -> accepted; allocation fails: resizeErrors AllocationFailed, 0 nodes
                                             (backends/batch_hardware.py)
* base marketplace lineage not supported
  by the agent SKU                        -> accepted (Batch cannot see a gallery image's lineage); every
                                             node ends ``unusable`` with a node error
* Shared Key auth                         -> 403 AuthenticationFailed (AuthenticationErrorDetail: SharedKey ...)
* securityProfile does not fit the image's
  definition SecurityType feature         -> 400 InvalidPropertyValue (securityProfile.securityType)

Allocation is simulated from the pool's ``_sim`` (see batch_nodes): quotas (pools per account,
dedicated / low-priority / per-VM-family cores), resizeTimeout, and faults ``resize_error``,
``start_task_failed``, ``node_unusable``.
"""
from __future__ import annotations

import math
import re
import threading
from typing import Any, Callable

from ..core import timings
from ..core.errors import (
    AutoScaleFormulaTooLong, AutoScalingFormulaSyntaxError, BatchError, EmptyMetadataKey, InternalError,
    InvalidPropertyValue, MissingRequiredProperty, NodeNotFound, OperationInvalidForCurrentState, PoolBeingDeleted,
    PoolBeingResized, PoolExists, PoolNotFound, PoolQuotaReached, TooManyEnableAutoScaleRequests, UnknownProperty,
)
from . import autoscale, batch_hardware, network
from . import batch_nodes as nodes
from .arm_common import T_GALLERY_IMAGE_VERSION, id_is
from . import supported_images
from .batch_common import (
    account_location, apply_select, check_id, check_if_match, compile_filter, endpoint, etag, format_duration,
    get_account, iso, max_results, parse_duration, quotas, refuse_shared_key,
    require_body, vm_size_info,
)

KIND = "batch_pool"
DEFAULT_RESIZE_TIMEOUT = 15 * 60.0
MIN_RESIZE_TIMEOUT = 5 * 60.0
GALLERY_ALLOC_PER_NODE = 0.45     # custom images allocate slower: ~15 min per 1000 nodes overall
STOP_RESIZE = 30.0
BLOCKED_ALLOCATION = 60.0
MAX_REMOVE = 100

# The pool create body: BatchPoolCreateOptions of the 2025-06-01 data plane (azure-batch 15.1 models/_models.py,
# azure-rest-api-specs specification/batch/Azure.Batch/models.tsp) is a closed model; any other top-level property
# is refused (errors.UnknownProperty). Stored as sent and returned by GET, except the ones add_pool normalises
# (id, resizeTimeout, the targets, the defaults below).
CREATE_PROPERTIES = ("id", "displayName", "vmSize", "virtualMachineConfiguration", "resizeTimeout",
                     "targetDedicatedNodes", "targetLowPriorityNodes", "enableAutoScale", "autoScaleFormula",
                     "autoScaleEvaluationInterval", "enableInterNodeCommunication", "networkConfiguration", "startTask",
                     "applicationPackageReferences", "taskSlotsPerNode", "taskSchedulingPolicy", "userAccounts",
                     "metadata", "mountConfiguration", "upgradePolicy")
# Properties of the previous api-version (2024-07-01.20.0 PoolAddParameter / PoolPatchParameter) that 2025-06-01
# dropped; ARM pools (Microsoft.Batch 2024-07-01) still carry resourceTags and targetNodeCommunicationMode. Kept so
# that an older client's body and an ARM pool round-trip (accepting them under 2025-06-01 is a leniency).
LEGACY_PROPERTIES = ("resourceTags", "targetNodeCommunicationMode", "certificateReferences")
# BatchPoolUpdateOptions (Pool_Patch, 2025-06-01): the properties a PATCH may carry; the docstrings say which of
# them "can be updated only when the pool is empty" (EMPTY_ONLY); the others may change at any time.
PATCH_PROPERTIES = ("displayName", "vmSize", "enableInterNodeCommunication", "startTask",
                    "applicationPackageReferences", "metadata", "virtualMachineConfiguration", "taskSlotsPerNode",
                    "taskSchedulingPolicy", "networkConfiguration", "userAccounts", "mountConfiguration",
                    "upgradePolicy")
EMPTY_ONLY = ("displayName", "vmSize", "enableInterNodeCommunication", "virtualMachineConfiguration",
              "taskSlotsPerNode", "taskSchedulingPolicy", "networkConfiguration", "userAccounts",
              "mountConfiguration", "upgradePolicy")
_CREATE_FIELDS = tuple(f for f in CREATE_PROPERTIES + LEGACY_PROPERTIES
                       if f not in ("id", "resizeTimeout", "targetDedicatedNodes", "targetLowPriorityNodes"))
DEFAULT_EVALUATION_INTERVAL = 15 * 60.0     # the spec: "The default value is 15 minutes"
MIN_EVALUATION_INTERVAL = 5 * 60.0          # "The minimum and maximum value are 5 minutes and 168 hours"
MAX_EVALUATION_INTERVAL = 168 * 3600.0
ENABLE_AUTOSCALE_SPACING = 30.0             # "You cannot call this API for the same Pool more than once every 30 s"
MAX_TASK_SLOTS = 256                        # "the smaller of 4 times the number of cores of the vmSize ... or 256"


def register(ctx) -> None:
    ctx.store.register_advancer(KIND, advance_pool)


def pool_key(account: str, pool_id: str) -> str:
    return f"{account}/{pool_id}".lower()


# -- reading ------------------------------------------------------------------------------------------

def advance_pool(ctx, pool: dict) -> dict | None:
    t = ctx.clock.now()
    sim = pool["_sim"]
    if sim.get("autoscale") and pool.get("state") == "active":
        _autoscale_tick(ctx, pool, t)
    ep = sim.get("episode")
    errors = None
    if ep is None:
        state, since = "steady", sim.get("created", t)
    elif t >= ep["end"]:
        state, since = "steady", ep["end"]
        errors = ep.get("errors") or None
    elif ep.get("stop_at") is not None and t >= ep["stop_at"]:
        state, since = "stopping", ep["stop_at"]
    else:
        state, since = "resizing", ep["start"]
    pool["allocationState"] = state
    pool["allocationStateTransitionTime"] = iso(ctx, since)
    if errors:
        pool["resizeErrors"] = errors
    else:
        pool.pop("resizeErrors", None)
    pool["currentDedicatedNodes"] = nodes.count_current(ctx, pool, t, True)
    pool["currentLowPriorityNodes"] = nodes.count_current(ctx, pool, t, False)
    return pool


def _load(ctx, account: str, pool_id: str) -> dict:
    get_account(ctx, account)
    pool = ctx.store.get(KIND, pool_key(account, pool_id))
    if pool is None:
        raise PoolNotFound("The specified pool does not exist.")
    return pool


def _load_for_change(ctx, account: str, pool_id: str, auth_scheme: str | None, headers: dict | None) -> dict:
    """The pool a write is about: it exists, the caller may touch it, it is not deleting, If-Match holds."""
    pool = _load(ctx, account, pool_id)
    _touch(ctx, pool, auth_scheme)
    _writable(pool)
    check_if_match(headers or {}, pool["eTag"])
    return pool


def _touch(ctx, pool: dict, auth_scheme: str | None) -> None:
    if (pool["_sim"].get("image") or {}).get("kind") == "gallery":
        refuse_shared_key(auth_scheme)


def _writable(pool: dict) -> None:
    if pool.get("state") == "deleting":
        raise PoolBeingDeleted("The specified pool has been marked for deletion and is being reclaimed.")


def _steady(pool: dict) -> None:
    if pool.get("allocationState") != "steady":
        raise PoolBeingResized("The specified pool is being resized.")


def get_pool(ctx, account: str, pool_id: str, auth_scheme: str | None = None, headers: dict | None = None) -> dict:
    pool = _load(ctx, account, pool_id)
    _touch(ctx, pool, auth_scheme)
    return pool


def pool_exists(ctx, account: str, pool_id: str, auth_scheme: str | None = None) -> bool:
    get_account(ctx, account)
    pool = ctx.store.get(KIND, pool_key(account, pool_id))
    if pool is None:
        return False
    _touch(ctx, pool, auth_scheme)
    return True


def list_pools(ctx, account: str, flt: str | None = None, select: str | None = None,
               maxresults: str | None = None, skip: str | None = None) -> tuple[list[dict], str | None]:
    get_account(ctx, account)
    pred = compile_filter(flt)
    limit = max_results(maxresults)
    items = [p for p in ctx.store.list(KIND, prefix=f"{account.lower()}/") if pred(p)]
    start = int(skip) if skip and skip.isdigit() else 0
    page = items[start:start + limit]
    nxt = str(start + limit) if start + limit < len(items) else None
    return [apply_select(p, select) for p in page], nxt


# -- image rules --------------------------------------------------------------------------------------

def _version_for_pool(ctx, image_id: str) -> dict | None:
    try:
        from .gallery import version_for_pool
    except ImportError as e:  # the ARM side is not there: say so instead of guessing
        raise InternalError(f"Stand-in: gallery backend unavailable ({e}).")
    return version_for_pool(ctx, image_id)


def _check_image(ctx, acct: dict, vmc: Any, auth_scheme: str | None) -> dict:
    """Validate virtualMachineConfiguration; return the pool's image record (``_sim.image``)."""
    if not isinstance(vmc, dict):
        raise MissingRequiredProperty("virtualMachineConfiguration")
    ref = vmc.get("imageReference")
    if not isinstance(ref, dict):
        raise MissingRequiredProperty("virtualMachineConfiguration.imageReference")
    agent = vmc.get("nodeAgentSKUId")
    if not agent:
        raise MissingRequiredProperty("virtualMachineConfiguration.nodeAgentSKUId")
    agent_os = supported_images.agent_sku_os(agent)
    if agent_os is None:
        raise InvalidPropertyValue("nodeAgentSKUId", agent,
                                   f"The specified node agent SKU '{agent}' is not supported by the Batch service "
                                   "(see GET /supportedimages for valid nodeAgentSKUId values).")
    image_id = ref.get("virtualMachineImageId")
    if image_id:
        refuse_shared_key(auth_scheme)
        record = _gallery_image(ctx, acct, str(image_id), agent, agent_os)
        _check_security_profile(vmc.get("securityProfile"), record.get("security_type"), str(image_id))
        return record
    if ref.get("sharedGalleryImageId") or ref.get("communityGalleryImageId"):
        refuse_shared_key(auth_scheme)
        return {"kind": "gallery", "os_type": agent_os, "blocked": None, "lineage": None}
    pub, offer, sku = ref.get("publisher"), ref.get("offer"), ref.get("sku")
    if not (pub and offer and sku):
        raise InvalidPropertyValue("imageReference", None, "The imageReference must specify either virtualMachineImageId "
                                   "or publisher, offer and sku.")
    expected = supported_images.agent_for(pub, offer, sku)
    if expected is None:
        raise InvalidPropertyValue("imageReference", f"{pub}:{offer}:{sku}",
                                   f"The specified image {pub}:{offer}:{sku} is not supported by the Batch service.")
    if expected.lower() != str(agent).lower():
        raise InvalidPropertyValue("nodeAgentSKUId", agent,
                                   f"The node agent SKU '{agent}' is not compatible with the image {pub}:{offer}:{sku}; "
                                   f"that image requires '{expected}'.")
    return {"kind": "marketplace", "os_type": agent_os, "blocked": None, "lineage": None,
            "exact_version": None,
            "hyper_v_generation": batch_hardware.marketplace_generation(ctx, acct, pub, offer, sku)}


def _version_name(resource_id: str | None) -> str | None:
    """The version name of a gallery image version id ("1.0.0"); None for any other id."""
    p = id_is(resource_id, T_GALLERY_IMAGE_VERSION)
    return p["name"] if p else None


def _gallery_image(ctx, acct: dict, image_id: str, agent: str, agent_os: str) -> dict:
    v = _version_for_pool(ctx, image_id)
    if v is None:
        raise InvalidPropertyValue("virtualMachineImageId", image_id,
                                   "The specified image does not exist, or the Batch service has no access to it.")
    if str(v.get("os_state", "")).lower() != "generalized":
        raise InvalidPropertyValue("virtualMachineImageId", image_id,
                                   f"The image definition {v.get('definition_identifier') or ''} is "
                                   f"{v.get('os_state') or 'not Generalized'}; Batch pools require a Generalized image.")
    os_type = str(v.get("os_type") or "").lower()
    if os_type and os_type != agent_os:
        raise InvalidPropertyValue("nodeAgentSKUId", agent,
                                   f"The node agent SKU '{agent}' is for {agent_os} but the image {image_id} is a "
                                   f"{os_type} image.")
    record = _allocation_block(acct, v, image_id)
    base = v.get("base_image")
    lineage = None
    if base and all(base.get(k) for k in ("publisher", "offer", "sku")):
        if not supported_images.agent_supports(agent, base["publisher"], base["offer"], base["sku"]):
            lineage = {
                "code": "NodeAgentUnusable",
                "message": (f"The Batch node agent '{agent}' could not start: the image's base "
                            f"{base['publisher']}:{base['offer']}:{base['sku']} is not an image this node agent "
                            "SKU supports."),
                "details": {"nodeAgentSKUId": agent,
                            "BaseImage": f"{base['publisher']}:{base['offer']}:{base['sku']}"},
            }
    exact = _version_name(v.get("id") or image_id)
    return {"kind": "gallery", "os_type": os_type or agent_os, "version_id": v.get("id") or image_id,
            "requested_id": image_id, "blocked": record, "lineage": lineage, "exact_version": exact,
            "security_type": v.get("security_type"), "hyper_v_generation": v.get("hyper_v_generation")}


# The definition SecurityType feature values that can make VMs of each pool securityType (GalleryRP spec values).
_SECURITY_CAPABLE = {
    "trustedlaunch": {"trustedlaunchsupported", "trustedlaunch", "trustedlaunchandconfidentialvmsupported"},
    "confidentialvm": {"confidentialvmsupported", "confidentialvm", "trustedlaunchandconfidentialvmsupported"},
}
# Feature values whose images make only VMs of that security type.
_SECURITY_REQUIRED = {"trustedlaunch": "trustedLaunch", "confidentialvm": "confidentialVM"}


def _check_security_profile(profile: Any, image_security: str | None, image_id: str) -> None:
    """The pool's ``virtualMachineConfiguration.securityProfile`` must fit the gallery image's SecurityType.

    The reasons are Compute's answers to a VM create from such images (verified wording: "Use of TrustedLaunch setting
    is not supported for the provided image. Please select Trusted Launch Supported Gen2 OS Image", azure-cli#27975;
    "The provided gallery image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type",
    Azure/build-vm-image#32). That Batch refuses them at pool add with InvalidPropertyValue is a guess (Batch checks
    the image on add); so is the refusal of uefiSettings without securityType (Batch's docs: securityType "has to be
    set to any specified value to enable UefiSettings").
    """
    profile = profile if isinstance(profile, dict) else {}
    wanted = str(profile.get("securityType") or "").lower()
    have = str(image_security or "").lower()
    if profile.get("uefiSettings") and not wanted:
        raise InvalidPropertyValue("securityProfile.securityType", None,
                                   "securityType has to be set to enable uefiSettings.")
    required = _SECURITY_REQUIRED.get(have)
    if required and wanted != required.lower():
        raise InvalidPropertyValue("securityProfile.securityType", profile.get("securityType"),
                                   f"The provided gallery image {image_id} only supports creation of VMs and VM Scale Sets "
                                   f"with '{image_security}' security type. Set virtualMachineConfiguration.securityProfile "
                                   f"securityType to '{required}'.")
    if wanted and wanted in _SECURITY_CAPABLE and have not in _SECURITY_CAPABLE[wanted]:
        label = "TrustedLaunch" if wanted == "trustedlaunch" else "ConfidentialVM"
        raise InvalidPropertyValue("securityProfile.securityType", profile.get("securityType"),
                                   f"Use of {label} setting is not supported for the provided image {image_id} (its "
                                   f"definition's SecurityType is {image_security or 'not set'}). Please select "
                                   f"{'Trusted Launch' if label == 'TrustedLaunch' else 'Confidential VM'} Supported Gen2 "
                                   "OS Image.")


def _allocation_block(acct: dict, v: dict, image_id: str) -> dict | None:
    """Why VMs cannot be created from this version in the account's region right now (None: they can).

    Raises when the version has no replica at all in that region (Batch checks that on add).
    """
    block = _replica_state(acct, v, image_id)
    if block is None and v.get("purchase_plan"):
        plan = v["purchase_plan"]
        block = {"code": "AllocationFailed", "message": (
            "Desired number of dedicated nodes could not be allocated: creating a virtual machine from a Marketplace "
            "image or a custom image sourced from a Marketplace image requires Plan information in the request "
            f"(plan {plan.get('publisher')}/{plan.get('product')}/{plan.get('name')}); Batch pools cannot use images "
            "with purchase plans."),
            "values": [{"name": "PlanPublisher", "value": str(plan.get("publisher"))},
                       {"name": "PlanProduct", "value": str(plan.get("product"))},
                       {"name": "PlanName", "value": str(plan.get("name"))}]}
    return block


def _replica_state(acct: dict, v: dict, image_id: str) -> dict | None:
    """None when the account's region has a Completed replica; a resize error record when it is not ready.

    Raises when the version has no replica at all in the account's region.
    """
    region = account_location(acct)
    regions = {str(k).replace(" ", "").lower(): str(s) for k, s in (v.get("regions") or {}).items()}
    state = regions.get(region)
    if state is None:
        raise InvalidPropertyValue("virtualMachineImageId", image_id,
                                   f"The specified image version is not replicated to region '{region}', the region of "
                                   f"Batch account '{acct.get('name')}'. Replicated regions: "
                                   f"{', '.join(sorted(regions)) or 'none'}.")
    if state.lower() == "completed":
        return None
    return {"code": "AllocationFailed",
            "message": (f"Desired number of dedicated nodes could not be allocated: the image version {image_id} "
                        f"is not available in region '{region}' (replication state {state})."),
            "values": [{"name": "Region", "value": region}, {"name": "ReplicationState", "value": state}]}


def _refresh_image(ctx, acct: dict, pool: dict) -> dict:
    """Re-check a gallery image's replica before a new allocation (replication may have finished)."""
    image = pool["_sim"].get("image") or {}
    if image.get("kind") != "gallery" or not image.get("requested_id"):
        return image
    v = _version_for_pool(ctx, image["requested_id"])
    if v is None:
        image["blocked"] = {"code": "AllocationFailed", "message": (
            f"Desired number of dedicated nodes could not be allocated: the image {image['requested_id']} no longer "
            "exists or the Batch service has no access to it."), "values": []}
        return image
    # a virtualMachineImageId without a version floats: a later scale-out may get a newer version
    image["version_id"] = v.get("id") or image["requested_id"]
    image["hyper_v_generation"] = v.get("hyper_v_generation")
    if _version_name(image["version_id"]):
        image["exact_version"] = _version_name(image["version_id"])
    try:
        image["blocked"] = _allocation_block(acct, v, image["requested_id"])
    except BatchError:
        image["blocked"] = {"code": "AllocationFailed", "message": (
            f"Desired number of dedicated nodes could not be allocated: the image version has no replica in region "
            f"'{account_location(acct)}'."), "values": []}
    return image


# -- allocation ------------------------------------------------------------------------------------------

def _alloc_duration(pool: dict, n: int) -> float:
    d = timings.pool_allocation(n)
    if (pool["_sim"].get("image") or {}).get("kind") == "gallery":
        d += GALLERY_ALLOC_PER_NODE * n
    return d


def _fault_count(spec: dict, total: int, default_share: float) -> int:
    if spec.get("nodes") is not None:
        return max(0, min(total, int(spec["nodes"])))
    share = float(spec.get("share", default_share))
    return max(0, min(total, int(round(share * total))))


def _quota_limit(ctx, account: str, acct: dict, pool: dict, dedicated: bool, want: int) -> tuple[int, dict | None]:
    info = vm_size_info(pool.get("vmSize", ""))
    cores, family = info if info else (1, "standardFamily")
    q = quotas(acct)
    others = [p for p in ctx.store.list(KIND, prefix=f"{account.lower()}/") if p["id"].lower() != pool["id"].lower()]
    pools = others + [pool]

    def used(pred) -> int:
        total = 0
        for p in pools:
            pi = vm_size_info(p.get("vmSize", "")) or (1, "")
            if pred(pi):
                total += nodes.committed(p, dedicated) * pi[0]
        return total

    need = want * cores
    if not dedicated:
        in_use = used(lambda pi: True)
        free = max(0, q["low_priority"] - in_use)
        allowed = min(want, free // cores)
        if allowed >= want:
            return want, None
        return allowed, {
            "code": "AccountLowPriorityCoreQuotaReached",
            "message": (f"The specified account has reached its low-priority core quota: {need} more cores needed "
                        f"({want} x {pool.get('vmSize')}, {cores} cores each), {in_use} of {q['low_priority']} in use."),
            "values": [{"name": "CoreQuota", "value": str(q["low_priority"])},
                       {"name": "CoresInUse", "value": str(in_use)},
                       {"name": "CoresRequested", "value": str(need)}],
        }
    in_use = used(lambda pi: True)
    free_total = max(0, q["dedicated"] - in_use)
    allowed_total = free_total // cores
    allowed_family = allowed_total
    fam_quota = fam_use = None
    if q["family_enforced"]:
        fam_quota = q["families"].get(family.lower(), q["family_default"])
        fam_use = used(lambda pi: pi[1].lower() == family.lower())
        allowed_family = max(0, fam_quota - fam_use) // cores
    allowed = min(want, allowed_total, allowed_family)
    if allowed >= want:
        return want, None
    if q["family_enforced"] and allowed_family < allowed_total:
        return allowed, {
            "code": "AccountVMSeriesCoreQuotaReached",
            "message": (f"The specified account has reached VM series core quota for {family}: {need} more cores "
                        f"needed ({want} x {pool.get('vmSize')}, {cores} cores each), {fam_use} of {fam_quota} in "
                        f"use; {allowed} of {want} nodes could be allocated."),
            "values": [{"name": "VMSeries", "value": family}, {"name": "CoreQuota", "value": str(fam_quota)},
                       {"name": "CoresInUse", "value": str(fam_use)}, {"name": "CoresRequested", "value": str(need)}],
        }
    return allowed, {
        "code": "AccountCoreQuotaReached",
        "message": (f"The specified account has reached its dedicated core quota: {need} more cores needed "
                    f"({want} x {pool.get('vmSize')}, {cores} cores each), {in_use} of {q['dedicated']} in use; "
                    f"{allowed} of {want} nodes could be allocated."),
        "values": [{"name": "CoreQuota", "value": str(q["dedicated"])}, {"name": "CoresInUse", "value": str(in_use)},
                   {"name": "CoresRequested", "value": str(need)}],
    }


def _new_segment(ctx, account: str, acct: dict, pool: dict, t: float, want: int, granted_by_quota: int,
                 dedicated: bool, timeout_s: float) -> tuple[dict, float, list[dict]]:
    sim = pool["_sim"]
    image = _refresh_image(ctx, acct, pool)
    kind_word = "dedicated" if dedicated else "low-priority"
    n = granted_by_quota
    errors: list[dict] = []
    st = pool.get("startTask") or None
    seg = {"first": int(sim.get("next_index", 0)), "n": n, "granted": n, "start": t,
           "dur": _alloc_duration(pool, n), "dedicated": dedicated,
           "start_task": bool(st), "wait": bool(st and st.get("waitForSuccess", True)),
           "st_retries": int((st or {}).get("maxTaskRetryCount") or 0),
           "start_task_body": st, "exact_version": image.get("exact_version")}
    end = t + seg["dur"]
    # the image's own block (replication, purchase plan) first, then the VM size's (generation, region)
    b = image.get("blocked") or batch_hardware.allocation_block(ctx, acct, pool["id"], pool.get("vmSize"),
                                                                image.get("hyper_v_generation"))
    if b:
        seg["granted"] = 0
        errors.append({"code": b["code"], "message": b["message"].replace("dedicated", kind_word),
                       "values": b.get("values") or []})
        end = t + BLOCKED_ALLOCATION
    elif n > 0:
        fault = ctx.faults.take("resize_error", account=account, pool=pool["id"])
        if fault is not None:
            missing = _fault_count(fault, n, 0.5)
            seg["granted"] = n - missing
            code = fault.get("code") or "AllocationFailed"
            errors.append({"code": code, "message": fault.get("message") or (
                f"Desired number of {kind_word} nodes could not be allocated: {missing} of {n} nodes failed to "
                "allocate."), "values": [{"name": k, "value": str(v)} for k, v in (fault.get("values") or {}).items()]})
            if code.lower() == "allocationtimedout":
                end = t + min(seg["dur"], timeout_s)
        if timeout_s < seg["dur"]:
            reached = nodes.appeared_by(seg, t + timeout_s)
            if reached < seg["granted"]:
                seg["granted"] = reached
                errors.append({"code": "AllocationTimedout", "message": (
                    f"Desired number of {kind_word} nodes could not be allocated as the resize timeout of "
                    f"{format_duration(timeout_s)} was reached: {reached} of {want} nodes allocated."),
                    "values": [{"name": "ResizeTimeout", "value": format_duration(timeout_s)}]})
            end = t + timeout_s
        for fkind, field in (("start_task_failed", "stf"), ("node_unusable", "unusable")):
            f = ctx.faults.take(fkind, account=account, pool=pool["id"])
            if f is not None:
                seg[field] = {"k": _fault_count(f, int(seg["granted"]), 1.0), "code": f.get("code"),
                              "message": f.get("message"), "exit_code": f.get("exit_code", 1),
                              "details": f.get("details") or {}, "sticky": bool(f.get("sticky"))}
        if image.get("lineage"):
            seg["all_unusable"] = image["lineage"]
        pre = None if dedicated else ctx.faults.take("node_preempted", account=account, pool=pool["id"])
        if pre is not None:  # Batch preempts Spot/low-priority nodes only (see batch_nodes)
            seg["preempt"] = {"k": _fault_count(pre, int(seg["granted"]), 1.0), "restore_after": pre.get("restore_after")}
    sim["next_index"] = seg["first"] + n
    return seg, end, errors


def _begin_episode(ctx, account: str, acct: dict, pool: dict, t: float, target_d: int, target_lp: int,
                   timeout_s: float, deallocation: str = "requeue") -> None:
    sim = pool["_sim"]
    sim.setdefault("segments", [])
    sim.setdefault("nodes", {})
    errors: list[dict] = []
    ends = [t + 15.0]
    for dedicated, target in ((True, target_d), (False, target_lp)):
        have = nodes.committed(pool, dedicated)
        if target < have:
            ends.append(_shrink(ctx, pool, t, have - target, dedicated, deallocation))
        elif target > have:
            want = target - have
            allowed, qerr = _quota_limit(ctx, account, acct, pool, dedicated, want)
            if qerr:
                errors.append(qerr)
            if allowed > 0 or not qerr:
                seg, end, errs = _new_segment(ctx, account, acct, pool, t, want, allowed, dedicated, timeout_s)
                sim["segments"].append(seg)
                errors.extend(errs)
                ends.append(end)
            else:
                ends.append(t + BLOCKED_ALLOCATION)
    sim["episode"] = {"start": t, "end": max(ends), "errors": errors, "stop_at": None}
    pool["targetDedicatedNodes"] = target_d
    pool["targetLowPriorityNodes"] = target_lp
    pool["resizeTimeout"] = format_duration(timeout_s)
    pool["allocationState"] = "resizing"
    pool["allocationStateTransitionTime"] = iso(ctx, t)
    pool.pop("resizeErrors", None)


def _shrink(ctx, pool: dict, t: float, count: int, dedicated: bool, deallocation: str = "requeue") -> float:
    """Mark `count` nodes of that kind as leaving (highest index first, idle ones preferred); returns when the
    last of them is gone."""
    views = [v for v in nodes.iter_nodes(ctx, pool, t) if bool(v.seg["dedicated"]) == dedicated
             and v.state != "leavingpool"]
    order = {"unusable": 0, "starttaskfailed": 0, "idle": 1, "creating": 2, "starting": 2,
             "waitingforstarttask": 2, "rebooting": 3, "running": 4}
    views.sort(key=lambda v: (order.get(v.state, 2), -v.index))
    chosen = views[:count]
    gone = t + nodes.LEAVE
    for v in chosen:
        gone = max(gone, _leave(pool, v.index, dedicated, t, deallocation))
    # nodes granted but not yet appeared (only mid-allocation): trim their segments
    missing = count - len(chosen)
    for seg in reversed(pool["_sim"]["segments"]):
        if missing <= 0:
            break
        if bool(seg["dedicated"]) != dedicated:
            continue
        pending = int(seg["granted"]) - nodes.appeared_by(seg, t)
        cut = min(pending, missing)
        seg["granted"] = int(seg["granted"]) - cut
        missing -= cut
    return gone


# nodeDeallocationOption (BatchNodeDeallocationOption in azure-batch 15.1 models/_enums.py and the 2025-06-01
# spec): requeue (default) and terminate stop the running task at once - requeued, or completed with a failure
# (batch_nodes.interrupted_at / batch_jobs); taskcompletion lets it finish and schedules nothing new on the node;
# retaineddata (deprecated) then also waits for task data retention, which the stand-in does not model, so it
# behaves as taskcompletion.
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")


def _deallocation(body: dict) -> str:
    value = body.get("nodeDeallocationOption")
    if value is None:
        return "requeue"
    if str(value).lower() not in DEALLOCATION_OPTIONS:
        raise InvalidPropertyValue("nodeDeallocationOption", value,
                                   f"nodeDeallocationOption must be one of {', '.join(DEALLOCATION_OPTIONS)}.")
    return str(value).lower()


def _leave(pool: dict, index: int, dedicated: bool, t: float, deallocation: str = "requeue") -> float:
    """Node `index` leaves the pool (after its running task, for taskcompletion/retaineddata); returns when it is
    gone."""
    ov = pool["_sim"].setdefault("nodes", {}).setdefault(str(index), {})
    start = t
    if deallocation in ("taskcompletion", "retaineddata"):
        start = max(t, nodes.running_until(pool, index, t) or t)
    ov["leave"] = [start, start + nodes.LEAVE]
    ov["dedicated"] = dedicated
    ov["deallocation"] = deallocation
    return start + nodes.LEAVE


# -- writes -------------------------------------------------------------------------------------------

def _stamp(ctx, pool: dict, t: float) -> None:
    pool["eTag"] = etag(t)
    pool["lastModified"] = iso(ctx, t)
    pool["_sim"]["modified"] = t


def _timeout(value: Any) -> float:
    if value is None:
        return DEFAULT_RESIZE_TIMEOUT
    secs = parse_duration(value)
    if secs is None:
        raise InvalidPropertyValue("resizeTimeout", value, "The value is not a valid ISO 8601 duration.")
    if secs < MIN_RESIZE_TIMEOUT:
        raise InvalidPropertyValue("resizeTimeout", value,
                                   f"The specified resizeTimeout {value} is less than the minimum of 5 minutes (PT5M).")
    return secs


def _node_target(body: dict, name: str) -> int:
    v = body.get(name, 0)
    if v is None:
        return 0
    if isinstance(v, str) and re.fullmatch(r"\s*[+-]?\d+\s*", v):
        # Batch reads JSON with ODataLib, which converts a JSON string to the property's primitive
        # type (OData/odata.net DefaultPrimitivePayloadValueConverter.ConvertStringValue:
        # Convert.ChangeType(..., InvariantCulture)). azure-cli 2.91 relies on it: `az batch pool
        # create --target-dedicated-nodes 2` sends "targetDedicatedNodes": "2" (seen with --debug).
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise InvalidPropertyValue(name, v, f"{name} must be a non-negative integer.")
    return v


# -- the pool body: known properties and Batch's cross-field rules ----------------------------------------

def _closed(body: dict, known: tuple[str, ...], entity: str) -> None:
    for name in body:
        if name not in known:
            raise UnknownProperty(name, entity)


def _check_task_slots(body: dict, vm_size: str | None) -> None:
    """taskSlotsPerNode: a whole number from 1 to min(4 x the VM size's vCPUs, 256) (BatchPoolCreateOptions
    docstring; learn.microsoft.com/azure/batch/batch-parallel-node-tasks "the maximum is 4x cores or 256"). The code
    InvalidPropertyValue is a guess."""
    v = body.get("taskSlotsPerNode")
    if v is None:
        return
    cores = (vm_size_info(vm_size or "") or (1, ""))[0]
    limit = min(4 * cores, MAX_TASK_SLOTS)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1 or v > limit:
        raise InvalidPropertyValue("taskSlotsPerNode", v,
                                   f"taskSlotsPerNode must be between 1 and {limit} for {vm_size} ({cores} vCPUs: "
                                   f"the maximum is the smaller of 4 x vCPUs and {MAX_TASK_SLOTS}).")


_SUBNET_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/"
                        r"[^/]+/subnets/[^/]+$", re.IGNORECASE)


def _check_subnet(ctx, acct: dict, body: dict) -> None:
    """networkConfiguration.subnetId names an existing subnet in the account's region (Batch's docs, "Create an
    Azure Batch pool in a virtual network": "The VNet must be in the same subscription and region as the Batch
    account"), read from the stand-in's Network backend. The code InvalidPropertyValue and the wording are guesses."""
    net = body.get("networkConfiguration")
    if not isinstance(net, dict) or net.get("subnetId") in (None, ""):
        return
    sid = net["subnetId"]
    if not isinstance(sid, str) or not _SUBNET_ID.match(sid):
        raise InvalidPropertyValue("networkConfiguration.subnetId", sid,
                                   "The subnetId must be an ARM subnet id: /subscriptions/{subscription}/resourceGroups/"
                                   "{group}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}.")
    subnet = network.get_subnet(ctx, sid)
    if subnet is None:
        raise InvalidPropertyValue("networkConfiguration.subnetId", sid,
                                   "The specified subnet does not exist, or the Batch service cannot access it.")
    where = str(subnet.get("location") or "").replace(" ", "").lower()
    if where and where != account_location(acct):
        raise InvalidPropertyValue("networkConfiguration.subnetId", sid,
                                   f"The subnet's virtual network is in region '{where}' but Batch account "
                                   f"'{acct.get('name')}' is in '{account_location(acct)}'; the virtual network must be "
                                   "in the same region as the Batch account.")


def _evaluation_interval(value: Any) -> float:
    """autoScaleEvaluationInterval in seconds: 5 minutes to 168 hours, else 400 InvalidPropertyValue (the spec:
    "the Batch service rejects the request with an invalid property value error ... 400")."""
    if value is None:
        return DEFAULT_EVALUATION_INTERVAL
    secs = parse_duration(value)
    if secs is None or not MIN_EVALUATION_INTERVAL <= secs <= MAX_EVALUATION_INTERVAL:
        raise InvalidPropertyValue("autoScaleEvaluationInterval", value,
                                   "autoScaleEvaluationInterval must be an ISO 8601 duration from 5 minutes (PT5M) to "
                                   "168 hours (PT168H).")
    return secs


def _check_formula(formula: Any) -> str:
    """A formula Batch would accept (it is "checked for validity before the Pool is created"); see autoscale.py."""
    if not isinstance(formula, str) or not formula.strip():
        raise MissingRequiredProperty("autoScaleFormula")
    if len(formula) > autoscale.MAX_FORMULA_LENGTH:
        raise AutoScaleFormulaTooLong(len(formula))
    try:
        autoscale.parse(formula)
    except autoscale.FormulaSyntaxError as e:
        raise AutoScalingFormulaSyntaxError(str(e))
    return formula


def _check_autoscale_settings(body: dict) -> float | None:
    """The spec's rules on enableAutoScale (BatchPoolCreateOptions): with true, autoScaleFormula is required and
    targetDedicatedNodes / targetLowPriorityNodes "must not be specified"; with false, autoScaleFormula "must not be
    specified". Returns the evaluation interval in seconds (None without autoscale). The codes for the "must not"
    rules (InvalidPropertyValue) are guesses; MissingRequiredProperty for the formula is Batch's code for a missing
    required property."""
    if not body.get("enableAutoScale"):
        if body.get("autoScaleFormula") is not None:
            raise InvalidPropertyValue("autoScaleFormula", None,
                                       "autoScaleFormula must not be specified when enableAutoScale is false.")
        return None
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        if body.get(name) is not None:
            raise InvalidPropertyValue(name, body[name], f"{name} must not be specified when enableAutoScale is "
                                       "true; the autoscale formula sets the pool's target.")
    if body.get("autoScaleFormula") in (None, ""):
        raise MissingRequiredProperty("autoScaleFormula")
    _check_formula(body["autoScaleFormula"])
    return _evaluation_interval(body.get("autoScaleEvaluationInterval"))


def add_pool(ctx, account: str, body: Any, auth_scheme: str | None = None) -> dict:
    """Pool_Add: validate the whole body (closed model, image, quotas, Batch's cross-field rules), store it as sent,
    start allocating to the target (or to the autoscale formula's first result)."""
    body = require_body(body)
    _closed(body, CREATE_PROPERTIES + LEGACY_PROPERTIES, "PoolAddParameter")
    acct = get_account(ctx, account)
    ref = ((body.get("virtualMachineConfiguration") or {}).get("imageReference") or {}) \
        if isinstance(body.get("virtualMachineConfiguration"), dict) else {}
    if isinstance(ref, dict) and any(ref.get(k) for k in ("virtualMachineImageId", "sharedGalleryImageId",
                                                          "communityGalleryImageId")):
        refuse_shared_key(auth_scheme)
    pool_id = check_id("pool", body.get("id"))
    if not body.get("vmSize"):
        raise MissingRequiredProperty("vmSize")
    if vm_size_info(body["vmSize"]) is None:
        raise InvalidPropertyValue("vmSize", body["vmSize"], f"The specified VM size {body['vmSize']} is not supported.")
    key = pool_key(account, pool_id)
    existing = ctx.store.get(KIND, key)
    if existing is not None:
        raise PoolExists("The specified pool already exists.")
    image = _check_image(ctx, acct, body.get("virtualMachineConfiguration"), auth_scheme)
    q = quotas(acct)
    if len(ctx.store.list(KIND, prefix=f"{account.lower()}/")) >= q["pool"]:
        raise PoolQuotaReached("The specified account has reached its pool quota.",
                               [("PoolQuota", str(q["pool"]))])
    target_d = _node_target(body, "targetDedicatedNodes")
    target_lp = _node_target(body, "targetLowPriorityNodes")
    interval = _check_autoscale_settings(body)
    _check_task_slots(body, body["vmSize"])
    _check_subnet(ctx, acct, body)
    timeout_s = _timeout(body.get("resizeTimeout"))
    st = body.get("startTask")
    if st is not None and (not isinstance(st, dict) or not st.get("commandLine")):
        raise MissingRequiredProperty("startTask.commandLine")
    for item in body.get("metadata") or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise EmptyMetadataKey("The key for one of the metadata key-value pairs is empty.")
    t = ctx.clock.now()
    pool: dict[str, Any] = {"id": pool_id}
    for f in _CREATE_FIELDS:
        if f in body and body[f] is not None:
            pool[f] = body[f]
    if st is not None:
        st = dict(st)
        st.setdefault("maxTaskRetryCount", 0)
        st.setdefault("waitForSuccess", True)
        pool["startTask"] = st
    pool.update({
        "url": f"{endpoint(ctx, account)}/pools/{pool_id}",
        "creationTime": iso(ctx, t),
        "state": "active",
        "stateTransitionTime": iso(ctx, t),
        "allocationState": "steady",
        "allocationStateTransitionTime": iso(ctx, t),
        "resizeTimeout": format_duration(timeout_s),
        "currentDedicatedNodes": 0,
        "currentLowPriorityNodes": 0,
        "targetDedicatedNodes": target_d,
        "targetLowPriorityNodes": target_lp,
        "enableAutoScale": bool(body.get("enableAutoScale", False)),
        "enableInterNodeCommunication": bool(body.get("enableInterNodeCommunication", False)),
        "taskSlotsPerNode": int(body.get("taskSlotsPerNode") or 1),
        "taskSchedulingPolicy": body.get("taskSchedulingPolicy") or {"nodeFillType": "spread"},
    })
    pool["_sim"] = {"account": account, "created": t, "image": image, "segments": [], "nodes": {}, "busy": {},
                    "next_index": 0, "episode": None, "location": account_location(acct)}
    _stamp(ctx, pool, t)
    if interval is not None:
        pool["autoScaleEvaluationInterval"] = body.get("autoScaleEvaluationInterval") or format_duration(interval)
        pool["_sim"]["autoscale"] = {"since": t, "interval": interval, "last": t}
        _autoscale_apply(ctx, pool, t)
    elif target_d or target_lp:
        _begin_episode(ctx, account, acct, pool, t, target_d, target_lp, timeout_s)
    ctx.store.put(KIND, key, pool)
    return pool


def delete_pool(ctx, account: str, pool_id: str, auth_scheme: str | None = None, headers: dict | None = None) -> None:
    pool = _load(ctx, account, pool_id)
    _touch(ctx, pool, auth_scheme)
    check_if_match(headers or {}, pool["eTag"])
    if pool["state"] == "deleting":
        return
    t = ctx.clock.now()
    n = pool.get("currentDedicatedNodes", 0) + pool.get("currentLowPriorityNodes", 0)
    end = t + timings.DELETE + (nodes.LEAVE if n else 0) + 5.0 * math.log2(1 + n)
    pool["state"] = "deleting"
    pool["stateTransitionTime"] = iso(ctx, t)
    pool["_sim"]["deleting"] = t
    pool["_sim"]["delete_at"] = end
    pool["_sim"]["episode"] = {"start": t, "end": end + 1, "errors": [], "stop_at": None}
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)


def _check_update_fields(ctx, acct: dict, pool: dict, body: dict, auth_scheme: str | None) -> dict | None:
    """Fields that may change only while the pool is empty; returns a new image record when the image changes.

    The rule is Batch's (BatchPoolUpdateOptions in azure-batch 15.1 models/_models.py: vmSize,
    virtualMachineConfiguration, taskSlotsPerNode, ... "This field can be updated only when the pool is empty");
    the 409 OperationInvalidForCurrentState with PropertyName/Reason values is a guess. Nodes allocated after the
    change run the new image (each allocation records its exact version: batch_nodes.render).
    """
    empty = (pool.get("currentDedicatedNodes", 0) + pool.get("currentLowPriorityNodes", 0) == 0
             and nodes.committed(pool, True) + nodes.committed(pool, False) == 0)
    for f in EMPTY_ONLY:
        if f in body and body[f] is not None and body[f] != pool.get(f) and not empty:
            raise OperationInvalidForCurrentState(
                "The specified operation is not valid for the current state of the resource.",
                [("PropertyName", f), ("Reason", f"{f} can be updated only when the pool has zero "
                  "dedicated and zero spot/low-priority nodes.")])
    if "vmSize" in body and body["vmSize"] is not None and vm_size_info(body["vmSize"]) is None:
        raise InvalidPropertyValue("vmSize", body["vmSize"], f"The specified VM size {body['vmSize']} is not supported.")
    _check_task_slots(body, body.get("vmSize") or pool.get("vmSize"))
    if body.get("networkConfiguration") != pool.get("networkConfiguration"):
        _check_subnet(ctx, acct, body)
    if body.get("virtualMachineConfiguration") is not None:
        return _check_image(ctx, acct, body["virtualMachineConfiguration"], auth_scheme)
    return None


def patch_pool(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None,
               headers: dict | None = None) -> dict:
    """Pool_Patch: only the given properties change. startTask, applicationPackageReferences, metadata (and the
    earlier api-version's resourceTags / targetNodeCommunicationMode) at any time; EMPTY_ONLY ones only on an empty
    pool (unless unchanged); anything else (enableAutoScale, the targets: they have their own operations) is not a
    property of BatchPoolUpdateOptions and is refused as such."""
    body = require_body(body)
    _closed(body, PATCH_PROPERTIES + LEGACY_PROPERTIES, "PoolPatchParameter")
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    acct = get_account(ctx, account)
    image = _check_update_fields(ctx, acct, pool, body, auth_scheme)
    for f in PATCH_PROPERTIES + LEGACY_PROPERTIES:
        if f in body and body[f] is not None:
            pool[f] = body[f]
    if image is not None:
        pool["_sim"]["image"] = image
    _stamp(ctx, pool, ctx.clock.now())
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def replace_properties(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None,
                       headers: dict | None = None) -> dict:
    """Pool_UpdateProperties (replace_pool_properties): startTask, applicationPackageReferences, metadata replaced.

    No If-Match here: the operation takes no conditional headers (azure-batch 15.1's replace_pool_properties,
    generated from the 2025-06-01 TypeSpec, has no etag/match_condition, unlike update_pool). A conditional
    metadata write - a lease - must use Pool_Patch (update_pool with etag + match_condition), which answers 412
    ConditionNotMet on a stale ETag.
    """
    body = require_body(body)
    pool = _load(ctx, account, pool_id)
    _touch(ctx, pool, auth_scheme)
    _writable(pool)
    for f in ("applicationPackageReferences", "metadata"):
        if f not in body or body[f] is None:
            raise MissingRequiredProperty(f)
    if body.get("startTask") is not None:
        pool["startTask"] = body["startTask"]
    else:
        pool.pop("startTask", None)
    pool["applicationPackageReferences"] = body["applicationPackageReferences"]
    pool["metadata"] = body["metadata"]
    if "targetNodeCommunicationMode" in body:
        pool["targetNodeCommunicationMode"] = body["targetNodeCommunicationMode"]
    _stamp(ctx, pool, ctx.clock.now())
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def resize_pool(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None,
                headers: dict | None = None) -> dict:
    body = require_body(body)
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    if pool.get("enableAutoScale"):
        # Pool_Resize docs: "You cannot resize Pools which are configured for automatic scaling. If you try to do
        # this, the Batch service returns an error 409." The code OperationInvalidForCurrentState is a guess.
        raise OperationInvalidForCurrentState(
            "The specified operation is not valid for the current state of the resource.",
            [("Reason", "A pool with enableAutoScale true cannot be resized manually: disable automatic scaling "
              "first (POST /pools/{poolId}/disableautoscale).")])
    _steady(pool)
    target_d = _node_target(body, "targetDedicatedNodes") if "targetDedicatedNodes" in body \
        else int(pool.get("targetDedicatedNodes") or 0)
    target_lp = _node_target(body, "targetLowPriorityNodes") if "targetLowPriorityNodes" in body \
        else int(pool.get("targetLowPriorityNodes") or 0)
    timeout_s = _timeout(body.get("resizeTimeout"))
    acct = get_account(ctx, account)
    t = ctx.clock.now()
    _begin_episode(ctx, account, acct, pool, t, target_d, target_lp, timeout_s, _deallocation(body))
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def stop_resize(ctx, account: str, pool_id: str, auth_scheme: str | None = None, headers: dict | None = None) -> dict:
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    if pool.get("allocationState") != "resizing":
        raise OperationInvalidForCurrentState(
            "The specified operation is not valid for the current state of the resource.",
            [("Reason", f"The pool's allocation state is {pool.get('allocationState')}; only a resizing "
              "pool can stop resizing.")])
    t = ctx.clock.now()
    sim = pool["_sim"]
    for seg in sim.get("segments", []):
        if seg["start"] <= t:
            seg["granted"] = min(int(seg["granted"]), nodes.appeared_by(seg, t))
    ep = sim["episode"]
    ep["stop_at"] = t
    ep["end"] = min(ep["end"], t + STOP_RESIZE)
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def remove_nodes(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None,
                 headers: dict | None = None) -> dict:
    """Pool_RemoveNodes: at most 100 node ids per call, only on a steady pool (azure-batch 15.1
    `_remove_nodes_internal`: "This operation can only run when the allocation state of the Pool is steady";
    BatchNodeRemoveOptions.node_ids: "A maximum of 100 nodes may be removed per request"); the codes
    (400 InvalidPropertyValue for the count, 409 PoolBeingResized) are guesses. nodeDeallocationOption as on resize.
    """
    body = require_body(body)
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    ids = body.get("nodeList")
    if not ids:
        raise MissingRequiredProperty("nodeList")
    if not isinstance(ids, list) or len(ids) > MAX_REMOVE:
        raise InvalidPropertyValue("nodeList", None, f"At most {MAX_REMOVE} nodes can be removed in one request.")
    timeout_s = _timeout(body.get("resizeTimeout"))
    deallocation = _deallocation(body)
    _steady(pool)
    t = ctx.clock.now()
    views = []
    for nid in ids:
        v = nodes.find_node(ctx, pool, str(nid), t)
        if v is None:
            raise InvalidPropertyValue("nodeList", nid, f"The node {nid} does not exist in pool {pool['id']}.")
        views.append(v)
    removed_d = removed_lp = 0
    gone = t + nodes.LEAVE
    for v in views:
        if v.state == "leavingpool":
            continue
        gone = max(gone, _leave(pool, v.index, bool(v.seg["dedicated"]), t, deallocation))
        if v.seg["dedicated"]:
            removed_d += 1
        else:
            removed_lp += 1
    pool["targetDedicatedNodes"] = max(0, int(pool.get("targetDedicatedNodes") or 0) - removed_d)
    pool["targetLowPriorityNodes"] = max(0, int(pool.get("targetLowPriorityNodes") or 0) - removed_lp)
    pool["_sim"]["episode"] = {"start": t, "end": gone + 1.0, "errors": [], "stop_at": None}
    pool["resizeTimeout"] = format_duration(timeout_s)
    pool["allocationState"] = "resizing"
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


# -- autoscale ----------------------------------------------------------------------------------------------
#
# A pool with enableAutoScale true carries autoScaleRun {timestamp, results[, error]}; its formula (autoscale.py) is
# evaluated at create / enableautoscale and then every autoScaleEvaluationInterval of simulated time, by the pool's
# advancer (no thread): each evaluation whose targets differ from the pool's starts an allocation episode at the
# evaluation's time, like a resize with the formula's $NodeDeallocationOption. An evaluation that falls while the
# pool is still resizing records its autoScaleRun but leaves the targets to the next one (a guess). A formula that
# fails at run time leaves the targets unchanged and reports autoScaleRun.error.

_TICKING = threading.local()


def _autoscale_inputs(ctx, pool: dict, t: float) -> autoscale.Inputs:
    """The formula's inputs: the pool's node counts at `t` and the task counts of the jobs that name it. Jobs and
    tasks are read as stored (not advanced: advancing a task may claim a node of this very pool), so a task that
    finished since it was last read still counts as running until then."""
    from .batch_jobs import JOB, TASK

    account = pool["_sim"]["account"]
    active = running = 0
    for job in ctx.store.list_raw(JOB, prefix=f"{account.lower()}/"):
        if str((job.get("poolInfo") or {}).get("poolId") or "").lower() != pool["id"].lower():
            continue
        if job.get("state") in ("completed", "deleting", "terminating"):
            continue
        for task in ctx.store.list_raw(TASK, prefix=f"{account}/{job['id']}/".lower()):
            if task.get("state") in ("active", "preparing"):
                active += 1
            elif task.get("state") == "running":
                running += 1
    return autoscale.Inputs(
        current_dedicated=nodes.count_current(ctx, pool, t, True),
        current_low_priority=nodes.count_current(ctx, pool, t, False),
        target_dedicated=int(pool.get("targetDedicatedNodes") or 0),
        target_low_priority=int(pool.get("targetLowPriorityNodes") or 0),
        active_tasks=active, running_tasks=running)


_RUN_MESSAGES = {
    autoscale.FormulaSyntaxError.code: "The specified auto-scaling formula has a syntax error.",
    autoscale.FormulaEvaluationError.code: "The auto-scaling formula could not be evaluated.",
}


def _autoscale_run(ctx, pool: dict, formula: str, t: float) -> tuple[autoscale.Result | None, dict]:
    """(the result or None, the AutoScaleRun body: {timestamp, results} or {timestamp, error{code, message,
    values[{name, value}]}})."""
    run: dict[str, Any] = {"timestamp": iso(ctx, t)}
    try:
        result = autoscale.evaluate(formula, _autoscale_inputs(ctx, pool, t))
    except autoscale.FormulaError as e:
        run["error"] = {"code": e.code, "message": _RUN_MESSAGES.get(e.code, str(e)),
                        "values": [{"name": "Reason", "value": str(e)}]}
        return None, run
    run["results"] = result.results()
    return result, run


def _autoscale_apply(ctx, pool: dict, t: float) -> None:
    """Evaluate the pool's formula at `t`, record autoScaleRun, and move the targets to the result."""
    sim = pool["_sim"]
    result, pool["autoScaleRun"] = _autoscale_run(ctx, pool, pool["autoScaleFormula"], t)
    if result is None:
        return
    want = (result.target_dedicated, result.target_low_priority)
    if want == (int(pool.get("targetDedicatedNodes") or 0), int(pool.get("targetLowPriorityNodes") or 0)):
        return
    ep = sim.get("episode")
    if ep is not None and t < ep["end"]:
        return
    account = sim["account"]
    timeout_s = parse_duration(pool.get("resizeTimeout")) or DEFAULT_RESIZE_TIMEOUT
    _begin_episode(ctx, account, get_account(ctx, account), pool, t, want[0], want[1], timeout_s,
                   result.deallocation)
    pool["allocationStateTransitionTime"] = iso(ctx, t)


def _autoscale_tick(ctx, pool: dict, t: float) -> None:
    """From the advancer: the latest evaluation due by `t` (earlier missed ones are skipped: each would read the
    same current counts). Re-entrant reads of the same pool (the quota check lists the account's pools) skip it."""
    a = pool["_sim"]["autoscale"]
    if t < a["last"] + a["interval"]:
        return
    key = pool_key(pool["_sim"]["account"], pool["id"])
    busy = getattr(_TICKING, "keys", None)
    if busy is None:
        busy = _TICKING.keys = set()
    if key in busy:
        return
    busy.add(key)
    try:
        at = a["since"] + ((t - a["since"]) // a["interval"]) * a["interval"]
        a["last"] = at
        _autoscale_apply(ctx, pool, at)
    finally:
        busy.discard(key)


def enable_auto_scale(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None,
                      headers: dict | None = None) -> dict:
    """Pool_EnableAutoScale {autoScaleFormula, autoScaleEvaluationInterval}: the formula is required unless autoscale
    is already enabled (then the stored one is kept); it is evaluated now and the evaluation schedule restarts now.

    Refused (rules from the Pool_EnableAutoScale docs; codes from Batch's error-code table, the mapping a guess where
    noted): a resize in progress on a pool without autoscale (409 PoolBeingResized, guess); a second enable within
    30 s (503 TooManyEnableAutoScaleRequests); a formula that does not parse (400 AutoScalingFormulaSyntaxError); an
    interval outside 5 min..168 h (400 InvalidPropertyValue).
    """
    body = require_body(body)
    _closed(body, ("autoScaleFormula", "autoScaleEvaluationInterval"), "PoolEnableAutoScaleParameter")
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    t = ctx.clock.now()
    sim = pool["_sim"]
    was = bool(pool.get("enableAutoScale"))
    if not was:
        _steady(pool)
    last = sim.get("last_enable")
    if last is not None and t < last + ENABLE_AUTOSCALE_SPACING:
        raise TooManyEnableAutoScaleRequests(
            "Too many Enable Pool AutoScale requests are issued on the pool.",
            [("Reason", f"Enable autoscale requests for the same pool must be at least "
              f"{int(ENABLE_AUTOSCALE_SPACING)} seconds apart.")])
    formula = body.get("autoScaleFormula")
    if formula is None:
        if not was:
            raise MissingRequiredProperty("autoScaleFormula")
        formula = pool["autoScaleFormula"]
    _check_formula(formula)
    if body.get("autoScaleEvaluationInterval") is not None:
        interval = _evaluation_interval(body["autoScaleEvaluationInterval"])
        text = body["autoScaleEvaluationInterval"]
    elif was:
        interval, text = sim["autoscale"]["interval"], pool["autoScaleEvaluationInterval"]
    else:
        interval, text = DEFAULT_EVALUATION_INTERVAL, format_duration(DEFAULT_EVALUATION_INTERVAL)
    pool.update({"enableAutoScale": True, "autoScaleFormula": formula, "autoScaleEvaluationInterval": text})
    sim["autoscale"] = {"since": t, "interval": interval, "last": t}
    sim["last_enable"] = t
    _autoscale_apply(ctx, pool, t)
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def disable_auto_scale(ctx, account: str, pool_id: str, auth_scheme: str | None = None,
                       headers: dict | None = None) -> dict:
    """Pool_DisableAutoScale: the pool keeps its current targets (and any allocation in progress); the formula,
    interval and last run are dropped (a guess: the spec's BatchPool says autoScaleFormula and the interval are
    "only set if the pool automatically scales"). Disabling a pool without autoscale is accepted (a guess)."""
    pool = _load_for_change(ctx, account, pool_id, auth_scheme, headers)
    t = ctx.clock.now()
    pool["enableAutoScale"] = False
    for f in ("autoScaleFormula", "autoScaleEvaluationInterval", "autoScaleRun"):
        pool.pop(f, None)
    pool["_sim"].pop("autoscale", None)
    _stamp(ctx, pool, t)
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return pool


def evaluate_auto_scale(ctx, account: str, pool_id: str, body: Any, auth_scheme: str | None = None) -> dict:
    """Pool_EvaluateAutoScale {autoScaleFormula} -> AutoScaleRun {timestamp, results} or {timestamp, error}: the
    formula is run against the pool's current counts and not applied. "The Pool must have auto scaling enabled in
    order to evaluate a formula" (the operation's docs): else 409 OperationInvalidForCurrentState (code a guess). A
    formula that does not parse or fails answers 200 with autoScaleRun.error (a guess; pool add and enableautoscale
    refuse a syntax error with 400)."""
    body = require_body(body)
    _closed(body, ("autoScaleFormula",), "PoolEvaluateAutoScaleParameter")
    pool = get_pool(ctx, account, pool_id, auth_scheme)
    formula = body.get("autoScaleFormula")
    if not isinstance(formula, str) or not formula.strip():
        raise MissingRequiredProperty("autoScaleFormula")
    if len(formula) > autoscale.MAX_FORMULA_LENGTH:
        raise AutoScaleFormulaTooLong(len(formula))
    if not pool.get("enableAutoScale"):
        raise OperationInvalidForCurrentState(
            "The specified operation is not valid for the current state of the resource.",
            [("Reason", "The pool must have automatic scaling enabled to evaluate a formula.")])
    return _autoscale_run(ctx, pool, formula, ctx.clock.now())[1]


# -- nodes ----------------------------------------------------------------------------------------------

def list_nodes(ctx, account: str, pool_id: str, flt: str | None = None, select: str | None = None,
               maxresults: str | None = None, skip: str | None = None,
               auth_scheme: str | None = None) -> tuple[list[dict], str | None]:
    pool = get_pool(ctx, account, pool_id, auth_scheme)
    pred = compile_filter(flt)
    limit = max_results(maxresults)
    after = int(skip) if skip and skip.lstrip("-").isdigit() else -1
    t = ctx.clock.now()
    out: list[dict] = []
    nxt = None
    for v in nodes.iter_nodes(ctx, pool, t):
        if v.index <= after:
            continue
        body = nodes.render(ctx, account, pool, v, t)
        if not pred(body):
            continue
        if len(out) == limit:
            nxt = str(out_last)
            break
        out.append(apply_select(body, select))
        out_last = v.index
    return out, nxt


def get_node(ctx, account: str, pool_id: str, node_id: str, auth_scheme: str | None = None) -> dict:
    pool = get_pool(ctx, account, pool_id, auth_scheme)
    t = ctx.clock.now()
    v = nodes.find_node(ctx, pool, node_id, t)
    if v is None:
        raise NodeNotFound("The specified node does not exist.")
    return nodes.render(ctx, account, pool, v, t)


_REBOOT_BLOCKED = {
    "creating": ("NodeBeingCreated", "The specified node is being created."),
    "starting": ("NodeBeingStarted", "The specified node is being started."),
    "waitingforstarttask": ("NodeBeingStarted", "The specified node is being started."),
    "rebooting": ("NodeBeingRebooted", "The specified node is being rebooted."),
    "reimaging": ("NodeBeingReimaged", "The specified node is being reimaged."),
    "leavingpool": ("OperationInvalidForCurrentState",
                    "The specified operation is not valid for the current state of the resource."),
}


def reboot_node(ctx, account: str, pool_id: str, node_id: str, body: Any = None,
                auth_scheme: str | None = None) -> None:
    pool = get_pool(ctx, account, pool_id, auth_scheme)
    _writable(pool)
    t = ctx.clock.now()
    v = nodes.find_node(ctx, pool, node_id, t)
    if v is None:
        raise NodeNotFound("The specified node does not exist.")
    if v.state in _REBOOT_BLOCKED:
        code, msg = _REBOOT_BLOCKED[v.state]
        raise BatchError(409, code, msg)
    ov = pool["_sim"].setdefault("nodes", {}).setdefault(str(v.index), {})
    ov["reboot"] = t
    ov["dedicated"] = bool(v.seg["dedicated"])
    # a running task is requeued/terminated by the reboot: end its occupancy now
    busy = pool["_sim"].setdefault("busy", {}).get(str(v.index), [])
    for iv in busy:
        if iv[0] <= t < iv[1]:
            iv[1] = t
    ctx.store.put(KIND, pool_key(account, pool_id), pool)


def node_counts(ctx, account: str, flt: str | None = None, maxresults: str | None = None,
                skip: str | None = None) -> tuple[list[dict], str | None]:
    get_account(ctx, account)
    pred = compile_filter(flt)
    limit = max_results(maxresults, default=10, limit=10)
    out = []
    t = ctx.clock.now()
    for pool in ctx.store.list(KIND, prefix=f"{account.lower()}/"):
        c = nodes.counts(ctx, pool, t)
        item = {"poolId": pool["id"], **c}
        if pred({"poolId": pool["id"], "id": pool["id"]}):
            out.append(item)
    start = int(skip) if skip and skip.isdigit() else 0
    page = out[start:start + limit]
    nxt = str(start + limit) if start + limit < len(out) else None
    return page, nxt


# -- used by jobs/tasks ------------------------------------------------------------------------------

def find_pool_raw(ctx, account: str, pool_id: str) -> dict | None:
    return ctx.store.get(KIND, pool_key(account, pool_id))


def is_gallery_pool(pool: dict | None) -> bool:
    return bool(pool) and (pool["_sim"].get("image") or {}).get("kind") == "gallery"


def claim_node(ctx, account: str, pool_id: str, earliest: float, duration: float,
               exit_code: int | Callable[[str], int], task_url: str) -> tuple[str, float, str] | None:
    """Put a task on the node that is free the soonest (not later than now); returns (node id, start, node url).
    ``exit_code`` may be a function of the chosen node's id (a ``task_failed`` fault that matches that node)."""
    pool = ctx.store.get(KIND, pool_key(account, pool_id))
    if pool is None or pool.get("state") != "active":
        return None
    t = ctx.clock.now()
    best = None
    for v in nodes.iter_nodes(ctx, pool, t):
        if v.state != "idle":
            continue
        start = max(earliest, v.since)
        if start <= t and (best is None or start < best[1]):
            best = (v, start)
    if best is None:
        return None
    v, start = best
    nid = nodes.node_id(pool["id"], v.index, bool(v.seg["dedicated"]))
    if callable(exit_code):
        exit_code = exit_code(nid)
    busy = pool["_sim"].setdefault("busy", {}).setdefault(str(v.index), [])
    busy.append([start, start + duration, exit_code, task_url])
    ctx.store.put(KIND, pool_key(account, pool_id), pool)
    return nid, start, f"{endpoint(ctx, account)}/pools/{pool['id']}/nodes/{nid}"
