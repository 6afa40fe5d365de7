"""Point the Azure CLI at the stand-in: print the commands, built from endpoints.json.

    eval "$(python -m include.azure_standin.examples.az_cloud --state-dir .standin)"

prints (and eval runs) `export AZURE_CONFIG_DIR=... REQUESTS_CA_BUNDLE=...`, `az cloud register`
(or `update`, when the cloud exists), `az cloud set`, instance discovery off, the service-principal
login and `az batch account login`. AZURE_CONFIG_DIR defaults to STATE_DIR/azure-cli, so the
profile you use for real Azure is not touched. The output holds the stand-in's local client secret
(the well-known dev secret unless you set one): do not paste it into logs.

TLS: the CLI (requests, MSAL) trusts the CA file named by REQUESTS_CA_BUNDLE; nothing here turns
certificate checks off.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

CLOUD_NAME = "standin"

# Audiences the stand-in's tokens are for (core/tokens.py); the CLI asks Entra ID for
# "<resource id>/.default", so these must be the public cloud's resource ids, not the stand-in's URL.
ARM_RESOURCE_ID = "https://management.core.windows.net/"
BATCH_RESOURCE_ID = "https://batch.core.windows.net/"


def cloud_config(ep: dict) -> dict:
    """`az cloud register --cloud-config` document for the stand-in of endpoints.json `ep`.

    Keys are azure-cli's CloudEndpoints names in camelCase (azure/cli/core/cloud.py): the CLI logs in
    at `activeDirectory`/<tenant>, asks for `activeDirectoryResourceId` tokens for ARM calls to
    `resourceManager`, and for `batchResourceId` tokens for `az batch` data-plane calls.
    """
    return {"endpoints": {
        "management": ARM_RESOURCE_ID,
        "resourceManager": ep["arm"].rstrip("/") + "/",
        "activeDirectory": ep["authority"].rstrip("/"),
        "activeDirectoryResourceId": ARM_RESOURCE_ID,
        "batchResourceId": BATCH_RESOURCE_ID,
    }}


def setup_commands(ep: dict, cloud: str = CLOUD_NAME, batch_account: str | None = None,
                   resource_group: str | None = None) -> list[list[str]]:
    """The az argv lists that register the stand-in as `cloud`, select it and log in.

    The last one (`az batch account login`) is left out when no Batch account is known.
    Run them with REQUESTS_CA_BUNDLE=ep["ca_bundle"] in the environment.
    """
    demo = ep.get("demo") or {}
    account = batch_account or demo.get("batch_account")
    group = resource_group or demo.get("resource_group")
    cmds = [
        ["az", "cloud", "register", "--name", cloud, "--cloud-config", json.dumps(cloud_config(ep)),
         "--skip-endpoint-discovery"],
        ["az", "cloud", "set", "--name", cloud, "--only-show-errors"],
        ["az", "config", "set", "core.instance_discovery=false", "--only-show-errors"],
        ["az", "login", "--service-principal", "--username", ep["client_id"], "--password", ep["client_secret"],
         "--tenant", ep["tenant_id"], "--output", "none"],
    ]
    if account and group:
        cmds.append(["az", "batch", "account", "login", "--resource-group", group, "--name", account])
    return cmds


def shell_script(ep: dict, config_dir: str, cloud: str = CLOUD_NAME) -> str:
    """The commands as a POSIX shell script (for eval); re-running it updates an existing cloud."""
    lines = [f"export AZURE_CONFIG_DIR={shlex.quote(config_dir)}",
             f"export REQUESTS_CA_BUNDLE={shlex.quote(ep['ca_bundle'])}"]
    for argv in setup_commands(ep, cloud):
        line = shlex.join(argv)
        if argv[1:3] == ["cloud", "register"]:
            update = ["az", "cloud", "update", "--name", cloud, "--cloud-config", argv[argv.index("--cloud-config") + 1],
                      "--skip-endpoint-discovery"]
            line = f"{line} 2>/dev/null || {shlex.join(update)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="az_cloud", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".standin"),
                        help="the stand-in's state directory (holds endpoints.json); default .standin")
    parser.add_argument("--config-dir", default=None,
                        help="AZURE_CONFIG_DIR for the CLI; default STATE_DIR/azure-cli")
    parser.add_argument("--cloud-name", default=CLOUD_NAME)
    args = parser.parse_args(argv)
    path = args.state_dir / "endpoints.json"
    if not path.exists():
        print(f"az_cloud: {path} not found: start the stand-in first (make standin STATE_DIR={args.state_dir})",
              file=sys.stderr)
        return 2
    ep = json.loads(path.read_text())
    config_dir = args.config_dir or str((args.state_dir / "azure-cli").resolve())
    sys.stdout.write(shell_script(ep, config_dir, args.cloud_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
