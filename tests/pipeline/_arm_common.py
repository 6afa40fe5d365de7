"""Shared helpers of the ARM-half tests (hooks, the waiter trigger, operators, sensor) against the stand-in.

A plan as PreflightOperator would make it for the seeded fixture, the operators built with a short poll interval,
and deferrable operators driven like the triggerer would: the deferral's trigger is serialised, re-instantiated
from its classpath and kwargs, run with asyncio, and its event handed back. Request-log and SDK read helpers for
the checks afterwards. The ``arm`` fixture is in this folder's conftest.py.
"""
from __future__ import annotations

import asyncio
import importlib
import json

import pytest
from azure.core.exceptions import ResourceNotFoundError

from airflow.sdk.exceptions import TaskDeferred
from batch_images.operators.gallery import GalleryImageVersionOperator, PromoteImageVersionOperator
from batch_images.operators.image import ManagedImageOperator
from batch_images.operators.snapshot import SnapshotDisksOperator
from batch_images.rules import ids, naming
from batch_images.triggers.base import AzureBaseWaiterTrigger

POLL = 0.05
GALLERY = "galbatchimages"
DEFINITION = "ubuntu2204-batch"
VERSION = "2026.1125.0"
RUN_ID = "scheduled__2026-11-25T00:00:00+00:00"
DAG_ID = "batch_images_demo"


def make_plan(standin, version: str = VERSION, run_id: str = RUN_ID,
              regions: tuple[tuple[str, int], ...] = (("westeurope", 1), ("northeurope", 2)), **overrides) -> dict:
    """The plan E's PreflightOperator would produce for the seeded fixture (built from the SDK's view of the VM)."""
    demo = standin.endpoints["demo"]
    sub, rg = demo["subscription_id"], demo["resource_group"]
    vm = standin.compute().virtual_machines.get(rg, demo["source_vm_name"])
    sp = vm.properties.storage_profile
    vm_name = vm.name
    data_disks = [{"lun": d.lun, "disk_id": d.managed_disk.id, "size_gb": d.disk_size_gb} for d in sp.data_disks]
    gallery = {"subscription_id": sub, "resource_group": rg, "name": GALLERY, "location": "westeurope",
               "id": ids.gallery_id(sub, rg, GALLERY).id}
    definition_id = ids.gallery_image_id(sub, rg, GALLERY, DEFINITION).id
    image_name = naming.image_name(DEFINITION, version)
    snapshot_names = {naming.disk_role(None): naming.snapshot_name(vm_name, "os", version)}
    for d in data_disks:
        role = naming.disk_role(d["lun"])
        snapshot_names[role] = naming.snapshot_name(vm_name, role, version)
    plan = {
        "dag_id": DAG_ID, "run_id": run_id, "version": version, "arm_conn_id": "azure_default",
        "location": vm.location, "work_resource_group": rg, "work_subscription_id": sub,
        "source": {"vm_id": vm.id, "vm_name": vm_name, "os_disk_id": sp.os_disk.managed_disk.id,
                   "os_disk_size_gb": sp.os_disk.disk_size_gb, "data_disks": data_disks, "os_type": "Linux",
                   "hyper_v_generation": "V2",
                   "base_image": {"publisher": sp.image_reference.publisher, "offer": sp.image_reference.offer,
                                  "sku": sp.image_reference.sku, "version": sp.image_reference.version}},
        "gallery": gallery,
        "image_definition": {"name": DEFINITION, "os_type": "Linux", "hyper_v_generation": "V2",
                             "publisher": "contoso", "offer": "batch-ubuntu", "sku": "2204", "id": definition_id},
        "version_id": ids.gallery_image_version_id(sub, rg, GALLERY, DEFINITION, version).id,
        "image_name": image_name, "image_id": ids.image_id(sub, rg, image_name).id,
        "snapshot_names": snapshot_names,
        "target_regions": [{"name": r, "regional_replica_count": n, "storage_account_type": "Standard_LRS"}
                           for r, n in regions],
        "replica_sizing": {"rule": "per300", "per_region": {
            r: {"count": n, "vm_count": 300 * n, "explanation": f"{300 * n} VMs / 300 VMs per replica = {n}"}
            for r, n in regions}},
        "storage_account_type": "Standard_LRS", "end_of_life_date": "2027-02-23", "keep_versions": 2,
        "node_agent_sku_id": "batch.node.ubuntu 22.04", "pools": [], "tags": {"team": "hpc"},
        "timeouts": {"snapshot": 120, "image": 120, "replication": 300, "allocation": 300},
    }
    plan.update(overrides)
    return plan


