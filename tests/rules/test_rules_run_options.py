"""The run's options (the trigger form / --conf), validated again by preflight: rules/run_options.py."""

import jsonschema
import pytest

from batch_images.rules import naming, run_options
from batch_images.rules.errors import InvalidInput
from batch_images.rules.run_options import RunOptions, check_coverage, param_schemas, parse_run_options

REGIONS = ("westeurope", "northeurope", "uksouth")
POOLS = ("ubuntu2204", "render")


def parse(**raw):
    return parse_run_options(raw, regions=REGIONS, pools=POOLS)


def refused(fragment_field: str, **raw) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse(**raw)
    err = info.value
    assert err.field == f"params.{fragment_field}", str(err)
    assert str(err).startswith(f"params.{fragment_field}: ") and "Fix: " in str(err)
    return err


def test_defaults_are_a_full_run_of_everything():
    opts = parse()
    assert opts == RunOptions() and opts.run_kind == "full"
    assert opts.rolls("anything") and opts.keeps_region("Any Region")
    # null is every field's default (a cleared form field, --conf with nulls)
    assert parse(**{f: None for f in run_options.FIELDS}) == RunOptions()


@pytest.mark.parametrize("value, expected", [(0, 0), (3, 3), ("7", 7), (naming.INT32_MAX, naming.INT32_MAX)])
def test_rebuild_good(value, expected):
    assert parse(rebuild=value).rebuild == expected


@pytest.mark.parametrize("value", [-1, naming.INT32_MAX + 1, 1.5, True, "two", [1]])
def test_rebuild_bad(value):
    err = refused("rebuild", rebuild=value)
    assert "2147483647" in err.reason and "rebuild 0 for the first build" in err.fix


@pytest.mark.parametrize("value", ["0.0.0", "1.2.3", "2026.1201.0", "2147483647.2147483647.2147483647"])
def test_version_good(value):
    opts = parse(version=value)
    assert opts.version == value


def test_version_blank_is_none():
    assert parse(version="  ").version is None


@pytest.mark.parametrize("value, reason, fix", [
    ("1.2", "exactly 3 dot-separated parts", "Major.Minor.Patch"),
    ("1.2.3.4", "exactly 3 dot-separated parts", "Major.Minor.Patch"),
    ("2147483648.0.0", "exceeds 2147483647", "keep each part at most 2147483647"),
    ("1.-2.3", "not a non-negative decimal integer", "Major.Minor.Patch"),
    ("v1.2.3", "not a non-negative decimal integer", "Major.Minor.Patch"),
    ("01.2.3", "leading zero", "write it as Azure stores it: 1.2.3"),
    (123, "a version name is a string", "Major.Minor.Patch"),
])
def test_version_bad(value, reason, fix):
    err = refused("version", version=value)
    assert reason in err.reason and fix in err.fix
    assert repr(value) in str(err)


def test_version_and_rebuild_exclude_each_other():
    err = refused("version", version="2026.1201.0", rebuild=2)
    assert "rebuild 2" in err.reason and "exclude each other" in err.reason
    assert "set rebuild to 0" in err.fix
    assert parse(version="2026.1201.0", rebuild=0).version == "2026.1201.0"


def test_target_regions_subset_normalised():
    opts = parse(target_regions=["North Europe", "westeurope", "northeurope"])
    assert opts.target_regions == ["northeurope", "westeurope"]
    assert opts.keeps_region("West Europe") and not opts.keeps_region("uksouth")
    assert parse(target_regions=[]).target_regions == [] and parse(target_regions=None).target_regions == []


@pytest.mark.parametrize("value, reason", [
    (["westeurope", "eastus"], "'eastus' is not a configured region"),
    ("eastus", "'eastus' is not a configured region"),
    ([1], "1 is not a configured region"),
    ({"westeurope": 1}, "a list of regions"),
])
def test_target_regions_bad(value, reason):
    err = refused("target_regions", target_regions=value)
    assert reason in err.reason
    assert "westeurope, northeurope, uksouth" in err.fix


