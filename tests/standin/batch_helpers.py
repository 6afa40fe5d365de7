"""Helpers for the Batch stand-in tests: build a real gallery image version through azure-mgmt-compute
(snapshot -> managed image -> gallery -> definition -> version), pool options, and waiting on pools.

Everything goes through the unmodified SDKs; the control API is used only for what a test needs to set
up (time, faults, quotas), never to create Azure resources.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from azure.batch import models as bm

FAST = 0.05          # ARM pollers: Retry-After rules the first wait, this one the following ones
POLL = 0.05          # Batch pollers' polling_interval (seconds, real)
JAMMY_AGENT = "batch.node.ubuntu 22.04"


@dataclass
class ImageVersion:
    id: str
    definition_id: str
    location: str


def demo(standin) -> dict:
    return standin.endpoints["demo"]


def account(standin) -> str:
    return demo(standin)["batch_account"]


def build_image_version(standin, *, tag: str = "a", location: str = "westeurope",
                        regions: list[str] | None = None, os_state: str = "Generalized",
                        gallery: str = "galbatch", definition: str = "ubuntu2204-batch", version: str = "1.0.0",
                        wait_replication: bool = True, build_scale: float = 30000.0,
                        properties: dict | None = None, **publishing) -> ImageVersion:
    """A gallery image version of the demo VM's OS disk, replicated to `regions` (default: `location`).
    `publishing` goes into its publishingProfile (excludeFromLatest=True, ...), `properties` into its properties
    (safetyProfile, ...).

    Specialized definitions take the snapshot directly (a managed image is generalized by nature).
    The time scale is raised while building so tests stay fast, then put back.
    """
    ctl = standin.control
    before = ctl.call("GET", "/clock")["scale"]
    ctl.set_scale(build_scale)
    try:
        client = standin.compute()
        rg = demo(standin)["resource_group"]
        vm = client.virtual_machines.get(rg, demo(standin)["source_vm_name"])
        os_disk = vm.properties.storage_profile.os_disk.managed_disk.id
        snap = client.snapshots.begin_create_or_update(rg, f"snap-{tag}", {
            "location": location,
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": os_disk}},
        }, polling_interval=FAST).result()
        if os_state == "Generalized":
            image = client.images.begin_create_or_update(rg, f"img-{tag}", {
                "location": location,
                "properties": {"hyperVGeneration": "V2", "storageProfile": {
                    "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": snap.id}}}},
            }, polling_interval=FAST).result()
            source = {"source": {"id": image.id}}
        else:
            source = {"osDiskImage": {"source": {"id": snap.id}}}
        client.galleries.begin_create_or_update(rg, gallery, {"location": location}, polling_interval=FAST).result()
        defn = client.gallery_images.begin_create_or_update(rg, gallery, definition, {
            "location": location,
            "properties": {"osType": "Linux", "osState": os_state, "hyperVGeneration": "V2",
                           "identifier": {"publisher": "contoso", "offer": "batch-images", "sku": definition}},
        }, polling_interval=FAST).result()
        targets = [{"name": r, "regionalReplicaCount": 1} for r in (regions or [location])]
        poller = client.gallery_image_versions.begin_create_or_update(rg, gallery, definition, version, {
            "location": location,
            "properties": {"storageProfile": source, "publishingProfile": {"targetRegions": targets, **publishing},
                           **(properties or {})},
        }, polling_interval=FAST)
        try:
            ver = poller.result()
            vid = ver.id
        except Exception:  # a replication fault fails the version: the id is still what the pool names
            vid = f"{defn.id}/versions/{version}"
        if wait_replication:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                v = client.gallery_image_versions.get(rg, gallery, definition, version, expand="ReplicationStatus")
                summary = v.properties.replication_status.summary or []
                if summary and all(s.state in ("Completed", "Failed") for s in summary):
                    break
                time.sleep(0.02)
        return ImageVersion(id=vid, definition_id=defn.id, location=location)
    finally:
        ctl.set_scale(before)


def pool_options(pool_id: str, image_id: str | None = None, *, nodes: int = 2, vm_size: str = "Standard_D2s_v3",
                 agent: str = JAMMY_AGENT, resize_timeout=None, start_task: bool = True,
                 wait_for_success: bool = True, marketplace: bool = False, **extra) -> bm.BatchPoolCreateOptions:
    if marketplace:
        ref = bm.BatchVmImageReference(publisher="canonical", offer="0001-com-ubuntu-server-jammy",
                                       sku="22_04-lts-gen2", version="latest")
    else:
        ref = bm.BatchVmImageReference(virtual_machine_image_id=image_id)
    kwargs = dict(
        id=pool_id, vm_size=vm_size, target_dedicated_nodes=nodes,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(image_reference=ref, node_agent_sku_id=agent),
        metadata=[bm.BatchMetadataItem(name="built-by", value="tests")],
    )
    if start_task:
        kwargs["start_task"] = bm.BatchStartTask(command_line="/bin/bash -c 'echo ready'",
                                                 wait_for_success=wait_for_success)
    if resize_timeout is not None:
        kwargs["resize_timeout"] = resize_timeout
    kwargs.update(extra)
    return bm.BatchPoolCreateOptions(**kwargs)


def wait_pool(client, pool_id: str, *, settled: bool = True, timeout: float = 30.0):
    """Until allocationState is steady (and, with settled, no node is still on its way to idle)."""
    deadline = time.monotonic() + timeout
    while True:
        pool = client.get_pool(pool_id)
        if pool.allocation_state == "steady":
            if not settled:
                return pool
            counts = {c.pool_id: c for c in client.list_pool_node_counts()}.get(pool_id)
            busy = 0
            if counts is not None:
                busy = sum(getattr(counts.dedicated, s) + getattr(counts.low_priority, s)
                           for s in ("creating", "starting", "waiting_for_start_task", "rebooting", "leaving_pool"))
            if busy == 0:
                return client.get_pool(pool_id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"pool {pool_id} did not settle: {pool.allocation_state}")
        time.sleep(0.05)


def set_quotas(standin, **props) -> dict:
    return standin.control.call("PUT", "/batch/quotas", {"account": account(standin), **props})


def error_values(err) -> dict:
    """Batch error `values` as a dict (azure-batch maps them to error.details code/message)."""
    e = err.error
    return {d.code: d.message for d in (e.details or [])} if e is not None else {}


class slow:
    """`with slow(standin):` run a block at a low time scale, so that a state lasting a simulated minute
    (resizing, rebooting, deleting...) is still there when the next request looks. The fixture's scale is
    put back afterwards; `standin.control.advance(s)` then skips ahead."""

    def __init__(self, standin, scale: float = 5.0):
        self.standin = standin
        self.scale = scale

    def __enter__(self):
        self.before = self.standin.control.call("GET", "/clock")["scale"]
        self.standin.control.set_scale(self.scale)
        return self

    def __exit__(self, *exc):
        self.standin.control.set_scale(self.before)
