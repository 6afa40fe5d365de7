"""Security type of the source VM (Standard, Trusted Launch, Confidential VM) and what it decides.

Azure's rules this module encodes (Compute Gallery 2025-03-03, Batch 2025-06-01):

* A managed image cannot capture a Trusted Launch VM ("Creation of managed images are not supported for
  virtual machine with TrustedLaunch security type", OperationNotAllowed; public report
  hashicorp/packer#13189). Such a VM's disks reach a gallery only as an image version made from the
  snapshots (``storageProfile.osDiskImage.source.id`` / ``dataDiskImages[{lun, source.id}]``) or the VM.
* That version needs an image definition whose ``features`` hold ``SecurityType`` with a value that
  supports Trusted Launch. ``TrustedLaunch`` means every VM made from it must be Trusted Launch; the
  ``...Supported`` values also allow standard Gen2 VMs (azure-cli#26632).
* Trusted Launch needs Hyper-V generation V2 ("Use of TrustedLaunch setting is not supported for the
  provided image. Please select Trusted Launch Supported Gen2 OS Image", azure-cli#27975).
* A Batch pool on a Trusted Launch image sets ``virtualMachineConfiguration.securityProfile``
  ``{securityType: trustedLaunch, uefiSettings: {secureBootEnabled, vTpmEnabled}}`` (Batch models.tsp
  ``SecurityProfile`` / ``UefiSettings``): an image whose definition says ``TrustedLaunch`` only makes
  Trusted Launch VMs.

* A marketplace base image carries ``features`` too (VirtualMachineImages_Get, ``VirtualMachineImageFeature`` in
  the Compute spec's virtualMachineImage.json; azure-mgmt-compute 39's ``VirtualMachineImage.features``).
  ``SecurityType`` ``TrustedLaunch`` marks a Trusted-Launch-only base: ARM refuses a VM from it without
  ``securityProfile.securityType`` TrustedLaunch (400 BadRequest "The provided gallery image only supports creation of
  VMs and VM Scale Sets with 'TrustedLaunch' security type.", hashicorp/terraform-provider-azurerm#23148,
  kubermatic/machine-controller#2013 - reported for gallery images; this module treats marketplace images the same
  way, no report of the marketplace wording was found). Such a base gets a Trusted Launch build VM
  (:func:`base_image_build_security`, :func:`build_vm_security_profile`), and :func:`decide` then takes the snapshot path
  for it as for any Trusted Launch source. ``...Supported`` values allow a standard VM: the build VM stays standard.

Confidential VM sources are refused: their OS disk carries the VM guest state encrypted for that VM,
and this pipeline builds neither ``ConfidentialVM`` definitions nor the confidential pool settings
(``osDisk.managedDisk.securityProfile``, DC/EC-series sizes). See :func:`decide`.

Pure: no Airflow, no Azure SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInput

STANDARD = "Standard"
TRUSTED_LAUNCH = "TrustedLaunch"
CONFIDENTIAL_VM = "ConfidentialVM"

# How the version is made (plan["image_path"]).
PATH_MANAGED_IMAGE = "managed_image"   # snapshots -> managed image -> version (the recipe's path)
PATH_SNAPSHOTS = "snapshots"           # snapshots -> version (osDiskImage / dataDiskImages)

FEATURE_SECURITY_TYPE = "SecurityType"
# Definition SecurityType values under which a Trusted Launch VM's disks may be published.
TRUSTED_LAUNCH_FEATURES = frozenset({"TrustedLaunchSupported", "TrustedLaunch",
                                     "TrustedLaunchAndConfidentialVmSupported"})
# The value this pipeline gives a definition it creates for a Trusted Launch source.
DEFINITION_FEATURE_FOR_TRUSTED_LAUNCH = "TrustedLaunch"


def security_type(security_profile: Mapping[str, Any] | None) -> str:
    """The VM's ``properties.securityProfile.securityType`` normalised: Standard | TrustedLaunch | ConfidentialVM.

    Absent (older VMs, Gen1 VMs) means Standard. Unknown values are returned as given.
    """
    value = str((security_profile or {}).get("securityType") or "").strip()
    for known in (STANDARD, TRUSTED_LAUNCH, CONFIDENTIAL_VM):
        if value.lower() == known.lower():
            return known
    return value or STANDARD


def definition_security_type(features: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The ``SecurityType`` feature of a ``features`` list (an image definition's or a marketplace image's), or None."""
    for feature in features or []:
        if str(feature.get("name") or "").lower() == FEATURE_SECURITY_TYPE.lower():
            return feature.get("value")
    return None


