"""Bad input is refused before the first write, and the refusal names the field, the value and the fix.

Table-driven. Every case measures the stand-in's request log around the attempt (write attempts, i.e.
every PUT/POST/PATCH/DELETE that reached ARM or Batch, refused or not) and records a reliability row.

Where each kind of bad input is caught:

* **at DAG parse** (plugins/batch_images/rules): malformed ARM ids and ids of the wrong type, pool ids over
  64 characters or with illegal characters, replica counts outside 1..100 (or below the sizing rule),
  resizeTimeout under 5 minutes, path traversal / URL injection in names, and a pool whose declared
  Batch account region is not a target region. These cases call ``load_pipelines`` on the YAML file the
  DAG file would read (same code, same field paths); ``test_bad_config_is_a_dag_import_error_and_nothing_runs``
  shows once, through ``airflow dags test``, that such a file is an import error and no request is made.
* **by the trigger form**: a ``rebuild`` param that would put the version's third part outside 32 bits is
  refused by the Param schema before a run exists; version names that are not three 32-bit parts are
  refused by the naming rule every operator builds ids with.
* **by preflight** (a real DAG run, ``preflight`` fails with AirflowFailException, nothing downstream runs):
  a Specialized or OS-mismatched existing image definition, a Trusted-Launch-only marketplace base aimed at an
  existing definition without a Trusted Launch SecurityType, a node agent SKU that does not fit the image,
  a shared-key Batch connection, a VM with unmanaged disks, with extensions, or on a third-party
  (purchase plan) base image; against Azure's Resource SKUs and the Batch account's quotas: a Gen1-only VM size for a
  Gen2 image, a Standard_ZRS target region without availability zones, taskSlotsPerNode over 4 x the size's vCPUs,
  and a new pool that fits the core quota alone but not beside the serving pool.

Target regions without the Batch account's region - the decision:
if the config *declares* the account's region (``batch_account_location``) and leaves it out of
``target_regions``, the config contradicts itself and is refused at parse with the fix "add it". If the
region is *not* declared (null: looked up at run time), preflight cannot know it at parse, so it adds
the account's region to the published target regions with a WARNING (docs/troubleshooting.md, preflight docstring): the
plan must then contain it, which ``test_account_region_left_out_is_added_by_preflight`` checks by running
preflight alone. Nothing in the config can forbid adding it (an explicit ``regional_replica_count`` only
applies to the region it is written on), so there is no refusal on that path.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from batch_images.rules import naming
from batch_images.rules.config import load_pipelines
from batch_images.rules.errors import InvalidInput
from include.pipeline_fixtures import short_field_pool
from include.pipeline_runner import ROOT, connection_env, read_run, run_dag_test, write_pipeline
from tests.request_log import write_counts
from tests.serving_pools import create_serving_pool

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
GUID = "2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"


def base_pipeline(ep: dict, dag_id: str | None = None) -> dict:
    """demo.yaml's pipeline pointed at this stand-in, small and quick, its pool written with the short fields (the
    cases below break those; include/pipeline_fixtures.py)."""
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id or f"bad_input_{uuid.uuid4().hex[:8]}", poll_interval_seconds=1,
               source_vm_id=demo["source_vm_id"])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    cfg["pools"] = [short_field_pool(cfg["pools"][0], batch_account_id=demo["batch_account_id"])]
    return cfg


def assert_names_field_value_fix(message: str, field: str, value: str, fix: str) -> None:
    assert f"{field}: " in message, message
    assert value in message, message
    assert "Fix: " in message and fix in message, message


# --- parse-level cases: the YAML the DAG file reads ----------------------------------------------------------


@dataclass
class ParseCase:
    id: str
    change: Callable[[dict], None]
    field: str       # InvalidInput.field (the path the DAG import error names)
    value: str       # a substring of the value as shown
    fix: str         # a substring of the fix


def _set(path: str, value) -> Callable[[dict], None]:
    """cfg[a][b]... = value for path 'a.b.0.c' (ints index lists)."""
    def change(cfg: dict) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return change


def _vm_id(tail: str) -> str:
    return f"/subscriptions/{GUID}/resourceGroups/rg-batch-images/providers/{tail}"


SHORT_POOL_FIELDS = ("vm_size", "target_dedicated_nodes", "target_low_priority_nodes", "resize_timeout_minutes",
                     "start_task")
BASE_TEMPLATE = {"vmSize": "Standard_D2s_v3", "targetDedicatedNodes": 4,
                 "startTask": {"commandLine": "/bin/bash -c 'echo ready'", "waitForSuccess": True}}


def _template(**props) -> Callable[[dict], None]:
    """The demo's pool written as a template (issue 19): its short fields become BASE_TEMPLATE, updated by props."""
    def change(cfg: dict) -> None:
        pool = cfg["pools"][0]
        for key in SHORT_POOL_FIELDS:
            pool.pop(key, None)
        pool["template"] = {k: v for k, v in {**BASE_TEMPLATE, **props}.items() if v is not None}
    return change


