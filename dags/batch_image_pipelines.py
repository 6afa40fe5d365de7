"""Image-to-pool pipelines: one DAG per image definition declared in include/pipelines/*.yaml.

Each DAG does Microsoft's recipe "create a Batch pool from a Shared Image Gallery image" with one
task per step, passing resource IDs through XCom. The graph reads as the flow:

1. Build: preflight -> snapshot_disks -> wait_for_snapshots -> create_managed_image -> publish_image_version (a
   base_image pipeline first makes and generalizes a build VM). Beside it preflight -> sweep_leftovers (earlier
   runs' leftovers) and preflight -> dry_run_gate -> pool_specs.
2. One lane per logical pool (the mapped task group ``pool_lane`` over pool_specs' output, task ids without a group
   prefix): plan_roll -> create_pool -> wait_for_pool_steady -> smoke_test [-> approve_roll, only when a pool has
   require_approval]. Each lane runs at its own pace: a pool that is created early is steady and smoke-tested
   while another is still being created (Airflow 3.3 makes a mapped task wait for every map index of a mapped
   upstream unless both are in one mapped task group).
3. promote_image_version (one task: promotion is per version, so it waits for every lane's canary), then one
   roll_pool per logical pool (the mapped task group ``roll_lane`` over the same pool_specs: lane i rolls what
   plan_roll[i] decided), then retire_old_versions (one task).
4. Clean up. Two teardowns: delete_temporary_resources removes the snapshots and the managed image even when a
   later step fails; discard_canaries deletes this run's new pools that never became serving (a step before
   roll_pool failed), only when nothing uses them. run_summary comes last, whatever failed.

For a Trusted Launch source VM, create_managed_image makes nothing and says why (Azure cannot capture such a VM in
a managed image) and publish_image_version makes the version from the snapshots.

Replication: publish_image_version creates the version with excludeFromLatest true and waits for the version's
create operation, which covers replication to every target region; a region that ends Failed is retried (removed
from targetRegions and added back, up to two times, then the task fails naming it). Each create_pool still waits
(deferred) for the replica in its own Batch account's region with no operation in flight on the version, as a
guard, and retries that region if it failed meanwhile; the wait is inside create_pool, not a task of its own, to
keep the lane short; only the first pool of the plan in a region retries it, the other pools of the region wait
for it (operators/replica.py). promote_image_version waits for every target region (same retry) before it sets
excludeFromLatest false; a failed promotion leaves the version excluded and discard_canaries removes the new
pools. The temporary snapshots / managed image stay until promotion saw every region.

This file imports no Azure SDK: operators import their hooks when they run, so the DAG parses fast.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG, AssetAlias, Param, XComArg, task_group

from batch_images.notifications import Wiring
from batch_images.operators.build_vm import BuildVmOperator, DeleteBuildVmOperator, GeneralizeBuildVmOperator
from batch_images.operators.cleanup import DeleteTemporaryResourcesOperator, RetireOldVersionsOperator
from batch_images.operators.gallery import (
    ExistingVersionsOperator,
    GalleryImageVersionOperator,
    PromoteImageVersionOperator,
)
from batch_images.operators.image import ManagedImageOperator
from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import (
    BuildGateOperator,
    DryRunGateOperator,
    PoolSpecsOperator,
    PreflightOperator,
)
from batch_images.operators.roll import (
    DiscardCanariesOperator,
    PlanRollOperator,
    RollApprovalOperator,
    RollPoolOperator,
)
from batch_images.operators.smoke import PoolSmokeTestOperator
from batch_images.operators.snapshot import SnapshotDisksOperator
from batch_images.operators.summary import RunSummaryOperator
from batch_images.operators.sweep import SweepLeftoversOperator
from batch_images.rules.config import PipelineConfig, load_pipelines_dir
from batch_images.schedules import pipeline_schedule
from batch_images.rules.run_options import param_schemas
from batch_images.sensors.arm import ArmResourcesSensor
from batch_images.sensors.pool import BatchPoolSteadySensor

PIPELINES_DIR = Path(os.environ.get("BATCH_IMAGES_PIPELINES_DIR", Path(__file__).resolve().parents[1] / "include" / "pipelines"))


def retry_delay() -> timedelta:
    """Base delay of task retries (exponential backoff on top): 1 minute, or BATCH_IMAGES_RETRY_DELAY_SECONDS.

    The override exists for the fault suite (tests/reliability), which retries tasks many times against
    a stand-in running thousands of times faster than Azure; leave it unset in deployments.
    """
    value = os.environ.get("BATCH_IMAGES_RETRY_DELAY_SECONDS")
    return timedelta(seconds=float(value)) if value else timedelta(minutes=1)


DOC = """
### {dag_id}

