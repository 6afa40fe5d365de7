"""Template settings the image cannot run (rules/pool_image_fit.py): Batch's mount support matrix by OS, Windows-only
settings on a Linux image, and the container warning from Batch's image capabilities."""
from __future__ import annotations

from batch_images.rules import pool_image_fit as fit

NFS = {"nfsMountConfiguration": {"source": "10.0.0.4:/exports/data", "relativeMountPath": "data"}}
FILES = {"azureFileShareConfiguration": {"accountName": "sa", "azureFileUrl": "https://sa.file.core.windows.net/s",
                                         "accountKey": "secret:variable/k", "relativeMountPath": "s"}}
BLOB = {"azureBlobFileSystemConfiguration": {"accountName": "sa", "containerName": "inputs",
                                             "relativeMountPath": "in", "identityReference": {"resourceId": "/x"}}}


def test_windows_nodes_mount_only_azure_files_and_the_error_names_each_mount():
    template = {"mountConfiguration": [FILES, NFS, BLOB]}
    problems = fit.image_fit_problems(template, "Windows", "pools[0].template")
    assert [p.field for p in problems] == ["pools[0].template.mountConfiguration[1].nfsMountConfiguration",
                                           "pools[0].template.mountConfiguration[2].azureBlobFileSystemConfiguration"]
    assert problems[0].value == "10.0.0.4:/exports/data" and "azureFileShareConfiguration" in problems[0].fix
    assert problems[1].value == "inputs"


def test_linux_nodes_mount_all_four_kinds():
    assert fit.image_fit_problems({"mountConfiguration": [FILES, NFS, BLOB]}, "Linux", "t") == []


def test_windows_configuration_on_a_linux_image_is_refused_and_fine_on_windows():
    template = {"virtualMachineConfiguration": {"windowsConfiguration": {"enableAutomaticUpdates": False}}}
    [problem] = fit.image_fit_problems(template, "Linux", "pools[1].adopt_pool_id")
    assert problem.field == "pools[1].adopt_pool_id.virtualMachineConfiguration.windowsConfiguration"
    assert "Linux" in problem.reason
    assert fit.image_fit_problems(template, "Windows", "t") == []


def test_a_container_setting_on_a_base_batch_does_not_list_as_docker_compatible_is_a_warning():
    template = {"virtualMachineConfiguration": {"containerConfiguration": {"type": "dockerCompatible"}}}
    warning = fit.container_warning(template, [], "canonical:ubuntu-24_04-lts:server")
    assert warning is not None and "canonical:ubuntu-24_04-lts:server" in warning and "DockerCompatible" in warning
    assert fit.container_warning(template, ["DockerCompatible", "NvidiaTeslaDriverInstalled"], "x:y:z") is None
    assert fit.container_warning({}, [], "x:y:z") is None
