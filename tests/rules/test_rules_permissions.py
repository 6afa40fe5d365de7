"""rules/permissions.py: the run's needed actions, ARM's wildcard / NotActions semantics on Permissions API answers,
the minimal role assignments, and the README's generated table kept in step."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batch_images.rules import permissions as perms

ROOT = Path(__file__).resolve().parents[2]
SUB = "/subscriptions/s"
RG = f"{SUB}/resourceGroups/rg"
GAL = f"{RG}/providers/Microsoft.Compute/galleries/g"
ACCT = f"{RG}/providers/Microsoft.Batch/batchAccounts/b"
SUBNET = f"{RG}/providers/Microsoft.Network/virtualNetworks/v/subnets/pools"
PREPARED = perms.RunFacts("s", RG, GAL, f"{GAL}/images/d", (ACCT,), f"{RG}/providers/Microsoft.Compute/virtualMachines/vm",
                          pool_subnet_ids=(SUBNET,))


def test_the_demo_shape_needs_five_assignments_and_no_build_vm_rights():
    assert perms.assignments(PREPARED) == [
        (perms.READER, SUB), (perms.SNAPSHOTS, RG), (perms.PUBLISHER, RG), (perms.BATCH, ACCT),
        (perms.NETWORK, SUBNET)]
    actions = {n.action for _, n in perms.required(PREPARED)}
    assert "Microsoft.Compute/virtualMachines/write" not in actions
    assert "Microsoft.Network/virtualNetworks/subnets/join/action" in actions


def test_a_build_vm_adds_vm_contributor_and_its_subnet():
    facts = perms.RunFacts("s", RG, GAL, f"{GAL}/images/d", (ACCT,), build_rg_id=RG,
                           build_subnet_id=f"{RG}/providers/Microsoft.Network/virtualNetworks/b/subnets/build")
    roles = perms.assignments(facts)
    assert (perms.VM_CONTRIBUTOR, RG) in roles and (perms.NETWORK, facts.build_subnet_id) in roles
    assert "Microsoft.Compute/virtualMachines/extensions/read" not in {n.action for _, n in perms.required(facts)}


def test_wildcards_and_not_actions_as_arm_reads_them():
    contributor = [{"actions": ["*"], "notActions": ["Microsoft.Compute/galleries/share/action"],
                    "dataActions": [], "notDataActions": []}]
    assert perms.granted(contributor, "Microsoft.Compute/snapshots/write")
    assert not perms.granted(contributor, "microsoft.compute/GALLERIES/share/action")
    assert not perms.granted(contributor, "Microsoft.Batch/batchAccounts/jobs/write", data=True)
    reader = [{"actions": ["*/read"]}]
    assert perms.granted(reader, "Microsoft.Compute/skus/read")
    assert not perms.granted(reader, "Microsoft.Compute/snapshots/write")
    # NotActions subtract only within their own entry: another role's grant still counts
    assert perms.granted(contributor + [{"actions": ["Microsoft.Compute/galleries/*"]}],
                         "Microsoft.Compute/galleries/share/action")


def test_missing_names_each_action_with_its_role():
    answers = {SUB: [{"actions": ["*/read"]}], RG: [{"actions": ["*/read"]}], GAL: [{"actions": ["*/read"]}],
               f"{GAL}/images/d": [{"actions": ["*/read"]}], ACCT: [{"actions": ["*"], "dataActions": ["*"]}],
               SUBNET: [{"actions": ["Microsoft.Network/*"]}]}
    lacking = {(scope, n.action, n.role) for scope, n in perms.missing(PREPARED, answers)}
    assert (RG, "Microsoft.Compute/snapshots/write", perms.SNAPSHOTS) in lacking
    assert (f"{GAL}/images/d", "Microsoft.Compute/galleries/images/versions/write", perms.PUBLISHER) in lacking
    assert not any(scope in (ACCT, SUBNET, SUB) for scope, _, _ in lacking)
    assert not any(a.endswith("/read") for _, a, _ in lacking)


def test_the_readme_table_is_generated_from_the_rules_table():
    result = subprocess.run([sys.executable, "-m", "tools.gen_roles_table", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