P = "pipelines[0]"
PARSE_CASES = [
    # malformed ARM ids
    ParseCase("arm-id-no-leading-slash", _set("source_vm_id", _vm_id("Microsoft.Compute/virtualMachines/vm")[1:]),
              f"{P}.source_vm_id", "subscriptions/", "give the full resource id"),
    ParseCase("arm-id-subscription-not-guid",
              _set("source_vm_id", "/subscriptions/my-sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"),
              f"{P}.source_vm_id", "my-sub", "subscription's GUID"),
    ParseCase("arm-id-missing-segments", _set("source_vm_id", _vm_id("Microsoft.Compute/virtualMachines")),
              f"{P}.source_vm_id", "virtualMachines", "give the full resource id"),
    ParseCase("arm-id-empty-segment", _set("source_vm_id", _vm_id("Microsoft.Compute/virtualMachines//vm")),
              f"{P}.source_vm_id", "virtualMachines//vm", "remove the empty segment"),
    ParseCase("batch-account-id-malformed", _set("pools.0.batch_account_id", "batchimages"),
              f"{P}.pools[0].batch_account_id", "batchimages", "give the full resource id"),
    # ids of the wrong resource type
    ParseCase("source-vm-id-is-a-disk", _set("source_vm_id", _vm_id("Microsoft.Compute/disks/osdisk")),
              f"{P}.source_vm_id", "Microsoft.Compute/disks/osdisk", "Microsoft.Compute/virtualMachines"),
    ParseCase("batch-account-id-is-a-vm",
              _set("pools.0.batch_account_id", _vm_id("Microsoft.Compute/virtualMachines/batchimages")),
              f"{P}.pools[0].batch_account_id", "virtualMachines/batchimages", "Microsoft.Batch/batchAccounts"),
    # pool ids
    ParseCase("pool-id-over-64-characters", _set("pools.0.pool_id_prefix", "p" * 60),
              f"{P}.pools[0].pool_id_prefix", "pppppp", "shorten the prefix to at most"),
    ParseCase("pool-prefix-over-64-characters", _set("pools.0.pool_id_prefix", "p" * 65),
              f"{P}.pools[0].pool_id_prefix", "pppppp", "use 1-64 characters"),
    ParseCase("pool-id-illegal-characters", _set("pools.0.pool_id_prefix", "ubuntu 22.04!"),
              f"{P}.pools[0].pool_id_prefix", "ubuntu 22.04!", "letters, digits, '-' and '_'"),
    # replica counts
    ParseCase("replicas-zero", _set("target_regions.1.regional_replica_count", 0),
              f"{P}.target_regions[1].regional_replica_count", "0", "give an integer >= 1 <= 100"),
    ParseCase("replicas-over-100", _set("target_regions.1.regional_replica_count", 101),
              f"{P}.target_regions[1].regional_replica_count", "101", "give an integer >= 1 <= 100"),
    ParseCase("replicas-below-sizing-rule",
              lambda cfg: (_set("target_regions.0.regional_replica_count", 1)(cfg),
                           _set("pools.0.target_dedicated_nodes", 700)(cfg)),
              f"{P}.target_regions[0].regional_replica_count", "1", "raise it to 3 or more"),
    ParseCase("pool-needs-over-100-replicas", _set("pools.0.target_dedicated_nodes", 30_001),
              f"{P}.pools[0]", "30001", "split the VMs across pools"),
    # resize timeout
    ParseCase("resize-timeout-under-5-minutes", _set("pools.0.resize_timeout_minutes", 4),
              f"{P}.pools[0].resize_timeout_minutes", "4", "give at least 5"),
    # target regions without the declared Batch account region
    ParseCase("account-region-not-a-target",
              lambda cfg: (_set("gallery.location", "northeurope")(cfg),
                           _set("target_regions", [{"name": "northeurope"}])(cfg),
                           _set("pools.0.batch_account_location", "westeurope")(cfg)),
              f"{P}.pools[0].batch_account_location", "westeurope", "add {name: westeurope} to target_regions"),
    # the roll, the smoke test and retention (issue 10)
    ParseCase("roll-unknown-strategy", _set("pools.0.roll.strategy", "rolling"), f"{P}.pools[0].roll.strategy",
              "rolling", "use one of blue_green, in_place"),
    ParseCase("roll-drain-timeout-under-a-minute", _set("pools.0.roll.drain_timeout_minutes", 0),
              f"{P}.pools[0].roll.drain_timeout_minutes", "0", "give a number of minutes >= 1"),
    ParseCase("roll-unknown-active-jobs", _set("pools.0.roll.active_jobs", "kill"), f"{P}.pools[0].roll.active_jobs",
              "kill", "use one of drain, move"),
    ParseCase("roll-unknown-on-drain-timeout", _set("pools.0.roll.on_drain_timeout", "delete"),
              f"{P}.pools[0].roll.on_drain_timeout", "delete", "use one of keep, requeue"),
    ParseCase("keep-versions-zero", _set("keep_versions", 0), f"{P}.keep_versions", "0", "keep at least 1 version"),
    ParseCase("smoke-test-without-command", lambda cfg: cfg["pools"][0]["smoke_test"].pop("command_line"),
              f"{P}.pools[0].smoke_test.command_line", "None", "add 'command_line'"),
    ParseCase("smoke-test-blank-command", _set("pools.0.smoke_test.command_line", "  "),
              f"{P}.pools[0].smoke_test.command_line", "'  '", "give the command each smoke-test task runs"),
    ParseCase("smoke-test-zero-tasks", _set("pools.0.smoke_test.tasks", 0), f"{P}.pools[0].smoke_test.tasks", "0",
              "or null for one task per node"),
    ParseCase("smoke-test-timeout-zero", _set("pools.0.smoke_test.timeout_minutes", 0),
              f"{P}.pools[0].smoke_test.timeout_minutes", "0", "give a number of minutes >= 1"),
    ParseCase("smoke-test-on-a-pool-without-nodes", _set("pools.0.target_dedicated_nodes", 0),
              f"{P}.pools[0].smoke_test", "test -f /etc/os-release", "or set smoke_test: null"),
    ParseCase("require-approval-not-a-bool", _set("pools.0.require_approval", "yes"),
              f"{P}.pools[0].require_approval", "yes", "write true or false"),
    # path traversal and URL injection
    ParseCase("gallery-dotdot", _set("gallery.name", ".."), f"{P}.gallery.name", "'..'", "start the name with a letter"),
    ParseCase("gallery-slash", _set("gallery.name", "gal/../other"), f"{P}.gallery.name", "gal/../other",
              "use only letters"),
    ParseCase("gallery-query", _set("gallery.name", "gal?api-version=1"), f"{P}.gallery.name", "gal?api-version=1",
              "use only letters"),
    ParseCase("gallery-encoded-slash", _set("gallery.name", "gal%2F..%2Fother"), f"{P}.gallery.name",
              "gal%2F..%2Fother", "use only letters"),
    ParseCase("definition-dotdot", _set("image_definition.name", "../ubuntu"), f"{P}.image_definition.name",
              "../ubuntu", "use only letters"),
    ParseCase("definition-query", _set("image_definition.name", "def?$expand=all"), f"{P}.image_definition.name",
              "def?$expand=all", "use only letters"),
    ParseCase("definition-encoded-slash", _set("image_definition.name", "def%2Fversions"),
              f"{P}.image_definition.name", "def%2Fversions", "use only letters"),
    ParseCase("pool-prefix-dotdot", _set("pools.0.pool_id_prefix", "../pools"), f"{P}.pools[0].pool_id_prefix",
              "../pools", "letters, digits, '-' and '_'"),
    ParseCase("pool-prefix-query", _set("pools.0.pool_id_prefix", "p?x=1"), f"{P}.pools[0].pool_id_prefix",
              "p?x=1", "letters, digits, '-' and '_'"),
    ParseCase("pool-prefix-encoded-slash", _set("pools.0.pool_id_prefix", "p%2Fjobs"),
              f"{P}.pools[0].pool_id_prefix", "p%2Fjobs", "letters, digits, '-' and '_'"),
    ParseCase("resource-group-dotdot", _set("gallery.resource_group", ".."), f"{P}.gallery.resource_group",
              "'..'", "end the name with anything but '.'"),
    ParseCase("resource-group-slash", _set("gallery.resource_group", "rg/../other"), f"{P}.gallery.resource_group",
              "rg/../other", "use only letters"),
    ParseCase("resource-group-query", _set("gallery.resource_group", "rg?x=1"), f"{P}.gallery.resource_group",
              "rg?x=1", "use only letters"),
    ParseCase("resource-group-encoded-slash", _set("gallery.resource_group", "rg%2F.."),
              f"{P}.gallery.resource_group", "rg%2F..", "use only letters"),
    ParseCase("work-resource-group-slash", _set("work_resource_group", "rg/../../providers"),
              f"{P}.work_resource_group", "rg/../../providers", "use only letters"),
    ParseCase("source-vm-id-traversal",
              _set("source_vm_id", _vm_id("Microsoft.Compute/virtualMachines/../../../other/vm")),
              f"{P}.source_vm_id", "/../", "without '..'"),
    ParseCase("source-vm-id-encoded-slash", _set("source_vm_id", _vm_id("Microsoft.Compute/virtualMachines/vm%2F..")),
              f"{P}.source_vm_id", "vm%2F..", "without ?, #, %"),
    # pool templates (issue 19): owned fields, the pool body's own properties, Batch's cross-field rules
    ParseCase("template-owned-field", _template(virtualMachineConfiguration={"nodeAgentSKUId": "batch.node.ubuntu 22.04"}),
              f"{P}.pools[0].template.virtualMachineConfiguration.nodeAgentSKUId", "batch.node.ubuntu 22.04",
              "remove it from the template"),
    ParseCase("template-unknown-property", _template(notAPoolProperty=True), f"{P}.pools[0].template.notAPoolProperty",
              "notAPoolProperty", "remove or correct it"),
    ParseCase("template-autoscale-with-fixed-counts",
              _template(enableAutoScale=True, autoScaleFormula="$TargetDedicatedNodes = 2;"),
              f"{P}.pools[0].template.targetDedicatedNodes", "4", "remove targetDedicatedNodes"),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c.id for c in PARSE_CASES])
