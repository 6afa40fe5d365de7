"""Client side of the stand-in: start it as a process, read endpoints.json, build SDK clients.

Only public SDK options are used (authority, base_url, connection_verify): the same code talks to
real Azure when given Azure's endpoints.
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_endpoints(state_dir: str | Path) -> dict:
    return json.loads((Path(state_dir) / "endpoints.json").read_text())


def credential(ep: dict, aio: bool = False):
    if aio:
        from azure.identity.aio import ClientSecretCredential
    else:
        from azure.identity import ClientSecretCredential
    return ClientSecretCredential(
        ep["tenant_id"], ep["client_id"], ep["client_secret"], authority=ep["authority"],
        disable_instance_discovery=True, connection_verify=ep["ca_bundle"],
    )


def compute_client(ep: dict, aio: bool = False, **kwargs):
    if aio:
        from azure.mgmt.compute.aio import ComputeManagementClient
    else:
        from azure.mgmt.compute import ComputeManagementClient
    return _arm_client(ComputeManagementClient, ep, aio, **kwargs)


def _arm_client(cls, ep: dict, aio: bool = False, **kwargs):
    """An azure-mgmt-* client class pointed at the stand-in's ARM endpoint."""
    return cls(credential(ep, aio), ep["subscription_id"], base_url=ep["arm"], connection_verify=ep["ca_bundle"],
               **kwargs)


def network_client(ep: dict, **kwargs):
    """azure-mgmt-network's NetworkManagementClient on the stand-in (virtual networks and subnets)."""
    from azure.mgmt.network import NetworkManagementClient
    return _arm_client(NetworkManagementClient, ep, **kwargs)


def batch_management_client(ep: dict, **kwargs):
    """azure-mgmt-batch's BatchManagementClient on the stand-in (Batch accounts and pools on ARM)."""
    from azure.mgmt.batch import BatchManagementClient
    return _arm_client(BatchManagementClient, ep, **kwargs)


def batch_client(ep: dict, account: str | None = None, aio: bool = False, shared_key: bool = False, **kwargs):
    if aio:
        from azure.batch.aio import BatchClient
    else:
        from azure.batch import BatchClient
    name = account or ep["demo"]["batch_account"]
    acct = ep["batch_accounts"][name]
    if shared_key:
        from azure.core.credentials import AzureNamedKeyCredential

        cred = AzureNamedKeyCredential(name, acct["primary_key"])
    else:
        cred = credential(ep, aio)
    return BatchClient(acct["endpoint"], cred, connection_verify=ep["ca_bundle"], **kwargs)


