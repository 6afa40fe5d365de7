"""Build VMs on the stand-in through azure-mgmt-compute: a VM from a marketplace image with custom data, VM-managed
NICs, the guest powering itself off when its script ends, deallocate, generalize, delete with deleteOption, boot
diagnostics, and Azure's refusals (unknown image, plan, customData too long, a standard VM from a
Trusted-Launch-only image)."""
from __future__ import annotations

import base64
import ssl
import time
import urllib.request

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

JAMMY = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2"}
NOBLE_TL_ONLY = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server"}  # seeded SecurityType=TrustedLaunch
SCRIPT = "#!/bin/bash\necho 'build: installing'\napt-get install -y jq\necho 'build: done'\npoweroff\n"
FAST = 0.05


def _body(standin, name, *, version="latest", script=SCRIPT, custom_data=None, **extra):
    sub, rg = standin.endpoints["subscription_id"], standin.endpoints["demo"]["resource_group"]
    subnet = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/build"
    return {
        "location": "westeurope", "tags": {"managed-by": "airflow-batch-images"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {
                "imageReference": {**JAMMY, "version": version},
                "osDisk": {"name": f"{name}-osdisk", "createOption": "FromImage", "deleteOption": "Delete",
                           "managedDisk": {"storageAccountType": "Premium_LRS"}},
                "dataDisks": [{"lun": 0, "name": f"{name}-data-lun0", "createOption": "Empty", "diskSizeGB": 32,
                               "deleteOption": "Delete"}],
            },
            "osProfile": {"computerName": name, "adminUsername": "azureuser",
                          "customData": custom_data or base64.b64encode(script.encode()).decode(),
                          "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [
                              {"path": "/home/azureuser/.ssh/authorized_keys", "keyData": "ssh-ed25519 AAAA test"}]}}},
            "networkProfile": {"networkApiVersion": "2020-11-01", "networkInterfaceConfigurations": [{
                "name": f"{name}-nic", "properties": {"primary": True, "deleteOption": "Delete", "ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}}]},
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
        },
        **extra,
    }


def _power(view) -> str:
    return next(s.code for s in view.statuses if s.code.startswith("PowerState/"))


def _wait_power(client, rg, name, want, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        view = client.virtual_machines.instance_view(rg, name)
        if _power(view) == want:
            return view
        time.sleep(0.1)
    raise AssertionError(f"{name} never reached {want}: {_power(view)}")


def _code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None) if err.error is not None else None


def test_build_vm_lifecycle_powers_off_generalizes_and_deletes_its_nic_and_disks(standin):
    client = standin.compute()
    rg = standin.endpoints["demo"]["resource_group"]
    standin.control.set_scale(100)  # the guest's 8-minute script takes ~5 s: time to see it running
    vm = client.virtual_machines.begin_create_or_update(rg, "bvm-test", _body(standin, "bvm-test"),
                                                        polling_interval=FAST).result()
    ref = vm.properties.storage_profile.image_reference
    assert ref.version == "latest" and ref.exact_version == "22.04.202411010"
    assert vm.properties.os_profile.custom_data is None  # Azure never returns it
    os_disk = client.disks.get(rg, "bvm-test-osdisk")
    assert os_disk.creation_data.image_reference.id.lower().endswith("/versions/22.04.202411010")
    assert client.disks.get(rg, "bvm-test-data-lun0").disk_size_gb == 32
    [nic] = vm.properties.network_profile.network_interfaces

    def nic_status() -> int:  # no Network SDK here: a generic ARM GET through the compute client's pipeline
        return client.send_request(HttpRequest("GET", nic.id, params={"api-version": "2024-05-01"})).status_code
    assert nic_status() == 200 and nic.id.endswith("/networkInterfaces/bvm-test-nic")
    # generalize is refused while the guest runs its script
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.generalize(rg, "bvm-test")
    assert err.value.status_code == 409 and _code(err.value) == "OperationNotAllowed"
    _wait_power(client, rg, "bvm-test", "PowerState/stopped")
    # the serial log shows the script ran to its poweroff
    diag = client.virtual_machines.retrieve_boot_diagnostics_data(rg, "bvm-test")
    ctx = ssl.create_default_context(cafile=standin.endpoints["ca_bundle"])
    log = urllib.request.urlopen(diag.serial_console_log_blob_uri, context=ctx).read().decode()
    assert "build: done" in log and "Power down" in log
    client.virtual_machines.begin_deallocate(rg, "bvm-test", polling_interval=FAST).result()
    assert _power(client.virtual_machines.instance_view(rg, "bvm-test")) == "PowerState/deallocated"
    client.virtual_machines.generalize(rg, "bvm-test")
    codes = [s.code for s in client.virtual_machines.instance_view(rg, "bvm-test").statuses]
    assert "OSState/generalized" in codes
    client.virtual_machines.begin_delete(rg, "bvm-test", polling_interval=FAST).result()
    for get in (lambda: client.virtual_machines.get(rg, "bvm-test"), lambda: client.disks.get(rg, "bvm-test-osdisk"),
                lambda: client.disks.get(rg, "bvm-test-data-lun0")):
        with pytest.raises(ResourceNotFoundError):
            get()
    assert nic_status() == 404


def test_never_stopping_script_keeps_the_vm_running_with_its_serial_log(standin):
    client = standin.compute()
    rg = standin.endpoints["demo"]["resource_group"]
    standin.control.add_fault("build_vm_never_stops", match={"name_regex": "^bvm-hang"},
                              message="apt-get: E: Unable to locate package nosuchpackage")
    client.virtual_machines.begin_create_or_update(rg, "bvm-hang", _body(standin, "bvm-hang"),
                                                   polling_interval=FAST).result()
    standin.control.advance(4 * 3600)
    view = client.virtual_machines.instance_view(rg, "bvm-hang")
    assert _power(view) == "PowerState/running"
    assert "Unable to locate package nosuchpackage" in view.vm_agent.statuses[0].message


def test_exact_version_and_refusals(standin):
    client = standin.compute()
    rg = standin.endpoints["demo"]["resource_group"]
    vm = client.virtual_machines.begin_create_or_update(rg, "bvm-exact", _body(standin, "bvm-exact",
                                                        version="22.04.202409120"), polling_interval=FAST).result()
    assert vm.properties.storage_profile.image_reference.exact_version == "22.04.202409120"
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, "bvm-x", _body(standin, "bvm-x", version="22.04.1"))
    assert err.value.status_code == 404 and _code(err.value) == "ImageNotFound"
    too_long = base64.b64encode(b"#" * 65536).decode()  # 87,384 characters: over Azure's 87,380
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, "bvm-x", _body(standin, "bvm-x", custom_data=too_long))
    assert err.value.status_code == 400 and _code(err.value) == "InvalidParameter" and "87380" in str(err.value)
    assert err.value.error.target == "customData"
    cis = _body(standin, "bvm-x")
    cis["properties"]["storageProfile"]["imageReference"] = {
        "publisher": "center-for-internet-security-inc", "offer": "cis-ubuntu-linux-2204-l1",
        "sku": "cis-ubuntu-linux-2204-l1-gen2", "version": "latest"}
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, "bvm-x", cis)
    assert _code(err.value) == "VMMarketplaceInvalidInput"
    # nothing of the refused VMs was made
    assert not [d.name for d in client.disks.list_by_resource_group(rg) if d.name.startswith("bvm-x")]


