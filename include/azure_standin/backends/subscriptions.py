"""Microsoft.Resources subscriptions and tenants: what a signed-in principal can see.

This is what the Azure CLI reads when it logs in (`az login --service-principal` lists the
subscriptions of the tenant it signed in to) and what `az account show/list` print.

The stand-in has one tenant (ctx.config.tenant_id). Its subscriptions are the configured one plus
any other subscription that holds a resource group (tests may create groups elsewhere); every valid
token sees them all (the stand-in does not evaluate RBAC).

Shapes follow azure-rest-api-specs, specification/resources/resource-manager/Microsoft.Resources/
stable/2022-12-01/subscriptions.json and its examples GetSubscriptions.json, GetSubscription.json,
GetTenants.json (api-version 2022-12-01, the one azure-cli 2.91 sends).
"""
from __future__ import annotations

from azure.mgmt.core.tools import parse_resource_id

from ..core.errors import SubscriptionNotFound
from .arm_common import REGIONS

DISPLAY_NAME = "Azure stand-in subscription"
TENANT_DISPLAY_NAME = "Azure stand-in"
TENANT_DOMAIN = "standin.onmicrosoft.com"


def subscription_ids(ctx) -> list[str]:
    """The configured subscription first, then any other one that holds a resource group."""
    ids = [ctx.config.subscription_id]
    for rg in ctx.store.list("resource_group"):
        sub = parse_resource_id(rg["id"]).get("subscription")
        if sub and sub.lower() not in (s.lower() for s in ids):
            ids.append(sub)
    return ids


def _subscription(ctx, sub: str) -> dict:
    # Fields as in the spec's Subscription model; the policies' values are those of the spec's
    # examples (an internal quota id), there being no billing in the stand-in.
    return {
        "id": f"/subscriptions/{sub}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub,
        "tenantId": ctx.config.tenant_id,
        "displayName": DISPLAY_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
        "tags": {},
    }


def list_subscriptions(ctx) -> list[dict]:
    """Subscriptions_List: every subscription of the stand-in's tenant."""
    return [_subscription(ctx, s) for s in subscription_ids(ctx)]


def get_subscription(ctx, sub: str) -> dict:
    """Subscriptions_Get; 404 SubscriptionNotFound for an unknown id.

    Code and wording as ARM answers (seen in Azure/azure-cli PR #30164's CI log:
    "(SubscriptionNotFound) The subscription '0000...' could not be found.").
    """
    for known in subscription_ids(ctx):
        if known.lower() == sub.lower():
            return _subscription(ctx, known)
    raise SubscriptionNotFound(f"The subscription '{sub}' could not be found.")


def list_tenants(ctx) -> list[dict]:
    """Tenants_List: the one tenant the stand-in's service principal lives in (category Home)."""
    tid = ctx.config.tenant_id
    return [{
        "id": f"/tenants/{tid}",
        "tenantId": tid,
        "countryCode": "NL",
        "displayName": TENANT_DISPLAY_NAME,
        "domains": [TENANT_DOMAIN],
        "tenantCategory": "Home",
        "defaultDomain": TENANT_DOMAIN,
        "tenantType": "AAD",
    }]


def list_locations(ctx, sub: str) -> list[dict]:
    """Subscriptions_ListLocations: the regions the stand-in knows (`az account list-locations`).

    Shape of the spec's Location model (GetLocations.json), without coordinates and pairing metadata
    the stand-in does not model.
    """
    get_subscription(ctx, sub)
    return [{
        "id": f"/subscriptions/{sub}/locations/{name}",
        "name": name,
        "displayName": display,
        "regionalDisplayName": display,
        "type": "Region",
        "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
    } for name, display in sorted(REGIONS.items())]
