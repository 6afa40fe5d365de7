"""The least-privilege roles (plugins/batch_images/rules/permissions.py, the README's generated table) proven against
the stand-in with RBAC enforced: sufficient, each one necessary, and enforced by Azure (the stand-in), not only by
preflight.

- With exactly the table's assignments for the run (``permissions.assignments``, set with ``Control.set_roles``) the
  demo pipeline (prepared VM, a pool in a subnet, roll, retention, sweep) and a ``base_image`` pipeline (a build VM
  in a subnet) pass.
- With one assignment removed, the run is refused in preflight naming that role, with zero writes (the check runs
  before preflight's first read, so a missing Reader is named too).
- For the write-side roles, with preflight's permission check skipped (``BATCH_IMAGES_TEST_SKIP_PERMISSION_CHECK``,
  test-only), the run fails at the request Azure refuses: ``AuthorizationFailed`` (ARM) / ``AuthorizationFailure``
  (Batch).
Every case records a row in the reliability table (writes before refusal from the stand-in's request log).
"""
from __future__ import annotations

import uuid

import pytest

from batch_images.operators.preflight_permissions import SKIP_ENV, run_facts
from batch_images.rules import permissions as perms
from batch_images.rules.config import PipelineConfig, load_pipelines
from batch_images.rules.run_options import RunOptions
from include.pipeline_runner import ROOT, connection_env, run_dag_test, write_pipeline
from tests.pipeline._demo_run import demo_pipeline
from tests.request_log import write_counts

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
FAST_RETRIES = {"BATCH_IMAGES_RETRY_DELAY_SECONDS": "1"}


def _least_roles(cfg: dict) -> list[tuple[str, str]]:
    return perms.assignments(run_facts(PipelineConfig.from_dict(cfg, "pipeline"), RunOptions(), {}))


def _run(s, tmp, cfg: dict, roles: list[tuple[str, str]], env: dict | None = None, name: str = "run"):
    """Reset the stand-in, enforce RBAC, give the seeded principal exactly ``roles``, run ``cfg``; -> (result,
    write counts)."""
    s.reset()
    s.control.rbac(True)
    s.control.set_roles(roles)
    write_pipeline(tmp / "pipelines", cfg)
    s.control.clear_requests()
    result = run_dag_test(cfg["dag_id"], LOGICAL_DATE, tmp / f"{name}.log",
                          env={**connection_env(s.endpoints), **FAST_RETRIES, **(env or {})},
                          pipelines_dir=tmp / "pipelines", timeout=600)
    return result, write_counts(s)


