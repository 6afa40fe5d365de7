import pytest

from batch_images.rules import ids
from batch_images.rules.errors import InvalidInput

SUB = "2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
RG = "rg-batch-images"
BASE = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
VM = f"{BASE}/Microsoft.Compute/virtualMachines/vm-prepared-ubuntu2204"


@pytest.mark.parametrize(
    ("value", "expected_type", "pairs"),
    [
        (VM, ids.VIRTUAL_MACHINE, (("virtualMachines", "vm-prepared-ubuntu2204"),)),
        (f"{BASE}/Microsoft.Compute/disks/osdisk1", ids.DISK, (("disks", "osdisk1"),)),
        (f"{BASE}/Microsoft.Compute/snapshots/snap-a", ids.SNAPSHOT, (("snapshots", "snap-a"),)),
        (f"{BASE}/Microsoft.Compute/images/img-a", ids.IMAGE, (("images", "img-a"),)),
        (f"{BASE}/Microsoft.Compute/galleries/gal", ids.GALLERY, (("galleries", "gal"),)),
        (f"{BASE}/Microsoft.Compute/galleries/gal/images/def", ids.GALLERY_IMAGE,
         (("galleries", "gal"), ("images", "def"))),
        (f"{BASE}/Microsoft.Compute/galleries/gal/images/def/versions/2026.1125.0", ids.GALLERY_IMAGE_VERSION,
         (("galleries", "gal"), ("images", "def"), ("versions", "2026.1125.0"))),
        (f"{BASE}/Microsoft.Batch/batchAccounts/batchimages", ids.BATCH_ACCOUNT, (("batchAccounts", "batchimages"),)),
    ],
)
def test_parse_each_type(value, expected_type, pairs):
    arm = ids.parse_arm_id(value, "f", expected_type)
    assert arm.subscription_id == SUB
    assert arm.resource_group == RG
    assert arm.namespace == expected_type.split("/")[0]
    assert arm.types == pairs
    assert arm.name == pairs[-1][1]
    assert arm.resource_type == expected_type
    assert arm.id == value
    assert str(arm) == value


def test_parent_walks_up_nested_types():
    version = ids.parse_arm_id(f"{BASE}/Microsoft.Compute/galleries/gal/images/def/versions/1.2.3", "f")
    definition = version.parent
    assert definition.id == f"{BASE}/Microsoft.Compute/galleries/gal/images/def"
    assert definition.is_type(ids.GALLERY_IMAGE)
    assert definition.parent.id == f"{BASE}/Microsoft.Compute/galleries/gal"
    assert definition.parent.parent is None


