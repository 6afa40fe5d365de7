from datetime import timedelta

import pytest

from batch_images.rules import sizing
from batch_images.rules.errors import InvalidInput
from batch_images.rules.sizing import ReplicaRule


@pytest.mark.parametrize(
    ("vm_count", "per300", "per600"),
    [
        (0, 1, 1),
        (1, 1, 1),
        (300, 1, 1),
        (301, 2, 1),
        (600, 2, 1),
        (601, 3, 2),
        (3000, 10, 5),  # Microsoft's current page: 10; the 2020 seed document: 5
        (10000, 34, 17),
    ],
)
def test_replicas_for(vm_count, per300, per600):
    a = sizing.replicas_for(vm_count)  # per300 is the default
    b = sizing.replicas_for(vm_count, "per600")
    assert (a.count, a.rule, a.vm_count) == (per300, ReplicaRule.PER300, vm_count)
    assert (b.count, b.rule, b.vm_count) == (per600, ReplicaRule.PER600, vm_count)
    # every number says which rule made it
    assert "per300" in a.explanation and f"= {per300} " in a.explanation
    assert "per600" in b.explanation and "seed" in b.explanation


def test_replica_sizing_to_dict_is_plain():
    assert sizing.replicas_for(3000, ReplicaRule.PER600).to_dict()["rule"] == "per600"


@pytest.mark.parametrize(("rule", "limit"), [("per300", 30000), ("per600", 60000)])
def test_more_than_100_replicas_is_an_error(rule, limit):
    assert sizing.replicas_for(limit, rule).count == 100
    with pytest.raises(InvalidInput) as info:
        sizing.replicas_for(limit + 1, rule, field="pools[0]")
    err = info.value
    assert err.field == "pools[0]"
    assert err.value == limit + 1
    assert f"{limit + 1} VMs need 101" in err.reason
    assert "at most 100" in err.reason
    assert "split" in err.fix and "regions" in err.fix


@pytest.mark.parametrize("vm_count", [-1, 1.5, True, "10", None])
def test_replicas_for_rejects_bad_counts(vm_count):
    with pytest.raises(InvalidInput) as info:
        sizing.replicas_for(vm_count)
    assert info.value.field == "vm_count"


@pytest.mark.parametrize("rule", ["per1000", "", None, 300])
def test_unknown_rule(rule):
    with pytest.raises(InvalidInput) as info:
        sizing.replicas_for(10, rule)
    assert "per300" in info.value.fix and "per600" in info.value.fix


def test_rule_parsing_is_lenient_on_case():
    assert sizing.parse_replica_rule(" PER600 ") is ReplicaRule.PER600


def test_region_replicas_sums_pools_per_region():
    pools = [("westeurope", 3000), ("westeurope", 301), ("northeurope", 10)]
    plan = sizing.region_replicas(pools, ["westeurope", "northeurope", "eastus"])
    assert {r: s.count for r, s in plan.items()} == {"westeurope": 12, "northeurope": 1, "eastus": 1}
    assert plan["westeurope"].vm_count == 3301
    assert plan["eastus"].vm_count == 0
    assert "westeurope" in plan["westeurope"].explanation
    plan600 = sizing.region_replicas(pools, ["westeurope", "northeurope", "eastus"], "per600")
    assert plan600["westeurope"].count == 6
    assert sizing.total_replicas(plan) == 14


def test_region_replicas_accepts_pool_like_objects():
    class Pool:
        region = "westeurope"
        vm_count = 900

    assert sizing.region_replicas([Pool()], ["westeurope"])["westeurope"].count == 3


def test_region_replicas_needs_the_pool_region_among_targets():
    with pytest.raises(InvalidInput) as info:
        sizing.region_replicas([("eastus", 10)], ["westeurope"])
    assert info.value.field == "pools[0].region"
    assert "eastus" in info.value.fix


