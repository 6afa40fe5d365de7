"""The ARM route's body converter (rules/arm_pool_body.py): a data-plane pool body -> ARM Pool_Create's body.

What a user would notice if it were wrong: an ARM-made pool (one with a managed identity or ARM tags) that lacks a
setting of its template, or a template setting silently lost. So: every data-plane property azure-batch 15.1 can send
is either carried to an ARM property azure-mgmt-batch 18.0.0 (api 2024-07-01) knows, or refused by name; and the
stand-in's reverse mapping gives the template back.
"""
from __future__ import annotations

import copy
import re

import pytest
from azure.batch import models as bm
from azure.batch._utils.model_base import _RestField
from azure.mgmt.batch import models as mm

from batch_images.rules.arm_pool_body import arm_identity, arm_pool_body, body_needs_arm
from batch_images.rules.errors import InvalidInput
from include.azure_standin.backends.batch_arm_pools import arm_to_dataplane

SUB = "00000000-0000-0000-0000-000000000001"
UAI = f"/subscriptions/{SUB}/resourceGroups/rg-batch-images/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-pools"
FULL = {
    "id": "pool-1",
    "displayName": "every property",
    "vmSize": "Standard_D2s_v3",
    "virtualMachineConfiguration": {
        "imageReference": {"virtualMachineImageId": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0"},
        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
        "dataDisks": [{"lun": 0, "caching": "readonly", "diskSizeGB": 64, "managedDisk": {"storageAccountType": "premium_lrs"}}],
        "licenseType": "Windows_Server",
        "windowsConfiguration": {"enableAutomaticUpdates": False},
        "containerConfiguration": {"type": "dockerCompatible", "containerImageNames": ["busybox"],
                                   "containerRegistries": [{"registryServer": "myacr.azurecr.io", "identityReference": {"resourceId": UAI}}]},
        "diskEncryptionConfiguration": {"targets": ["osdisk", "temporarydisk"]},
        "nodePlacementConfiguration": {"policy": "regional"},
        "extensions": [{"name": "ext", "publisher": "Microsoft.Azure.Monitor", "type": "AzureMonitorLinuxAgent",
                        "typeHandlerVersion": "1.0", "autoUpgradeMinorVersion": True, "enableAutomaticUpgrade": True,
                        "settings": {"a": "b"}, "protectedSettings": {"c": "d"}, "provisionAfterExtensions": ["x"]}],
        "osDisk": {"ephemeralOSDiskSettings": {"placement": "cachedisk"}, "caching": "readwrite", "diskSizeGB": 128,
                   "managedDisk": {"storageAccountType": "standardssd_lrs", "securityProfile": {"securityEncryptionType": "VMGuestStateOnly"}},
                   "writeAcceleratorEnabled": False},
        "securityProfile": {"encryptionAtHost": True, "securityType": "trustedLaunch",
                            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}},
        "serviceArtifactReference": {"id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/serviceArtifacts/a/vmArtifactsProfiles/v"},
    },
    "resizeTimeout": "PT15M",
    "targetDedicatedNodes": 2,
    "targetLowPriorityNodes": 1,
    "enableInterNodeCommunication": True,
    "networkConfiguration": {
        "subnetId": f"/subscriptions/{SUB}/resourceGroups/rg-batch-images/providers/Microsoft.Network/virtualNetworks/vnet-batch/subnets/pools",
        "dynamicVNetAssignmentScope": "none",
        "endpointConfiguration": {"inboundNATPools": [{"name": "ssh", "protocol": "tcp", "backendPort": 22,
                                                       "frontendPortRangeStart": 15000, "frontendPortRangeEnd": 15100,
                                                       "networkSecurityGroupRules": [{"priority": 150, "access": "allow", "sourceAddressPrefix": "10.0.0.0/8", "sourcePortRanges": ["*"]}]}]},
        "publicIPAddressConfiguration": {"provision": "usermanaged", "ipAddressIds": [f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/ip1"]},
        "enableAcceleratedNetworking": True,
    },
    "startTask": {
        "commandLine": "/bin/sh -c true",
        "containerSettings": {"containerRunOptions": "--rm", "imageName": "busybox", "workingDirectory": "taskWorkingDirectory",
                              "registry": {"username": "u", "password": "p", "registryServer": "r.io"},
                              "containerHostBatchBindMounts": [{"source": "Shared", "isReadOnly": True}]},
        "resourceFiles": [{"httpUrl": "https://example.com/a.sh", "filePath": "a.sh", "fileMode": "0755"},
                          {"storageContainerUrl": "https://sa.blob.core.windows.net/c", "blobPrefix": "x/", "identityReference": {"resourceId": UAI}},
                          {"autoStorageContainerName": "c2"}],
        "environmentSettings": [{"name": "A", "value": "1"}],
        "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}},
        "maxTaskRetryCount": 2,
        "waitForSuccess": True,
    },
    "applicationPackageReferences": [{"applicationId": "app1", "version": "1.0"}],
    "taskSlotsPerNode": 4,
    "taskSchedulingPolicy": {"nodeFillType": "pack"},
    "userAccounts": [{"name": "u1", "password": "pw", "elevationLevel": "nonadmin",
                      "linuxUserConfiguration": {"uid": 1001, "gid": 1001, "sshPrivateKey": "k"}},
                     {"name": "u2", "password": "pw2", "windowsUserConfiguration": {"loginMode": "batch"}}],
    "metadata": [{"name": "owner", "value": "tests"}],
    "mountConfiguration": [
        {"azureBlobFileSystemConfiguration": {"accountName": "sa", "containerName": "c", "blobfuseOptions": "-o ro", "relativeMountPath": "blob", "identityReference": {"resourceId": UAI}}},
        {"nfsMountConfiguration": {"source": "10.0.0.4:/share", "relativeMountPath": "nfs", "mountOptions": "-o vers=4"}},
        {"cifsMountConfiguration": {"username": "u", "source": "//srv/share", "relativeMountPath": "cifs", "mountOptions": "-o ro", "password": "p"}},
        {"azureFileShareConfiguration": {"accountName": "sa", "azureFileUrl": "https://sa.file.core.windows.net/s", "accountKey": "k", "relativeMountPath": "files", "mountOptions": "-o ro"}},
    ],
    "upgradePolicy": {"mode": "automatic",
                      "automaticOSUpgradePolicy": {"disableAutomaticRollback": True, "enableAutomaticOSUpgrade": True, "useRollingUpgradePolicy": False, "osRollingUpgradeDeferral": True},
                      "rollingUpgradePolicy": {"enableCrossZoneUpgrade": True, "maxBatchInstancePercent": 20, "maxUnhealthyInstancePercent": 20,
                                               "maxUnhealthyUpgradedInstancePercent": 20, "pauseTimeBetweenBatches": "PT0S",
                                               "prioritizeUnhealthyInstances": False, "rollbackFailedInstancesOnPolicyBreach": False}},
    "resourceTags": {"cost": "hpc"},
    "targetNodeCommunicationMode": "simplified",
}
# The alternatives FULL cannot hold at the same time: autoscale, a marketplace / shared / community image, a named
# user, registries and blob mounts with keys.
ALT = {
    "id": "pool-2", "vmSize": "Standard_D2s_v3",
    "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 1;", "autoScaleEvaluationInterval": "PT5M",
    "virtualMachineConfiguration": {
        "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
                           "version": "latest", "sharedGalleryImageId": "/SharedGalleries/g/Images/i/Versions/1",
                           "communityGalleryImageId": "/CommunityGalleries/c/Images/i/Versions/1"},
        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
        "containerConfiguration": {"type": "criCompatible", "containerRegistries": [
            {"registryServer": "r.io", "username": "u", "password": "p"}]},
    },
    "startTask": {"commandLine": "x", "userIdentity": {"username": "u1"},
                  "containerSettings": {"imageName": "busybox", "registry": {
                      "registryServer": "myacr.azurecr.io", "identityReference": {"resourceId": UAI}}}},
    "mountConfiguration": [{"azureBlobFileSystemConfiguration": {"accountName": "sa", "containerName": "c",
                                                                 "accountKey": "k", "relativeMountPath": "b1"}},
                           {"azureBlobFileSystemConfiguration": {"accountName": "sa", "containerName": "c",
                                                                 "sasKey": "s", "relativeMountPath": "b2"}}],
}


# Data-plane create properties ARM 2024-07-01 has no place for (the module docstring lists them, with sources).
NO_ARM_PLACE = {
    "taskSchedulingPolicy.jobDefaultOrder", "virtualMachineConfiguration.imageReference.exactVersion",
    "networkConfiguration.publicIPAddressConfiguration.ipFamilies",
    "networkConfiguration.publicIPAddressConfiguration.ipTags",
    "networkConfiguration.publicIPAddressConfiguration.ipTags.ipTagType",
    "networkConfiguration.publicIPAddressConfiguration.ipTags.tag",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.enabled",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.imds",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.imds.inVMAccessControlProfileReferenceId",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.imds.mode",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.wireServer",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.wireServer.inVMAccessControlProfileReferenceId",
    "virtualMachineConfiguration.securityProfile.proxyAgentSettings.wireServer.mode",
    "virtualMachineConfiguration.osDisk.managedDisk.diskEncryptionSet",
    "virtualMachineConfiguration.osDisk.managedDisk.diskEncryptionSet.id",
    "virtualMachineConfiguration.dataDisks.managedDisk.diskEncryptionSet",
    "virtualMachineConfiguration.dataDisks.managedDisk.diskEncryptionSet.id",
    "virtualMachineConfiguration.dataDisks.managedDisk.securityProfile",
    "virtualMachineConfiguration.dataDisks.managedDisk.securityProfile.securityEncryptionType",
    "virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey",
    "virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey.identityReference",
    "virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey.identityReference.resourceId",
    "virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey.keyUrl",
    "virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey.rotationToLatestKeyVersionEnabled",
}


def _model_paths(cls, prefix: str = "", seen: tuple = ()) -> set[str]:
    """Every rest property path of an azure-batch 15.1 model (lists without indices)."""
    out: set[str] = set()
    ann: dict = {}
    for base in reversed(cls.__mro__):
        ann.update(getattr(base, "__annotations__", {}))
    for attr, field in vars(cls).items():
        if not isinstance(field, _RestField):
            continue
        path = f"{prefix}{field._rest_name_input or attr}"
        out.add(path)
        for name in re.findall(r"\w+", str(ann.get(attr))):
            sub = getattr(bm, name, None)
            if isinstance(sub, type) and hasattr(sub, "_is_model") and sub not in seen:
                out |= _model_paths(sub, f"{path}.", (*seen, cls))
    return out


def _body_paths(value, prefix: str = "", free=("settings", "protectedSettings", "resourceTags")) -> set[str]:
    out: set[str] = set()
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, dict):
            for k, v in item.items():
                out.add(prefix + k)
                if k not in free:
                    out |= _body_paths(v, f"{prefix}{k}.")
    return out


