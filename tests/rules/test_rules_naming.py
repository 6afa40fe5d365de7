import pickle
from datetime import date, datetime, timedelta, timezone

import pytest

from batch_images.rules import naming
from batch_images.rules.errors import InvalidInput
from batch_images.rules.ids import validate_resource_name


@pytest.mark.parametrize(
    ("logical_date", "rebuild", "expected"),
    [
        (date(2026, 11, 25), 0, "2026.1125.0"),
        (date(2026, 1, 5), 0, "2026.105.0"),  # no leading zero: Azure would drop it
        (date(2026, 10, 1), 2, "2026.1001.2"),
        (date(2026, 12, 31), 2147483647, "2026.1231.2147483647"),
        (datetime(2026, 11, 25, 23, 59), 1, "2026.1125.1"),
        # aware datetimes are taken in UTC: 01:00 at +02:00 is the previous day in UTC
        (datetime(2026, 11, 26, 1, 0, tzinfo=timezone(timedelta(hours=2))), 0, "2026.1125.0"),
    ],
)
def test_version_name(logical_date, rebuild, expected):
    assert naming.version_name(logical_date, rebuild) == expected


def test_version_name_round_trips_every_day_of_a_leap_year():
    day = date(2024, 1, 1)
    while day.year == 2024:
        for rebuild in (0, 7):
            name = naming.version_name(day, rebuild)
            assert naming.validate_version_name(name, "v") == name
            assert naming.parse_version_name(name) == (day, rebuild)
        day += timedelta(days=1)


@pytest.mark.parametrize("rebuild", [-1, 2147483648, True, 1.0, "0"])
def test_version_name_rejects_bad_rebuild(rebuild):
    with pytest.raises(InvalidInput) as info:
        naming.version_name(date(2026, 11, 25), rebuild)
    assert info.value.field == "rebuild"


@pytest.mark.parametrize("logical_date", [None, "2026-11-25", 20261125])
def test_version_name_needs_a_date(logical_date):
    with pytest.raises(InvalidInput) as info:
        naming.version_name(logical_date)
    assert info.value.field == "logical_date"
    assert "logical date" in info.value.fix


@pytest.mark.parametrize("value", ["0.0.0", "2026.1125.0", "2147483647.2147483647.2147483647", "1.2.3"])
def test_validate_version_name_accepts(value):
    assert naming.validate_version_name(value, "version") == value


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1.2.3.4", "exactly 3"),
        ("2026.1125", "exactly 3"),
        ("", "exactly 3"),
        ("2147483648.1.1", "exceeds 2147483647"),
        ("1.2147483648.0", "exceeds 2147483647"),
        ("1.0.99999999999999999999", "exceeds 2147483647"),
        ("-1.0.0", "not a non-negative decimal integer"),
        ("1.-1.0", "not a non-negative decimal integer"),
        ("+1.0.0", "not a non-negative decimal integer"),
        ("a.b.c", "not a non-negative decimal integer"),
        (" 2026.1125.0", "not a non-negative decimal integer"),
        ("2026.1125.0 ", "not a non-negative decimal integer"),
        ("2026.1125.0\n", "not a non-negative decimal integer"),
        ("2026. 1125.0", "not a non-negative decimal integer"),
        ("2026..0", "not a non-negative decimal integer"),
        ("1e3.0.0", "not a non-negative decimal integer"),
        ("\u0662\u0660\u0662\u0666.1.1", "not a non-negative decimal integer"),  # Arabic-Indic digits
        ("2026.0105.0", "leading zero"),
        (2026, "string"),
        (None, "string"),
    ],
)
def test_validate_version_name_rejects(value, fragment):
    with pytest.raises(InvalidInput) as info:
        naming.validate_version_name(value, "image_version")
    err = info.value
    assert err.field == "image_version"
    assert err.value == value
    assert fragment in err.reason
    assert str(err).startswith(f"image_version: {value!r} is not valid: ")
    assert "Fix: " in str(err)


def test_leading_zero_fix_shows_azures_form():
    with pytest.raises(InvalidInput) as info:
        naming.validate_version_name("2026.0105.00", "v")
    assert "2026.105.0" in info.value.fix


@pytest.mark.parametrize("value", ["2026.1345.0", "2026.230.0", "2026.1100.0", "0.101.0", "2026.5.0"])
def test_parse_version_name_rejects_non_dates(value):
    with pytest.raises(InvalidInput, match="YYYY.MMDD"):
        naming.parse_version_name(value)


def test_next_version_name_skips_taken_rebuilds():
    day = date(2026, 11, 25)
    assert naming.next_version_name(day, []) == "2026.1125.0"
    assert naming.next_version_name(day, ["2026.1125.0", "2026.1125.1", "2026.1124.2", "other"]) == "2026.1125.2"


# --- resource names ------------------------------------------------------------------------------------------------


def test_snapshot_and_image_names():
    assert naming.snapshot_name("vm-prepared-ubuntu2204", "os", "2026.1125.0") == (
        "snap-vm-prepared-ubuntu2204-os-2026-1125-0")
    assert naming.snapshot_name("vm1", naming.disk_role(3), "2026.105.1") == "snap-vm1-data-lun3-2026-105-1"
    assert naming.image_name("ubuntu2204-batch", "2026.1125.0") == "img-ubuntu2204-batch-2026-1125-0"