def test_region_replicas_total_over_100_is_an_error():
    with pytest.raises(InvalidInput, match="at most 100"):
        sizing.region_replicas([("westeurope", 20000), ("westeurope", 20000)], ["westeurope"])


@pytest.mark.parametrize(
    ("vm_count", "minutes"),
    [(0, 15), (1, 15), (1000, 15), (1001, 16), (1500, 23), (2000, 30), (10000, 150)],
)
def test_resize_timeout_for_fixed_pools(vm_count, minutes):
    assert sizing.resize_timeout_for(vm_count) == timedelta(minutes=minutes)


def test_resize_timeout_for_autoscale_pools_is_the_default():
    assert sizing.resize_timeout_for(10000, fixed_size=False) == timedelta(minutes=15)


def test_validate_resize_timeout():
    assert sizing.validate_resize_timeout(timedelta(minutes=5), "t") == timedelta(minutes=5)
    with pytest.raises(InvalidInput) as info:
        sizing.validate_resize_timeout(timedelta(minutes=4, seconds=59), "pools[0].resize_timeout")
    assert info.value.field == "pools[0].resize_timeout"
    assert "5 minutes" in info.value.fix
    with pytest.raises(InvalidInput):
        sizing.validate_resize_timeout(15, "t")


def test_timeout_for_replication_formula():
    # 30 min + 1 min per GB per region + 5 min per replica
    assert sizing.timeout_for_replication(30, 2, 3) == timedelta(minutes=105)
    assert sizing.timeout_for_replication(0.5, 1, 1) == timedelta(minutes=36)
    assert sizing.timeout_for_replication(128, 3, 30) > sizing.timeout_for_replication(128, 3, 3)


@pytest.mark.parametrize(("size", "regions", "replicas"), [(0, 1, 1), (-1, 1, 1), (30, 0, 1), (30, 2, 1), (True, 1, 1)])
def test_timeout_for_replication_rejects(size, regions, replicas):
    with pytest.raises(InvalidInput):
        sizing.timeout_for_replication(size, regions, replicas)


def test_timeout_for_allocation():
    assert sizing.timeout_for_allocation(2000) == timedelta(minutes=60)  # 30 resize + 30 boot/start task
    assert sizing.timeout_for_allocation(4, timedelta(minutes=40)) == timedelta(minutes=70)
    with pytest.raises(InvalidInput):
        sizing.timeout_for_allocation(4, timedelta(minutes=1))


@pytest.mark.parametrize(("size_gb", "minutes"), [(1, 30), (9.9, 30), (10, 31), (30, 33), (128, 42), (1024, 132)])
def test_timeout_for_snapshot_formula(size_gb, minutes):
    # 30 min + 1 min per whole 10 GB of the disks' total size
    assert sizing.timeout_for_snapshot(size_gb) == timedelta(minutes=minutes)


@pytest.mark.parametrize(("size_gb", "minutes"), [(1, 30), (19.9, 30), (20, 31), (30, 31), (128, 36), (1024, 81)])
def test_timeout_for_image_formula(size_gb, minutes):
    # 30 min + 1 min per whole 20 GB of the disks' total size
    assert sizing.timeout_for_image(size_gb) == timedelta(minutes=minutes)


@pytest.mark.parametrize("size_gb", [0, -1, True, "30", None])
def test_timeout_for_snapshot_and_image_reject_bad_sizes(size_gb):
    with pytest.raises(InvalidInput) as info:
        sizing.timeout_for_snapshot(size_gb)
    assert info.value.field == "size_gb"
    with pytest.raises(InvalidInput) as info:
        sizing.timeout_for_image(size_gb)
    assert info.value.field == "total_size_gb"


@pytest.mark.parametrize(("given", "used"), [(timedelta(minutes=5), timedelta(minutes=15)),
                                             (timedelta(minutes=15), timedelta(minutes=15)),
                                             (timedelta(minutes=40), timedelta(minutes=40))])
def test_resize_timeout_floor_is_15_minutes(given, used):
    assert sizing.at_least_resize_floor(given) == used