class Control:
    """The /_control API (see docs/standin.md)."""

    def __init__(self, ep: dict):
        self.base = ep["control"]
        self._ssl = ssl.create_default_context(cafile=ep["ca_bundle"])

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=self._ssl, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def health(self):
        return self.call("GET", "/health")

    def set_scale(self, scale: float):
        return self.call("PUT", "/clock", {"scale": scale})

    def advance(self, seconds: float):
        return self.call("PUT", "/clock", {"advance_seconds": seconds})

    def add_fault(self, kind: str, count: int = 1, match: dict | None = None, **spec):
        return self.call("POST", "/faults", {"kind": kind, "count": count, "match": match or {}, **spec})

    def faults(self):
        return self.call("GET", "/faults")["value"]

    def clear_faults(self):
        return self.call("DELETE", "/faults")

    def requests(self, since: int = 0, items: bool = False):
        return self.call("GET", f"/requests?since={since}" + ("&items=1" if items else ""))

    def clear_requests(self):
        return self.call("DELETE", "/requests")

    def throttle(self, enforce: bool | None = None, buckets: dict | None = None) -> dict:
        """ARM's token buckets: switch 429s on/off and/or set sizes (``{"read": {"size": 5, "refill_per_second":
        1}}``); every bucket starts full. Without arguments: the switch, sizes and levels now."""
        if enforce is None and buckets is None:
            return self.call("GET", "/throttle")
        body = {"enforce": enforce} if enforce is not None else {}
        if buckets is not None:
            body["buckets"] = buckets
        return self.call("PUT", "/throttle", body)

    def rbac(self, enforce: bool | None = None) -> dict:
        """Azure RBAC checks on (True) or off (False); without an argument, the switch now."""
        return self.call("GET", "/rbac") if enforce is None else self.call("PUT", "/rbac", {"enforce": enforce})

    def assign_role(self, role: str, scope: str, principal_id: str | None = None, client_id: str | None = None):
        """Assign a role (built-in name or definition GUID) at an ARM scope to a principal (object id) or to the
        service principal of ``client_id`` (default: the stand-in's own)."""
        return self.call("POST", "/role_assignments", {"role": role, "scope": scope, "principal_id": principal_id,
                                                        "client_id": client_id})

    def set_roles(self, roles: list[tuple[str, str]], principal_id: str | None = None, client_id: str | None = None):
        """Replace a principal's role assignments with ``roles`` [(role, scope)] ([] removes them all)."""
        return self.call("PUT", "/role_assignments", {"roles": [{"role": r, "scope": s} for r, s in roles],
                                                       "principal_id": principal_id, "client_id": client_id})

    def token(self, **claims):
        return self.call("POST", "/tokens", claims)["access_token"]

    def publish_base_image_version(self, publisher: str, offer: str, sku: str, version: str, **props):
        """Publish a marketplace image version (props: hyper_v_generation, os_disk_gb, data_disks_gb, plan, ...)."""
        return self.call("POST", "/marketplace/versions",
                         {"publisher": publisher, "offer": offer, "sku": sku, "version": version, **props})

    def set_batch_support_end_of_life(self, node_agent_sku_id: str, end_of_life: str | None):
        """Set (ISO 8601, e.g. 2027-06-30T00:00:00Z) or clear (None) a node agent's batchSupportEndOfLife."""
        return self.call("PUT", "/batch/supported_images",
                         {"node_agent_sku_id": node_agent_sku_id, "batch_support_end_of_life": end_of_life})

    def reset(self):
        return self.call("POST", "/reset", {})


class StandInProcess:
    """The stand-in as a child process on a state dir (what `make standin` runs)."""

    def __init__(self, state_dir: str | Path, time_scale: float | None = None, client_secret: str | None = None,
                 log_path: str | Path | None = None):
        self.state_dir = Path(state_dir).resolve()
        self.time_scale = time_scale
        self.client_secret = client_secret
        self.log_path = Path(log_path) if log_path else self.state_dir / "standin.log"
        self.proc: subprocess.Popen | None = None
        self.endpoints: dict = {}
        self.port = 0

    def start(self, port: int | None = None, timeout: float = 30.0) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "endpoints.json").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "include.azure_standin", "--state-dir", str(self.state_dir),
               "--port", str(self.port if port is None else port)]
        if self.time_scale is not None:
            cmd += ["--time-scale", str(self.time_scale)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        if self.client_secret:
            env["STANDIN_CLIENT_SECRET"] = self.client_secret
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        path = self.state_dir / "endpoints.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stand-in exited with {self.proc.returncode}; see {self.log_path}")
            if path.exists():
                try:
                    self.endpoints = json.loads(path.read_text())
                    Control(self.endpoints).health()
                    self.port = self.endpoints["port"]
                    return self.endpoints
                except (ValueError, OSError, urllib.error.URLError):
                    pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"stand-in did not start within {timeout}s; see {self.log_path}")

    def stop(self, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            (self.proc.kill if kill else self.proc.terminate)()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self, kill: bool = False) -> dict:
        """Stop and start on the same state dir and port (in-flight operations must survive)."""
        self.stop(kill=kill)
        return self.start(port=self.port)

    @property
    def control(self) -> Control:
        return Control(self.endpoints)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