@pytest.mark.parametrize("profile", [None, {"securityType": "Standard"}], ids=["no-security-profile", "standard"])
def test_trusted_launch_only_image_refuses_a_standard_vm_and_takes_a_trusted_launch_one(standin, profile):
    client = standin.compute()
    rg = standin.endpoints["demo"]["resource_group"]
    image = client.virtual_machine_images.get("westeurope", *NOBLE_TL_ONLY.values(), "24.04.202411030")
    assert {f.name: f.value for f in image.properties.features}["SecurityType"] == "TrustedLaunch"
    name = f"bvm-noble-{'std' if profile else 'none'}"
    body = _body(standin, name)
    body["properties"]["storageProfile"]["imageReference"] = {**NOBLE_TL_ONLY, "version": "latest"}
    if profile:
        body["properties"]["securityProfile"] = profile
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.begin_create_or_update(rg, name, body)
    assert err.value.status_code == 400 and _code(err.value) == "BadRequest"
    assert "only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' security type" in str(err.value)
    assert not [d.name for d in client.disks.list_by_resource_group(rg) if d.name.startswith(name)]

    body["properties"]["securityProfile"] = {"securityType": "TrustedLaunch",
                                             "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True}}
    vm = client.virtual_machines.begin_create_or_update(rg, name, body, polling_interval=FAST).result()
    assert vm.properties.security_profile.security_type == "TrustedLaunch"
    assert vm.properties.storage_profile.image_reference.exact_version == "24.04.202411030"
    os_disk = client.disks.get(rg, f"{name}-osdisk")
    assert os_disk.security_profile.security_type == "TrustedLaunch"
    client.virtual_machines.begin_delete(rg, name, polling_interval=FAST).result()