def trigger_from(serialized: tuple[str, dict]) -> AzureBaseWaiterTrigger:
    """Re-instantiate a trigger the way the triggerer does: classpath + kwargs (JSON round trip too)."""
    classpath, kwargs = serialized
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


async def _collect(trigger) -> list:
    return [event async for event in trigger.run()]


def run_trigger(trigger) -> dict:
    events = asyncio.run(_collect(trigger))
    assert len(events) == 1
    return events[0].payload


def run_operator(op, context=None, max_deferrals: int = 10):
    """execute(); on each deferral run the (re-instantiated) trigger and resume, until a result or an error."""
    context = context or {}
    deferrals = []
    call = lambda: op.execute(context)  # noqa: E731
    for _ in range(max_deferrals):
        try:
            return call(), deferrals
        except TaskDeferred as deferred:
            deferrals.append(deferred)
            assert deferred.timeout is not None
            trigger = trigger_from(deferred.trigger.serialize())
            event = run_trigger(trigger)
            method = getattr(op, deferred.method_name)
            kwargs = dict(deferred.kwargs or {})
            call = lambda m=method, k=kwargs, e=event: m(context, event=e, **k)  # noqa: E731
    raise AssertionError("too many deferrals")


def requests_since(standin, since: int = 0) -> list[dict]:
    return standin.control.requests(since=since, items=True)["items"]


def ops(rows: list[dict]) -> list[str]:
    return [r["op"] for r in rows]


def last_request_id(standin) -> int:
    return standin.control.requests()["last_id"]


def sdk_get(client, resource_id: str, expand: str | None = None):
    """Read a resource with the plain SDK for checks."""
    arm_id = ids.parse_arm_id(resource_id, "id")
    names = [n for _, n in arm_id.types]
    group = {
        "snapshots": client.snapshots, "images": client.images, "galleries": client.galleries,
    }
    if arm_id.is_type(ids.GALLERY_IMAGE_VERSION):
        return client.gallery_image_versions.get(arm_id.resource_group, *names, expand=expand)
    if arm_id.is_type(ids.GALLERY_IMAGE):
        return client.gallery_images.get(arm_id.resource_group, *names)
    return group[arm_id.types[0][0]].get(arm_id.resource_group, *names)


def assert_gone(client, resource_id: str) -> None:
    with pytest.raises(ResourceNotFoundError):
        sdk_get(client, resource_id)


def snapshots_op(plan, **kw):
    return SnapshotDisksOperator(task_id="snapshots", plan=plan, poll_interval=POLL, **kw)


def image_op(plan, snapshots, **kw):
    return ManagedImageOperator(task_id="image", plan=plan, snapshots=snapshots, poll_interval=POLL, **kw)


def gallery_op(plan, image_id, **kw):
    return GalleryImageVersionOperator(task_id="version", plan=plan, image_id=image_id, poll_interval=POLL, **kw)


def promote_op(plan, **kw):
    """promote_image_version as the DAG runs it (no rolls: every pool rolls): every region, then excludeFromLatest
    false. publish_image_version already waited for (and retried) every region; this wait is promotion's own guard."""
    return PromoteImageVersionOperator(task_id="promote", plan=plan, rolls=None, poll_interval=POLL, **kw)


def build_image(standin, plan, deferrable=True):
    snaps, _ = run_operator(snapshots_op(plan, deferrable=deferrable))
    image_id, _ = run_operator(image_op(plan, snaps, deferrable=deferrable))
    return snaps, image_id
