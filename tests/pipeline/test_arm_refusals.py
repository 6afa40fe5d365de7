"""ArmComputeHook: an answer to a create/update that no retry can change (issue 7 item 2) raises
ArmRequestRefused - an AirflowFailException, so the task fails at once - with Azure's status, code and message;
throttling and 5xx are still raised as the SDK's errors (the task retries). Driven against the stand-in."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from airflow.sdk.exceptions import AirflowFailException

from _batch_common import set_connections
from batch_images.hooks.arm import ArmComputeHook, ArmRequestRefused
from batch_images.rules import ids


@pytest.fixture
def hook(standin, monkeypatch):
    set_connections(monkeypatch, standin.endpoints)
    return ArmComputeHook(client_options={"retry_total": 0})


def _snapshot_id(standin, name="snap-refusal"):
    demo = standin.endpoints["demo"]
    return (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}"
            f"/providers/Microsoft.Compute/snapshots/{name}")


def test_400_on_a_create_is_refused_at_once(standin, hook):
    # a snapshot without creationData: Azure's own validation answer, not an injected one
    with pytest.raises(ArmRequestRefused) as info:
        hook.begin_create_snapshot(_snapshot_id(standin), {"location": "westeurope", "properties": {}})
    err = info.value
    assert isinstance(err, AirflowFailException) and err.status == 400 and err.code
    assert f"400 {err.code}: " in str(err) and _snapshot_id(standin) in str(err)


def test_definition_change_not_allowed_409_is_refused(standin, hook):
    demo = standin.endpoints["demo"]
    gallery = f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/Microsoft.Compute/galleries/galrefusal"
    hook.get_or_create_gallery(gallery, "westeurope", timeout=60)
    body = {"location": "westeurope", "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                                                     "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}
    hook.get_or_create_image_definition(gallery + "/images/def", body, timeout=60)
    body["properties"]["hyperVGeneration"] = "V1"
    with pytest.raises(ArmRequestRefused) as info:
        hook._create_and_wait(ids.parse_arm_id(gallery + "/images/def", "definition_id"), body, 60)
    assert (info.value.status, info.value.code) == (409, "PropertyChangeNotAllowed")


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_5xx_still_retry(standin, hook, status):
    standin.control.add_fault("http", count=1, match={"op": "Snapshots_CreateOrUpdate"}, status=status)
    with pytest.raises(HttpResponseError) as info:
        hook.begin_create_snapshot(_snapshot_id(standin), {"location": "westeurope", "properties": {}})
    assert not isinstance(info.value, AirflowFailException) and info.value.status_code == status