def _identity(*rids):
    return {"type": "UserAssigned", "userAssignedIdentities": {r: {} for r in rids}}


def test_full_body_covers_every_data_plane_property_but_those_arm_lacks():
    # The fixture is the whole data-plane create body: a property azure-batch adds is caught here.
    missing = _model_paths(bm.BatchPoolCreateOptions) - _body_paths(FULL) - _body_paths(ALT) - NO_ARM_PLACE
    assert not missing, f"add to FULL (and map) or to NO_ARM_PLACE: {sorted(missing)}"


def test_every_property_lands_on_an_arm_property_the_sdk_knows():
    arm = arm_pool_body(FULL, _identity(UAI), {"team": "hpc"})
    # msrest drops keys its models do not know: a lossless round trip proves every key and enum is ARM's.
    assert mm.Pool.deserialize(arm).serialize() == arm
    alt = arm_pool_body(ALT)
    assert mm.Pool.deserialize(alt).serialize() == alt
    assert alt["properties"]["startTask"]["userIdentity"] == {"userName": "u1"}
    assert alt["properties"]["startTask"]["containerSettings"]["registry"]["identityReference"] == {"resourceId": UAI}
    props = arm["properties"]
    assert props["scaleSettings"] == {"fixedScale": {"targetDedicatedNodes": 2, "targetLowPriorityNodes": 1,
                                                     "resizeTimeout": "PT15M"}}
    assert props["interNodeCommunication"] == "Enabled"
    vmc = props["deploymentConfiguration"]["virtualMachineConfiguration"]
    assert vmc["imageReference"] == {"id": FULL["virtualMachineConfiguration"]["imageReference"]["virtualMachineImageId"]}
    assert vmc["nodeAgentSkuId"] == "batch.node.ubuntu 22.04" and vmc["osDisk"]["caching"] == "ReadWrite"
    assert vmc["dataDisks"] == [{"lun": 0, "caching": "ReadOnly", "diskSizeGB": 64, "storageAccountType": "Premium_LRS"}]
    assert props["applicationPackages"] == [{"id": "app1", "version": "1.0"}]
    assert props["startTask"]["userIdentity"] == {"autoUser": {"scope": "Pool", "elevationLevel": "Admin"}}
    assert props["mountConfiguration"][2]["cifsMountConfiguration"]["userName"] == "u"
    assert props["networkConfiguration"]["endpointConfiguration"]["inboundNatPools"][0]["protocol"] == "TCP"
    assert "id" not in props and "id" not in arm  # the pool name travels in the URL
    assert arm["identity"] == _identity(UAI) and arm["tags"] == {"team": "hpc"}