def _demo_cfg(s, prefix: str) -> dict:
    return demo_pipeline(s.endpoints, f"{prefix}_{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def session(standin_session):
    s = standin_session
    if s.proc is None or s.proc.poll() is not None:
        s.start()
    yield s
    s.reset()
    s.control.rbac(False)


@pytest.fixture(scope="module")
def demo_roles(session):
    return _least_roles(_demo_cfg(session, "roles"))


def test_the_tables_roles_are_enough_for_the_demo_pipeline(session, demo_roles, tmp_path, reliability_row):
    cfg = _demo_cfg(session, "perm_ok")
    result, measured = _run(session, tmp_path, cfg, demo_roles)
    assert result.state == "success", result.log[-4000:]
    assert {r for r, _ in demo_roles} == {perms.READER, perms.SNAPSHOTS, perms.PUBLISHER, perms.NETWORK, perms.BATCH}
    assert "AuthorizationFailed" not in result.log and "AuthorizationFailure" not in result.log
    reliability_row("permissions: least-privilege roles, demo pipeline", survived=True, leaked=0)


def test_the_tables_roles_are_enough_for_a_base_image_pipeline(session, tmp_path, reliability_row):
    from tests.e2e.test_base_image_end_to_end import _pipeline

    cfg = _pipeline(session.endpoints, f"perm_base_{uuid.uuid4().hex[:6]}")
    roles = _least_roles(cfg)
    assert perms.VM_CONTRIBUTOR in {r for r, _ in roles}
    result, _ = _run(session, tmp_path, cfg, roles)
    assert result.state == "success", result.log[-4000:]
    assert result.task_state("prepare_build_vm") == "success"
    reliability_row("permissions: least-privilege roles, base_image pipeline", survived=True, leaked=0)


def test_a_base_image_pipeline_without_virtual_machine_contributor_is_refused_in_preflight(session, tmp_path,
                                                                                           reliability_row):
    """The table's one role the demo pipeline does not use: without it, a base_image pipeline (build VM) is refused
    in preflight naming it, zero writes."""
    from tests.e2e.test_base_image_end_to_end import _pipeline

    cfg = _pipeline(session.endpoints, f"perm_novm_{uuid.uuid4().hex[:6]}")
    roles = [(r, sc) for r, sc in _least_roles(cfg) if r != perms.VM_CONTRIBUTOR]
    result, measured = _run(session, tmp_path, cfg, roles)
    assert result.state == "failed" and result.task_state("preflight") == "failed", result.log[-4000:]
    assert measured["write_attempts"] == 0, measured
    assert f'assign the built-in role "{perms.VM_CONTRIBUTOR}"' in result.log, result.log[-4000:]
    reliability_row(f"permissions: without {perms.VM_CONTRIBUTOR} (base_image): refused in preflight", survived=True,
                    leaked=0, writes_before_refusal=measured["write_attempts"])


ROLE_CASES = [perms.READER, perms.SNAPSHOTS, perms.PUBLISHER, perms.NETWORK, perms.BATCH]


@pytest.mark.parametrize("role", ROLE_CASES)
def test_without_one_role_preflight_refuses_naming_it(session, demo_roles, tmp_path, reliability_row, role):
    cfg = _demo_cfg(session, "perm_no")
    roles = [(r, sc) for r, sc in demo_roles if r != role]
    result, measured = _run(session, tmp_path, cfg, roles)
    assert result.state == "failed" and result.task_state("preflight") == "failed", result.log[-4000:]
    assert measured["write_attempts"] == 0, measured
    # the permission check runs before preflight's first read: every role is named, Reader too
    assert f'assign the built-in role "{role}"' in result.log, result.log[-4000:]
    assert "az role assignment create" in result.log
    reliability_row(f"permissions: without {role}: refused in preflight", survived=True, leaked=0,
                    writes_before_refusal=measured["write_attempts"])


# role removed -> (the tasks the first refusal may come from, the action it names). Without the Batch role the pool
# create is refused (pools/write); sweep_leftovers, running beside it, is refused its read of jobs (a data action).
WRITE_CASES = {
    perms.SNAPSHOTS: (("snapshot_disks",), "Microsoft.Compute/snapshots/write"),
    perms.PUBLISHER: (("create_managed_image",), "Microsoft.Compute/images/write"),
    perms.NETWORK: (("create_pool",), "Microsoft.Network/virtualNetworks/subnets/join/action"),
    perms.BATCH: (("create_pool", "sweep_leftovers"), "Microsoft.Batch/batchAccounts/pools/write"),
}


@pytest.mark.parametrize("role", list(WRITE_CASES))
def test_without_preflights_check_azure_refuses_the_request(session, demo_roles, tmp_path, reliability_row, role):
    tasks, action = WRITE_CASES[role]
    cfg = _demo_cfg(session, "perm_skip")
    roles = [(r, sc) for r, sc in demo_roles if r != role]
    result, measured = _run(session, tmp_path, cfg, roles, env={SKIP_ENV: "1"})
    session.control.rbac(False)   # count what the failed run left, as the test's own (Owner) principal
    rg = session.endpoints["demo"]["resource_group"]
    compute = session.compute()
    left = [*compute.snapshots.list_by_resource_group(rg), *compute.images.list_by_resource_group(rg)]
    assert result.state == "failed", result.log[-4000:]
    assert result.task_state("preflight") == "success"
    failed = [t["task"] for t in result.tasks if t["state"] == "failed"]
    assert failed and failed[0].startswith(tasks), failed
    task = failed[0]
    assert ("AuthorizationFailed" in result.log or "AuthorizationFailure" in result.log), result.log[-4000:]
    assert action in result.log
    reliability_row(f"permissions (check skipped): without {role}: {task} refused by Azure", survived=False,
                    leaked=len(left), writes_before_refusal=measured["writes"])
