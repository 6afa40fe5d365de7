"""ARM's token-bucket throttling (core/throttle.py), through the unmodified azure-mgmt-compute client.

Microsoft Learn, "Understand how Azure Resource Manager throttles requests": per subscription, principal and
operation kind, reads 250 refilled 25/s, writes and deletes 200 refilled 10/s; a global bucket 15 times as large
across principals; an empty bucket answers 429 with Retry-After; every answer carries the remaining count.
"""
from __future__ import annotations

import time
import urllib.error

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient

READS = "x-ms-ratelimit-remaining-subscription-reads"
GLOBAL_READS = "x-ms-ratelimit-remaining-subscription-global-reads"


def _vm(standin):
    demo = standin.endpoints["demo"]
    return demo["resource_group"], demo["source_vm_id"].rsplit("/", 1)[1]


def _get_vm(client, standin) -> dict:
    """GET the seeded VM; the answer's headers."""
    seen = {}
    client.virtual_machines.get(*_vm(standin), raw_response_hook=lambda r: seen.update(r.http_response.headers))
    return {k.lower(): v for k, v in seen.items()}


class _Principal:
    """Another service principal: a token the stand-in minted for ``client_id`` (its own oid)."""

    def __init__(self, standin, client_id: str):
        self.token = standin.control.token(client_id=client_id)

    def get_token(self, *scopes, **kw):
        return AccessToken(self.token, int(time.time()) + 3600)


def _client(standin, principal: str | None = None, **kw) -> ComputeManagementClient:
    if principal is None:
        return standin.compute(**kw)
    ep = standin.endpoints
    return ComputeManagementClient(_Principal(standin, principal), ep["subscription_id"], base_url=ep["arm"],
                                   connection_verify=ep["ca_bundle"], **kw)


def test_every_arm_answer_carries_its_buckets_real_level(standin):
    """A fresh principal's first read leaves 249 of 250 and 3,749 of the subscription's 3,750 (what real ARM
    answers show); a write spends a write token, a delete a delete token; the Batch data plane has none."""
    client = standin.compute()
    first = _get_vm(client, standin)
    assert (first[READS], first[GLOBAL_READS]) == ("249", "3749")
    assert "x-ms-ratelimit-remaining-subscription-writes" not in first

    rg, _ = _vm(standin)
    written = {}
    client.galleries.begin_create_or_update(rg, "galthrottle", {"location": "westeurope"},
                                            raw_response_hook=lambda r: written.setdefault("h", r.http_response.headers)
                                            ).result()
    put = {k.lower(): v for k, v in written["h"].items()}
    assert (put["x-ms-ratelimit-remaining-subscription-writes"],
            put["x-ms-ratelimit-remaining-subscription-global-writes"]) == ("199", "2999")
    assert READS not in put
    deleted = {}
    client.galleries.begin_delete(rg, "galthrottle",
                                  raw_response_hook=lambda r: deleted.setdefault("h", r.http_response.headers)).result()
    assert {k.lower(): v for k, v in deleted["h"].items()}["x-ms-ratelimit-remaining-subscription-deletes"] == "199"

    batch_headers = {}
    list(standin.batch().list_pools(raw_response_hook=lambda r: batch_headers.update(r.http_response.headers)))
    assert not [k for k in batch_headers if k.lower().startswith("x-ms-ratelimit")], batch_headers


def test_the_reads_left_count_down_and_refill_with_time(standin):
    """Switch off, the buckets still count: quick reads of a 5-token bucket refilled 1 a second leave 4, then
    fewer; 2.5 s later the next read sees the refill (without it, one fewer again)."""
    standin.control.throttle(buckets={"read": {"size": 5, "refill_per_second": 1}})
    client = standin.compute()
    left = [int(_get_vm(client, standin)[READS]) for _ in range(3)]
    assert left[0] == 4 and left[2] <= left[1] <= left[0] and left[2] <= 3, left
    time.sleep(2.5)
    assert int(_get_vm(client, standin)[READS]) > left[2]