def test_pools_subset():
    opts = parse(pools=["render"])
    assert opts.pools == ["render"] and opts.rolls("render") and not opts.rolls("ubuntu2204")


@pytest.mark.parametrize("value", [["gpu"], ["Render"], "gpu", [None]])
def test_pools_bad(value):
    err = refused("pools", pools=value)
    assert "is not a configured logical pool" in err.reason and "ubuntu2204, render" in err.fix


@pytest.mark.parametrize("value", [None, "", "blue_green", "in_place"])
def test_strategy_good(value):
    assert parse(strategy=value).strategy == (value or None)


@pytest.mark.parametrize("value", ["rolling", "BLUE_GREEN", 1])
def test_strategy_bad(value):
    err = refused("strategy", strategy=value)
    assert "blue_green, in_place" in err.fix


@pytest.mark.parametrize("name", ["canary_only", "allow_downgrade", "dry_run"])
def test_flags(name):
    assert getattr(parse(**{name: True}), name) is True
    assert getattr(parse(**{name: "false"}), name) is False
    err = refused(name, **{name: "yes"})
    assert "a boolean" in err.reason and f"{name}: true" in err.fix


def test_modes():
    assert parse(dry_run=True, canary_only=True).run_kind == "dry_run"
    assert parse(canary_only=True).run_kind == "canary_only"


def test_unknown_param_refused_unless_declared():
    with pytest.raises(InvalidInput) as info:
        parse(rebuid=1)
    assert info.value.field == "params.rebuid" and "not a param of this DAG" in info.value.reason
    assert "rebuild" in info.value.fix
    opts = parse_run_options({"base_image_version": "latest"}, regions=REGIONS, pools=POOLS,
                             known=["base_image_version"])
    assert opts == RunOptions()


def test_coverage_needs_the_gallery_region_and_rolled_pools_account_regions():
    pools = [("ubuntu2204", "westeurope"), ("render", "uksouth")]
    assert check_coverage(parse(), gallery_region="westeurope", pool_regions=pools) == []
    assert check_coverage(parse(target_regions=["westeurope", "uksouth"]), gallery_region="westeurope",
                          pool_regions=pools) == []
    problems = check_coverage(parse(target_regions=["northeurope"]), gallery_region="West Europe",
                              pool_regions=pools)
    assert [p.field for p in problems] == ["params.target_regions"] * 3
    assert "gallery's own region West Europe" in problems[0].reason and "add West Europe" in problems[0].fix
    assert "pool ubuntu2204's Batch account is in westeurope" in problems[1].reason
    assert "pool render's Batch account is in uksouth" in problems[2].reason
    assert "leave render out of pools" in problems[2].fix
    # a pool the run does not roll may be outside the subset
    only = parse(target_regions=["westeurope"], pools=["ubuntu2204"])
    assert check_coverage(only, gallery_region="westeurope", pool_regions=pools) == []


def test_param_schemas_refuse_what_the_rules_refuse():
    """The form's JSON schemas (what Airflow validates) agree with parse_run_options on each field."""
    schemas = {k: {kk: vv for kk, vv in v.items() if kk not in ("default",)} for k, v in
               param_schemas(REGIONS, POOLS).items()}
    assert set(schemas) == set(run_options.FIELDS)
    cases = {
        "rebuild": ([0, naming.INT32_MAX], [-1, naming.INT32_MAX + 1, "1"]),
        "version": ([None, "", "1.2.3", "2147483647.0.0"], ["1.2", "2026.1201", "v1.2.3", "1.2.3.4", "1.2.3 "]),
        "target_regions": ([None, [], ["northeurope"]], [["eastus"], ["westeurope", "westeurope"], "westeurope"]),
        "pools": ([None, ["render"]], [["gpu"]]),
        "strategy": ([None, "in_place"], ["rolling"]),
        "dry_run": ([True], ["yes", None]),
    }
    for name, (good, bad) in cases.items():
        for value in good:
            jsonschema.validate(value, schemas[name])
        for value in bad:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(value, schemas[name])
    for name, schema in schemas.items():
        assert schema["section"] in ("Version", "Where", "How") and schema["description"] and schema["title"]
    # the version's form pattern checks the shape (Airflow's refusal quotes it, so it stays short); the 32-bit bound
    # and leading zeros are refused by preflight, readably
    for value in ("2147483648.0.0", "01.2.3"):
        jsonschema.validate(value, schemas["version"])
        refused("version", version=value)
    assert "e.g. 2026.1201.0" in schemas["version"]["title"]
    assert schemas["target_regions"]["examples"] == list(REGIONS)
    assert schemas["target_regions"]["items"]["enum"] == list(REGIONS)