def test_bad_config_is_refused_at_parse(standin, tmp_path, reliability_row, case: ParseCase):
    cfg = base_pipeline(standin.endpoints)
    case.change(cfg)
    path = write_pipeline(tmp_path, cfg)
    standin.control.clear_requests()
    with pytest.raises(InvalidInput) as info:
        load_pipelines(path)  # what dags/batch_image_pipelines.py does for each YAML file
    measured = write_counts(standin)
    err = info.value
    assert err.field == case.field, str(err)
    assert_names_field_value_fix(str(err), case.field, case.value, case.fix)
    assert measured["write_attempts"] == 0 and measured["total"] == 0, measured
    reliability_row(f"bad input (parse): {case.id}", runs=0, survived=True, leaked=measured["writes"],
                    writes_before_refusal=measured["write_attempts"], note=str(err)[:200])


def test_bad_config_is_a_dag_import_error_and_nothing_runs(standin, tmp_path, reliability_row):
    """One parse-level case end to end: the DAG does not exist, the error is in the log, no request at all."""
    cfg = base_pipeline(standin.endpoints)
    cfg["gallery"]["name"] = "gal/../other"
    write_pipeline(tmp_path / "pipelines", cfg)
    standin.control.clear_requests()
    result = run_dag_test(cfg["dag_id"], LOGICAL_DATE, tmp_path / "dags-test.log",
                          env=connection_env(standin.endpoints), pipelines_dir=tmp_path / "pipelines")
    measured = write_counts(standin)
    assert result.exit_code not in (0, None)
    assert result.run == {} and result.tasks == []  # no run was created
    log = result.log
    assert "Error loading DAG" in log and f"Dag '{cfg['dag_id']}' could not be found" in log, log[-3000:]
    assert_names_field_value_fix(log, "pipelines[0].gallery.name", "'gal/../other'", "use only letters")
    assert measured == {"writes": 0, "write_attempts": 0, "total": 0}, measured
    reliability_row("bad input (DAG import error): gallery 'gal/../other'", runs=1, survived=True,
                    leaked=measured["writes"], writes_before_refusal=measured["write_attempts"],
                    note="airflow dags test: DAG not found, import error names field/value/fix; 0 requests")


