"""The seed's Azure CLI route, run with the real azure-cli against the stand-in, each step checked with the SDKs.

The route (batch-sig-images.zh-CN.md): az snapshot create (OS + data disk) -> az image create ->
az sig create -> az sig image-definition create -> az sig image-version create (two regions) ->
az batch pool create --image <version id> --node-agent-sku-id ... -> a steady pool with its nodes.

azure-cli is installed once into .cache/azure-cli/<version>/ (git-ignored; about 90 s cold on a
2-core machine, instant when cached). The CLI trusts the stand-in through REQUESTS_CA_BUNDLE (the
stand-in's CA file), as it would a corporate proxy's CA; certificate checks stay on.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from include.azure_standin.examples.az_cloud import setup_commands

AZURE_CLI_VERSION = "2.91.0"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "azure-cli"

pytestmark = pytest.mark.cli

RG = "rg-batch-images"
GALLERY = "galcli"
DEFINITION = "ubuntu2204-cli"
VERSION = "1.0.0"
REGIONS = ["westeurope", "northeurope"]
POOL = "cli-pool"
NODES = 2
NODE_AGENT = "batch.node.ubuntu 22.04"


def _install_azure_cli() -> Path:
    """Python of a venv holding azure-cli==AZURE_CLI_VERSION, made once and reused (file-locked)."""
    venv = CACHE / AZURE_CLI_VERSION
    python = venv / "bin" / "python"
    done = venv / ".installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{AZURE_CLI_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)   # a half-made venv from an interrupted install
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
             f"azure-cli=={AZURE_CLI_VERSION}"], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"pip install azure-cli=={AZURE_CLI_VERSION} failed:\n{proc.stderr[-3000:]}")
        done.write_text(f"{time.monotonic() - started:.1f}\n")
        print(f"\nazure-cli {AZURE_CLI_VERSION} installed in {time.monotonic() - started:.1f} s into {venv}")
    return python


@pytest.fixture(scope="module")
def az_python():
    return _install_azure_cli()


class Az:
    """Runs `az` (python -m azure.cli) with its own config dir, JSON output, and the stand-in's CA."""

    def __init__(self, python: Path, config_dir: Path, ca_bundle: str | None):
        self.python = python
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AZURE_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT"))}
        self.env.update(AZURE_CONFIG_DIR=str(config_dir), AZURE_CORE_COLLECT_TELEMETRY="false",
                        AZURE_CORE_NO_COLOR="true", AZURE_CORE_SURVEY_MESSAGE="false")
        if ca_bundle:
            self.env["REQUESTS_CA_BUNDLE"] = ca_bundle
        self.timings: list[tuple[str, float]] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = list(args[1:] if args and args[0] == "az" else args)
        started = time.monotonic()
        proc = subprocess.run([str(self.python), "-m", "azure.cli", *argv], env=self.env, capture_output=True,
                              text=True, timeout=300)
        self.timings.append((" ".join(argv[:3]), time.monotonic() - started))
        if check and proc.returncode != 0:
            shown = ["***" if i and argv[i - 1] == "--password" else a for i, a in enumerate(argv)]
            pytest.fail(f"az {' '.join(shown)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc

    def json(self, *args: str):
        return json.loads(self.run(*args, "--output", "json").stdout)


def _login(az: Az, ep: dict) -> None:
    for argv in setup_commands(ep):
        az.run(*argv)


def test_cli_login_verifies_the_stand_in_certificate(standin, az_python, tmp_path):
    """Without the stand-in's CA the CLI refuses the connection: nothing turns TLS checks off."""
    ep = standin.endpoints
    az = Az(az_python, tmp_path / "az", ca_bundle=None)
    register, cloud_set, discovery, login = setup_commands(ep)[:4]
    for argv in (register, cloud_set, discovery):
        az.run(*argv)
    proc = az.run(*login, check=False)
    assert proc.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr or "certificate verify failed" in proc.stderr
    assert ep["client_secret"] not in proc.stderr


def test_seed_cli_route_against_the_stand_in(standin, az_python, tmp_path):
    ep = standin.endpoints
    demo = ep["demo"]
    sub = ep["subscription_id"]
    compute = standin.compute()
    batch = standin.batch()
    az = Az(az_python, tmp_path / "az", ca_bundle=ep["ca_bundle"])
    started = time.monotonic()

    # Log in as the stand-in's service principal: the subscription and tenant come from ARM.
    _login(az, ep)
    account = az.json("account", "show")
    assert (account["id"], account["tenantId"], account["user"]["type"]) == (sub, ep["tenant_id"], "servicePrincipal")
    assert account["environmentName"] == "standin"

    # 1. Snapshots of the prepared VM's OS and data disks.
    vm = az.json("vm", "show", "-g", RG, "-n", demo["source_vm_name"])
    os_disk = vm["storageProfile"]["osDisk"]["managedDisk"]["id"]
    data_disk = vm["storageProfile"]["dataDisks"][0]["managedDisk"]["id"]
    az.run("snapshot", "create", "-g", RG, "-n", "snap-cli-os", "--source", os_disk, "--output", "none")
    az.run("snapshot", "create", "-g", RG, "-n", "snap-cli-data0", "--source", data_disk, "--output", "none")
    snap_os = compute.snapshots.get(RG, "snap-cli-os")
    snap_data = compute.snapshots.get(RG, "snap-cli-data0")
    assert snap_os.provisioning_state == snap_data.provisioning_state == "Succeeded"
    assert snap_os.creation_data.source_resource_id.lower() == os_disk.lower()
    assert snap_data.creation_data.source_resource_id.lower() == data_disk.lower()
    assert snap_os.os_type == "Linux" and snap_os.hyper_v_generation == "V2"

    # 2. A managed image from the snapshots.
    az.run("image", "create", "-g", RG, "-n", "img-cli", "--source", "snap-cli-os",
           "--data-disk-sources", "snap-cli-data0", "--os-type", "Linux", "--hyper-v-generation", "V2",
           "--output", "none")
    image = compute.images.get(RG, "img-cli")
    assert image.provisioning_state == "Succeeded" and image.hyper_v_generation == "V2"
    assert image.storage_profile.os_disk.snapshot.id.lower() == snap_os.id.lower()
    assert image.storage_profile.os_disk.os_state == "Generalized"
    assert [d.snapshot.id.lower() for d in image.storage_profile.data_disks] == [snap_data.id.lower()]

    # 3. The gallery and the image definition.
    az.run("sig", "create", "-g", RG, "-r", GALLERY, "--output", "none")
    assert compute.galleries.get(RG, GALLERY).provisioning_state == "Succeeded"
    az.run("sig", "image-definition", "create", "-g", RG, "-r", GALLERY, "-i", DEFINITION,
           "--publisher", "contoso", "--offer", "batch-images", "--sku", "ubuntu2204", "--os-type", "Linux",
           "--os-state", "Generalized", "--hyper-v-generation", "V2", "--output", "none")
    definition = compute.gallery_images.get(RG, GALLERY, DEFINITION)
    assert definition.provisioning_state == "Succeeded"
    assert (definition.os_type, definition.os_state, definition.hyper_v_generation) == ("Linux", "Generalized", "V2")
    assert (definition.identifier.publisher, definition.identifier.offer, definition.identifier.sku) == (
        "contoso", "batch-images", "ubuntu2204")

    # 4. The image version, replicated to both regions.
    az.run("sig", "image-version", "create", "-g", RG, "-r", GALLERY, "-i", DEFINITION, "-e", VERSION,
           "--managed-image", "img-cli", "--target-regions", *REGIONS, "--replica-count", "1", "--output", "none")
    version = compute.gallery_image_versions.get(RG, GALLERY, DEFINITION, VERSION, expand="ReplicationStatus")
    assert version.provisioning_state == "Succeeded"
    assert version.storage_profile.source.id.lower() == image.id.lower()
    # The CLI polls the create's LRO, which covers replication (Azure/azure-rest-api-specs#3080, azure-cli#7363): when
    # `az sig image-version create` returns, every region is Completed, so the pool below gets its nodes.
    regions = {r.region.replace(" ", "").lower(): r.state for r in version.replication_status.summary}
    assert regions == {r: "Completed" for r in REGIONS}
    assert sorted(t.name.replace(" ", "").lower() for t in version.publishing_profile.target_regions) == sorted(REGIONS)

    # 5. The pool on the version (Entra ID auth: `az batch account login` reads the endpoint from ARM).
    az.run("batch", "account", "login", "-g", RG, "-n", demo["batch_account"])
    az.run("batch", "pool", "create", "--id", POOL, "--vm-size", "Standard_D2s_v5",
           "--target-dedicated-nodes", str(NODES), "--image", version.id, "--node-agent-sku-id", NODE_AGENT)
    deadline = time.monotonic() + 120
    while True:
        pool = batch.get_pool(POOL)
        states = [n.state for n in batch.list_nodes(POOL)]
        if pool.allocation_state == "steady" and states == ["idle"] * NODES:
            break
        assert time.monotonic() < deadline, f"pool not steady: {pool.allocation_state}, nodes {states}"
        time.sleep(0.5)
    assert pool.current_dedicated_nodes == pool.target_dedicated_nodes == NODES
    assert pool.resize_errors in (None, [])
    vmc = pool.virtual_machine_configuration
    assert vmc.image_reference.virtual_machine_image_id.lower() == version.id.lower()
    assert vmc.node_agent_sku_id == NODE_AGENT

    # The CLI reads the same pool back, also with an explicit account endpoint.
    shown = az.json("batch", "pool", "show", "--pool-id", POOL, "--account-name", demo["batch_account"],
                    "--account-endpoint", ep["batch_accounts"][demo["batch_account"]]["endpoint"])
    assert (shown["allocationState"], shown["currentDedicatedNodes"]) == ("steady", NODES)

    route = time.monotonic() - started
    print(f"\nseed CLI route: {route:.1f} s, {len(az.timings)} az calls; slowest: "
          + ", ".join(f"{name} {secs:.1f}s" for name, secs in sorted(az.timings, key=lambda t: -t[1])[:3]))


def _missing_or_different(sent, got, path: str = "") -> list[str]:
    """Every leaf of `sent` that `got` lacks or holds differently (`got` may add defaults: readOnly values, a
    property Batch fills in); lists compared item by item."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        return [d for k, v in sent.items() for d in _missing_or_different(v, got.get(k), f"{path}.{k}".lstrip("."))]
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) != len(sent):
            return [f"{path}: {got!r} != {sent!r}"]
        return [d for i, (a, b) in enumerate(zip(sent, got)) for d in _missing_or_different(a, b, f"{path}[{i}]")]
    return [] if sent == got else [f"{path}: {got!r} != {sent!r}"]


def test_az_batch_pool_create_json_file_with_a_template(standin, az_python, tmp_path):
    """A pool template from the tests (issue 19: the body `az batch pool create --json-file` accepts) plus the owned
    fields, created with the real azure-cli and read back with azure-batch: every property sent is the pool's."""
    sys.path.insert(0, str(ROOT / "tests" / "pipeline"))
    from _batch_common import build_image_version

    ep = standin.endpoints
    demo = ep["demo"]
    version_id = build_image_version(standin)
    subnet = (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
              "Microsoft.Network/virtualNetworks/vnet-batch/subnets/pools")
    body = {
        "id": "cli-template-pool", "vmSize": "Standard_D2s_v3",
        "virtualMachineConfiguration": {"imageReference": {"virtualMachineImageId": version_id},
                                        "nodeAgentSKUId": NODE_AGENT},
        "taskSlotsPerNode": 4, "taskSchedulingPolicy": {"nodeFillType": "spread"},
        "networkConfiguration": {"subnetId": subnet},
        "startTask": {"commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True, "maxTaskRetryCount": 1,
                      "environmentSettings": [{"name": "STAGE", "value": "cli"}],
                      "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}},
        "metadata": [{"name": "team", "value": "platform"}, {"name": "made-by", "value": "az --json-file"}],
        "enableAutoScale": True, "autoScaleEvaluationInterval": "PT5M",
        "autoScaleFormula": "$TargetDedicatedNodes = min(2, $PendingTasks.GetSample(1)); $TargetLowPriorityNodes = 0;",
    }
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(body, indent=2))
    az = Az(az_python, tmp_path / "az", ca_bundle=ep["ca_bundle"])
    _login(az, ep)
    az.run("batch", "pool", "create", "--json-file", str(path), "--account-name", demo["batch_account"],
           "--account-endpoint", ep["batch_accounts"][demo["batch_account"]]["endpoint"])

    pool = standin.batch().get_pool(body["id"])
    got = pool.as_dict()
    assert _missing_or_different(body, got) == [], json.dumps(got, indent=1, default=str)
    assert pool.task_slots_per_node == 4 and pool.enable_auto_scale is True
    assert pool.network_configuration.subnet_id.lower() == subnet.lower()
    assert pool.auto_scale_run is not None and pool.auto_scale_run.error is None  # Batch evaluated the formula