{description}

Builds image version `YYYY.MMDD.N` of gallery image definition **{definition}** (gallery `{gallery}`)
from {source}, replicates it to {regions}, and creates {pools} Batch pool(s) pinned to that version.

* **Params** (the trigger form; docs/operations.md): `mode` build (default) or a roll-only run that builds nothing:
  `rollback`, `roll_to_existing`, `revoke` (docs/operations.md, "Roll back"); `rebuild` counts deliberate rebuilds of
  the same logical date (the `N` of the version; a retry or a clear-and-rerun reuses the run's version and resources);
  `version` an explicit Major.Minor.Patch; `target_regions` / `pools` subsets; `strategy`; `canary_only`;
  `allow_downgrade`; `dry_run` (preflight and the plan only, nothing written).
* Temporary snapshots and the managed image are deleted by the `delete_temporary_resources` teardown,
  also when a later step fails.
"""


def run_params(cfg: PipelineConfig) -> dict[str, Param]:
    """The trigger form's Params (schemas from rules/run_options.py; regions and pools from the config)."""
    out = {}
    for name, schema in param_schemas(cfg.all_regions(), [p.pool_id_prefix for p in cfg.pools]).items():
        schema = dict(schema)
        out[name] = Param(schema.pop("default"), description=schema.pop("description"), **schema)
    return out


def base_image_params(cfg: PipelineConfig) -> dict:
    """The trigger form's field of a base_image pipeline: ``base_image_version`` (empty: the configured version,
    or the version a base-image Asset event names)."""
    if cfg.base_image is None:
        return {}
    b = cfg.base_image
    return {"base_image_version": Param(
        None, type=["null", "string"], pattern=r"^[0-9]+(\.[0-9]+){2,3}$", section="Version",
        title="Base image version",
        description=f"An exact version of {b.publisher}:{b.offer}:{b.sku} to build from instead of "
                    f"{b.version!r} (az vm image list --all -p {b.publisher} -f {b.offer} -s {b.sku}); checked in "
                    "the marketplace before anything is created. Empty: the triggering Asset event's version, else "
                    "the configured one.")}


def build_dag(cfg: PipelineConfig) -> DAG:
    pipeline = cfg.to_dict()
    # The pipeline's notifications (docs/operations.md, "Notifications"): failures, rolls, approvals waiting.
    notify = Wiring(pipeline.get("notifications"))
    with DAG(
        dag_id=cfg.dag_id,
        description=cfg.description or f"Batch pool image pipeline for {cfg.image_definition.name}",
        # cron, or cron OR the base image's Asset when a base_image source is watched (batch_images/schedules.py)
        schedule=pipeline_schedule(cfg),
        start_date=datetime.combine(cfg.start_date, datetime.min.time(), tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        # notifications.deadline_minutes: the nightly cut-off (a Deadline Alert; None when not configured)
        deadline=notify.deadline(),
        tags=list(cfg.tags) or ["azure", "batch", "images"],
        default_args={
            "owner": cfg.owner,
            "retries": 2,
            "retry_delay": retry_delay(),
            "retry_exponential_backoff": True,
            "on_failure_callback": notify.notifiers("failure") or None,
        },
        # The trigger form: one Param per run option, grouped by section (rules/run_options.py holds the schemas
        # and validates them again in preflight, for the REST API and --conf); base_image pipelines add one.
        params={**run_params(cfg), **base_image_params(cfg)},
        doc_md=DOC.format(
            dag_id=cfg.dag_id, description=cfg.description, definition=cfg.image_definition.name,
            gallery=cfg.gallery.name,
            source=f"VM `{cfg.source_vm.name}`" if cfg.source_vm else f"a build VM from `{cfg.base_image.urn}`",
            regions=", ".join(r.name for r in cfg.target_regions), pools=len(cfg.pools),
        ),
        render_template_as_native_obj=True,
    ) as dag:
        preflight = PreflightOperator(task_id="preflight", pipeline=pipeline, rebuild="{{ params.rebuild }}",
                                      arm_conn_id=cfg.arm_conn_id)
        plan = preflight.output
        # A dry run (params.dry_run) stops here: every later task is skipped, the teardowns write nothing.
        dry_run_gate = DryRunGateOperator(task_id="dry_run_gate", plan=plan)
        # Leftovers of earlier runs that crashed (snapshots, managed images, smoke-test jobs, canary pools older than
        # 6 h whose run is over; never a pool in use): removed before this run makes new ones (operators/sweep.py).
        sweep = SweepLeftoversOperator(task_id="sweep_leftovers", plan=plan, arm_conn_id=cfg.arm_conn_id)
        dry_run_gate >> sweep
        waits = {"poll_interval": cfg.poll_interval_seconds}
        # A roll-only run (params.mode rollback / roll_to_existing / revoke; docs/operations.md, "Roll back") builds
        # nothing: the gate skips the build steps (and so publish_image_version); ready_existing_versions does the
        # version step instead.
        build_gate = BuildGateOperator(task_id="build_gate", plan=plan)
        dry_run_gate >> build_gate
        snapshots = SnapshotDisksOperator(task_id="snapshot_disks", plan=plan, arm_conn_id=cfg.arm_conn_id,
                                          wait_for_completion=False)
        build_teardown = None
        if cfg.base_image is not None:
            # A base_image pipeline's source is a build VM (operators/build_vm.py): made from the exact base version
            # with the custom-data script, waited for until its guest powered off, deallocated and generalized; its
            # disks (ids planned by preflight) go through the same snapshot chain. The teardown deletes it with its
            # NIC and disks once they are snapshotted, and also when any step before failed.
            build_vm = BuildVmOperator(task_id="prepare_build_vm", plan=plan, arm_conn_id=cfg.arm_conn_id, **waits)
            generalized = GeneralizeBuildVmOperator(task_id="generalize_build_vm", plan=plan,
                                                    arm_conn_id=cfg.arm_conn_id, **waits)
            build_gate >> build_vm >> generalized >> snapshots
            build_teardown = DeleteBuildVmOperator(task_id="delete_build_vm", plan=plan, arm_conn_id=cfg.arm_conn_id,
                                                   **waits)
        else:
            build_gate >> snapshots
        wait_snapshots = ArmResourcesSensor(task_id="wait_for_snapshots", resource_ids=snapshots.output,
                                            operations=XComArg(snapshots, key="operations"),
                                            created_at=XComArg(snapshots, key="created_at"),
                                            arm_conn_id=cfg.arm_conn_id, **waits)
        image = ManagedImageOperator(task_id="create_managed_image", plan=plan, snapshots=snapshots.output,
                                     arm_conn_id=cfg.arm_conn_id, **waits)
        # For a Trusted Launch source create_managed_image returns None at once (no managed image can capture such
        # a VM) and the version is made from the snapshots (plan["image_path"], decided by preflight).
        version = GalleryImageVersionOperator(task_id="publish_image_version", plan=plan, image_id=image.output,
                                              snapshots=snapshots.output, arm_conn_id=cfg.arm_conn_id, **waits)
        # A roll-only run's version step instead (revoke; missing regions added); a build run skips it.
        existing = ExistingVersionsOperator(task_id="ready_existing_versions", plan=plan, arm_conn_id=cfg.arm_conn_id,
                                            **waits)
        dry_run_gate >> existing
        # Airflow maps over return values only: pool_specs hands the plan's pools list to the mapped tasks.
        specs = PoolSpecsOperator(task_id="pool_specs", plan=plan).output
        dry_run_gate >> specs
        # One lane per logical pool (docs/concepts.md, "Rolling pools to a new version"): decide and lease, canary,
        # steady, smoke test, approval, as one mapped task group expanded over pool_specs, so each pool's chain runs at
        # its own pace (Airflow 3.3 makes a mapped task wait for every map index of a mapped upstream unless both are in
        # one mapped task group).
        # prefix_group_id=False keeps the task ids (plan_roll, create_pool, ...; map index = the pool's place in
        # the plan). plan_roll's output (a RollDecision: the pool spec plus the decision) is every later pool task's
        # pool_spec.
        @task_group(group_id="pool_lane", prefix_group_id=False)
        def pool_lane(pool_spec):
            """One logical pool: plan_roll -> create_pool -> wait_for_pool_steady -> smoke_test [-> approve_roll]."""
            # One of publish_image_version (a build) and ready_existing_versions (a roll-only run) is skipped.
            decide = PlanRollOperator(task_id="plan_roll", pool_spec=pool_spec, image_version_id=version.output,
                                      allow_downgrade="{{ params.allow_downgrade }}", strategy="{{ params.strategy }}",
                                      trigger_rule="none_failed_min_one_success")
            existing >> decide
            decision = decide.output
            # Waits for its own account region's replica first (and retries it if it fails; operators/replica.py).
            # The decision names the version (the built one, or a roll-only run's target for this pool).
            canary = BatchPoolOperator(task_id="create_pool", pool_spec=decision, plan=plan,
                                       arm_conn_id=cfg.arm_conn_id, **waits)
            steady = BatchPoolSteadySensor(task_id="wait_for_pool_steady", pool_spec=decision, **waits)
            # The canary's smoke test (pools with smoke_test; a no-op when the run makes no new pool). A failure stops
            # the run before promotion: the version stays excluded and discard_canaries deletes the new pool.
            smoke = PoolSmokeTestOperator(task_id="smoke_test", pool_spec=decision, **waits)
            canary >> steady >> smoke
            if any(p.require_approval for p in cfg.pools):
                smoke >> RollApprovalOperator(task_id="approve_roll", pool_spec=decision,
                                              notifiers=notify.notifiers("approval"))

        lanes = pool_lane.expand(pool_spec=specs)
        # Promotion is per version: once, after every lane's gate (no pool's canary can still fail), reading every
        # lane's decision (outside the group, plan_roll's XCom is the list of all lanes' outputs).
        rolls = XComArg(dag.get_task("plan_roll"))
        promote = PromoteImageVersionOperator(task_id="promote_image_version", plan=plan, rolls=rolls,
                                              arm_conn_id=cfg.arm_conn_id, **waits)
        lanes >> promote

        # The roll part, one lane per logical pool again: a mapped task group over the same pool_specs, so lane i is
        # plan_roll's lane i; roll_pool reads that lane's decision by map index (Airflow cannot expand over the output
        # of a task inside a mapped task group: apache/airflow#55759).
        @task_group(group_id="roll_lane", prefix_group_id=False)
        def roll_lane(pool_spec):
            """One logical pool: roll_pool moves it to the promoted version."""
            RollPoolOperator(task_id="roll_pool", outlets=[AssetAlias(f"batch-pool-rolls-{cfg.dag_id}")],
                             pool_spec="{{ ti.xcom_pull(task_ids='plan_roll', map_indexes=ti.map_index) }}",
                             on_success_callback=notify.notifiers("roll") or None, **waits)

        roll_pool = roll_lane.expand(pool_spec=specs)
        promote >> roll_pool
        # Retention once every logical pool rolled: old versions nothing references are deleted, superseded ones get
        # their endOfLifeDate (operators/cleanup.py, rules/retention.py).
        retire = RetireOldVersionsOperator(task_id="retire_old_versions", plan=plan, arm_conn_id=cfg.arm_conn_id,
                                           **waits)
        roll_pool >> retire
        # This run's new pools that never became serving (a step before roll_pool failed) are deleted if unused.
        discard = DiscardCanariesOperator(task_id="discard_canaries", plan=plan)
        retire >> discard
        discard.as_teardown(setups=preflight)
        cleanup = DeleteTemporaryResourcesOperator(task_id="delete_temporary_resources", plan=plan,
                                                   snapshots=snapshots.output, image_id=image.output,
                                                   arm_conn_id=cfg.arm_conn_id, **waits)
        wait_snapshots >> image
        if build_teardown is not None:
            wait_snapshots >> build_teardown
            build_teardown.as_teardown(setups=preflight, on_failure_fail_dagrun=True)
        version >> cleanup
        # publish_image_version returns once the gallery's region is replicated; the source (managed image or
        # snapshots) stays until promote_image_version saw every region Completed.
        promote >> cleanup
        # Preflight (which writes nothing) is the setup: if snapshot_disks itself fails half-way, the
        # teardown still runs and removes what it made. A failed cleanup fails the run: a leak is an error.
        cleanup.as_teardown(setups=preflight, on_failure_fail_dagrun=True)
        # The run's summary in the UI (its log and XCom; operators/summary.py), once everything else is done. A
        # teardown without setups: it runs whatever failed, and (like discard_canaries) its own state does not
        # decide the run's.
        summary = RunSummaryOperator(task_id="run_summary", plan_task_id=preflight.task_id, arm_conn_id=cfg.arm_conn_id)
        [cleanup, discard, sweep, *([build_teardown] if build_teardown is not None else [])] >> summary
        summary.as_teardown()
    return dag


# A dag_id declared in two files is an import error naming both (rules/config.py load_pipelines_dir).
for _cfg in load_pipelines_dir(PIPELINES_DIR):
    globals()[_cfg.dag_id] = build_dag(_cfg)