# --- version names ------------------------------------------------------------------------------------------------

VERSION_CASES = [
    # version, words of the reason, words of the fix
    ("2026.1125", "exactly 3 dot-separated parts", "Major.Minor.Patch"),
    ("2026.1125.0.1", "exactly 3 dot-separated parts", "Major.Minor.Patch"),
    ("2026.1125.2147483648", "exceeds 2147483647", "keep each part at most 2147483647"),
    ("4294967296.1.0", "exceeds 2147483647", "keep each part at most 2147483647"),
    ("2026.1125.-1", "not a non-negative decimal integer", "Major.Minor.Patch"),
    ("2026.01125.0", "leading zero", "write it as Azure stores it: 2026.1125.0"),
]


@pytest.mark.parametrize("version, reason, fix", VERSION_CASES, ids=[v for v, _, _ in VERSION_CASES])
def test_version_names_outside_three_32_bit_parts_are_refused(standin, tmp_path, reliability_row, version, reason, fix):
    """Every id an operator builds for a version goes through this rule (PipelineConfig.image_version_id)."""
    cfg = load_pipelines(write_pipeline(tmp_path, base_pipeline(standin.endpoints)))[0]
    standin.control.clear_requests()
    with pytest.raises(InvalidInput) as info:
        cfg.image_version_id(version)
    measured = write_counts(standin)
    assert info.value.field == "version" and reason in info.value.reason
    assert_names_field_value_fix(str(info.value), "version", repr(version), fix)
    assert measured["write_attempts"] == 0
    reliability_row(f"bad input (rule): version {version}", runs=0, survived=True, leaked=measured["writes"],
                    writes_before_refusal=measured["write_attempts"], note=str(info.value)[:200])


def _dags_test_cli(args: list[str], env: dict, pipelines_dir: Path, log_path: Path, timeout: float = 300) -> int:
    """`airflow dags test ARGS...` in a child process set up like include/pipeline_runner.run_dag_test."""
    child_env = {**os.environ, **env, "BATCH_IMAGES_PIPELINES_DIR": str(pipelines_dir)}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), child_env.get("PYTHONPATH")]))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", *args], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


