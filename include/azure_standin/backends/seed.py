"""The demo fixture, created on a state directory's first start (server.seed keeps the result in meta "demo").

Subscription ctx.config.subscription_id, resource group `rg-batch-images` in westeurope:
- `vm-prepared-ubuntu2204`: the VM the pipeline images. canonical / 0001-com-ubuntu-server-jammy /
  22_04-lts-gen2 / latest (exactVersion pinned), Hyper-V V2, managed OS disk (30 GB) and one managed
  data disk (LUN 0, 64 GB), no extensions, running.
- `vm-prepared-ubuntu2204-tl`: like the good one but Trusted Launch (securityProfile TrustedLaunch, secure boot
  and vTPM on; its OS disk has securityProfile.securityType TrustedLaunch): no managed image can capture it.
- `vm-prepared-ubuntu2204-gen1`: a standard Gen1 VM (canonical / 0001-com-ubuntu-server-jammy / 22_04-lts,
  Hyper-V V1, no securityProfile), OS disk + one data disk: the recipe's managed image path.
- negative VMs (all in the same group, all otherwise like the good one):
  `vm-with-extension`   has a CustomScript extension installed (Batch: no extensions on the source VM);
  `vm-unmanaged-disks`  OS disk is a VHD in a storage account, no managedDisk (no snapshot possible);
  `vm-thirdparty-plan`  third-party marketplace image with a purchase plan (Batch refuses those).
- Marketplace image versions (backends/marketplace.py), in every region: Ubuntu 22.04 gen2 and gen1
  (`22_04-lts-gen2` / `22_04-lts`: 22.04.202409120, 22.04.202410020 - the prepared VMs' base - and 22.04.202411010,
  the newest), Ubuntu 20.04 gen2 (`0001-com-ubuntu-server-focal` / `20_04-lts-gen2`: 20.04.202409100, a base whose
  node agent Batch retired on 2025-04-23), the third-party CIS image with its purchase plan (2.0.0, 2.1.0), and a
  Trusted-Launch-only base: Ubuntu 24.04 gen2 (`ubuntu-24_04-lts` / `server`: 24.04.202411030, image feature
  `SecurityType` = `TrustedLaunch`; a standard VM from it is refused, see backends/vms.py). Chosen because Batch
  supports it (supported_images.py) and it is Gen2; that Azure publishes this SKU with `TrustedLaunch` rather than a
  `...Supported` value is NOT verified (no public `az vm image show` of it was found): it stands for any base Azure
  marks so.
- Batch account `batchimages` (westeurope, BatchService allocation mode, two random account keys), and
  `batchimagesne` (northeurope, same settings): pools in two regions, each waiting for its own region's replica.
- Microsoft.Batch registered in the subscription.
- Role assignments of the stand-in's service principal (object id `core.tokens.object_id(client_id)`):
  `PRINCIPAL_ROLES` at the subscription (checked only with the RBAC switch on, backends/authorization.py).
- Virtual networks (backends/network.py) for pools in a subnet: `vnet-batch` (westeurope, 10.0.0.0/16) with subnet
  `pools` (10.0.0.0/24: 256 - 5 reserved = 251 addresses, room for two demo pools side by side) and subnet `tiny`
  (10.0.1.0/29: 8 - 5 = 3 addresses, too small for two pools), and `vnet-northeurope` (northeurope, 10.1.0.0/16)
  with subnet `pools` (10.1.0.0/24): a subnet in another region than `batchimages`.
"""
from __future__ import annotations

from ..core.tokens import object_id
from .authorization import replace_assignments
from .batch_accounts import put_batch_account_doc
from .marketplace import publish_version
from .network import put_vnet_doc
from .resources import put_resource_group, set_provider_registration
from .vms import put_vm_doc

