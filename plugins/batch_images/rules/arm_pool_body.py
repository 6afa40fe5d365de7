"""The ARM route for Batch pools: a data-plane pool body -> the body of ARM ``Microsoft.Batch/batchAccounts/pools``.

Why a second route: a pool with user-assigned managed identities, and the pool resource's own ARM ``tags``, can only be
made through the management plane. "Creating pools with managed identities can only be performed with the Batch
Management Plane APIs or SDKs using Entra authentication" (learn.microsoft.com/azure/batch/managed-identity-pools);
azure-batch 15.1's ``BatchPoolCreateOptions`` (data plane 2025-06-01) has no ``identity`` and its ``BatchPool.identity``
is read-only. So a template that carries ``identity`` or ``tags`` (:data:`ARM_ONLY_KEYS`, :func:`body_needs_arm`) is
created with ARM Pool_Create, whose body :func:`arm_pool_body` builds from the same data-plane body the data-plane
route would POST.

Sources of the two shapes (the tables below follow them property by property):
- ARM: azure-rest-api-specs specification/batch/resource-manager/Microsoft.Batch/stable/2024-07-01/BatchManagement.json,
  definitions ``Pool`` / ``PoolProperties`` and what they reference, as azure-mgmt-batch 18.0.0 (api-version 2024-07-01)
  generates them (``azure.mgmt.batch.models``: ``_attribute_map`` keys and ``_batch_management_client_enums``).
- Data plane: specification/batch/Azure.Batch/models.tsp ``BatchPoolCreateOptions`` (api-version 2025-06-01), as
  azure-batch 15.1.0 generates it (``azure.batch.models``: rest field names and ``_enums``).

Every data-plane property is either mapped or refused with :class:`InvalidInput` naming its path: nothing is dropped
silently. Data-plane properties ARM 2024-07-01 has no place for (refused): ``taskSchedulingPolicy.jobDefaultOrder``,
``imageReference.exactVersion`` (read-only in the data plane), ``publicIPAddressConfiguration.ipFamilies`` / ``ipTags``,
``securityProfile.proxyAgentSettings``, ``managedDisk.diskEncryptionSet``, ``diskEncryptionConfiguration
.customerManagedKey``, and the enum value ``securityEncryptionType: DiskWithVMGuestState``.

The stand-in's reverse mapping (include/azure_standin/backends/batch_arm_pools.py) is kept apart on purpose (the
pipeline must not import the stand-in); tests/rules/test_rules_arm_pool_body.py round-trips through it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import ids
from .errors import InvalidInput

# Template keys that only ARM accepts; the rest of a template is the data-plane body.
ARM_ONLY_KEYS = ("identity", "tags")
USER_ASSIGNED_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"
# ARM's tag limits: 50 per resource, names up to 512 characters, values up to 256
# (learn.microsoft.com/azure/azure-resource-manager/management/tag-resources#limitations).
MAX_TAGS, MAX_TAG_NAME, MAX_TAG_VALUE = 50, 512, 256


def body_needs_arm(template: Mapping[str, Any] | None) -> bool:
    """True when ``template`` (a logical pool's template: the data-plane body plus the ARM-only keys) sets ``identity``
    or ``tags``, so its pools must be created through ARM (:func:`arm_pool_body`)."""
    return bool(template) and any(template.get(k) for k in ARM_ONLY_KEYS)


# ---------------------------------------------------------------------------------------------------------------------
# The property tables: data-plane name -> (ARM name, shape). Shapes: LEAF (a scalar or a list of scalars, copied),
# FREE (any JSON, copied: extension settings, resourceTags), a dict (an object: its own table), _List(shape) (a list of
# that shape), _Enum (respelled), _Lift(table) (an object whose properties ARM keeps one level up).
# ---------------------------------------------------------------------------------------------------------------------

LEAF = "leaf"
FREE = "free"


class _List:
    def __init__(self, shape: Any) -> None:
        self.shape = shape


class _Enum:
    """(data-plane value, ARM value) pairs; either spelling is accepted, case-insensitively (both services are)."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.to_arm = {dp.lower(): arm for dp, arm in pairs}
        self.to_arm.update({arm.lower(): arm for _, arm in pairs})
        self.allowed = [dp for dp, _ in pairs]


class _Lift:
    def __init__(self, table: dict) -> None:
        self.table = table


def _same(*names: str) -> dict:
    return {n: (n, LEAF) for n in names}


# Enums: data plane azure-batch 15.1 models/_enums.py vs ARM azure-mgmt-batch 18.0.0 _batch_management_client_enums.py.
_SCOPE = _Enum(("task", "Task"), ("pool", "Pool"))
_ELEVATION = _Enum(("nonadmin", "NonAdmin"), ("admin", "Admin"))
_WORKDIR = _Enum(("taskWorkingDirectory", "TaskWorkingDirectory"), ("containerImageDefault", "ContainerImageDefault"))
_CACHING = _Enum(("none", "None"), ("readonly", "ReadOnly"), ("readwrite", "ReadWrite"))
_STORAGE = _Enum(("standard_lrs", "Standard_LRS"), ("premium_lrs", "Premium_LRS"), ("standardssd_lrs", "StandardSSD_LRS"))
_PROVISION = _Enum(("batchmanaged", "BatchManaged"), ("usermanaged", "UserManaged"),
                   ("nopublicipaddresses", "NoPublicIPAddresses"))
_PROTOCOL = _Enum(("tcp", "TCP"), ("udp", "UDP"))
_ACCESS = _Enum(("allow", "Allow"), ("deny", "Deny"))
_PLACEMENT = _Enum(("cachedisk", "CacheDisk"))
_COMM_MODE = _Enum(("default", "Default"), ("classic", "Classic"), ("simplified", "Simplified"))
_LOGIN = _Enum(("batch", "Batch"), ("interactive", "Interactive"))
_POLICY = _Enum(("regional", "Regional"), ("zonal", "Zonal"))
_DISK_TARGET = _Enum(("osdisk", "OsDisk"), ("temporarydisk", "TemporaryDisk"))
_FILL = _Enum(("spread", "Spread"), ("pack", "Pack"))
_CONTAINER_TYPE = _Enum(("dockerCompatible", "DockerCompatible"), ("criCompatible", "CriCompatible"))
_SECURITY_TYPE = _Enum(("trustedLaunch", "trustedLaunch"), ("confidentialvm", "confidentialVM"))
# ARM's SecurityEncryptionTypes has no DiskWithVMGuestState (the data plane's third value).
_ENCRYPTION_TYPE = _Enum(("NonPersistedTPM", "NonPersistedTPM"), ("VMGuestStateOnly", "VMGuestStateOnly"))
_VNET_SCOPE = _Enum(("none", "none"), ("job", "job"))
_UPGRADE_MODE = _Enum(("automatic", "automatic"), ("manual", "manual"), ("rolling", "rolling"))
_BIND_PATH = _Enum(*[(v, v) for v in ("Shared", "Startup", "VfsMounts", "Task", "JobPrep", "Applications")])

_IDENTITY_REF = _same("resourceId")
_REGISTRY = {**_same("username", "password", "registryServer"), "identityReference": ("identityReference", _IDENTITY_REF)}
_RESOURCE_FILE = {**_same("autoStorageContainerName", "storageContainerUrl", "httpUrl", "blobPrefix", "filePath",
                          "fileMode"),
                  "identityReference": ("identityReference", _IDENTITY_REF)}
_NAME_VALUE = _same("name", "value")
_START_TASK = {
    **_same("commandLine", "maxTaskRetryCount", "waitForSuccess"),
    "containerSettings": ("containerSettings", {
        **_same("containerRunOptions", "imageName"),
        "registry": ("registry", _REGISTRY),
        "workingDirectory": ("workingDirectory", _WORKDIR),
        "containerHostBatchBindMounts": ("containerHostBatchBindMounts", _List({
            "source": ("source", _BIND_PATH), "isReadOnly": ("isReadOnly", LEAF)})),
    }),
    "resourceFiles": ("resourceFiles", _List(_RESOURCE_FILE)),
    "environmentSettings": ("environmentSettings", _List(_NAME_VALUE)),
    "userIdentity": ("userIdentity", {
        "username": ("userName", LEAF),
        "autoUser": ("autoUser", {"scope": ("scope", _SCOPE), "elevationLevel": ("elevationLevel", _ELEVATION)}),
    }),
}
_MANAGED_DISK = {"storageAccountType": ("storageAccountType", _STORAGE),
                 "securityProfile": ("securityProfile", {"securityEncryptionType": ("securityEncryptionType",
                                                                                    _ENCRYPTION_TYPE)})}
_VM_CONFIGURATION = {
    "imageReference": ("imageReference", {
        **_same("publisher", "offer", "sku", "version", "sharedGalleryImageId", "communityGalleryImageId"),
        "virtualMachineImageId": ("id", LEAF),
    }),
    "nodeAgentSKUId": ("nodeAgentSkuId", LEAF),
    "windowsConfiguration": ("windowsConfiguration", _same("enableAutomaticUpdates")),
    # Data plane DataDisk {lun, caching, diskSizeGB, managedDisk{storageAccountType,...}}; ARM DataDisk keeps
    # storageAccountType on the disk itself.
    "dataDisks": ("dataDisks", _List({
        **_same("lun", "diskSizeGB"), "caching": ("caching", _CACHING),
        "managedDisk": (None, _Lift({"storageAccountType": ("storageAccountType", _STORAGE)})),
    })),
    "licenseType": ("licenseType", LEAF),
    "containerConfiguration": ("containerConfiguration", {
        "type": ("type", _CONTAINER_TYPE), "containerImageNames": ("containerImageNames", LEAF),
        "containerRegistries": ("containerRegistries", _List(_REGISTRY)),
    }),
    "diskEncryptionConfiguration": ("diskEncryptionConfiguration", {"targets": ("targets", _List(_DISK_TARGET))}),
    "nodePlacementConfiguration": ("nodePlacementConfiguration", {"policy": ("policy", _POLICY)}),
    "extensions": ("extensions", _List({
        **_same("name", "publisher", "type", "typeHandlerVersion", "autoUpgradeMinorVersion", "enableAutomaticUpgrade",
                "provisionAfterExtensions"),
        "settings": ("settings", FREE), "protectedSettings": ("protectedSettings", FREE),
    })),
    "osDisk": ("osDisk", {
        "ephemeralOSDiskSettings": ("ephemeralOSDiskSettings", {"placement": ("placement", _PLACEMENT)}),
        "caching": ("caching", _CACHING), "diskSizeGB": ("diskSizeGB", LEAF),
        "managedDisk": ("managedDisk", _MANAGED_DISK), "writeAcceleratorEnabled": ("writeAcceleratorEnabled", LEAF),
    }),
    "securityProfile": ("securityProfile", {
        "encryptionAtHost": ("encryptionAtHost", LEAF), "securityType": ("securityType", _SECURITY_TYPE),
        "uefiSettings": ("uefiSettings", _same("secureBootEnabled", "vTpmEnabled")),
    }),
    "serviceArtifactReference": ("serviceArtifactReference", _same("id")),
}
_NETWORK = {
    "subnetId": ("subnetId", LEAF),
    "dynamicVNetAssignmentScope": ("dynamicVnetAssignmentScope", _VNET_SCOPE),
    "endpointConfiguration": ("endpointConfiguration", {"inboundNATPools": ("inboundNatPools", _List({
        **_same("name", "backendPort", "frontendPortRangeStart", "frontendPortRangeEnd"),
        "protocol": ("protocol", _PROTOCOL),
        "networkSecurityGroupRules": ("networkSecurityGroupRules", _List({
            **_same("priority", "sourceAddressPrefix", "sourcePortRanges"), "access": ("access", _ACCESS)})),
    }))}),
    "publicIPAddressConfiguration": ("publicIPAddressConfiguration", {
        "provision": ("provision", _PROVISION), "ipAddressIds": ("ipAddressIds", LEAF)}),
    "enableAcceleratedNetworking": ("enableAcceleratedNetworking", LEAF),
}
_MOUNT = {
    "azureBlobFileSystemConfiguration": ("azureBlobFileSystemConfiguration", {
        **_same("accountName", "containerName", "accountKey", "sasKey", "blobfuseOptions", "relativeMountPath"),
        "identityReference": ("identityReference", _IDENTITY_REF)}),
    "nfsMountConfiguration": ("nfsMountConfiguration", _same("source", "relativeMountPath", "mountOptions")),
    "cifsMountConfiguration": ("cifsMountConfiguration", {
        **_same("source", "relativeMountPath", "mountOptions", "password"), "username": ("userName", LEAF)}),
    "azureFileShareConfiguration": ("azureFileShareConfiguration", _same(
        "accountName", "azureFileUrl", "accountKey", "relativeMountPath", "mountOptions")),
}
_UPGRADE = {
    "mode": ("mode", _UPGRADE_MODE),
    "automaticOSUpgradePolicy": ("automaticOSUpgradePolicy", _same(
        "disableAutomaticRollback", "enableAutomaticOSUpgrade", "useRollingUpgradePolicy", "osRollingUpgradeDeferral")),
    "rollingUpgradePolicy": ("rollingUpgradePolicy", _same(
        "enableCrossZoneUpgrade", "maxBatchInstancePercent", "maxUnhealthyInstancePercent",
        "maxUnhealthyUpgradedInstancePercent", "pauseTimeBetweenBatches", "prioritizeUnhealthyInstances",
        "rollbackFailedInstancesOnPolicyBreach")),
}
# Pool properties that keep their place (under ARM's `properties`). Not here, handled by arm_pool_body itself: id (the
# pool name is in ARM's URL), virtualMachineConfiguration, the scale fields, enableInterNodeCommunication.
_POOL = {
    **_same("displayName", "vmSize", "taskSlotsPerNode"),
    "networkConfiguration": ("networkConfiguration", _NETWORK),
    "startTask": ("startTask", _START_TASK),
    "applicationPackageReferences": ("applicationPackages", _List({"applicationId": ("id", LEAF),
                                                                    "version": ("version", LEAF)})),
    "taskSchedulingPolicy": ("taskSchedulingPolicy", {"nodeFillType": ("nodeFillType", _FILL)}),
    "userAccounts": ("userAccounts", _List({
        **_same("name", "password"), "elevationLevel": ("elevationLevel", _ELEVATION),
        "linuxUserConfiguration": ("linuxUserConfiguration", _same("uid", "gid", "sshPrivateKey")),
        "windowsUserConfiguration": ("windowsUserConfiguration", {"loginMode": ("loginMode", _LOGIN)}),
    })),
    "metadata": ("metadata", _List(_NAME_VALUE)),
    "mountConfiguration": ("mountConfiguration", _List(_MOUNT)),
    "upgradePolicy": ("upgradePolicy", _UPGRADE),
    # Not in azure-batch 15.1's BatchPoolCreateOptions, but in ARM PoolProperties and returned by the data plane's GET
    # (so a cloned adopted pool may carry them).
    "resourceTags": ("resourceTags", FREE),
    "targetNodeCommunicationMode": ("targetNodeCommunicationMode", _COMM_MODE),
}
_SCALE_KEYS = ("enableAutoScale", "autoScaleFormula", "autoScaleEvaluationInterval", "targetDedicatedNodes",
               "targetLowPriorityNodes", "resizeTimeout")
_FIX_NO_ARM = ("remove it from the template, or drop the template's identity and tags so the pool is created through "
               "the data plane")


# ---------------------------------------------------------------------------------------------------------------------
# conversion
# ---------------------------------------------------------------------------------------------------------------------

def _convert(value: Any, shape: Any, path: str) -> Any:
    if shape is LEAF or shape is FREE or value is None:
        return value
    if isinstance(shape, _Enum):
        if isinstance(value, str) and value.lower() in shape.to_arm:
            return shape.to_arm[value.lower()]
        raise InvalidInput(path, value, "not a value ARM Microsoft.Batch 2024-07-01 accepts here",
                           f"use one of {shape.allowed}")
    if isinstance(shape, _List):
        if not isinstance(value, list):
            raise InvalidInput(path, value, "must be a list", "give a JSON list")
        return [_convert(v, shape.shape, f"{path}[{i}]") for i, v in enumerate(value)]
    return _convert_object(value, shape, path)


def _convert_object(value: Any, table: dict, path: str) -> dict:
    if not isinstance(value, Mapping):
        raise InvalidInput(path, value, "must be an object", "give a JSON object")
    out: dict[str, Any] = {}
    for key, v in value.items():
        if key not in table:
            raise InvalidInput(f"{path}.{key}", v, "a data-plane pool property that the ARM pool resource "
                               "(Microsoft.Batch 2024-07-01) has no place for", _FIX_NO_ARM)
        arm_key, shape = table[key]
        if isinstance(shape, _Lift):
            out.update(_convert_object(v or {}, shape.table, f"{path}.{key}"))
        else:
            out[arm_key] = _convert(v, shape, f"{path}.{key}")
    return out


def _scale_settings(body: Mapping[str, Any], path: str) -> dict | None:
    """The data plane's scale fields -> ARM scaleSettings {fixedScale | autoScale}; None when the body sets none.
    ARM takes exactly one of them (BatchManagement.json ScaleSettings), and Batch refuses fixed counts or a resize
    timeout together with autoscale, and a formula without it (BatchPoolCreateOptions docs in models.tsp)."""
    if not any(body.get(k) is not None for k in _SCALE_KEYS):
        return None
    if body.get("enableAutoScale"):
        for k in ("targetDedicatedNodes", "targetLowPriorityNodes", "resizeTimeout"):
            if body.get(k) is not None:
                raise InvalidInput(f"{path}.{k}", body[k], "must not be set when enableAutoScale is true",
                                   f"remove {k}, or set enableAutoScale to false and remove the autoscale formula")
        if not body.get("autoScaleFormula"):
            raise InvalidInput(f"{path}.autoScaleFormula", body.get("autoScaleFormula"),
                               "required when enableAutoScale is true", "give an autoscale formula")
        auto = {"formula": body["autoScaleFormula"]}
        if body.get("autoScaleEvaluationInterval") is not None:
            auto["evaluationInterval"] = body["autoScaleEvaluationInterval"]
        return {"autoScale": auto}
    for k in ("autoScaleFormula", "autoScaleEvaluationInterval"):
        if body.get(k) is not None:
            raise InvalidInput(f"{path}.{k}", body[k], "must not be set unless enableAutoScale is true",
                               "set enableAutoScale to true, or remove it")
    return {"fixedScale": {k: body[k] for k in ("targetDedicatedNodes", "targetLowPriorityNodes", "resizeTimeout")
                           if body.get(k) is not None}}


def arm_identity(identity: Any, path: str = "template.identity") -> dict | None:
    """A pool identity -> ARM's BatchPoolIdentity ``{"type": "UserAssigned", "userAssignedIdentities": {<id>: {}}}``;
    None for no identity (None, empty, or type None).

    Accepted: ARM's shape (``userAssignedIdentities`` a mapping keyed by resource id), the data plane's read-only
    shape a GET returns (``userAssignedIdentities`` a list of ``{resourceId, clientId, principalId}``: an adopted
    pool's), or a plain list of resource ids. Raises InvalidInput for another type (ARM pools take only UserAssigned
    or None: BatchManagement.json PoolIdentityType) or an id that is not a user-assigned identity's.
    """
    if not identity:
        return None
    if isinstance(identity, list):
        identity = {"type": "UserAssigned", "userAssignedIdentities": identity}
    if not isinstance(identity, Mapping):
        raise InvalidInput(path, identity, "must be an object {type, userAssignedIdentities} or a list of ids",
                           "give {type: UserAssigned, userAssignedIdentities: {<identity resource id>: {}}}")
    kind = str(identity.get("type") or "UserAssigned")
    if kind.lower() == "none":
        return None
    if kind.lower() != "userassigned":
        raise InvalidInput(f"{path}.type", kind, "a Batch pool identity is UserAssigned or None",
                           "use type UserAssigned with the identities' resource ids")
    given = identity.get("userAssignedIdentities")
    if isinstance(given, Mapping):
        rids = list(given)
    elif isinstance(given, list):
        rids = [g.get("resourceId") if isinstance(g, Mapping) else g for g in given]
    else:
        rids = []
    if not rids:
        raise InvalidInput(f"{path}.userAssignedIdentities", given, "type UserAssigned needs at least one identity",
                           "list the user-assigned identities' resource ids")
    out = {}
    for i, rid in enumerate(rids):
        arm_id = ids.parse_arm_id(rid, f"{path}.userAssignedIdentities[{i}]", USER_ASSIGNED_IDENTITY)
        out[arm_id.id] = {}
    return {"type": "UserAssigned", "userAssignedIdentities": out}


def arm_tags(tags: Any, path: str = "template.tags") -> dict | None:
    """The pool resource's ARM tags, checked against ARM's limits; None for none. Raises InvalidInput."""
    if not tags:
        return None
    if not isinstance(tags, Mapping):
        raise InvalidInput(path, tags, "must be a mapping of tag name to value", "give e.g. {team: hpc}")
    if len(tags) > MAX_TAGS:
        raise InvalidInput(path, len(tags), f"ARM allows at most {MAX_TAGS} tags per resource", "remove some tags")
    for name, value in tags.items():
        if not isinstance(name, str) or not name or len(name) > MAX_TAG_NAME:
            raise InvalidInput(f"{path}.{name}", name, f"a tag name is a string of 1 to {MAX_TAG_NAME} characters",
                               "rename the tag")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidInput(f"{path}.{name}", value, f"a tag value is a string of at most {MAX_TAG_VALUE} "
                               "characters", "quote the value in the YAML, or shorten it")
    return dict(tags)


def arm_pool_body(data_plane_body: Mapping[str, Any], identity: Any = None, tags: Any = None, *,
                  field: str = "template") -> dict:
    """The ARM Pool resource body (``{"properties": {...}, "identity"?: {...}, "tags"?: {...}}``, camelCase as on the
    wire, for Pool_Create PUT .../batchAccounts/{account}/pools/{pool}) for a data-plane pool create body (Batch REST
    2025-06-01 camelCase, as POST /pools takes it: template plus owned fields).

    ``identity``: see :func:`arm_identity`; ``tags``: ``{name: value}`` (:func:`arm_tags`). The body's ``id`` is not in
    ARM's body (the pool name is in the URL): pass it to the hook as ``pool_id``. ``field`` prefixes the paths named in
    errors (e.g. ``pools[0].template``). Pure: the input is not modified.

    Raises InvalidInput naming the path for a property ARM has no place for, an enum value ARM does not accept,
    ``identity``/``tags`` inside the body (pass them as arguments), autoscale together with fixed counts, or a bad
    identity or tag.
    """
    if not isinstance(data_plane_body, Mapping):
        raise InvalidInput(field, data_plane_body, "must be a pool body (an object)", "give the data-plane pool body")
    for key in ARM_ONLY_KEYS:
        if key in data_plane_body:
            raise InvalidInput(f"{field}.{key}", data_plane_body[key], "an ARM-only key inside the data-plane body",
                               f"pass it as arm_pool_body's {key} argument, not inside the body")
    props: dict[str, Any] = {}
    rest = {k: v for k, v in data_plane_body.items() if k != "id" and k not in _SCALE_KEYS and v is not None}
    vmc = rest.pop("virtualMachineConfiguration", None)
    if vmc is not None:
        props["deploymentConfiguration"] = {"virtualMachineConfiguration": _convert_object(
            vmc, _VM_CONFIGURATION, f"{field}.virtualMachineConfiguration")}
    inter = rest.pop("enableInterNodeCommunication", None)
    if inter is not None:
        if not isinstance(inter, bool):
            raise InvalidInput(f"{field}.enableInterNodeCommunication", inter, "must be true or false",
                               "give a boolean")
        props["interNodeCommunication"] = "Enabled" if inter else "Disabled"
    scale = _scale_settings(data_plane_body, field)
    if scale is not None:
        props["scaleSettings"] = scale
    props.update(_convert_object(rest, _POOL, field))
    out: dict[str, Any] = {"properties": props}
    ident = arm_identity(identity, f"{field}.identity")
    if ident is not None:
        out["identity"] = ident
    tag_map = arm_tags(tags, f"{field}.tags")
    if tag_map is not None:
        out["tags"] = tag_map
    return out