def test_rebuild_beyond_32_bits_is_refused_by_the_trigger_form(standin, tmp_path, reliability_row):
    cfg = base_pipeline(standin.endpoints)
    write_pipeline(tmp_path / "pipelines", cfg)
    standin.control.clear_requests()
    log_path = tmp_path / "dags-test.log"
    rc = _dags_test_cli([cfg["dag_id"], LOGICAL_DATE, "--conf", json.dumps({"rebuild": naming.INT32_MAX + 1})],
                        connection_env(standin.endpoints), tmp_path / "pipelines", log_path)
    measured = write_counts(standin)
    log = log_path.read_text(errors="replace")
    assert rc != 0
    assert "Invalid input for param rebuild: 2147483648 is greater than the maximum of 2147483647" in log, log[-3000:]
    assert read_run(cfg["dag_id"], LOGICAL_DATE)[0] == {}  # no run exists
    assert measured == {"writes": 0, "write_attempts": 0, "total": 0}, measured
    reliability_row("bad input (trigger form): rebuild 2147483648", runs=1, survived=True, leaked=measured["writes"],
                    writes_before_refusal=measured["write_attempts"], note="Param schema maximum; no run created")


# The trigger form's other fields: the Param schema (rules/run_options.py param_schemas) refuses each before a run
# exists, whatever sends it (the form, the REST API, --conf). Preflight refuses the same values again
# (tests/pipeline/test_preflight.py test_preflight_refuses_bad_run_options) for a caller that bypasses the schema.
# A version's 32-bit bound and leading zeros are preflight's alone (the form's pattern checks the shape only, so its
# refusal stays readable): those rows are in PREFLIGHT_CASES.
FORM_CASES = [
    # id, conf, the param Airflow names
    ("version-two-parts", {"version": "2026.1201"}, "version"),
    ("target-region-not-configured", {"target_regions": ["eastus"]}, "target_regions"),
    ("pool-unknown", {"pools": ["gpu"]}, "pools"),
    ("strategy-unknown", {"strategy": "rolling"}, "strategy"),
    ("canary-only-not-a-bool", {"canary_only": "yes"}, "canary_only"),
    ("dry-run-not-a-bool", {"dry_run": 1}, "dry_run"),
]


@pytest.mark.parametrize("case_id, conf, param", FORM_CASES, ids=[c[0] for c in FORM_CASES])
def test_bad_trigger_form_values_are_refused_before_a_run(standin, tmp_path, reliability_row, case_id, conf, param):
    cfg = base_pipeline(standin.endpoints)
    write_pipeline(tmp_path / "pipelines", cfg)
    standin.control.clear_requests()
    log_path = tmp_path / "dags-test.log"
    rc = _dags_test_cli([cfg["dag_id"], LOGICAL_DATE, "--conf", json.dumps(conf)], connection_env(standin.endpoints),
                        tmp_path / "pipelines", log_path)
    measured = write_counts(standin)
    log = log_path.read_text(errors="replace")
    assert rc != 0
    assert f"Invalid input for param {param}: " in log, log[-3000:]
    assert read_run(cfg["dag_id"], LOGICAL_DATE)[0] == {}  # no run exists
    assert measured == {"writes": 0, "write_attempts": 0, "total": 0}, measured
    reliability_row(f"bad input (trigger form): {case_id}", runs=1, survived=True, leaked=measured["writes"],
                    writes_before_refusal=measured["write_attempts"], note=f"Param schema of {param}; no run created")


# --- preflight-level cases: a real DAG run ------------------------------------------------------------------------