def test_input_is_not_modified():
    before = copy.deepcopy(FULL)
    arm_pool_body(FULL, None, None)
    assert FULL == before


def test_standin_reverse_mapping_gives_the_body_back():
    back = arm_to_dataplane("pool-1", arm_pool_body(FULL, _identity(UAI), {"team": "hpc"}))
    expected = dict(FULL, enableAutoScale=False)  # the stand-in states the data plane's default explicitly
    assert back == expected
    assert arm_to_dataplane("pool-2", arm_pool_body(ALT)) == ALT


def test_autoscale_becomes_scale_settings_auto_scale_and_round_trips():
    body = {"vmSize": "Standard_D2s_v3", "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes = 1;",
            "autoScaleEvaluationInterval": "PT5M"}
    arm = arm_pool_body(body)
    assert arm == {"properties": {"vmSize": "Standard_D2s_v3", "scaleSettings": {"autoScale": {
        "formula": "$TargetDedicatedNodes = 1;", "evaluationInterval": "PT5M"}}}}
    assert arm_to_dataplane("p", arm) == {"id": "p", **body}


@pytest.mark.parametrize("identity", [
    _identity(UAI),
    # the data plane's read-only shape, as GET returns it for an adopted pool
    {"type": "UserAssigned", "userAssignedIdentities": [{"resourceId": UAI, "clientId": "c", "principalId": "p"}]},
    [UAI],
])
def test_identity_shapes_all_become_arms(identity):
    assert arm_identity(identity) == _identity(UAI)