RESOURCE_GROUP = "rg-batch-images"
LOCATION = "westeurope"
BATCH_ACCOUNT = "batchimages"
BATCH_ACCOUNT_NE = "batchimagesne"
LOCATION_NE = "northeurope"
SOURCE_VM = "vm-prepared-ubuntu2204"
TRUSTED_LAUNCH_VM = "vm-prepared-ubuntu2204-tl"
GEN1_VM = "vm-prepared-ubuntu2204-gen1"
VNET = "vnet-batch"
VNET_NE = "vnet-northeurope"

UBUNTU_2204 = {
    "publisher": "canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts-gen2",
    "version": "latest",
    "exactVersion": "22.04.202410020",
}

UBUNTU_2204_GEN1 = {**UBUNTU_2204, "sku": "22_04-lts"}
UBUNTU_2204_VERSIONS = ("22.04.202409120", "22.04.202410020", "22.04.202411010")
UBUNTU_2004 = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-focal", "sku": "20_04-lts-gen2"}
UBUNTU_2404_TL_ONLY = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"}
UBUNTU_2404_TL_ONLY_VERSION = "24.04.202411030"

# A third-party (non first-party) marketplace image sold with a plan.
THIRD_PARTY = {
    "publisher": "center-for-internet-security-inc",
    "offer": "cis-ubuntu-linux-2204-l1",
    "sku": "cis-ubuntu-linux-2204-l1-gen2",
    "version": "latest",
    "exactVersion": "2.1.0",
}
THIRD_PARTY_PLAN = {
    "name": "cis-ubuntu-linux-2204-l1-gen2",
    "publisher": "center-for-internet-security-inc",
    "product": "cis-ubuntu-linux-2204-l1",
}


# The stand-in's service principal's roles, at the subscription (backends/authorization.py; enforced only with the RBAC
# switch on): Owner, so turning enforcement on changes nothing for the ARM flows, and Azure Batch Account
# Contributor, because Owner has no dataActions (built-in roles reference, Privileged) while Batch jobs and job
# schedules are data actions (Batch's RBAC page). A caller replaces them with authorization.replace_assignments or
# PUT /_control/role_assignments.
PRINCIPAL_ROLES = ("Owner", "Azure Batch Account Contributor")


def seed_marketplace(ctx) -> None:
    for version in UBUNTU_2204_VERSIONS:
        publish_version(ctx, UBUNTU_2204["publisher"], UBUNTU_2204["offer"], UBUNTU_2204["sku"], version)
        publish_version(ctx, UBUNTU_2204_GEN1["publisher"], UBUNTU_2204_GEN1["offer"], UBUNTU_2204_GEN1["sku"], version,
                        hyper_v_generation="V1")
    publish_version(ctx, UBUNTU_2004["publisher"], UBUNTU_2004["offer"], UBUNTU_2004["sku"], "20.04.202409100")
    publish_version(ctx, UBUNTU_2404_TL_ONLY["publisher"], UBUNTU_2404_TL_ONLY["offer"], UBUNTU_2404_TL_ONLY["sku"],
                    UBUNTU_2404_TL_ONLY_VERSION, security_type="TrustedLaunch")
    for version in ("2.0.0", "2.1.0"):
        publish_version(ctx, THIRD_PARTY["publisher"], THIRD_PARTY["offer"], THIRD_PARTY["sku"], version,
                        plan=THIRD_PARTY_PLAN)


