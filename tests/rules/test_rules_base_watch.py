"""The base-image watcher's pure rules (rules/base_watch.py): which marketplace version is newest, when a
version is news, the Asset's identity, where a run finds the version, and what polling costs."""
from __future__ import annotations

import pytest

from batch_images.rules import base_watch


def test_newest_is_numeric_not_the_string_order_arm_uses():
    # RHEL's real pair from Azure/azure-rest-api-specs#30142: ARM's $orderby=name desc puts 8.9 first.
    names = ["8.9.2024022012", "8.10.2024070513", "8.2.2021091201"]
    assert sorted(names, reverse=True)[0] == "8.9.2024022012"
    assert base_watch.newest_version(names) == "8.10.2024070513"
    # Canonical-style names with a zero-padded minor; junk and "latest" ignored
    assert base_watch.newest_version(["22.04.202411190", "latest", "", "22.04.202501140", None]) == "22.04.202501140"
    assert base_watch.newest_version(["latest"]) is None
    assert base_watch.newest_version([]) is None


@pytest.mark.parametrize("candidate,than,newer", [
    ("1.10.0", "1.9.0", True),
    ("1.9.0", "1.10.0", False),          # an older version published later is not news
    ("22.04.202501140", "22.04.202501140", False),
    ("22.04.202501140", None, True),     # anything readable is newer than nothing
    ("latest", "1.0.0", False),
    (None, "1.0.0", False),
])
def test_is_newer(candidate, than, newer):
    assert base_watch.is_newer(candidate, than) is newer


def test_watcher_name_is_one_per_base_whatever_the_spelling():
    a = base_watch.watcher_name("westeurope", "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2")
    b = base_watch.watcher_name("westeurope", "canonical", "0001-com-ubuntu-server-jammy", "22_04-LTS-gen2")
    assert a == b == "base-image-version-westeurope-canonical-0001-com-ubuntu-server-jammy-22_04-lts-gen2"


def test_event_base_version_reads_a_watcher_event_and_a_hand_posted_one():
    payload = base_watch.event_payload("westeurope", "Canonical", "o", "s", "22.04.202501140", "22.04.202411190")
    # Airflow 3.3's Trigger.submit_event stores a watcher's event as {"from_trigger": True, "payload": ...}
    assert base_watch.event_base_version({"from_trigger": True, "payload": payload}) == "22.04.202501140"
    assert base_watch.event_base_version({"version": "22.04.202501140"}) == "22.04.202501140"
    assert base_watch.event_base_version({"payload": {"version": "latest"}}) is None
    assert base_watch.event_base_version({}) is None
    assert base_watch.event_base_version(None) is None


def test_poll_cost_against_arms_read_budget():
    assert base_watch.reads_per_hour(3600) == 1
    assert base_watch.reads_per_hour(300) == 12
    # ARM's read bucket refills 25 a second per principal (Microsoft Learn's request-limits page): 90,000 an hour
    assert base_watch.ARM_READS_PER_HOUR == 90_000
    # ten watched bases polled every 5 minutes: 120 reads/hour, 0.13% of what the bucket's refill allows
    assert base_watch.budget_share(300, watchers=10) == pytest.approx(120 / 90_000)
    # the minimum interval (60 s) on 100 bases: 6,000 reads/hour, still 6.7%
    assert base_watch.budget_share(60, watchers=100) == pytest.approx(0.0667, abs=1e-4)


def test_preflight_takes_the_version_of_a_watcher_event_for_its_own_base():
    from batch_images.rules.preflight import event_base_versions

    uri = "azure-vmimage://westeurope/canonical/0001-com-ubuntu-server-jammy/22_04-lts-gen2"
    watcher = {"from_trigger": True, "payload": base_watch.event_payload(
        "westeurope", "canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", "22.04.202501140", None)}
    events = {uri: [{"extra": watcher}], "azure-vmimage://westeurope/other/o/s": [{"extra": {"version": "9.9.9"}}]}
    assert event_base_versions(events, uri) == ["22.04.202501140"]