@pytest.mark.parametrize("identity", [None, {}, {"type": "None"}, []])
def test_no_identity(identity):
    assert "identity" not in arm_pool_body({"vmSize": "Standard_D2s_v3"}, identity, None)


@pytest.mark.parametrize("body, identity, tags, field", [
    ({"taskSchedulingPolicy": {"jobDefaultOrder": "creationtime"}}, None, None,
     "pools[0].template.taskSchedulingPolicy.jobDefaultOrder"),
    ({"virtualMachineConfiguration": {"imageReference": {"exactVersion": "1.0.0"}}}, None, None,
     "pools[0].template.virtualMachineConfiguration.imageReference.exactVersion"),
    ({"networkConfiguration": {"publicIPAddressConfiguration": {"ipFamilies": ["IPv4"]}}}, None, None,
     "pools[0].template.networkConfiguration.publicIPAddressConfiguration.ipFamilies"),
    ({"virtualMachineConfiguration": {"securityProfile": {"proxyAgentSettings": {"enabled": True}}}}, None, None,
     "pools[0].template.virtualMachineConfiguration.securityProfile.proxyAgentSettings"),
    ({"virtualMachineConfiguration": {"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": "x"}}}}}, None, None,
     "pools[0].template.virtualMachineConfiguration.osDisk.managedDisk.diskEncryptionSet"),
    ({"virtualMachineConfiguration": {"dataDisks": [{"lun": 0, "managedDisk": {"diskEncryptionSet": {"id": "x"}}}]}},
     None, None, "pools[0].template.virtualMachineConfiguration.dataDisks[0].managedDisk.diskEncryptionSet"),
    ({"virtualMachineConfiguration": {"diskEncryptionConfiguration": {"customerManagedKey": {"keyUrl": "k"}}}},
     None, None, "pools[0].template.virtualMachineConfiguration.diskEncryptionConfiguration.customerManagedKey"),
    ({"virtualMachineConfiguration": {"osDisk": {"managedDisk": {"securityProfile": {
        "securityEncryptionType": "DiskWithVMGuestState"}}}}}, None, None,
     "pools[0].template.virtualMachineConfiguration.osDisk.managedDisk.securityProfile.securityEncryptionType"),
    ({"taskSchedulingPolicy": {"nodeFillType": "diagonal"}}, None, None,
     "pools[0].template.taskSchedulingPolicy.nodeFillType"),
    ({"certificateReferences": []}, None, None, "pools[0].template.certificateReferences"),
    ({"startTask": {"commandLine": "x", "userIdentity": {"userName": "u"}}}, None, None,
     "pools[0].template.startTask.userIdentity.userName"),  # ARM's spelling in a data-plane body
    ({"enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=1;", "targetDedicatedNodes": 2}, None, None,
     "pools[0].template.targetDedicatedNodes"),
    ({"enableAutoScale": True}, None, None, "pools[0].template.autoScaleFormula"),
    ({"autoScaleFormula": "$TargetDedicatedNodes=1;"}, None, None, "pools[0].template.autoScaleFormula"),
    ({"identity": _identity(UAI)}, None, None, "pools[0].template.identity"),
    ({"tags": {"a": "b"}}, None, None, "pools[0].template.tags"),
    ({}, _identity("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/"
                   "Microsoft.Compute/disks/d"), None, "pools[0].template.identity.userAssignedIdentities[0]"),
    ({}, {"type": "SystemAssigned"}, None, "pools[0].template.identity.type"),
    ({}, {"type": "UserAssigned", "userAssignedIdentities": {}}, None,
     "pools[0].template.identity.userAssignedIdentities"),
    ({}, None, {"team": 7}, "pools[0].template.tags.team"),
    ({}, None, {f"t{i}": "v" for i in range(51)}, "pools[0].template.tags"),
])
def test_refusals_name_the_template_path(body, identity, tags, field):
    with pytest.raises(InvalidInput) as e:
        arm_pool_body(body, identity, tags, field="pools[0].template")
    assert e.value.field == field
    assert "Fix:" in str(e.value)


@pytest.mark.parametrize("template, needs", [
    ({"vmSize": "Standard_D2s_v3"}, False),
    ({"vmSize": "Standard_D2s_v3", "identity": _identity(UAI)}, True),
    ({"vmSize": "Standard_D2s_v3", "tags": {"team": "hpc"}}, True),
    ({"vmSize": "Standard_D2s_v3", "tags": {}, "identity": None}, False),
    ({}, False),
    (None, False),
])
def test_body_needs_arm(template, needs):
    assert body_needs_arm(template) is needs
