"""Microsoft's recipe, by hand, with nothing but azure-identity, azure-mgmt-compute, azure-batch.

    python include/azure_standin/examples/recipe_with_sdks.py .standin/endpoints.json

Snapshots the demo VM's OS and data disks, builds a managed image from them, publishes a gallery image
version replicated to the Batch account's region, creates a Batch pool pinned to that version and waits
until it is steady with idle nodes. It reads only the stand-in's endpoints.json: point the same calls at
real Azure by giving them Azure's endpoints and a real service principal instead.
"""
from __future__ import annotations

import json
import sys
import time

from azure.batch import BatchClient
from azure.batch import models as bm
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient


def main(endpoints_path: str, suffix: str = "sdk") -> int:
    ep = json.load(open(endpoints_path))
    demo = ep["demo"]
    cred = ClientSecretCredential(ep["tenant_id"], ep["client_id"], ep["client_secret"], authority=ep["authority"],
                                  disable_instance_discovery=True, connection_verify=ep["ca_bundle"])
    compute = ComputeManagementClient(cred, ep["subscription_id"], base_url=ep["arm"], connection_verify=ep["ca_bundle"])
    rg, location = demo["resource_group"], demo["location"]
    poll = {"polling_interval": 1}

    vm = compute.virtual_machines.get(rg, demo["source_vm_id"].rsplit("/", 1)[1])
    disks = [("os", None, vm.properties.storage_profile.os_disk.managed_disk.id)] + [
        ("data", d.lun, d.managed_disk.id) for d in vm.properties.storage_profile.data_disks]
    snapshots = {}
    for role, lun, disk_id in disks:
        name = f"snap-{suffix}-{role}{'' if lun is None else lun}"
        snapshots[(role, lun)] = compute.snapshots.begin_create_or_update(rg, name, {
            "location": location, "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id}}}, **poll).result()
        print(f"snapshot {snapshots[(role, lun)].id}: {snapshots[(role, lun)].properties.provisioning_state}")

    image = compute.images.begin_create_or_update(rg, f"img-{suffix}", {
        "location": location, "properties": {"hyperVGeneration": "V2", "storageProfile": {
            "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": snapshots[("os", None)].id}},
            "dataDisks": [{"lun": lun, "snapshot": {"id": s.id}} for (role, lun), s in snapshots.items() if role == "data"],
        }}}, **poll).result()
    print(f"image {image.id}")

    compute.galleries.begin_create_or_update(rg, f"gal{suffix}", {"location": location}, **poll).result()
    compute.gallery_images.begin_create_or_update(rg, f"gal{suffix}", "ubuntu2204", {
        "location": location, "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
        "identifier": {"publisher": "contoso", "offer": "batch-nodes", "sku": "ubuntu2204"}}}, **poll).result()
    version = compute.gallery_image_versions.begin_create_or_update(rg, f"gal{suffix}", "ubuntu2204", "1.0.0", {
        "location": location, "properties": {
            "storageProfile": {"source": {"id": image.id}},
            "publishingProfile": {"targetRegions": [{"name": location, "regionalReplicaCount": 1}]}}}, **poll).result()
    # the create's operation covers replication: once its poller is done, every target region is Completed
    status = compute.gallery_image_versions.get(rg, f"gal{suffix}", "ubuntu2204", "1.0.0",
                                                expand="ReplicationStatus").properties.replication_status
    print("replication:", ", ".join(f"{s.region} {s.state} {s.progress}%" for s in status.summary))

    batch = BatchClient(ep["batch_accounts"][demo["batch_account"]]["endpoint"], cred, connection_verify=ep["ca_bundle"])
    pool_id = f"pool-{suffix}"
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", target_dedicated_nodes=2,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(virtual_machine_image_id=version.id),
            node_agent_sku_id="batch.node.ubuntu 22.04")))
    while True:
        pool = batch.get_pool(pool_id)
        counts = next((c for c in batch.list_pool_node_counts() if c.pool_id == pool_id), None)
        idle = counts.dedicated.idle if counts else 0
        print(f"pool {pool_id}: {pool.allocation_state}, {pool.current_dedicated_nodes}/2 nodes, {idle} idle")
        if str(pool.allocation_state).lower().endswith("steady") and idle == 2:
            break
        time.sleep(1)
    print(f"pool {pool_id} is steady on {version.id}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: recipe_with_sdks.py ENDPOINTS_JSON [NAME_SUFFIX]  (start the stand-in first: make standin)")
    sys.exit(main(*sys.argv[1:]))
