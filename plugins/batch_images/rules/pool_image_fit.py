"""Settings of a pool template that the image cannot run: refused (or warned about) in preflight, before any write.

The image's OS type comes from the source (the prepared VM's OS disk, or the marketplace base of a build VM) and its
Batch capabilities from Batch's ``GET /supportedimages`` entry for the base image (``capabilities``, e.g.
``DockerCompatible``). Pure: no Airflow, no Azure SDK.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidInput

# Batch's support matrix of virtual file systems by OS (learn.microsoft.com/azure/batch/virtual-file-mount, "Support
# matrix"): Linux mounts all four; Windows only Azure Files shares.
WINDOWS_MOUNTS = frozenset({"azureFileShareConfiguration"})
MOUNT_KINDS = ("azureFileShareConfiguration", "azureBlobFileSystemConfiguration", "nfsMountConfiguration",
               "cifsMountConfiguration")
DOCKER_COMPATIBLE = "dockercompatible"


def image_fit_problems(template: Mapping[str, Any], os_type: str, field: str) -> list[InvalidInput]:
    """What ``template`` asks of an ``os_type`` ("Linux" / "Windows") image that Batch cannot do on it:

    * a mount other than an Azure Files share on a Windows image (the support matrix above);
    * ``virtualMachineConfiguration.windowsConfiguration`` on a Linux image (Batch REST spec, WindowsConfiguration:
      "This property must not be specified if the imageReference property specifies a Linux OS image").

    Each problem names the template path (``field`` + ``.mountConfiguration[1].nfsMountConfiguration``)."""
    out: list[InvalidInput] = []
    windows = str(os_type).lower() == "windows"
    for i, mount in enumerate(template.get("mountConfiguration") or []):
        for kind in MOUNT_KINDS:
            if windows and isinstance(mount, Mapping) and mount.get(kind) is not None and kind not in WINDOWS_MOUNTS:
                out.append(InvalidInput(
                    f"{field}.mountConfiguration[{i}].{kind}", _mount_source(mount[kind]),
                    "Batch mounts only Azure Files shares on Windows nodes; the image is Windows "
                    "(learn.microsoft.com/azure/batch/virtual-file-mount, Support matrix)",
                    "mount the data as an Azure Files share (azureFileShareConfiguration), or build the image from a "
                    "Linux base"))
    vmc = template.get("virtualMachineConfiguration") or {}
    if not windows and vmc.get("windowsConfiguration") is not None:
        out.append(InvalidInput(f"{field}.virtualMachineConfiguration.windowsConfiguration",
                                vmc["windowsConfiguration"], "the image is Linux; Batch refuses windowsConfiguration "
                                "for a Linux image (WindowsConfiguration in the Batch REST spec)",
                                "remove windowsConfiguration from the template"))
    return out


def container_warning(template: Mapping[str, Any], capabilities: Sequence[str], base: str) -> str | None:
    """A warning when ``template`` sets ``virtualMachineConfiguration.containerConfiguration`` and Batch does not list
    ``DockerCompatible`` among the base image's capabilities (``base``: publisher:offer:sku). Not a refusal: the
    custom image may install a container runtime on top of its base (Batch's container docs allow custom images
    "with Docker installed"), which only a node can show."""
    vmc = template.get("virtualMachineConfiguration") or {}
    if vmc.get("containerConfiguration") is None:
        return None
    if any(str(c).lower() == DOCKER_COMPATIBLE for c in capabilities):
        return None
    return (f"WARNING: the template sets virtualMachineConfiguration.containerConfiguration, but Batch does not list "
            f"the base image {base} as DockerCompatible (GET /supportedimages capabilities): the image must install a "
            "container runtime (Moby or Docker) itself, or its nodes fail the container setup (learn.microsoft.com/"
            "azure/batch/batch-docker-container-workloads)")


def _mount_source(config: Any) -> Any:
    if not isinstance(config, Mapping):
        return config
    for key in ("source", "containerName", "azureFileUrl"):
        if config.get(key):
            return config[key]
    return dict(config)