def base_image_build_security(features: Sequence[Mapping[str, Any]] | None, *, field: str = "base_image",
                               value: str = "") -> str:
    """The security type of the build VM a marketplace base needs: :data:`TRUSTED_LAUNCH` when the image's
    ``SecurityType`` feature is ``TrustedLaunch`` (a Trusted-Launch-only base), else :data:`STANDARD` (no feature, or
    a ``...Supported`` value: a standard VM is allowed, and keeps the managed-image path).

    :param features: the version's ``properties.features`` (VirtualMachineImages_Get), ``[{name, value}]``.
    :raises InvalidInput: a base whose ``SecurityType`` is ``ConfidentialVM`` (it makes only Confidential VMs, which
        this pipeline does not build), naming ``field`` with ``value``.
    """
    have = str(definition_security_type(features) or "")
    if have.lower() == TRUSTED_LAUNCH.lower():
        return TRUSTED_LAUNCH
    if have.lower() == CONFIDENTIAL_VM.lower():
        raise InvalidInput(
            field, value or have,
            "the base image's SecurityType feature is ConfidentialVM: Azure makes only Confidential VMs from it, and "
            "this pipeline does not build Confidential VM images or pools",
            "choose a base whose SecurityType is TrustedLaunch, TrustedLaunchSupported or absent (az vm image show "
            "--urn <publisher:offer:sku:version> --query features)")
    return STANDARD


