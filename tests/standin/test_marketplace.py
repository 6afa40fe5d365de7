"""Marketplace image versions on the stand-in (VirtualMachineImages_List / _Get) through azure-mgmt-compute, the
control API that publishes a new base version, and the settable batchSupportEndOfLife of Batch's supported images."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

JAMMY = ("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2")


def _code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None) if err.error is not None else None


def test_list_orders_and_tops_like_azure(standin):
    images = standin.compute().virtual_machine_images
    names = [v.name for v in images.list("westeurope", *JAMMY)]
    assert names == ["22.04.202409120", "22.04.202410020", "22.04.202411010"]
    [newest] = images.list("westeurope", *JAMMY, orderby="name desc", top=1)
    assert newest.name == "22.04.202411010" and newest.location == "westeurope"
    assert newest.id.lower().endswith("/publishers/canonical/artifacttypes/vmimage/offers/0001-com-ubuntu-server-jammy"
                                      "/skus/22_04-lts-gen2/versions/22.04.202411010")
    # names are case-insensitive, as in Azure
    assert [v.name for v in images.list("West Europe", "Canonical", JAMMY[1], JAMMY[2].upper(), top=2)] == names[:2]


def test_get_reports_disks_generation_features_and_plan(standin):
    images = standin.compute().virtual_machine_images
    v = images.get("westeurope", *JAMMY, "22.04.202411010")
    assert v.properties.hyper_v_generation == "V2" and v.properties.plan is None
    assert v.properties.os_disk_image.operating_system == "Linux" and v.properties.os_disk_image["sizeInGb"] == 30
    assert {f.name: f.value for f in v.properties.features}["SecurityType"] == "TrustedLaunchSupported"
    cis = images.get("westeurope", "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1",
                     "cis-ubuntu-linux-2204-l1-gen2", "2.1.0")
    assert (cis.properties.plan.publisher, cis.properties.plan.product, cis.properties.plan.name) == (
        "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu-linux-2204-l1-gen2")


@pytest.mark.parametrize("call", [
    lambda i: list(i.list("westeurope", "canonical", "no-such-offer", "22_04-lts-gen2")),
    lambda i: i.get("westeurope", *JAMMY, "22.04.209901010"),
    lambda i: i.get("westeurope", "nobody", "x", "y", "1.0.0"),
    lambda i: list(i.list("nowhere", *JAMMY)),
], ids=["unknown-offer", "unknown-version", "unknown-publisher", "unknown-region"])
def test_unknown_image_is_azures_404(standin, call):
    with pytest.raises(HttpResponseError) as err:
        call(standin.compute().virtual_machine_images)
    assert err.value.status_code == 404 and _code(err.value) == "NotFound"
    assert "Artifact: VMImage was not found." in str(err.value)


def test_control_publishes_a_new_base_version(standin):
    images = standin.compute().virtual_machine_images
    standin.control.publish_base_image_version(*JAMMY, "22.04.202412050")
    [newest] = images.list("northeurope", *JAMMY, orderby="name desc", top=1)
    assert newest.name == "22.04.202412050"
    # ARM's $orderby=name sorts names as text (Azure/azure-rest-api-specs#30142): 1.9.0 comes before 1.10.0,
    # which is why clients pick the newest numerically from the whole list
    standin.control.publish_base_image_version("contoso", "os", "sku1", "1.9.0")
    standin.control.publish_base_image_version("contoso", "os", "sku1", "1.10.0")
    assert [v.name for v in images.list("westeurope", "contoso", "os", "sku1", orderby="name desc")] == ["1.9.0", "1.10.0"]
    assert [v.name for v in images.list("westeurope", "contoso", "os", "sku1")] == ["1.9.0", "1.10.0"]


def test_supported_images_end_of_life_is_settable(standin):
    batch = standin.batch()
    def eol():
        return {i.image_reference.sku: i.batch_support_end_of_life for i in batch.list_supported_images()
                if i.node_agent_sku_id == "batch.node.ubuntu 22.04" and i.image_reference.publisher == "canonical"}
    assert eol()["22_04-lts-gen2"].year == 2027
    standin.control.set_batch_support_end_of_life("batch.node.ubuntu 22.04", "2026-12-15T00:00:00Z")
    assert {d.isoformat()[:10] for d in eol().values()} == {"2026-12-15"}
