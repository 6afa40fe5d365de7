"""The roll's pure decisions (rules/roll.py): physical pools from Batch metadata, what a run does with a logical pool
(first / roll / current / skip_downgrade) in three-integer version order, the lease, the drain verdict and the
per-node image check. No stand-in, no Airflow: milliseconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from batch_images.rules import naming, roll
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import PoolSpec, RollDecision, read_pool_spec

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
DEF = ("/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/resourceGroups/rg/providers/Microsoft.Compute/galleries/"
       "gal/images/ubuntu")


def entry(pool_id: str, logical: str | None, version: str | None, role: str | None, state: str = "active",
          **extra_md: str) -> dict:
    md = {naming.TAG_LOGICAL_POOL: logical, naming.TAG_IMAGE_VERSION: version, naming.TAG_ROLE: role, **extra_md}
    return {"id": pool_id, "state": state, "etag": f"0x{abs(hash(pool_id)) % 10**8:X}",
            "metadata": {k: v for k, v in md.items() if v is not None}}


def pool(version: str | None, role: str = naming.ROLE_SERVING, logical: str = "ubuntu") -> roll.PhysicalPool:
    return roll.PhysicalPool.from_listing(entry(f"{logical}-{version}", logical, version, role))


# -- physical pools from metadata --------------------------------------------------------------------------------


def test_physical_pools_reads_metadata_filters_by_logical_pool_and_drops_deleting():
    listing = [
        entry("ubuntu-b", "ubuntu", "2026.1126.0", "canary", run_id="r2"),
        entry("ubuntu-a", "ubuntu", "2026.1125.0", "serving", **{naming.TAG_SERVING_SINCE: "2026-11-25T03:00:00Z",
                                                                  naming.TAG_LEASE: "r2|2026-11-26T05:00:00Z"}),
        entry("ubuntu-old", "ubuntu", "2026.1124.0", "draining", state="deleting"),
        entry("centos-a", "centos", "2026.1125.0", "serving"),
        {"id": "users-own", "state": "active", "metadata": {"purpose": "x"}},  # no roll metadata at all
        {"id": "no-md", "state": "active"},
    ]
    pools = roll.physical_pools(listing, "ubuntu")
    assert [p.pool_id for p in pools] == ["ubuntu-a", "ubuntu-b"]  # oldest version first, deleting one left out
    a, b = pools
    assert (a.version, a.role, a.serving_since, a.lease) == ("2026.1125.0", "serving", "2026-11-25T03:00:00Z",
                                                             "r2|2026-11-26T05:00:00Z")
    assert (b.role, b.run_id, b.etag) == ("canary", "r2", listing[0]["etag"])
    assert roll.physical_pools(listing, "debian") == []


def test_physical_pools_order_is_numeric_per_part_not_textual():
    listing = [entry(f"p{i}", "lp", v, "draining") for i, v in enumerate(["2026.1125.0", "2026.205.3", "2026.1125.10",
                                                                          "2026.1125.9"])]
    assert [p.version for p in roll.physical_pools(listing, "lp")] == ["2026.205.3", "2026.1125.0", "2026.1125.9",
                                                                       "2026.1125.10"]


def test_serving_pool_is_the_newest_serving_one_or_none():
    assert roll.serving_pool([]) is None
    assert roll.serving_pool([pool("2026.1125.0", naming.ROLE_DRAINING), pool("2026.1126.0", naming.ROLE_CANARY)]) \
        is None
    # a crash between "new serving" and "old draining" leaves two serving pools: the newest version wins
    two = [pool("2026.1126.0"), pool("2026.205.0"), pool("2026.1125.0", naming.ROLE_DRAINING)]
    assert roll.serving_pool(two).version == "2026.1126.0"


# -- decide ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("new,serving,allow,want", [
    ("2026.1126.0", None, False, roll.FIRST),
    ("2026.1126.0", None, True, roll.FIRST),
    ("2026.1126.0", "2026.1125.0", False, roll.ROLL),
    ("2026.1126.0", "2026.1126.0", False, roll.CURRENT),
    ("2026.1126.0", "2026.1126.0", True, roll.CURRENT),
    ("2026.1124.0", "2026.1125.0", False, roll.SKIP_DOWNGRADE),
    ("2026.1124.0", "2026.1125.0", True, roll.ROLL),
    # three integers, not text: "1125" > "205" although "1" < "2"; "10" > "9"
    ("2026.1125.0", "2026.205.3", False, roll.ROLL),
    ("2026.205.3", "2026.1125.0", False, roll.SKIP_DOWNGRADE),
    ("2026.1125.10", "2026.1125.9", False, roll.ROLL),
    ("2026.1125.9", "2026.1125.10", False, roll.SKIP_DOWNGRADE),
    ("2027.101.0", "2026.1231.5", False, roll.ROLL),
    # a rebuild of the same date (N + 1) rolls; an older rebuild does not
    ("2026.1125.1", "2026.1125.0", False, roll.ROLL),
    ("2026.1125.0", "2026.1125.1", False, roll.SKIP_DOWNGRADE),
])
def test_decide_by_three_integer_version_order(new, serving, allow, want):
    assert roll.decide(new, pool(serving) if serving else None, allow_downgrade=allow) == want


def test_decide_a_serving_pool_with_an_unreadable_version_is_rolled_not_skipped():
    # metadata damaged by hand: sorts before every version, so the run rolls it instead of skipping forever
    assert roll.decide("2026.1126.0", pool("not-a-version")) == roll.ROLL
    assert roll.decide("2026.1126.0", pool(None)) == roll.ROLL


SPEC = {"batch_conn_id": "azure_batch_default", "batch_account_id": "/subscriptions/2b8c7d6e-5f4a-4b3c-8d2e-"
        "1f0a9b8c7d6e/resourceGroups/rg/providers/Microsoft.Batch/batchAccounts/acct", "batch_account_location":
        "westeurope", "logical_pool": "ubuntu", "pool_id": "ubuntu-2026-1126-0", "vm_size": "Standard_D2s_v3",
        "target_dedicated_nodes": 2, "target_low_priority_nodes": 0, "resize_timeout": "PT15M",
        "node_agent_sku_id": "batch.node.ubuntu 22.04"}


def decision(**changes) -> dict:
    return {**SPEC, "roll_action": roll.ROLL, "strategy": "blue_green", "serving_pool_id": "ubuntu-2026-1125-0",
            "serving_version": "2026.1125.0", "version": "2026.1126.0", "image_version_id": f"{DEF}/versions/"
            "2026.1126.0", "account": "acct", **changes}


@pytest.mark.parametrize("changes,new_pool,re_images", [
    ({"roll_action": roll.FIRST, "serving_pool_id": None, "serving_version": None}, True, False),
    ({}, True, False),  # a blue/green roll (and a canary-only run, which plan_roll makes blue_green)
    ({"strategy": "in_place"}, False, True),  # the serving pool is re-imaged
    ({"roll_action": roll.CURRENT, "strategy": "in_place"}, False, False),
    ({"roll_action": roll.CURRENT}, False, False),
    ({"roll_action": roll.SKIP_DOWNGRADE}, False, False),
])
def test_roll_decision_says_whether_the_run_makes_a_new_pool(changes, new_pool, re_images):
    d = RollDecision.from_dict(decision(**changes))
    assert (d.makes_new_pool, d.re_images) == (new_pool, re_images)
    assert read_pool_spec(d.to_dict()) == d  # XCom round trip: the decision is read back, not a bare spec


def test_a_plan_pool_spec_without_a_decision_makes_a_new_pool():
    spec = read_pool_spec(SPEC)
    assert type(spec) is PoolSpec and spec.makes_new_pool
    assert RollDecision.read(SPEC) is None and RollDecision.read("ubuntu-2026-1126-0") is None


@pytest.mark.parametrize("changes,want", [
    ({"require_approval": True}, True),
    ({"require_approval": False}, False),
    ({"require_approval": True, "canary_only": True}, False),  # a canary is never a roll to approve
    ({"require_approval": True, "roll_action": roll.FIRST}, False),
    ({"require_approval": True, "roll_action": roll.CURRENT}, False),
])
def test_roll_decision_needs_approval_only_for_a_real_roll(changes, want):
    assert RollDecision.from_dict(decision(**changes)).needs_approval is want


@pytest.mark.parametrize("data,field,reason", [
    (decision(roll_action="rollback"), "plan_roll.roll_action", "Input should be"),
    (decision(strategy="canary"), "plan_roll.strategy", "Input should be"),
    ({k: v for k, v in decision().items() if k != "image_version_id"}, "plan_roll.image_version_id", "missing"),
    (decision(roll={"strategy": "blue_green", "drain_timeout_minutes": "soon"}), "plan_roll.roll.drain_timeout_minutes",
     "integer"),
    (["not", "a", "dict"], "plan_roll", "plan_roll's output"),
])
def test_roll_decision_names_the_bad_key(data, field, reason):
    with pytest.raises(InvalidInput) as info:
        RollDecision.from_dict(data, "plan_roll")
    assert info.value.field == field and reason in str(info.value)
    assert "plan_roll's output" in str(info.value)  # the fix


def test_pool_spec_has_one_account_region_field():
    assert "account_location" not in PoolSpec.model_fields
    assert read_pool_spec({**SPEC, "account_location": "northeurope"}).batch_account_location == "westeurope"


def test_effective_strategy_override_and_bad_value():
    assert roll.effective_strategy("blue_green", None) == "blue_green"
    assert roll.effective_strategy("blue_green", "") == "blue_green"
    assert roll.effective_strategy("blue_green", "in_place") == "in_place"
    assert roll.effective_strategy("in_place", None) == "in_place"
    with pytest.raises(InvalidInput) as err:
        roll.effective_strategy("blue_green", "rolling")
    text = str(err.value)
    assert "params.strategy" in text and "rolling" in text and "blue_green" in text and "in_place" in text


# -- the lease ---------------------------------------------------------------------------------------------------


def test_lease_value_names_the_run_and_its_expiry_in_utc():
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    value = roll.lease_value("scheduled__2026-11-26T00:00:00+00:00", local, timedelta(minutes=90))
    assert value == "scheduled__2026-11-26T00:00:00+00:00|2026-11-26T04:30:00Z"


def test_lease_holder_is_the_run_until_expiry():
    value = roll.lease_value("run-a", NOW, timedelta(hours=1))
    assert roll.lease_holder(value, NOW) == "run-a"
    assert roll.lease_holder(value, NOW + timedelta(minutes=59, seconds=59)) == "run-a"
    assert roll.lease_holder(value, NOW + timedelta(hours=1)) is None  # expired: anyone may take it over
    assert roll.lease_holder(value, NOW + timedelta(days=1)) is None


@pytest.mark.parametrize("value", [None, "", "run-a", "run-a|", "|2099-01-01T00:00:00Z", "run-a|tomorrow"])
def test_lease_holder_none_for_missing_or_unreadable(value):
    assert roll.lease_holder(value, NOW) is None


def test_lease_holder_run_ids_may_contain_the_separator():
    # run ids are free text in manual triggers; the expiry is after the last "|"
    value = roll.lease_value("manual|x", NOW, timedelta(hours=1))
    assert roll.lease_holder(value, NOW) == "manual|x"


def test_lease_duration_is_drain_bound_plus_two_hours():
    assert roll.lease_duration(60) == timedelta(hours=3)
    assert roll.lease_duration(1) == timedelta(hours=2, minutes=1)


# -- drain -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("running,active,elapsed,want", [
    (0, 0, 0, roll.DONE),
    (0, 0, 3600, roll.DONE),  # drained counts even after the bound
    (1, 0, 59, roll.WAIT),
    (0, 2, 59, roll.WAIT),  # a drained job still has queued tasks
    (1, 0, 60, roll.TIMED_OUT),
    (0, 1, 61, roll.TIMED_OUT),
])
def test_drain_verdict(running, active, elapsed, want):
    assert roll.drain_verdict(running, active, NOW, NOW + timedelta(seconds=elapsed), timedelta(minutes=1)) == want


# -- verify ------------------------------------------------------------------------------------------------------


def test_nodes_off_version_lists_exactly_the_nodes_on_another_image():
    want = f"{DEF}/versions/2026.1126.0"
    nodes = [
        {"id": "n-exact", "image_id": want},
        {"id": "n-case", "image_id": want.upper() + "/"},  # ARM ids compare case-insensitively
        {"id": "n-def-latest", "image_id": DEF, "exact_version": "2026.1126.0"},  # definition + exactVersion
        {"id": "n-old", "image_id": f"{DEF}/versions/2026.1125.0"},
        {"id": "n-def-old", "image_id": DEF, "exact_version": "2026.1125.0"},
        {"id": "n-other-def", "image_id": DEF + "2", "exact_version": "2026.1126.0"},
        {"id": "n-none", "image_id": None},
    ]
    assert roll.nodes_off_version(nodes, want) == ["n-old", "n-def-old", "n-other-def", "n-none"]
    assert roll.nodes_off_version([], want) == []


def test_metadata_update_sets_and_removes():
    have = {naming.TAG_ROLE: "serving", naming.TAG_LEASE: "r|x", "user": "keep"}
    out = roll.metadata_update(have, {naming.TAG_ROLE: "draining", naming.TAG_LEASE: None, "n": 3, "absent": None})
    assert out == {naming.TAG_ROLE: "draining", "user": "keep", "n": "3"}
    assert have[naming.TAG_ROLE] == "serving"  # the input is not changed


# -- autoscale ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template, want", [
    ({"enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=2;", "autoScaleEvaluationInterval": "PT5M"},
     roll.AutoScale("$TargetDedicatedNodes=2;", "PT5M")),
    ({"enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=2;"}, roll.AutoScale("$TargetDedicatedNodes=2;")),
    ({"enableAutoScale": False, "autoScaleFormula": "$TargetDedicatedNodes=2;"}, None),  # a formula alone: fixed size
    ({"targetDedicatedNodes": 2}, None),
    ({}, None),
    (None, None),
])
def test_autoscale_of_reads_the_templates_batch_keys(template, want):
    assert roll.autoscale_of(template) == want


def test_autoscale_run_verdict_waits_for_the_first_evaluation_and_names_batchs_error():
    assert roll.autoscale_run_verdict(None)[0] == roll.WAIT
    ok = roll.autoscale_run_verdict({"timestamp": "2026-11-26T03:00:00Z", "results": "$TargetDedicatedNodes=2"})
    assert ok[0] == roll.DONE and "$TargetDedicatedNodes=2" in ok[1]
    failed, text = roll.autoscale_run_verdict({"timestamp": "2026-11-26T03:00:00Z", "error": {
        "code": "AutoScalingFormulaEvaluationError", "message": "division by zero",
        "values": [{"name": "Line", "value": "1"}]}})
    assert failed == "failed"
    assert "AutoScalingFormulaEvaluationError: division by zero" in text and "Line=1" in text


def test_the_roll_decision_carries_the_template_and_canary_nodes_through_xcom():
    template = {"enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=2;"}
    d = RollDecision.from_dict(decision(template=template, canary_nodes=3))
    back = read_pool_spec(d.to_dict())
    assert back.template == template and back.canary_nodes == 3
    assert roll.autoscale_of(back.template) == roll.AutoScale("$TargetDedicatedNodes=2;")