def build_vm_security_profile(kind: str) -> dict:
    """A VM PUT's ``properties.securityProfile`` for ``kind``: ``{"securityType": "Standard"}``, or Trusted Launch with
    secure boot and vTPM on (Azure's Trusted Launch defaults; :func:`decide` gives pools the same settings)."""
    if kind == TRUSTED_LAUNCH:
        return {"securityType": TRUSTED_LAUNCH, "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    return {"securityType": STANDARD}


def decide(vm_security_profile: Mapping[str, Any] | None, hyper_v_generation: str, *,
           field: str = "source_vm_id", vm_id: str = "") -> dict:
    """What the source VM's security type decides for the run.

    :param vm_security_profile: the VM's ``properties.securityProfile`` (None if absent).
    :param hyper_v_generation: the VM's generation, ``V1`` or ``V2``.
    :return: ``{"security_type", "image_path", "definition_feature", "pool_security_profile"}``:
        ``image_path`` is :data:`PATH_MANAGED_IMAGE` or :data:`PATH_SNAPSHOTS`; ``definition_feature`` the
        ``SecurityType`` value a new definition gets (None: no feature); ``pool_security_profile`` the
        Batch ``securityProfile`` (wire format) every pool sets, or None.
    :raises InvalidInput: a combination no path can build (Trusted Launch on Gen1, Confidential VM, an unknown
        security type), naming ``field`` and the fix.
    """
    kind = security_type(vm_security_profile)
    generation = str(hyper_v_generation or "V1").upper()
    if kind == STANDARD:
        return {"security_type": STANDARD, "image_path": PATH_MANAGED_IMAGE, "definition_feature": None,
                "pool_security_profile": None}
    if kind == TRUSTED_LAUNCH:
        if generation != "V2":
            raise InvalidInput(
                field, vm_id or kind,
                f"the VM's securityProfile.securityType is TrustedLaunch but its Hyper-V generation is {generation}; "
                "Trusted Launch exists only for generation V2, so no image definition or pool can take these disks",
                "check the VM (az vm show --query '{gen: instanceView.hyperVGeneration, sec: securityProfile}'); "
                "prepare a Gen2 Trusted Launch VM, or a standard VM")
        uefi = (vm_security_profile or {}).get("uefiSettings") or {}
        return {
            "security_type": TRUSTED_LAUNCH,
            "image_path": PATH_SNAPSHOTS,
            "definition_feature": DEFINITION_FEATURE_FOR_TRUSTED_LAUNCH,
            "pool_security_profile": {
                "securityType": "trustedLaunch",
                # Secure boot and vTPM as the source VM ran (Azure's Trusted Launch default: both on).
                "uefiSettings": {"secureBootEnabled": bool(uefi.get("secureBootEnabled", True)),
                                 "vTpmEnabled": bool(uefi.get("vTpmEnabled", True))},
            },
        }
    if kind == CONFIDENTIAL_VM:
        raise InvalidInput(
            field, vm_id or kind,
            "the VM is a Confidential VM (securityProfile.securityType ConfidentialVM); its OS disk holds VM guest "
            "state encrypted for that VM, and this pipeline does not build ConfidentialVM image definitions or "
            "confidential Batch pools (osDisk securityProfile, DC/EC-series sizes)",
            "prepare the image on a Trusted Launch (or standard) VM of the same OS and point source_vm_id at it")
    raise InvalidInput(field, vm_id or kind, f"unknown securityProfile.securityType {kind!r}",
                       "use a VM whose security type is Standard, TrustedLaunch or absent")


def check_definition_feature(features: Sequence[Mapping[str, Any]] | None, decision: Mapping[str, Any], *,
                             definition_id: str = "", field: str = "image_definition.name") -> InvalidInput | None:
    """None when an existing definition can hold this run's version, else the problem (not raised).

    A Trusted Launch source needs a ``SecurityType`` feature in :data:`TRUSTED_LAUNCH_FEATURES`. A standard source
    may go into a definition without the feature or with a ``...Supported`` one, but not into one whose
    ``SecurityType`` is ``TrustedLaunch`` or ``ConfidentialVM``: its pools would need Trusted Launch (or
    confidential) settings the plan does not give them.
    """
    have = definition_security_type(features)
    name = definition_id.rsplit("/", 1)[-1] if definition_id else field
    if decision.get("security_type") == TRUSTED_LAUNCH:
        if have in TRUSTED_LAUNCH_FEATURES:
            return None
        return InvalidInput(
            field, name,
            f"the existing image definition {definition_id or name} has "
            f"{'no SecurityType feature' if have is None else f'SecurityType {have}'}, but the source is Trusted "
            "Launch (a Trusted Launch VM, or the build VM of a Trusted-Launch-only base image): Azure accepts its disks "
            "only in a definition whose SecurityType supports Trusted Launch, and "
            "a definition's features change only with allowUpdateImage",
            "use a new image_definition.name (it is created with SecurityType=TrustedLaunch), or recreate the "
            "definition with --features SecurityType=TrustedLaunch (or TrustedLaunchSupported)")
    if have is None or str(have).lower().endswith("supported"):
        return None
    return InvalidInput(
        field, name,
        f"the existing image definition {definition_id or name} has SecurityType {have}, so every VM made from it "
        "must use that security type, but the source VM is a standard VM",
        "use another image_definition.name for standard images, or prepare the source as a Trusted Launch VM")


def definition_features(decision: Mapping[str, Any]) -> list[dict]:
    """``features`` for a new image definition: ``[{"name": "SecurityType", "value": ...}]`` or ``[]``."""
    value = decision.get("definition_feature")
    return [{"name": FEATURE_SECURITY_TYPE, "value": value}] if value else []
