"""Entra ID token flow and the refusals every ARM and Batch call applies (driven by the real SDKs)."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential

ARM_SCOPE = "https://management.azure.com/.default"
BATCH_SCOPE = "https://batch.core.windows.net//.default"


def _raw(standin, url: str, token: str | None):
    ctx = ssl.create_default_context(cafile=standin.endpoints["ca_bundle"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def _vm_url(standin) -> str:
    ep = standin.endpoints
    return f"{ep['arm']}{ep['demo']['source_vm_id']}?api-version=2024-07-01"


def _pools_url(standin) -> str:
    acct = standin.endpoints["batch_accounts"][standin.endpoints["demo"]["batch_account"]]
    return f"{acct['endpoint']}/pools?api-version=2025-06-01"


def test_client_secret_credential_gets_tokens_with_audience_and_expiry(standin):
    import jwt

    cred = standin.credential()
    arm = cred.get_token(ARM_SCOPE)
    batch = cred.get_token(BATCH_SCOPE)
    arm_claims = jwt.decode(arm.token, options={"verify_signature": False})
    batch_claims = jwt.decode(batch.token, options={"verify_signature": False})
    assert arm_claims["aud"] == "https://management.azure.com"
    assert batch_claims["aud"] == "https://batch.core.windows.net/"
    assert arm_claims["tid"] == standin.endpoints["tenant_id"]
    assert arm_claims["appid"] == standin.endpoints["client_id"]
    assert arm.expires_on > arm_claims["iat"] + 3000


def test_wrong_client_secret_is_refused_by_the_token_endpoint(standin):
    ep = standin.endpoints
    cred = ClientSecretCredential(ep["tenant_id"], ep["client_id"], "not-the-secret", authority=ep["authority"],
                                  disable_instance_discovery=True, connection_verify=ep["ca_bundle"])
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        cred.get_token(ARM_SCOPE)


def test_sdk_call_with_valid_token_succeeds(standin):
    vm = standin.compute().virtual_machines.get(standin.endpoints["demo"]["resource_group"],
                                                standin.endpoints["demo"]["source_vm_id"].rsplit("/", 1)[1])
    assert vm.storage_profile.os_disk.managed_disk is not None


@pytest.mark.parametrize(
    "case, claims, code",
    [
        ("missing", None, "AuthenticationFailed"),
        ("expired", {"expires_in": -60}, "ExpiredAuthenticationToken"),
        ("wrong audience", {"audience": "https://vault.azure.net"}, "InvalidAuthenticationTokenAudience"),
        ("other tenant", {"tenant_id": "11111111-2222-4333-8444-555555555555"}, "InvalidAuthenticationTokenTenant"),
    ],
)
def test_arm_refuses_bad_tokens_with_azure_error_codes(standin, case, claims, code):
    token = None if claims is None else standin.control.token(**claims)
    status, body, headers = _raw(standin, _vm_url(standin), token)
    assert status == 401, case
    assert body["error"]["code"] == code
    assert "WWW-Authenticate" in headers or "www-authenticate" in {k.lower() for k in headers}


@pytest.mark.parametrize(
    "case, claims",
    [
        ("missing", None),
        ("expired", {"audience": "https://batch.core.windows.net/", "expires_in": -60}),
        ("arm token on batch", {"audience": "https://management.azure.com"}),
        ("other tenant", {"audience": "https://batch.core.windows.net/", "tenant_id": "11111111-2222-4333-8444-555555555555"}),
    ],
)
def test_batch_refuses_bad_tokens_in_batch_error_shape(standin, case, claims):
    token = None if claims is None else standin.control.token(**claims)
    status, body, _ = _raw(standin, _pools_url(standin), token)
    assert status == 401, case
    assert body["message"]["lang"] == "en-US" and body["code"]


def test_sdk_surfaces_refusal_and_nothing_is_written(standin):
    before = standin.control.requests()["writes"]
    expired = standin.control.token(expires_in=-60)

    class Expired:
        def get_token(self, *scopes, **kw):
            from azure.core.credentials import AccessToken
            return AccessToken(expired, 0)

    from azure.mgmt.compute import ComputeManagementClient

    client = ComputeManagementClient(Expired(), standin.endpoints["subscription_id"], base_url=standin.endpoints["arm"],
                                     connection_verify=standin.endpoints["ca_bundle"], retry_total=0)
    with pytest.raises(HttpResponseError) as err:
        client.snapshots.begin_create_or_update(standin.endpoints["demo"]["resource_group"], "snap-x",
                                                {"location": "westeurope", "creation_data": {"create_option": "Empty"},
                                                 "disk_size_gb": 1})
    assert err.value.status_code == 401
    assert standin.control.requests()["writes"] == before


def test_endpoints_file_names_everything_a_client_needs(standin):
    ep = json.loads((standin.state_dir / "endpoints.json").read_text())
    for key in ("authority", "tenant_id", "client_id", "client_secret", "arm", "subscription_id", "ca_bundle",
                "batch_accounts", "control", "demo"):
        assert ep[key], key
    for key in ("source_vm_id", "resource_group", "batch_account", "location"):
        assert ep["demo"][key], key
    acct = ep["batch_accounts"][ep["demo"]["batch_account"]]
    assert acct["endpoint"].startswith("https://127.0.0.1:") and acct["location"] == ep["demo"]["location"]
    assert (standin.state_dir / "endpoints.json").stat().st_mode & 0o077 == 0
