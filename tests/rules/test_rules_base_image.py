"""Pure rules of base_image pipelines: the config's source choice, the base version's precedence, the Asset event's
version, the custom-data limit, the node agent's end of life, and the names a build VM gets."""
from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import pytest

from batch_images.rules import naming
from batch_images.rules import preflight as checks
from batch_images.rules.config import load_pipelines, parse_pipeline
from batch_images.rules.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
BASE = load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")[0].to_dict()
VM_ID = ("/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/resourceGroups/rg/providers/Microsoft.Compute/"
         "virtualMachines/vm")


def _refused(change) -> InvalidInput:
    cfg = copy.deepcopy(BASE)
    change(cfg)
    with pytest.raises(InvalidInput) as err:
        parse_pipeline(cfg)
    return err.value


@pytest.mark.parametrize("change, field, reason", [
    (lambda c: c.update(source_vm_id=VM_ID), "pipeline.base_image", "source_vm_id is set too"),
    (lambda c: c.pop("base_image"), "pipeline.source_vm_id", "neither source_vm_id nor base_image"),
    (lambda c: c.pop("build"), "pipeline.build", "base_image needs build"),
    (lambda c: (c.pop("base_image"), c.update(source_vm_id=VM_ID)), "pipeline.build", "only used with base_image"),
    (lambda c: c["base_image"].update(version="22.04"), "pipeline.base_image.version", "exact marketplace version"),
    (lambda c: c["build"].update(custom_data_file="../secrets.sh"), "pipeline.build.custom_data_file",
     "stay inside the project"),
    (lambda c: c["build"].update(subnet_id=VM_ID), "pipeline.build.subnet_id", "Microsoft.Network/virtualNetworks/subnets"),
    (lambda c: c["build"].update(data_disks=[{"lun": 0, "size_gb": 8}, {"lun": 0, "size_gb": 8}]),
     "pipeline.build.data_disks[1].lun", "duplicate LUN"),
    (lambda c: c["build"].update(timeout_minutes=0), "pipeline.build.timeout_minutes", "out of range"),
])
def test_source_and_build_are_validated_at_parse(change, field, reason):
    err = _refused(change)
    assert err.field == field and reason in str(err), str(err)


def test_base_location_and_build_vm_names():
    cfg = parse_pipeline(BASE)
    assert cfg.source_vm is None and cfg.base_location == "westeurope" and cfg.build_rg == "rg-batch-images"
    assert cfg.build_vm_id("2026.1129.0").endswith("/virtualMachines/bvm-ubuntu2204-base-batch-2026-1129-0")
    long = naming.build_vm_name("d" * 80, "2026.1129.0")
    assert len(long) == 64 and long.endswith("-2026-1129-0")
    assert naming.base_image_asset_uri("westeurope", "Canonical", "0001-com-ubuntu-server-jammy", "22_04-LTS-gen2") == \
        "azure-vmimage://westeurope/canonical/0001-com-ubuntu-server-jammy/22_04-lts-gen2"


class _Asset:
    uri = "azure-vmimage://westeurope/canonical/o/s"


class _Event:
    def __init__(self, version):
        self.extra = {"version": version}


def test_base_version_precedence_param_then_asset_event_then_config():
    events = checks.event_base_versions({_Asset(): [_Event("1.0.1"), _Event("1.0.2")],
                                         "azure-vmimage://northeurope/canonical/o/s": [_Event("9.9.9")]},
                                        "azure-vmimage://westeurope/canonical/o/s")
    assert events == ["1.0.1", "1.0.2"]
    assert checks.choose_base_version("1.0.0", events, "latest")[:2] == ("1.0.0", "param")
    assert checks.choose_base_version(None, events, "1.0.0")[:2] == ("1.0.2", "asset event")
    assert checks.choose_base_version(None, [], "1.0.0")[:2] == ("1.0.0", "config")
    assert checks.choose_base_version(None, [], "latest")[:2] == ("latest", "latest")
    found = checks.Findings()
    assert checks.check_base_version_param("", found) is None and not found
    assert checks.check_base_version_param("1.2", found) is None and found.items[0].field == "params.base_image_version"


def test_custom_data_limit_is_azures_65535_bytes():
    """87,380 base64 characters: 65,535 bytes encode to exactly that, 65,536 bytes to 87,384 (refused by Azure)."""
    import base64

    assert len(base64.b64encode(b"x" * 65535)) == 87380 and len(base64.b64encode(b"x" * 65536)) == 87384
    found = checks.Findings()
    assert checks.check_custom_data("s.sh", b"x" * 65535, found)[1] == 65535 and not found
    assert checks.check_custom_data("s.sh", b"x" * 65536, found) is None
    assert checks.check_custom_data("s.sh", None, found) is None
    assert [e.reason.split(";")[0] for e in found.items] == ["the file has 65536 bytes", "no such file (relative to "
                                                             "the project root)"]


@pytest.mark.parametrize("end, level", [("2027-06-30", "info"), ("2026-12-15", "warning"), ("2026-11-29", "error")])
def test_node_agent_end_of_life(end, level):
    images = [{"node_agent_sku_id": "batch.node.ubuntu 22.04", "batch_support_end_of_life": f"{end}T00:00:00+00:00"},
              {"node_agent_sku_id": "batch.node.ubuntu 24.04", "batch_support_end_of_life": "2020-01-01T00:00:00Z"}]
    found = checks.Findings()
    checks.check_node_agent_end_of_life("batch.node.ubuntu 22.04", images, date(2026, 11, 29), "base_image", "x", found)
    if level == "error":
        assert found.items and "Batch ended support" in found.items[0].reason and found.items[0].field == "base_image"
    else:
        assert not found and found.notes[0][0] == level
        assert ("in 16 day(s)" in found.notes[0][1]) == (level == "warning")