# -- the plan records the options -------------------------------------------------------------------------------


def plan_with(options: dict):
    from batch_images.rules.plan import Plan

    pool = {"batch_conn_id": "c", "batch_account_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Batch/"
            "batchAccounts/acct", "batch_account_location": "westeurope", "pool_id": "", "vm_size": "Standard_D2s_v3",
            "target_dedicated_nodes": 2, "target_low_priority_nodes": 0, "resize_timeout": "PT15M",
            "node_agent_sku_id": "batch.node.ubuntu 22.04", "allocation_timeout": 900.0,
            "smoke_test": {"command_line": "true", "timeout_minutes": 10}}
    return Plan.from_dict({
        "dag_id": "d", "run_id": "r", "version": "7.0.1", "location": "westeurope", "work_resource_group": "rg",
        "work_subscription_id": "00000000-0000-0000-0000-000000000001",
        "source": {"vm_id": "/vm", "vm_name": "vm", "os_disk_id": "/disk", "os_type": "Linux",
                   "hyper_v_generation": "V2"},
        "gallery": {"subscription_id": "s", "resource_group": "rg", "name": "gal", "location": "westeurope",
                    "id": "/g"},
        "image_definition": {"name": "def", "os_type": "Linux", "hyper_v_generation": "V2", "publisher": "p",
                             "offer": "o", "sku": "k", "id": "/g/images/def"},
        "version_id": "/g/images/def/versions/7.0.1", "image_name": "img-def-7-0-1", "image_id": "/img",
        "snapshot_names": {"os": "snap-vm-os-7-0-1"},
        "target_regions": [{"name": "westeurope", "regional_replica_count": 2}],
        "timeouts": {"replication": 1800.0},
        "pools": [{**pool, "logical_pool": "alpha", "pool_id": "alpha-7-0-1"},
                  {**pool, "logical_pool": "beta", "pool_id": "beta-7-0-1", "smoke_test": None}],
        "options": options, "roll_decisions": {"alpha": "first: alpha-7-0-1 becomes its first serving pool"},
    })


def test_plan_rolled_pools_follow_the_pools_option_and_carry_canary_only():
    assert [p.pool_id for p in plan_with({}).rolled_pools()] == ["alpha-7-0-1", "beta-7-0-1"]
    only = plan_with({"pools": ["beta"], "canary_only": True}).rolled_pools()
    assert [(p.pool_id, p.canary_only) for p in only] == [("beta-7-0-1", True)]
    assert plan_with({}).options == RunOptions()  # a plan without options (older preflight): a full run


def test_describe_names_every_id_count_and_timeout():
    from batch_images.rules.plan import describe

    text = describe(plan_with({"dry_run": True, "pools": ["alpha"], "version": "7.0.1"}))
    for fragment in ("mode dry_run", "7.0.1  /g/images/def/versions/7.0.1", "snap-vm-os-7-0-1",
                     "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/snapshots/snap-vm-os-7-0-1",
                     "img-def-7-0-1  /img", "westeurope       2 replica(s)", "replication 1800 s (30 min)",
                     "alpha -> alpha-7-0-1  account acct (westeurope)", "2 dedicated + 0 low-priority node(s)",
                     "resizeTimeout PT15M", "allocation wait 900 s (15 min)", "drain timeout 120 min (then keep)",
                     "smoke test 'true'", "timeout 10 min", "decision: first: alpha-7-0-1",
                     "beta -> beta-7-0-1", "decision: not rolled (not in params.pools)", "pools alpha"):
        assert fragment in text, fragment
