"""Subscriptions and tenants as ARM serves them (what `az login` reads), without the CLI: fast."""
from __future__ import annotations

import pytest
import requests

ARM_SCOPE = "https://management.core.windows.net//.default"   # the resource id the Azure CLI asks for


def _get(standin, path: str, token: str | None = "auto"):
    ep = standin.endpoints
    if token == "auto":
        token = standin.credential().get_token(ARM_SCOPE).token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = requests.get(f"{ep['arm']}{path}", params={"api-version": "2022-12-01"}, headers=headers,
                        verify=ep["ca_bundle"], timeout=30)
    return resp.status_code, resp.json()


def test_subscription_list_has_the_configured_subscription_in_the_stand_in_tenant(standin):
    ep = standin.endpoints
    status, body = _get(standin, "/subscriptions")
    assert status == 200
    [sub] = body["value"]
    assert sub["id"] == f"/subscriptions/{ep['subscription_id']}"
    assert sub["subscriptionId"] == ep["subscription_id"]
    assert sub["tenantId"] == ep["tenant_id"]
    assert sub["state"] == "Enabled"
    assert sub["displayName"]
    assert set(sub["subscriptionPolicies"]) == {"locationPlacementId", "quotaId", "spendingLimit"}


def test_subscription_get_and_unknown_subscription(standin):
    ep = standin.endpoints
    status, body = _get(standin, f"/subscriptions/{ep['subscription_id'].upper()}")
    assert status == 200 and body["subscriptionId"] == ep["subscription_id"]
    missing = "00000000-0000-0000-0000-000000000000"
    status, body = _get(standin, f"/subscriptions/{missing}")
    assert status == 404
    assert body["error"]["code"] == "SubscriptionNotFound"
    assert missing in body["error"]["message"]


def test_tenant_list_is_the_home_tenant(standin):
    ep = standin.endpoints
    status, body = _get(standin, "/tenants")
    assert status == 200
    assert [(t["tenantId"], t["id"], t["tenantCategory"]) for t in body["value"]] == [
        (ep["tenant_id"], f"/tenants/{ep['tenant_id']}", "Home")]


def test_locations_list_names_the_regions_resources_can_use(standin):
    ep = standin.endpoints
    status, body = _get(standin, f"/subscriptions/{ep['subscription_id']}/locations")
    assert status == 200
    names = {loc["name"] for loc in body["value"]}
    assert {"westeurope", "northeurope"} <= names
    assert all(loc["id"] == f"/subscriptions/{ep['subscription_id']}/locations/{loc['name']}" for loc in body["value"])


@pytest.mark.parametrize("path", ["/subscriptions", "/tenants"])
def test_listing_needs_a_token(standin, path):
    status, body = _get(standin, path, token=None)
    assert status == 401
    assert body["error"]["code"] == "AuthenticationFailed"
