"""Subnet capacity for blue/green: both pools must fit in the subnet's free addresses (5 reserved per subnet)."""
from __future__ import annotations

import pytest

from batch_images.rules.errors import InvalidInput
from batch_images.rules.subnet_capacity import check_subnet_capacity, subnet_size

SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/pools"


def test_usable_addresses_leave_azures_five():
    assert subnet_size("10.0.0.0/24") == 251
    assert subnet_size("10.0.1.0/29") == 3


def test_room_for_both_pools():
    # /24: 251 usable; old pool's 100 nodes in use, the new one needs 100 more
    assert check_subnet_capacity(0, SUBNET, "10.0.0.0/24", 100, 100, 100) is None
    assert check_subnet_capacity(0, SUBNET, "10.0.0.0/24", 151, 100, 100) is None  # exactly full


def test_refused_when_both_pools_do_not_fit():
    err = check_subnet_capacity(2, SUBNET, "10.0.1.0/29", 2, 2, 2)
    assert isinstance(err, InvalidInput)
    assert err.field == "pools[2].template.networkConfiguration.subnetId" and err.value == SUBNET
    assert "1 free addresses" in err.reason and "needs 2" in err.reason
    assert "larger subnet" in err.fix and "/28" in err.fix


def test_old_pool_nodes_still_to_come_count():
    # 10 of the old pool's 50 nodes hold an address: 40 more are coming, plus the new pool's 50
    assert check_subnet_capacity(0, SUBNET, "10.0.0.0/26", 10, 50, 50, old_pool_current_nodes=10) is not None
    assert check_subnet_capacity(0, SUBNET, "10.0.0.0/25", 10, 50, 50, old_pool_current_nodes=10) is None


@pytest.mark.parametrize("in_use", [0, 3])
def test_first_pool_without_an_old_one(in_use):
    assert check_subnet_capacity(0, SUBNET, "10.0.1.0/29", in_use, 0, 3 - in_use) is None
    assert check_subnet_capacity(0, SUBNET, "10.0.1.0/29", in_use, 0, 4 - in_use) is not None


def test_subnet_problems_name_a_missing_subnet_another_region_and_no_room():
    from batch_images.rules.subnet_capacity import subnet_problems

    sid = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"
    (missing,) = subnet_problems(0, sid, None, None, "westeurope", None, 4)
    assert missing.field == "pools[0].template.networkConfiguration.subnetId" and "no such subnet" in missing.reason
    small = {"properties": {"addressPrefix": "10.0.1.0/29", "ipConfigurations": [{"id": "a"}]}}
    serving = {"targetDedicatedNodes": 2, "currentDedicatedNodes": 1}
    problems = subnet_problems(0, sid, small, "North Europe", "westeurope", serving, 2)
    assert [("region" in p.reason, "free addresses" in p.reason) for p in problems] == [(True, False), (False, True)]
    roomy = {"properties": {"addressPrefix": "10.0.0.0/24", "ipConfigurations": [{"id": "a"}] * 4}}
    assert subnet_problems(0, sid, roomy, "westeurope", "West Europe", {"targetDedicatedNodes": 4,
                                                                       "currentDedicatedNodes": 4}, 4) == []