def seed_demo(ctx) -> dict:
    sub = ctx.config.subscription_id
    seed_marketplace(ctx)
    put_resource_group(ctx, sub, RESOURCE_GROUP, {"location": LOCATION})

    good = put_vm_doc(ctx, sub, RESOURCE_GROUP, SOURCE_VM, location=LOCATION, vm_size="Standard_D4s_v5",
                        image_reference=UBUNTU_2204, hyper_v_generation="V2", os_disk_gb=30, data_disks_gb=[64])
    trusted = put_vm_doc(ctx, sub, RESOURCE_GROUP, TRUSTED_LAUNCH_VM, location=LOCATION, vm_size="Standard_D4s_v5",
                           image_reference=UBUNTU_2204, hyper_v_generation="V2", os_disk_gb=30, data_disks_gb=[64],
                           security_type="TrustedLaunch")
    gen1 = put_vm_doc(ctx, sub, RESOURCE_GROUP, GEN1_VM, location=LOCATION, vm_size="Standard_D4s_v3",
                        image_reference=UBUNTU_2204_GEN1, hyper_v_generation="V1", os_disk_gb=30, data_disks_gb=[64])
    with_ext = put_vm_doc(
        ctx, sub, RESOURCE_GROUP, "vm-with-extension", location=LOCATION, vm_size="Standard_D4s_v5",
        image_reference=UBUNTU_2204, hyper_v_generation="V2", os_disk_gb=30, data_disks_gb=[64],
        extensions=[{
            "name": "CustomScript", "publisher": "Microsoft.Azure.Extensions", "type": "CustomScript",
            "typeHandlerVersion": "2.1",
            "settings": {"commandToExecute": "apt-get update && apt-get install -y nfs-common"},
        }],
    )
    unmanaged = put_vm_doc(ctx, sub, RESOURCE_GROUP, "vm-unmanaged-disks", location=LOCATION,
                             vm_size="Standard_D4s_v3", image_reference=UBUNTU_2204, hyper_v_generation="V2",
                             os_disk_gb=30, data_disks_gb=[], managed=False)
    plan = put_vm_doc(ctx, sub, RESOURCE_GROUP, "vm-thirdparty-plan", location=LOCATION,
                        vm_size="Standard_D4s_v5", image_reference=THIRD_PARTY, hyper_v_generation="V2",
                        os_disk_gb=30, data_disks_gb=[], plan=THIRD_PARTY_PLAN)

    acct = put_batch_account_doc(ctx, sub, RESOURCE_GROUP, BATCH_ACCOUNT, location=LOCATION)
    acct_ne = put_batch_account_doc(ctx, sub, RESOURCE_GROUP, BATCH_ACCOUNT_NE, location=LOCATION_NE)
    set_provider_registration(ctx, sub, "Microsoft.Batch", "Registered")
    vnet = put_vnet_doc(ctx, sub, RESOURCE_GROUP, VNET, location=LOCATION, address_prefixes=["10.0.0.0/16"],
                        subnets={"pools": "10.0.0.0/24", "tiny": "10.0.1.0/29"})
    vnet_ne = put_vnet_doc(ctx, sub, RESOURCE_GROUP, VNET_NE, location=LOCATION_NE, address_prefixes=["10.1.0.0/16"],
                           subnets={"pools": "10.1.0.0/24"})

    principal = object_id(ctx.config.client_id)
    assignments = replace_assignments(ctx, principal, [(role, f"/subscriptions/{sub}") for role in PRINCIPAL_ROLES])

    return {
        "subscription_id": sub,
        "principal_object_id": principal,
        "role_assignments": [a["id"] for a in assignments],
        "resource_group": RESOURCE_GROUP,
        "location": LOCATION,
        "source_vm_id": good["id"],
        "source_vm_name": good["name"],
        "trusted_launch_vm_id": trusted["id"],
        "gen1_vm_id": gen1["id"],
        "batch_account": BATCH_ACCOUNT,
        "batch_account_id": acct["id"],
        "batch_account_ne": BATCH_ACCOUNT_NE,
        "batch_account_ne_id": acct_ne["id"],
        "batch_account_ne_location": LOCATION_NE,
        "vnet_id": vnet["id"],
        "subnet_id": f"{vnet['id']}/subnets/pools",
        "tiny_subnet_id": f"{vnet['id']}/subnets/tiny",
        "subnet_ne_id": f"{vnet_ne['id']}/subnets/pools",
        "negative_vms": {
            "with_extension": with_ext["id"],
            "unmanaged_disks": unmanaged["id"],
            "thirdparty_plan": plan["id"],
        },
    }
