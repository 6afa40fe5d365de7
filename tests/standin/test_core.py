"""The stand-in's own machinery: HTTPS with its CA, faults, the request log, the clock, restarts."""
from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import HttpResponseError


def _vm(standin):
    demo = standin.endpoints["demo"]
    return demo["resource_group"], demo["source_vm_id"].rsplit("/", 1)[1]


def test_tls_is_verified_against_the_generated_ca(standin):
    ca = standin.endpoints["ca_bundle"]
    ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(standin.endpoints["control"] + "/health", context=ctx) as resp:
        assert json.loads(resp.read())["status"] == "ok"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(standin.endpoints["control"] + "/health", context=ssl.create_default_context())


def test_429_with_retry_after_is_waited_out_by_the_sdk(standin):
    standin.control.set_scale(60)  # Retry-After of 30 simulated seconds = 0.5 s real
    standin.control.add_fault("http", count=2, status=429, retry_after=30, match={"op": "VirtualMachines_Get"})
    start = time.monotonic()
    vm = standin.compute().virtual_machines.get(*_vm(standin))
    waited = time.monotonic() - start
    assert vm.name == _vm(standin)[1]
    log = standin.control.requests(items=True)
    gets = [r for r in log["items"] if r["op"] == "VirtualMachines_Get"]
    assert [r["status"] for r in gets] == [429, 429, 200]
    assert waited >= 2 * 0.5 * 0.9, f"the SDK retried after {waited:.2f}s, before Retry-After (2 x 0.5 s)"


def test_5xx_burst_beyond_the_sdk_retries_surfaces_as_an_error(standin):
    standin.control.add_fault("http", count=-1, status=503, match={"op": "VirtualMachines_Get"})
    client = standin.compute(retry_total=2, retry_backoff_factor=0.01)
    with pytest.raises(HttpResponseError) as err:
        client.virtual_machines.get(*_vm(standin))
    assert err.value.status_code == 503
    assert standin.control.requests()["counts"]["arm:VirtualMachines_Get"] == 3
    standin.control.clear_faults()
    assert client.virtual_machines.get(*_vm(standin)).name == _vm(standin)[1]


def test_a_slow_answer_after_skipping_the_first_match(standin):
    """`http` without `status`: served as usual, answer held `delay` s; `skip` lets the first match through."""
    standin.control.add_fault("http", count=1, skip=1, delay=0.6, match={"op": "VirtualMachines_Get"})
    client = standin.compute()
    times = []
    for _ in range(3):
        start = time.monotonic()
        assert client.virtual_machines.get(*_vm(standin)).name == _vm(standin)[1]
        times.append(time.monotonic() - start)
    assert times[1] >= 0.6 and times[0] < 0.5 and times[2] < 0.5, times
    gets = [r for r in standin.control.requests(items=True)["items"] if r["op"] == "VirtualMachines_Get"]
    assert [(r["status"], r["fault"]) for r in gets] == [(200, None), (200, "delay"), (200, None)]


def test_unknown_fault_kind_is_refused(standin):
    with pytest.raises(urllib.error.HTTPError) as err:
        standin.control.add_fault("meteor_strike")
    assert err.value.code == 400


def test_clock_scale_and_advance(standin):
    before = standin.control.call("GET", "/clock")
    standin.control.set_scale(10)
    after = standin.control.advance(3600)
    assert after["scale"] == 10
    assert after["now"] - before["now"] >= 3600


def test_request_log_counts_writes_per_operation(standin):
    rg, _ = _vm(standin)
    compute = standin.compute()
    compute.galleries.begin_create_or_update(rg, "galcore", {"location": "westeurope"}).result()
    log = standin.control.requests()
    assert log["counts"]["arm:Galleries_CreateOrUpdate"] == 1
    assert log["writes"] == 1
    assert log["by_family"]["identity"] >= 1


def test_restart_keeps_state_port_and_request_log(standin):
    rg, _ = _vm(standin)
    compute = standin.compute()
    compute.galleries.begin_create_or_update(rg, "galpersist", {"location": "westeurope"}).result()
    port = standin.port
    standin.restart()
    assert standin.port == port
    again = standin.compute().galleries.get(rg, "galpersist")
    assert again.provisioning_state == "Succeeded"
    assert standin.control.requests()["counts"]["arm:Galleries_CreateOrUpdate"] == 1


def test_reset_rewrites_endpoints_json_with_the_new_batch_keys(standin):
    """Issue 7 item 4: reset seeds new Batch account keys; endpoints.json on disk follows, so a Shared Key
    client built from the file (what a user reads after a reset) authenticates."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    from include.azure_standin.client import load_endpoints

    before = load_endpoints(standin.state_dir)["batch_accounts"]["batchimages"]["primary_key"]
    answered = standin.control.reset()
    on_disk = load_endpoints(standin.state_dir)
    acct = on_disk["batch_accounts"]["batchimages"]
    assert acct["primary_key"] != before
    assert acct["primary_key"] == answered["batch_accounts"]["batchimages"]["primary_key"]
    client = BatchClient(acct["endpoint"], AzureNamedKeyCredential("batchimages", acct["primary_key"]),
                         connection_verify=on_disk["ca_bundle"])
    try:
        assert any(i.node_agent_sku_id for i in client.list_supported_images())
    finally:
        client.close()


def test_date_header_is_the_simulated_clock(standin):
    """Azure's Date header is the service's time; the stand-in's is its simulated clock, so a client that ages
    resources by it agrees with their timeCreated / creationTime (the sweep does)."""
    import email.utils

    client = standin.compute()
    dates = []
    standin.control.advance(30 * 24 * 3600)
    list(client.snapshots.list(raw_response_hook=lambda r: dates.append(r.http_response.headers.get("Date"))))
    now = standin.control.call("GET", "/clock")["now"]
    served = email.utils.parsedate_to_datetime(dates[0]).timestamp()
    assert abs(served - now) < 3600             # the simulated clock (scale 3000: a real second is 50 minutes)
    assert served - time.time() > 20 * 24 * 3600  # not the wall clock, 30 days behind