def test_type_and_keywords_case_insensitive_names_keep_casing():
    value = (f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/RG-Batch/PROVIDERS/microsoft.compute/VIRTUALMACHINES/My-VM")
    arm = ids.parse_arm_id(value, "f", ids.VIRTUAL_MACHINE)
    # keywords canonical, everything else exactly as given
    assert arm.id == f"/subscriptions/{SUB}/resourceGroups/RG-Batch/providers/microsoft.compute/VIRTUALMACHINES/My-VM"
    assert arm.name == "My-VM"
    assert arm.resource_group == "RG-Batch"
    assert arm.key == ids.vm_id(SUB, "rg-batch", "my-vm").key


@pytest.mark.parametrize(
    ("builder", "args", "expected"),
    [
        (ids.vm_id, (SUB, RG, "vm1"), f"{BASE}/Microsoft.Compute/virtualMachines/vm1"),
        (ids.disk_id, (SUB, RG, "d1"), f"{BASE}/Microsoft.Compute/disks/d1"),
        (ids.snapshot_id, (SUB, RG, "s1"), f"{BASE}/Microsoft.Compute/snapshots/s1"),
        (ids.image_id, (SUB, RG, "i1"), f"{BASE}/Microsoft.Compute/images/i1"),
        (ids.gallery_id, (SUB, RG, "g1"), f"{BASE}/Microsoft.Compute/galleries/g1"),
        (ids.gallery_image_id, (SUB, RG, "g1", "def"), f"{BASE}/Microsoft.Compute/galleries/g1/images/def"),
        (ids.gallery_image_version_id, (SUB, RG, "g1", "def", "2026.1125.0"),
         f"{BASE}/Microsoft.Compute/galleries/g1/images/def/versions/2026.1125.0"),
        (ids.batch_account_id, (SUB, RG, "acct"), f"{BASE}/Microsoft.Batch/batchAccounts/acct"),
        (ids.batch_pool_id, (SUB, RG, "acct", "pool-2026-1125-0"),
         f"{BASE}/Microsoft.Batch/batchAccounts/acct/pools/pool-2026-1125-0"),
        (ids.network_interface_id, (SUB, RG, "vm1-nic"), f"{BASE}/Microsoft.Network/networkInterfaces/vm1-nic"),
    ],
)
def test_builders(builder, args, expected):
    built = builder(*args)
    assert built.id == expected
    assert ids.parse_arm_id(built.id, "f") == built


@pytest.mark.parametrize("bad_name", ["a/b", "..", "x?y", "not a name"])
def test_builders_refuse_names_that_would_change_the_path(bad_name):
    with pytest.raises(InvalidInput) as info:
        ids.vm_id(SUB, RG, bad_name)
    assert info.value.fix


def test_builder_refuses_non_guid_subscription():
    with pytest.raises(InvalidInput, match="GUID"):
        ids.gallery_id("my-subscription", RG, "gal")


def test_provider_path_is_what_arm_serves_a_registration_at_and_refuses_what_would_change_it():
    assert ids.provider_path(SUB, ids.BATCH_NAMESPACE) == f"/subscriptions/{SUB}/providers/Microsoft.Batch"
    with pytest.raises(InvalidInput, match="GUID"):
        ids.provider_path("my-subscription", "Microsoft.Batch")
    for bad in ("Microsoft.Batch/batchAccounts", "Microsoft.Batch?x=1", "Batch", ""):
        with pytest.raises(InvalidInput, match="namespace") as info:
            ids.provider_path(SUB, bad)
        assert info.value.fix


BAD_IDS = [
    # (value, expected_type, fragment of the reason)
    (42, None, "expected a string"),
    (None, ids.VIRTUAL_MACHINE, "expected a string"),
    ("", None, "starts with /subscriptions/"),
    (VM[1:], None, "starts with /subscriptions/"),
    ("vm-prepared-ubuntu2204", ids.VIRTUAL_MACHINE, "starts with /subscriptions/"),
    (VM.replace(SUB, "my-subscription"), None, "not a GUID"),
    (VM.replace(SUB, SUB[:-1] + "g"), None, "not a GUID"),
    (f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines/vm", None, "path segments"),
    (f"{BASE}/Microsoft.Compute/virtualMachines", None, "path segments"),
    (f"/subscriptions/{SUB}/resourceGroups/{RG}", None, "path segments"),
    (f"/subscriptions/{SUB}/resourcegroup/{RG}/providers/Microsoft.Compute/virtualMachines/vm", None,
     "resourceGroups"),
    (f"{BASE}/Compute/virtualMachines/vm", None, "namespace"),
    (VM.replace(RG, "rg."), None, "end with"),
    # wrong type: must name both the expected and the found type
    (f"{BASE}/Microsoft.Compute/snapshots/s", ids.VIRTUAL_MACHINE,
     "expected a resource of type Microsoft.Compute/virtualMachines, found Microsoft.Compute/snapshots"),
    (f"{BASE}/Microsoft.Compute/galleries/g/images/d", ids.GALLERY_IMAGE_VERSION,
     "found Microsoft.Compute/galleries/images"),
    (f"{BASE}/Microsoft.Batch/batchAccounts/a", ids.VIRTUAL_MACHINE, "found Microsoft.Batch/batchAccounts"),
    # empty names and segments
    (VM + "/", None, "empty"),
    (f"{BASE}/Microsoft.Compute/virtualMachines//x/y", None, "empty"),
    # traversal and injection
    (f"{BASE}/Microsoft.Compute/virtualMachines/..", ids.VIRTUAL_MACHINE, ".."),
    (f"{BASE}/Microsoft.Compute/virtualMachines/vm/../../snapshots/x", None, ".."),
    (f"{BASE}/Microsoft.Compute/virtualMachines/a..b", None, ".."),
    (VM.replace(RG, ".."), None, ".."),
    (f"{BASE}/Microsoft.Compute/virtualMachines/vm/extra", ids.VIRTUAL_MACHINE, "path segments"),
    (f"{BASE}/Microsoft.Compute/virtualMachines/vm/extensions/x", ids.VIRTUAL_MACHINE,
     "found Microsoft.Compute/virtualMachines/extensions"),
    (VM + "?api-version=2020-01-01", None, "'?'"),
    (f"{BASE}/Microsoft.Compute/virtualMachines/vm%2F..%2Fx", None, "'%'"),
    (f"{BASE}/Microsoft.Compute/virtualMachines/vm%2Fx", None, "'%'"),
    (VM + "#frag", None, "'#'"),
    (VM + "\\x", None, "'\\\\'"),
    (VM + "&x=1", None, "'&'"),
    (VM + " ", None, "' '"),
    (" " + VM, None, "starts with /subscriptions/"),
    (f"{BASE}/Microsoft.Compute/virtualMachines/my vm", None, "' '"),
    (VM + "\n", None, "'\\n'"),
    (VM + "\t", None, "'\\t'"),
    (VM + "\x00", None, "'\\x00'"),
]


@pytest.mark.parametrize(("value", "expected_type", "fragment"), BAD_IDS)
def test_bad_ids_name_field_value_and_fix(value, expected_type, fragment):
    with pytest.raises(InvalidInput) as info:
        ids.parse_arm_id(value, "source_vm_id", expected_type)
    err = info.value
    assert err.field == "source_vm_id"
    assert err.value == value
    assert fragment in err.reason
    assert err.fix
    text = str(err)
    assert text.startswith(f"source_vm_id: {value!r} is not valid: ")
    assert f". Fix: {err.fix}" in text
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("snapshot", ["a", "snap-vm-os-2026-1125-0", "A_b.c-d_", "x" * 80], ["", "-a", ".a", "_a", "a-", "a.", "a b",
                                                                               "a/b", "x" * 81, "é"]),
        ("disk", ["osdisk_1"], ["disk-"]),
        ("image", ["img-ubuntu2204-batch-2026-1125-0"], ["img!"]),
        ("gallery", ["galbatchimages", "gal.batch_images", "g" * 80], ["gal-batch", "_gal", "gal.", "gal_", "", "g" * 81]),
        ("image_definition", ["ubuntu2204-batch", "a.b_c-d"], ["-def", "def-", "def!", "x" * 81]),
        ("resource_group", ["rg-batch-images", "rg_(1).x", "Ré", "r" * 90], ["rg.", "rg/x", "rg x", "", "r" * 91]),
        ("region", ["westeurope", "eastus2"], ["West Europe", "WestEurope", "west-europe", ""]),
        ("batch_account", ["batchimages", "abc"], ["ab", "Batchimages", "batch-images", "b" * 25]),
    ],
)
def test_validate_resource_name(kind, good, bad):
    for name in good:
        assert ids.validate_resource_name(name, "f", kind) == name
    for name in bad:
        with pytest.raises(InvalidInput) as info:
            ids.validate_resource_name(name, "gallery.name", kind)
        assert info.value.field == "gallery.name"
        assert info.value.value == name
        assert info.value.fix