def _create_definition(standin, name: str, os_type: str = "Linux", os_state: str = "Generalized") -> None:
    """Setup through azure-mgmt-compute: the gallery and an image definition (these writes are not the pipeline's)."""
    demo = standin.endpoints["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    compute.galleries.begin_create_or_update(rg, "galbatchimages", {"location": loc, "properties": {}}).result()
    compute.gallery_images.begin_create_or_update(rg, "galbatchimages", name, {
        "location": loc, "properties": {
            "osType": os_type, "osState": os_state, "hyperVGeneration": "V2",
            "identifier": {"publisher": "contoso", "offer": "batch-nodes", "sku": name}},
    }).result()
    compute.close()


@dataclass
class PreflightCase:
    id: str
    setup: Callable[[object, dict, dict], None]   # (standin, cfg, env) -> None; may write through the SDK
    field: str
    value: str
    reason: str
    fix: str
    conf: dict | None = None   # the run's params (--conf): what no single field's schema can refuse


def _negative_vm(kind: str):
    def setup(standin, cfg, env):
        cfg["source_vm_id"] = standin.endpoints["demo"]["negative_vms"][kind]
    return setup


def _specialized(standin, cfg, env):
    _create_definition(standin, "ubuntu2204-specialized", os_state="Specialized")
    cfg["image_definition"]["name"] = "ubuntu2204-specialized"


def _windows_definition(standin, cfg, env):
    _create_definition(standin, "ubuntu2204-windef", os_type="Windows")
    cfg["image_definition"]["name"] = "ubuntu2204-windef"


def _config_os_windows(standin, cfg, env):
    cfg["image_definition"]["os_type"] = "Windows"


def _agent_mismatch(standin, cfg, env):
    cfg["node_agent_sku_id"] = "batch.node.windows amd64"


def _nothing(standin, cfg, env):
    pass


def _gallery_in_northeurope(standin, cfg, env):
    # the gallery in northeurope, the Batch account (westeurope) elsewhere: a subset can keep one and drop the other
    cfg["gallery"]["location"] = "northeurope"


def _shared_key(standin, cfg, env):
    ep = standin.endpoints
    name = ep["demo"]["batch_account"]
    conn = json.loads(env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"])
    conn.update(login=name, password=ep["batch_accounts"][name]["primary_key"])
    env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"] = json.dumps(conn)


def _base_image(change: Callable[[dict], None] | None = None):
    """The pipeline becomes include/pipelines/base-ubuntu2204.yaml's (a build VM from a marketplace base), changed."""
    def setup(standin, cfg, env):
        base = load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")[0].to_dict()
        base.update(dag_id=cfg["dag_id"], poll_interval_seconds=1, gallery=cfg["gallery"])
        base["pools"][0]["batch_account_id"] = cfg["pools"][0]["batch_account_id"]
        cfg.clear()
        cfg.update(base)
        if change is not None:
            change(cfg)
    return setup


def _oversized_script(cfg: dict) -> None:
    path = ROOT / ".cache" / "bad-input-oversized-custom-data.sh"  # .cache/: git-ignored
    path.parent.mkdir(exist_ok=True)
    script = b"#!/bin/bash\n" + b"echo padding\n" * 5100
    path.write_bytes(script[:65535] + b"\n")  # 65,536 bytes: one over Azure's 65,535 (87,384 base64 characters)
    cfg["build"]["custom_data_file"] = ".cache/bad-input-oversized-custom-data.sh"


def _subnet(vnet: str, subnet: str, nodes: int = 4):
    """The pool as a template in a seeded subnet (vnet-batch/tiny is a /29; vnet-northeurope is in northeurope)."""
    def setup(standin, cfg, env):
        demo = standin.endpoints["demo"]
        subnet_id = (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
                     f"Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}")
        _template(targetDedicatedNodes=nodes, networkConfiguration={"subnetId": subnet_id})(cfg)
    return setup


BAD_FORMULA = "$TargetDedicatedNodes = ;"


def _formula_on_autoscaled_serving_pool(standin, cfg, env):
    """An autoscaled serving pool (made with azure-batch, as a previous night leaves it) and a template whose formula
    Batch's evaluation rejects: preflight evaluates it there (evaluateautoscale changes nothing)."""
    create_serving_pool(standin.batch(), cfg["pools"][0]["pool_id_prefix"], "2026.1124.0",
                        autoscale="$TargetDedicatedNodes = 1;")
    _template(targetDedicatedNodes=None, enableAutoScale=True, autoScaleFormula=BAD_FORMULA)(cfg)


def _serving_pool_of(nodes: int):
    """A serving pool of ``nodes`` x Standard_D2s_v3 (a previous night's) and this run's new pool of as many: each
    fits the account's standardDSv3Family quota (50 cores) alone, both together (blue/green) do not."""
    def setup(standin, cfg, env):
        create_serving_pool(standin.batch(), cfg["pools"][0]["pool_id_prefix"], "2026.1124.0", nodes=nodes)
        cfg["pools"][0]["target_dedicated_nodes"] = nodes
    return setup


def _zrs_region_without_zones(standin, cfg, env):
    cfg["target_regions"].append({"name": "westus", "storage_account_type": "Standard_ZRS"})


NOBLE_TL_ONLY = {"publisher": "canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest",
                 "watch_interval_seconds": None}  # seeded with image feature SecurityType=TrustedLaunch


def _trusted_launch_only_base_into_standard_definition(standin, cfg, env):
    """A Trusted-Launch-only base (its build VM must be Trusted Launch) aimed at an existing definition without a
    SecurityType feature: Azure refuses the Trusted Launch disks in it, and its features cannot change."""
    _base_image(_set("base_image", NOBLE_TL_ONLY))(standin, cfg, env)
    _create_definition(standin, "ubuntu2404-standard")
    cfg["image_definition"]["name"] = "ubuntu2404-standard"


CIS = {"publisher": "center-for-internet-security-inc", "offer": "cis-ubuntu-linux-2204-l1",
       "sku": "cis-ubuntu-linux-2204-l1-gen2", "version": "latest", "watch_interval_seconds": None}

PREFLIGHT_CASES = [
    # a base_image pipeline (docs/base-image.md, "Building from a marketplace base image")
    PreflightCase("unknown-base-image", _base_image(_set("base_image.offer", "no-such-offer")), "base_image",
                  "canonical:no-such-offer:22_04-lts-gen2:latest", "the marketplace has no image", "az vm image list"),
    PreflightCase("base-image-with-purchase-plan", _base_image(_set("base_image", CIS)), "base_image",
                  "cis-ubuntu-linux-2204-l1", "purchase plan", "first-party image"),
    PreflightCase("custom-data-file-missing", _base_image(_set("build.custom_data_file", "include/build/nope.sh")),
                  "build.custom_data_file", "include/build/nope.sh", "no such file", "create the script"),
    PreflightCase("custom-data-of-65536-bytes", _base_image(_oversized_script), "build.custom_data_file",
                  "bad-input-oversized-custom-data.sh", "65536 bytes", "shorten the script"),
    PreflightCase("trusted-launch-only-base-into-standard-definition",
                  _trusted_launch_only_base_into_standard_definition, "image_definition.name", "ubuntu2404-standard",
                  "Trusted-Launch-only base image", "use a new image_definition.name"),
    PreflightCase("specialized-image-definition", _specialized, "image_definition.name", "ubuntu2204-specialized",
                  "is Specialized", "new image definition name"),
    PreflightCase("image-definition-os-mismatch", _windows_definition, "image_definition.os_type", "'Linux'",
                  "has osType Windows", "use a new definition name"),
    PreflightCase("config-os-type-mismatch", _config_os_windows, "image_definition.os_type", "'Windows'",
                  "the source VM is Linux", "set os_type: Linux"),
    PreflightCase("node-agent-sku-mismatch", _agent_mismatch, "node_agent_sku_id", "batch.node.windows amd64",
                  "but the image is Linux", "use 'batch.node.ubuntu 22.04'"),
    PreflightCase("shared-key-batch-connection", _shared_key, "pools[0].batch_conn_id", "azure_batch_default",
                  "Shared Key", "credential_conn_id"),
    PreflightCase("vm-unmanaged-disks", _negative_vm("unmanaged_disks"), "source_vm_id", "vm-unmanaged-disks",
                  "unmanaged disks", "managed disks"),
    PreflightCase("vm-with-extensions", _negative_vm("with_extension"), "source_vm_id", "vm-with-extension",
                  "VM extensions installed (CustomScript)", "az vm extension delete"),
    PreflightCase("third-party-base-image-with-plan", _negative_vm("thirdparty_plan"), "source_vm_id",
                  "vm-thirdparty-plan", "purchase plan", "first-party image"),
    # the trigger form: values valid field by field, refused together or against Azure's facts
    PreflightCase("version-over-32-bits", _nothing, "params.version", "2026.2147483648.0",
                  "exceeds 2147483647, the 32-bit limit", "keep each part at most 2147483647",
                  conf={"version": "2026.2147483648.0"}),
    PreflightCase("version-leading-zero", _nothing, "params.version", "2026.0101.0", "has a leading zero",
                  "2026.101.0", conf={"version": "2026.0101.0"}),
    PreflightCase("version-with-rebuild", _nothing, "params.version", "'2026.1201.0'", "exclude each other",
                  "set rebuild to 0", conf={"version": "2026.1201.0", "rebuild": 1}),
    PreflightCase("regions-without-gallery-region", _nothing, "params.target_regions", "['northeurope']",
                  "the gallery's own region westeurope is not selected", "add westeurope",
                  conf={"target_regions": ["northeurope"]}),
    PreflightCase("regions-without-rolled-pool-account-region", _gallery_in_northeurope, "params.target_regions",
                  "['northeurope']", "pool ubuntu2204's Batch account is in westeurope", "add westeurope",
                  conf={"target_regions": ["northeurope"]}),
    # pool templates (issue 19): against Azure's facts
    PreflightCase("template-subnet-too-small-for-both-pools", _subnet("vnet-batch", "tiny"),
                  "pools[0].template.networkConfiguration.subnetId", "/subnets/tiny", "free addresses",
                  "use a larger subnet"),
    PreflightCase("template-subnet-in-another-region", _subnet("vnet-northeurope", "pools"),
                  "pools[0].template.networkConfiguration.subnetId", "vnet-northeurope/subnets/pools",
                  "Batch needs them in one region", "in the Batch account's region"),
    PreflightCase("template-formula-batch-refuses", _formula_on_autoscaled_serving_pool,
                  "pools[0].template.autoScaleFormula", BAD_FORMULA, "AutoScalingFormulaSyntaxError",
                  "correct the formula"),
    # hardware and quotas against Azure's Resource SKUs and the Batch account (issue 20)
    PreflightCase("gen1-only-size-for-gen2-image", lambda standin, cfg, env: _set("pools.0.vm_size", "Standard_A2_v2")(cfg),
                  "pools[0].vm_size", "Standard_A2_v2", "capability HyperVGenerations = V1",
                  "use a size whose HyperVGenerations lists V2"),
    PreflightCase("core-quota-for-two-pools", _serving_pool_of(13), "pools[0].target_dedicated_nodes", "13",
                  "standardDSv3Family core quota (dedicatedCoreQuotaPerVMFamily) of 50; 26 are held",
                  "request a higher quota"),
    PreflightCase("zrs-target-region-without-zones", _zrs_region_without_zones,
                  "target_regions[2].storage_account_type", "Standard_ZRS", "westus has no availability zones",
                  "use Standard_LRS for westus"),
    PreflightCase("task-slots-over-the-size-limit", lambda standin, cfg, env: _template(taskSlotsPerNode=9)(cfg),
                  "pools[0].template.taskSlotsPerNode", "9", "capability vCPUs = 2", "give at most 8"),
    PreflightCase("template-setting-the-image-cannot-run",
                  lambda standin, cfg, env: _template(virtualMachineConfiguration={
                      "windowsConfiguration": {"enableAutomaticUpdates": False}})(cfg),
                  "pools[0].template.virtualMachineConfiguration.windowsConfiguration", "enableAutomaticUpdates",
                  "the image is Linux", "remove windowsConfiguration"),
]


@pytest.mark.parametrize("case", PREFLIGHT_CASES, ids=[c.id for c in PREFLIGHT_CASES])
def test_bad_input_is_refused_by_preflight_in_a_real_run(standin, tmp_path, reliability_row, case: PreflightCase):
    ep = standin.endpoints
    cfg = base_pipeline(ep)
    env = connection_env(ep)
    case.setup(standin, cfg, env)
    write_pipeline(tmp_path / "pipelines", cfg)
    standin.control.clear_requests()  # setup writes (an existing definition) are not the pipeline's
    result = run_dag_test(cfg["dag_id"], LOGICAL_DATE, tmp_path / "dags-test.log", env=env,
                          pipelines_dir=tmp_path / "pipelines", conf=case.conf)
    measured = write_counts(standin)

    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.exit_code != 0 and result.state == "failed", (result.run, states)
    assert states.pop("preflight") == "failed", states
    assert next(t["try"] for t in result.tasks if t["task"] == "preflight") == 1  # bad input: no retry
    assert states.pop("run_summary") == "success", states  # the read-only report runs whatever failed
    assert set(states.values()) == {"upstream_failed"}, states  # nothing else after preflight ran
    log = result.log
    assert "AirflowFailException: Preflight found" in log and "nothing was changed in Azure" in log, log[-3000:]
    problem = next(line for line in log.splitlines() if line.lstrip().startswith("1. ") and f"{case.field}: " in line)
    assert_names_field_value_fix(problem, case.field, case.value, case.fix)
    assert case.reason in problem, problem
    assert measured["write_attempts"] == 0 and measured["writes"] == 0, measured
    assert measured["total"] > 0  # preflight did read Azure: the zero is measured, not an empty log
    if case.id == "shared-key-batch-connection":
        name = ep["demo"]["batch_account"]
        assert ep["batch_accounts"][name]["primary_key"] not in log  # the key is refused, never echoed
    reliability_row(f"bad input (preflight): {case.id}", runs=1, survived=True, leaked=measured["writes"],
                    writes_before_refusal=measured["write_attempts"], note=problem.strip()[:200])


def test_account_region_left_out_is_added_by_preflight(standin, tmp_path, reliability_row):
    """The other half of the decision in the module docstring: an undeclared account region is added, not refused."""
    ep = standin.endpoints
    cfg = base_pipeline(ep)
    cfg["gallery"]["location"] = "northeurope"
    cfg["target_regions"] = [{"name": "northeurope"}]
    cfg["pools"][0]["batch_account_location"] = None
    write_pipeline(tmp_path / "pipelines", cfg)
    standin.control.clear_requests()
    log_path = tmp_path / "dags-test.log"
    # Preflight (and pool_specs, which maps its plan) alone: every other task is marked success without running.
    rc = _dags_test_cli([cfg["dag_id"], LOGICAL_DATE, "--mark-success-pattern", "(?!(preflight|pool_specs)$).*"],
                        connection_env(ep), tmp_path / "pipelines", log_path)
    measured = write_counts(standin)
    run, tasks, xcoms = read_run(cfg["dag_id"], LOGICAL_DATE)
    log = log_path.read_text(errors="replace")
    assert rc == 0 and run["state"] == "success", log[-3000:]
    plan = xcoms["preflight:return_value"]
    assert [r["name"] for r in plan["target_regions"]] == ["northeurope", "westeurope"]
    assert plan["replica_sizing"]["per_region"]["westeurope"]["vm_count"] == cfg["pools"][0]["target_dedicated_nodes"]
    assert "westeurope, which is not among target_regions" in log and "is added to the target regions" in log
    assert measured["write_attempts"] == 0
    reliability_row("bad input (accepted): undeclared account region added", runs=1, survived=True,
                    leaked=measured["writes"], writes_before_refusal=None,
                    note="preflight adds westeurope to target_regions with a WARNING (declared: refused at parse)")