def test_long_names_fit_80_deterministically_and_stay_distinct():
    longest = "2147483647.2147483647.2147483647"
    a = naming.snapshot_name("v" * 64, "data-lun63", longest)
    b = naming.snapshot_name("v" * 63 + "w", "data-lun63", longest)
    assert len(a) == 80 and len(b) == 80
    assert a == naming.snapshot_name("v" * 64, "data-lun63", longest)
    assert a != b
    assert a.startswith("snap-vvv") and a.endswith("-data-lun63-2147483647-2147483647-2147483647")
    validate_resource_name(a, "f", "snapshot")
    img = naming.image_name("d" * 80, longest)
    assert len(img) == 80 and img.startswith("img-ddd") and img.endswith("-2147483647-2147483647-2147483647")
    validate_resource_name(img, "f", "image")


@pytest.mark.parametrize("role", ["data", "OS", "data-lun64", "data-lun01", "data-lun-1", "", None])
def test_snapshot_name_rejects_bad_roles(role):
    with pytest.raises(InvalidInput) as info:
        naming.snapshot_name("vm1", role, "2026.1125.0")
    assert info.value.field == "role"


@pytest.mark.parametrize("vm_name", ["", "a/b", "vm 1", "vm?", None])
def test_snapshot_name_rejects_bad_vm_names(vm_name):
    with pytest.raises(InvalidInput) as info:
        naming.snapshot_name(vm_name, "os", "2026.1125.0")
    assert info.value.field == "vm_name"


def test_snapshot_name_validates_the_version():
    with pytest.raises(InvalidInput) as info:
        naming.snapshot_name("vm1", "os", "2026.1125")
    assert info.value.field == "version"


@pytest.mark.parametrize("lun", [-1, 64, True, "1"])
def test_disk_role_rejects_bad_luns(lun):
    with pytest.raises(InvalidInput):
        naming.disk_role(lun)


def test_pool_id():
    assert naming.pool_id("ubuntu2204", "2026.1125.0") == "ubuntu2204-2026-1125-0"
    assert naming.pool_id("p" * 51, "9999.1231.99") == "p" * 51 + "-9999-1231-99"


def test_pool_id_too_long_names_the_prefix_and_the_limit():
    with pytest.raises(InvalidInput) as info:
        naming.pool_id("p" * 52, "9999.1231.99", field="pools[0].pool_id_prefix")
    err = info.value
    assert err.field == "pools[0].pool_id_prefix"
    assert err.value == "p" * 52
    assert "65 characters" in err.reason
    assert "at most 51" in err.fix


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "1-64 characters, this has 0"),
        ("p" * 65, "this has 65"),
        ("pool.1", "'.' at position 4"),
        ("pool 1", "' ' at position 4"),
        ("pool/1", "'/' at position 4"),
        ("poolé", "'é' at position 4"),
        (12, "string"),
    ],
)
def test_validate_pool_id_rejects(value, fragment):
    with pytest.raises(InvalidInput) as info:
        naming.validate_pool_id(value, "pool_id")
    assert info.value.field == "pool_id"
    assert fragment in info.value.reason
    assert "letters, digits" in info.value.fix


def test_validate_pool_id_accepts():
    assert naming.validate_pool_id("A_b-1", "f") == "A_b-1"
    assert naming.validate_pool_id("x" * 64, "f") == "x" * 64


def test_resource_tags():
    tags = naming.resource_tags("batch_image_ubuntu2204", "scheduled__2026-11-25T00:00:00+00:00", "2026.1125.0")
    assert tags == {
        "managed-by": "airflow-batch-images",
        "dag_id": "batch_image_ubuntu2204",
        "run_id": "scheduled__2026-11-25T00:00:00+00:00",
        "image-version": "2026.1125.0",
    }


def test_resource_tags_cut_long_values_to_256_and_keep_them_distinct():
    a = naming.resource_tags("d", "r" * 300, "1.2.3")["run_id"]
    b = naming.resource_tags("d", "r" * 299 + "s", "1.2.3")["run_id"]
    assert len(a) == 256 and len(b) == 256
    assert a != b
    assert a.startswith("r" * 200)


def test_resource_tags_validate_inputs():
    with pytest.raises(InvalidInput):
        naming.resource_tags("d", "r", "1.2")
    with pytest.raises(InvalidInput) as info:
        naming.resource_tags("", "r", "1.2.3")
    assert info.value.field == "dag_id"


def test_invalid_input_survives_pickling():
    err = InvalidInput("f", "v", "bad", "do this")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, copy.value, copy.reason, copy.fix, str(copy)) == (err.field, err.value, err.reason, err.fix,
                                                                          str(err))
    assert str(err) == "f: 'v' is not valid: bad. Fix: do this"


def test_version_sort_key_orders_numerically_and_puts_foreign_names_first():
    names = ["2026.1125.0", "2026.205.3", "not-a-version", "2026.1125.10", "2026.1125.2"]
    assert sorted(names, key=naming.version_sort_key, reverse=True) == [
        "2026.1125.10", "2026.1125.2", "2026.1125.0", "2026.205.3", "not-a-version"]
    assert naming.version_sort_key(None) == (-1,)


def test_version_for_base_skips_names_built_from_another_base():
    existing = {"2026.1130.0": "22.04.1", "2026.1130.1": None, "2026.1130.2": "22.04.2"}
    assert naming.version_for_base("2026.1130.0", existing, "22.04.2") == "2026.1130.2"
    assert naming.version_for_base("2026.1130.0", existing, "22.04.1") == "2026.1130.0"
    assert naming.version_for_base("2026.1130.0", existing, "22.04.3") == "2026.1130.3"
    assert naming.version_for_base("2026.1201.0", existing, "22.04.3") == "2026.1201.0"