def test_validate_resource_name_explains_the_character():
    with pytest.raises(InvalidInput) as info:
        ids.validate_resource_name("gal-batch", "gallery.name", "gallery")
    assert "'-' at position 3" in info.value.reason
    assert "no '-'" in info.value.fix


def test_validate_resource_name_refuses_non_strings_and_unknown_kinds():
    with pytest.raises(InvalidInput):
        ids.validate_resource_name(5, "f", "snapshot")
    with pytest.raises(ValueError, match="unknown resource kind"):
        ids.validate_resource_name("x", "f", "spaceship")


# --- one home for id equality and region names -------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "same"), [
    (VM, VM.upper().replace("SUBSCRIPTIONS", "subscriptions"), True),  # ARM ids are case-insensitive
    (VM, VM + "/", True),                                             # a trailing slash names the same resource
    (" " + VM, VM, True),                                              # SDK answers and XCom may carry spaces
    (VM, VM + "x", False),
    (VM, None, False),
    (None, None, False),                                              # two unknowns are not the same resource
    ("", "", False),
])
def test_same_id(a, b, same):
    assert ids.same_id(a, b) is same


def test_id_key_is_the_dict_key_of_same_id():
    assert ids.id_key(VM + "/") == ids.id_key(VM.lower())


@pytest.mark.parametrize(("name", "key"), [("West Europe", "westeurope"), ("westeurope", "westeurope"),
                                           ("EastUS2", "eastus2"), (None, "")])
def test_region_key(name, key):
    assert ids.region_key(name) == key


# --- the resource-kind table -------------------------------------------------------------------------------------

from batch_images.rules import resource_kinds  # noqa: E402


@pytest.mark.parametrize("resource_type", [ids.VIRTUAL_MACHINE, ids.DISK, ids.SNAPSHOT, ids.IMAGE, ids.GALLERY,
                                           ids.GALLERY_IMAGE, ids.GALLERY_IMAGE_VERSION, ids.BATCH_ACCOUNT])
def test_every_kind_the_ids_module_names_has_a_row(resource_type):
    kind = resource_kinds.kind_of(resource_type.lower())
    assert kind is not None and kind.resource_type == resource_type
    assert kind.label and kind.api_version


def test_labels_and_api_versions_come_from_the_table():
    version = f"{BASE}/Microsoft.Compute/galleries/gal/images/def/versions/2026.1125.0"
    assert resource_kinds.label_of(version) == "image version"
    assert resource_kinds.label_of(f"{BASE}/Microsoft.Compute/images/img-a") == "managed image"
    assert resource_kinds.label_of(f"{BASE}/Microsoft.Network/virtualNetworks/v") == "Microsoft.Network/virtualNetworks"
    assert resource_kinds.label_of("not an id") == "resource"
    assert resource_kinds.api_version_for(version) == resource_kinds.kind_of(ids.GALLERY_IMAGE_VERSION).api_version
    assert resource_kinds.api_version_for(f"/subscriptions/{SUB}/providers/Microsoft.Batch") == "2021-04-01"
    assert resource_kinds.api_version_for(f"{BASE}/Microsoft.Network/virtualNetworks/v") is None