def test_an_empty_bucket_answers_429_with_retry_after_then_refills(standin):
    """Enforcement on, 3 reads refilled 0.5 a second: the 4th read is ARM's 429 SubscriptionRequestsThrottled
    naming the principal, with Retry-After in whole seconds and 0 reads left; after that wait, reads work again.
    (retry_total=0 shows the answer; azure-core would wait it out and retry.)"""
    state = standin.control.throttle(enforce=True, buckets={"read": {"size": 3, "refill_per_second": 0.5}})
    assert state["enforce"] and state["buckets"]["read"] == {"size": 3.0, "refill_per_second": 0.5}
    client = standin.compute(retry_total=0)
    for _ in range(3):
        _get_vm(client, standin)
    with pytest.raises(HttpResponseError) as err:
        _get_vm(client, standin)
    answer = err.value.response
    assert err.value.status_code == 429
    assert err.value.error.code == "SubscriptionRequestsThrottled"
    assert "Number of 'read' requests for subscription" in err.value.message
    assert "Refer to https://aka.ms/arm-throttling" in err.value.message
    wait = answer.headers["Retry-After"]
    assert wait in ("1", "2"), wait   # a token every 2 s, some of it already refilled
    assert answer.headers[READS] == "0"
    # the request log tells a throttle from an injected fault
    throttled = [r for r in standin.control.requests(items=True)["items"] if r["status"] == 429]
    assert [(r["op"], r["fault"], r["retry_after"]) for r in throttled] == [
        ("VirtualMachines_Get", "throttled", float(wait))]
    time.sleep(float(wait) + 0.05)
    assert _get_vm(client, standin)[READS] == "0"   # the one refilled token, spent


def test_azure_core_waits_out_the_429_by_itself(standin):
    """The SDK's default retry policy honours Retry-After: an empty bucket costs a wait, not an error."""
    standin.control.throttle(enforce=True, buckets={"read": {"size": 1, "refill_per_second": 1}})
    client = standin.compute()
    _get_vm(client, standin)
    start = time.monotonic()
    _get_vm(client, standin)
    waited = time.monotonic() - start
    statuses = [r["status"] for r in standin.control.requests(items=True)["items"] if r["op"] == "VirtualMachines_Get"]
    assert statuses == [200, 429, 200], statuses
    assert waited >= 0.9, waited


def test_each_principal_has_its_own_bucket_and_all_share_the_global_one(standin):
    """One principal's empty bucket does not throttle another; both spend the subscription's global bucket
    (15 times the principal's) and its header shows it."""
    standin.control.throttle(enforce=True, buckets={"read": {"size": 2, "refill_per_second": 0.01}})
    mine = standin.compute(retry_total=0)
    assert _get_vm(mine, standin)[GLOBAL_READS] == "29"
    _get_vm(mine, standin)
    with pytest.raises(HttpResponseError) as err:
        _get_vm(mine, standin)
    assert err.value.status_code == 429
    other = _client(standin, "7d1f0c2e-0000-4000-8000-00000000beef", retry_total=0)
    seen = _get_vm(other, standin)
    assert (seen[READS], seen[GLOBAL_READS]) == ("1", "27")
    levels = {(b["principal"], b["kind"]) for b in standin.control.throttle()["levels"]}
    assert len({p for p, k in levels if p != "*"}) == 2 and ("*", "read") in levels


def test_reads_and_writes_are_separate_buckets(standin):
    """An empty read bucket does not stop a write (its own bucket, full)."""
    standin.control.throttle(enforce=True, buckets={"read": {"size": 1, "refill_per_second": 0.01}})
    client = standin.compute(retry_total=0)
    _get_vm(client, standin)
    with pytest.raises(HttpResponseError):
        _get_vm(client, standin)
    rg, _ = _vm(standin)
    answers = []
    client.galleries.begin_create_or_update(rg, "galwrites", {"location": "westeurope"}, polling=False,
                                            raw_response_hook=lambda r: answers.append(r.http_response))
    assert answers[0].status_code in (200, 201), answers[0].text()
    assert answers[0].headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"


def test_bad_settings_are_refused_and_a_reset_restores_azures_sizes_switched_off(standin):
    with pytest.raises(urllib.error.HTTPError) as err:
        standin.control.throttle(buckets={"reads": {"size": 5, "refill_per_second": 1}})
    assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError):
        standin.control.throttle(buckets={"read": {"size": 0, "refill_per_second": 1}})
    standin.control.throttle(enforce=True, buckets={"write": {"size": 5, "refill_per_second": 1}})
    standin.reset()
    state = standin.control.throttle()
    assert state["enforce"] is False
    assert state["buckets"] == {"read": {"size": 250.0, "refill_per_second": 25.0},
                                "write": {"size": 200.0, "refill_per_second": 10.0},
                                "delete": {"size": 200.0, "refill_per_second": 10.0}}
    assert state["global_factor"] == 15 and state["levels"] == []
