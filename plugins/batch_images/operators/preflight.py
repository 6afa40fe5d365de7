"""Preflight: check every rule of the recipe against Azure before anything is created, and write the plan.

:class:`PreflightOperator` makes **no writes** (only ARM and Batch GETs). It checks what Microsoft's
recipe ("create a Batch pool from a Shared Image Gallery image") demands, collects *all* problems and
fails once with every one of them - each naming the input (config field), its value and the fix - as an
:class:`~airflow.sdk.exceptions.AirflowFailException` (bad input: retrying cannot help).

Checks:

* the source VM exists, its OS and data disks are managed, it has no VM extensions;
* its base image is a first-party marketplace image (no purchase plan, publisher in
  :data:`FIRST_PARTY_PUBLISHERS`) that Batch lists in ``GET /supportedimages`` (asked through the first
  pool's Batch connection); ``nodeAgentSKUId`` comes from that list - an override (operator argument, or
  the config's ``node_agent_sku_id``) must be a known agent for the image's OS and lineage;
* the image definition's ``os_type`` / ``hyper_v_generation`` match the VM; an existing definition must
  be Generalized with the same OS type and generation; an existing gallery must be in the configured
  region;
* ``Microsoft.Batch`` is registered in the gallery's subscription (Batch reads the image from there);
* each pool's Batch account exists; its region is a target region (added, with a WARNING, when the
  config leaves it out); each Batch connection uses Entra ID, not a Shared Key, and points at that
  account;
* version name (from the run's logical date and ``rebuild``), pool ids (prefix + version <= 64
  characters) and replica counts, through :mod:`batch_images.rules`;
* for a ``base_image`` pipeline, instead of the source VM: the exact base version (the trigger form's
  ``base_image_version``, else a triggering Asset event's extra ``version``, else ``base_image.version``; ``latest``
  resolved to the newest), that it exists, is first-party and has no purchase plan, and the custom-data file
  (exists, at most 65,535 bytes: 87,380 base64 characters); the build VM is planned (``plan.build``) with the disk
  ids it will have;
* for both kinds, the node agent's ``batchSupportEndOfLife``: a warning under 90 days, refused once passed;
* hardware and quotas against Azure's Resource SKUs (:mod:`batch_images.operators.preflight_hardware`, rules in
  :mod:`batch_images.rules.vm_sizes`): each rolled pool's and the build VM's size is offered in its region and not
  restricted for the subscription, boots the image's Hyper-V generation and security type, holds a template's
  ephemeral OS disk and ``taskSlotsPerNode``; each ``Standard_ZRS`` target region has availability zones; the new
  pools fit the Batch accounts' core quotas and ``poolQuota`` beside the pools they already have.

This module does the reads (ARM and Batch GETs) and the orchestration only; a ``base_image`` pipeline's reads (the
base version, the marketplace image, the custom-data file) are :mod:`batch_images.operators.preflight_base_image`.
The checks are :mod:`batch_images.rules.preflight` (facts + config -> problems), the plan is
:func:`batch_images.rules.plan.build_plan`.

Output: the plan dict (returned, so XCom ``return_value``) and XCom ``pools``: the per-pool specs for
``BatchPoolOperator`` / ``BatchPoolSteadySensor`` (``pool_spec=``). Airflow 3 maps only over return values,
so a DAG maps over :class:`PoolSpecsOperator`'s output (the same list) rather than over the ``pools`` key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

from batch_images.operators.preflight_base_image import read_base_image, versions_of
from batch_images.operators.preflight_hardware import PoolReads, check_hardware, template_root
from batch_images.operators.preflight_permissions import check_permissions
from batch_images.pool_facts import iso_duration
from batch_images.rules import ids
from batch_images.rules import preflight as checks
from batch_images.rules.config import PipelineConfig, TargetRegionConfig
from batch_images.rules.errors import InvalidInput
from batch_images.rules import roll_targets, run_options
from batch_images.rules.plan import Plan, build_plan, describe

if TYPE_CHECKING:
    from airflow.sdk import Context


class PreflightOperator(BaseOperator):
    """Check the recipe's rules against Azure (read-only) and return the run's plan.

    :param pipeline: the pipeline config as plain data (``PipelineConfig.to_dict()``). (templated)
    :param rebuild: the ``N`` of version ``YYYY.MMDD.N`` (usually ``"{{ params.rebuild }}"``). (templated)
    :param arm_conn_id: Azure (ARM) connection; default: the config's ``arm_conn_id``. (templated)
    :param node_agent_sku_id: override of the node agent SKU; default: the config's, else derived from
        Batch's supported images. (templated)
    :param options: the run's options (``rules/run_options.py``: version, target_regions, pools, strategy,
        canary_only, allow_downgrade, dry_run); default: the run's params (the trigger form or ``--conf``), which are
        validated again here. ``rebuild`` above wins over ``options["rebuild"]``. (templated)
    :return: the plan (``Plan.to_dict()``, see docs/architecture.md, with ``options``); XCom ``pools`` holds the
        per-pool specs. With ``dry_run`` the plan is also logged as text (every name, id, replica count, timeout
        and, read from Batch, each logical pool's roll decision).
    """

    template_fields: Sequence[str] = ("pipeline", "rebuild", "arm_conn_id", "node_agent_sku_id", "options")
    ui_color = "#c8e6c9"

    def __init__(self, *, pipeline: dict, rebuild: int | str = 0, arm_conn_id: str | None = None,
                 node_agent_sku_id: str | None = None, options: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.rebuild = rebuild
        self.arm_conn_id = arm_conn_id
        self.node_agent_sku_id = node_agent_sku_id
        self.options = options

    def render_template(self, content: Any, context: Any, jinja_env: Any = None, seen_oids: Any = None) -> Any:
        """A string without Jinja markup is kept as written: the DAG renders natively
        (``render_template_as_native_obj``), which literal-evals every rendered string, so a pool template's
        ``"version": "1.0"`` or an environment value ``"8080"`` in ``pipeline`` would reach the checks as a number."""
        if isinstance(content, str) and "{{" not in content and "{%" not in content:
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def _options(self, cfg: PipelineConfig, context: Context, found: checks.Findings) -> run_options.RunOptions:
        """The run's params validated again (the REST API and ``--conf`` can pass what the form refuses); a bad one
        is a problem in ``found`` (reported with the others, before any write) and the defaults stand in."""
        params = context.get("params") or {}
        raw = dict(self.options) if self.options is not None else {k: params[k] for k in params}
        raw["rebuild"] = self.rebuild
        declared = set(getattr(self.dag, "params", None) or {}) if self.has_dag() else set()
        if cfg.base_image is not None:  # read by read_base_image (the form's field of base_image pipelines)
            declared.add("base_image_version")
        try:
            return run_options.parse_run_options(raw, regions=cfg.all_regions(),
                                                 pools=[p.pool_id_prefix for p in cfg.pools], known=declared)
        except InvalidInput as err:
            found.add_error(err)
            return run_options.RunOptions()

    def _config(self) -> PipelineConfig:
        try:
            return PipelineConfig.from_dict(self.pipeline, "pipeline")
        except InvalidInput as err:
            raise AirflowFailException(f"Preflight: the pipeline config is not valid; nothing was changed in Azure.\n"
                                       f"  1. {err}") from None
        except (TypeError, ValueError) as err:
            raise AirflowFailException(f"Preflight: the pipeline config is not valid: {err}") from None

    @staticmethod
    def _logical_date(context: Context) -> date | datetime | None:
        logical = context.get("logical_date")
        if logical is not None:
            return logical
        dag_run = context.get("dag_run")
        return getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)

    def execute(self, context: Context) -> dict:
        """Run the checks; bad input of any kind fails the task at once (no retry can fix it).

        Besides the problems the checks collect, a connection that is missing or whose extras are not valid
        (e.g. a ``ca_bundle`` that names no file, no ``subscriptionId``) surfaces as InvalidInput /
        AirflowNotFoundException from the hooks: it becomes the same AirflowFailException. Azure's transient
        answers (throttling, 5xx, network errors) still raise as they are, so Airflow retries the task.
        """
        try:
            return self._execute(context)
        except (InvalidInput, AirflowNotFoundException) as err:
            self.log.error("Preflight: %s", err)
            raise AirflowFailException(
                f"Preflight: a connection or config value is not valid; nothing was changed in Azure.\n  1. {err}"
            ) from None

    def _execute(self, context: Context) -> dict:
        from batch_images.hooks.arm import ArmComputeHook

        cfg = self._config()
        found = checks.Findings()
        dag_run = context.get("dag_run")
        run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or "manual"
        logical = self._logical_date(context)
        options = self._options(cfg, context, found)
        # A roll-only run (params.mode) builds nothing: the date-derived name only stands in until its targets are
        # known (the source is still read: the pools' node agent comes from it).
        version = options.version or checks.check_version(0 if options.roll_only else options.rebuild, logical, found)
        arm_conn_id = self.arm_conn_id or cfg.arm_conn_id
        arm = ArmComputeHook(azure_conn_id=arm_conn_id)
        self.log.info("Preflight of pipeline %s: run %s, logical date %s, version %s", cfg.dag_id, run_id,
                      logical, version)
        # The caller's rights first (docs/real-azure.md, least-privilege roles), at the scopes the config names: a
        # missing role fails here, named, before even a read could be refused (an adopted pool's subnet, known only
        # once its pool is read, is checked again below).
        check_permissions(arm, cfg, options, {}, found, self.log)
        if found:
            self._fail(cfg, found)

        build = None
        if cfg.base_image is not None:  # a build VM from a marketplace base (docs/base-image.md)
            source, build, version = read_base_image(arm, cfg, version, context, found, self.log,
                                                     explicit_version=bool(options.version) or options.roll_only)
        else:
            source = checks.check_source_vm(self._read_vm(arm, cfg.source_vm_id), found)
        agent, capabilities = None, []
        if source is not None and source.base_ok:  # else already reported: not a first-party marketplace image
            agent, capabilities = self._node_agent(cfg, source, found)
        checks.check_image_definition_config(cfg, source, found)
        gallery = arm.find_resource(cfg.gallery_id)
        definition = arm.find_resource(cfg.image_definition_id) if gallery is not None else None
        checks.check_gallery(cfg, gallery, definition, found)
        security = checks.check_security_and_definition(cfg, source, definition, found)
        checks.check_batch_provider(cfg.gallery.subscription_id, self._batch_registration(arm, cfg), found)
        pool_facts = [self._read_pool(arm, p) for p in cfg.pools]
        account_regions, extra_regions = checks.check_pools(cfg, pool_facts, found)
        for err in run_options.check_coverage(options, gallery_region=cfg.gallery.location, pool_regions=[
                (p.pool_id_prefix, account_regions.get(p.batch_account_id) or p.batch_account_location)
                for p in cfg.pools]):
            found.add_error(err)

        publish_cfg = _with_target_regions(cfg, extra_regions)
        replica_plan = None
        try:
            replica_plan = publish_cfg.replica_plan(account_regions)
        except InvalidInput as err:
            found.add_error(err)
        reads: dict[int, PoolReads] = {}
        adopted = self._pool_templates(cfg, found, arm, account_regions, reads)
        # The definition's versions: which are revoked (never built again or rolled to), a roll-only run's targets.
        infos = roll_targets.version_infos(versions_of(arm, cfg.image_definition_id) if definition else [])
        targets = None
        if options.roll_only:
            targets = self._roll_targets(cfg, options, infos, account_regions, reads, found)
            version = targets.newest() or version
        elif version is not None:
            problem = roll_targets.revoked_target_problem(version, infos, "params.version" if options.version
                                                          else "params.rebuild")
            if problem is not None:
                found.add_error(problem)
        pool_ids = checks.check_pool_ids(cfg, version, found, targets.version if targets else None)
        if source is not None:
            _check_image_fit(cfg, reads, source, capabilities, found)
        check_hardware(arm, cfg, options=options, version=version, source=source, security=security,
                       definition=definition, accounts={p.batch_account_id: f.account for p, f in
                                                        zip(cfg.pools, pool_facts)},
                       account_regions=account_regions, publish_cfg=publish_cfg, reads=reads, pool_ids=pool_ids,
                       found=found)
        if any(p.adopt_pool_id for p in cfg.pools):  # an adopted pool's subnet: known only from its pool
            check_permissions(arm, cfg, options, reads, found, self.log)
        self._log_notes(found)

        if found or source is None or version is None or replica_plan is None or agent is None or security is None \
                or (cfg.base_image is not None and build is None):
            self._fail(cfg, found)
        assert version is not None and source is not None and replica_plan is not None and agent is not None
        notes: list[tuple[str, str]] = []
        plan = build_plan(
            cfg, publish_cfg=publish_cfg, dag_id=self.dag_id, run_id=run_id, logical=logical, version=version,
            arm_conn_id=arm_conn_id, source=source.to_source(), location=source.location or cfg.gallery.location,
            agent=agent, account_regions=account_regions, replica_plan=replica_plan,
            pool_ids=pool_ids, security=security, today=datetime.now(timezone.utc).date(), duration=iso_duration,
            notes=notes, build=build, options=options, adopted=adopted,
            targets=targets.version if targets else None)
        plan = plan.model_copy(update={"revoked_versions": roll_targets.revoked_names(infos) + (
            [options.version] if options.mode == run_options.REVOKE and options.version not in
            roll_targets.revoked_names(infos) else []),
            "not_rolled": targets.not_rolled if targets else {},
            "add_regions": targets.add_regions if targets else {}})
        self._log_notes(notes)
        if options.dry_run:
            plan = plan.model_copy(update={"roll_decisions": self._roll_decisions(plan)})
            self.log.info("DRY RUN - nothing will be written; every later task is skipped.\n%s", describe(plan))
        out = plan.to_dict()
        context["ti"].xcom_push(key="pools", value=out["pools"])
        self.log.info("Preflight passed: version %s, %d pool(s): %s", version, len(plan.pools),
                      ", ".join(p.pool_id for p in plan.pools))
        return out

    def _roll_targets(self, cfg: PipelineConfig, options: run_options.RunOptions,
                      infos: list[roll_targets.VersionInfo], account_regions: dict[str, str],
                      reads: dict[int, PoolReads], found: checks.Findings) -> roll_targets.Targets:
        """A roll-only run's target per selected logical pool (rules/roll_targets.py), from the serving pools
        :meth:`_pool_templates` read; refusals go to ``found``, notes to the log."""
        rolled = [roll_targets.RolledPool(i, p.pool_id_prefix, account_regions.get(p.batch_account_id)
                                          or p.batch_account_location, reads[i].serving if i in reads else None)
                  for i, p in enumerate(cfg.pools) if options.rolls(p.pool_id_prefix)]
        targets = roll_targets.choose_targets(options, infos, rolled, cfg.image_definition.name)
        for err in targets.problems:
            found.add_error(err)
        for line in targets.notes:
            found.notes.append(("info", line))
        for logical, why in targets.not_rolled.items():
            found.notes.append(("info", f"Logical pool {logical}: {why}; left alone"))
        return targets

    def _pool_templates(self, cfg: PipelineConfig, found: checks.Findings, arm: Any,
                        account_regions: dict[str, str], reads: dict[int, PoolReads]) -> dict[int, dict]:
        """Per logical pool: its serving pool read (GET) and its drift from the template logged; for an
        ``adopt_pool_id`` pool the template read from the serving pool (the adopted one on the first run), its
        Batch cross-field rules checked; the template's subnet checked for region and room for both pools
        (:func:`~batch_images.rules.subnet_capacity.subnet_problems`). Returns pool index -> adopted template, and
        fills ``reads`` (pool index -> what was read, for the quota checks). Reads only."""
        from batch_images.hooks.batch import BatchPoolHook
        from batch_images.rules import pool_template, roll

        adopted: dict[int, dict] = {}
        listings: dict[str, list] = {}
        jobs_in_use: dict[str, int] = {}  # Batch connection -> its account's active jobs + job schedules
        for i, pool in enumerate(cfg.pools):
            try:
                hook = BatchPoolHook(pool.batch_conn_id)
                hook.load_connection()
            except (AirflowNotFoundException, InvalidInput):
                continue  # reported by check_pools
            try:
                if pool.batch_conn_id not in listings:
                    listings[pool.batch_conn_id] = hook.list_pool_listing()
                if pool.smoke_test is not None and pool.batch_conn_id not in jobs_in_use:  # the smoke test adds a job
                    jobs_in_use[pool.batch_conn_id] = len(hook.list_active_jobs()) + len(hook.list_job_schedules_json())
                serving = roll.serving_pool(roll.physical_pools(listings[pool.batch_conn_id], pool.pool_id_prefix))
                serving_json = hook.get_pool_json(serving.pool_id) if serving is not None else None
                if pool.adopt_pool_id is not None and serving_json is None:
                    serving_json = hook.get_pool_json(pool.adopt_pool_id)
                    if serving_json is None:
                        found.add(f"pools[{i}].adopt_pool_id", pool.adopt_pool_id, "no pool with this id in the Batch "
                                  f"account {pool.account_name}", "give the id of an existing pool (az batch pool "
                                  "list), or describe the pool with template instead")
                        continue
                if pool.adopt_pool_id is None and serving_json is not None:
                    self._check_formula(i, hook, pool.pool_template, serving_json, found)
            finally:
                hook.close_sync()
            template = pool.pool_template
            if pool.adopt_pool_id is not None:
                template = pool_template.template_from_pool(serving_json, self._arm_pool_tags(
                    arm, pool.batch_account_id, serving_json["id"]))
                for err in pool_template.template_problems(template, f"pools[{i}].adopt_pool_id"):
                    found.add_error(err)
                adopted[i] = template
            reads[i] = PoolReads(listings[pool.batch_conn_id], serving, serving_json, template,
                                 jobs_in_use.get(pool.batch_conn_id))
            self._check_secret_variables(i, template or {}, found)
            self._check_subnet(i, pool, template, serving_json, arm,
                               account_regions.get(pool.batch_account_id) or pool.batch_account_location, found)
            if pool.adopt_pool_id is None and serving_json is not None:
                lines = pool_template.drift(template, serving_json)
                found.notes.append(("warning" if lines else "info", f"Logical pool {pool.pool_id_prefix}: serving pool "
                                    f"{serving_json.get('id')} " + ("differs from the template (the next roll "
                                    "replaces it with the template):\n  " + "\n  ".join(lines) if lines
                                    else "matches the template")))
        return adopted

    @staticmethod
    def _arm_pool_tags(arm: Any, batch_account_id: str, pool_id: str) -> dict | None:
        """The ARM ``tags`` of an adopted pool's resource (one ARM Pool_Get): the data plane does not return them."""
        from batch_images.hooks.batch_mgmt import BatchManagementHook

        mgmt = BatchManagementHook(azure_conn_id=arm.conn_id)
        try:
            return (mgmt.get_pool(batch_account_id, pool_id) or {}).get("tags")
        finally:
            mgmt.close_sync()

    @staticmethod
    def _check_secret_variables(i: int, template: dict, found: checks.Findings) -> None:
        """Every ``secret:variable/<name>`` of the template names an Airflow Variable. The Task SDK has no exists
        call, so the value is read: it is masked at once (as create_pool does) and not kept."""
        from airflow.sdk import Variable
        from airflow.sdk.log import mask_secret

        from batch_images.rules import pool_template

        for name in pool_template.secret_variables(template):
            value = Variable.get(name, default=None)
            if value is not None:
                mask_secret(value)
            else:
                found.add(f"pools[{i}].template", f"secret:variable/{name}", f"no Airflow Variable {name!r} (a "
                          "secret the template refers to)", f"create it: airflow variables set {name} <value>, "
                          f"AIRFLOW_VAR_{name.upper()}, or a secrets backend")

    def _check_formula(self, i: int, hook: Any, template: dict | None, serving: dict, found: checks.Findings) -> None:
        """The template's autoscale formula evaluated on the serving pool where Batch allows it (that pool has
        autoscale enabled): one ``evaluateautoscale`` request, which changes nothing; a formula Batch rejects is
        refused."""
        from azure.core.exceptions import HttpResponseError

        formula = (template or {}).get("autoScaleFormula")
        if not (template or {}).get("enableAutoScale") or not formula or not serving.get("enableAutoScale"):
            return
        try:
            run = hook.evaluate_auto_scale(serving["id"], formula)
        except HttpResponseError as err:  # 400: a formula Batch refuses outright (too long); else: cannot evaluate
            if err.status_code != 400:
                found.warning(f"Pool {serving['id']}: the template's autoscale formula could not be evaluated ({err})")
                return
            run = {"error": {"code": getattr(err.error, "code", None), "message": err.message}}
        problem = checks.autoscale_formula_problem(i, formula, serving["id"], run)
        if problem is not None:
            found.add_error(problem)
        else:
            self.log.info("Pool %s: the template's autoscale formula evaluates to %s", serving["id"],
                          run.get("results"))

    def _check_subnet(self, i: int, pool: Any, template: dict | None, serving: dict | None, arm: Any,
                      account_region: str | None, found: checks.Findings) -> None:
        """Two reads per pool in a subnet (the subnet, its virtual network): the subnet exists, is in the account's
        region and has room for the new pool beside the serving one (blue/green overlaps them)."""
        from batch_images.rules import pool_template, subnet_capacity

        subnet_id = ((template or {}).get("networkConfiguration") or {}).get("subnetId")
        if not subnet_id:
            return
        try:
            vnet_id = ids.parse_arm_id(subnet_id, f"pools[{i}].template.networkConfiguration.subnetId",
                                       ids.SUBNET).parent.id
        except InvalidInput as err:
            found.add_error(err)
            return
        subnet = arm.get_subnet(subnet_id)
        vnet = arm.get_virtual_network(vnet_id) if subnet is not None else None
        new_nodes = sum(pool_template.fixed_targets(template, pool.effective_canary_nodes))
        if template.get("enableAutoScale") and serving:
            new_nodes = max(new_nodes, int(serving.get("currentDedicatedNodes") or 0)
                            + int(serving.get("currentLowPriorityNodes") or 0))
        for err in subnet_capacity.subnet_problems(i, subnet_id, subnet, (vnet or {}).get("location"),
                                                   account_region, serving, new_nodes):
            found.add_error(err)
        if subnet is not None:
            self.log.info("Pool %s: subnet %s (%s) checked for %d new node(s) beside the serving pool",
                          pool.pool_id_prefix, subnet_id, (subnet.get("properties") or {}).get("addressPrefix"),
                          new_nodes)

    def _roll_decisions(self, plan: Plan) -> dict[str, str]:
        """Logical pool -> what plan_roll would decide (rules/roll.py), from one pool list per Batch connection."""
        from batch_images.hooks.batch import BatchPoolHook
        from batch_images.rules import roll

        out: dict[str, str] = {}
        listings: dict[str, list] = {}
        for p in plan.rolled_pools():
            if p.batch_conn_id not in listings:
                hook = BatchPoolHook(p.batch_conn_id)
                try:
                    listings[p.batch_conn_id] = hook.list_pool_listing()
                finally:
                    hook.close_sync()
            serving = roll.serving_pool(roll.physical_pools(listings[p.batch_conn_id], p.logical_pool or ""))
            target = p.target_version or plan.version
            action = roll.decide(target, serving, plan.options.downgrade_allowed, plan.revoked_versions)
            strategy = "blue_green" if plan.options.canary_only else roll.effective_strategy(
                p.roll.strategy, plan.options.strategy)
            where = f" {serving.pool_id} on {serving.version}" if serving else ""
            then = {roll.FIRST: f"first: {p.pool_id} becomes its first serving pool",
                    roll.ROLL: f"roll{where} -> {p.pool_id} ({strategy})",
                    roll.CURRENT: f"current: already served by{where}",
                    roll.SKIP_DOWNGRADE: f"skip_downgrade: served by{where}, newer than {target}"}[action]
            if plan.options.canary_only and action in (roll.FIRST, roll.ROLL):
                then += "; canary only: the canary stays, nothing moves"
            out[p.logical_pool or p.pool_id] = then
        return out

    def _log_notes(self, notes: checks.Findings | list[tuple[str, str]]) -> None:
        for level, text in (notes.notes if isinstance(notes, checks.Findings) else notes):
            (self.log.warning if level == "warning" else self.log.info)("%s", text)
        if isinstance(notes, checks.Findings):
            notes.notes.clear()

    def _fail(self, cfg: PipelineConfig, found: checks.Findings) -> None:
        if not found:  # a check could not run for a reason already reported as an exception
            found.add("pipeline", cfg.dag_id, "preflight could not complete its checks", "see the task log")
        lines = [f"  {i}. {err}" for i, err in enumerate(found.items, 1)]
        for err in found.items:
            self.log.error("Preflight: %s", err)
        raise AirflowFailException(
            f"Preflight found {len(found.items)} problem(s) in pipeline {cfg.dag_id}; nothing was changed in "
            "Azure:\n" + "\n".join(lines))

    # -- reads: what Azure says -------------------------------------------------------------------------------

    def _read_vm(self, arm, vm_id: str) -> checks.VmFacts:
        """The VM (with instanceView), its extensions, its OS disk and the sizes of data disks it leaves out."""
        from azure.core.exceptions import ResourceNotFoundError  # the Azure SDK loads in the worker, not at DAG parse

        try:
            vm = arm.get_vm(vm_id, instance_view=True)
        except ResourceNotFoundError:
            return checks.VmFacts(vm_id=vm_id, vm=None)
        extensions = checks.vm_extension_names(vm)
        if not extensions:
            try:
                extensions = [e.get("name") for e in arm.list_vm_extensions(vm_id)]
            except ResourceNotFoundError:
                extensions = []
        os_disk_id, data_disks = checks.vm_disks(vm)
        os_disk, missing = None, False
        if os_disk_id:
            try:
                os_disk = arm.get_disk(os_disk_id)
            except ResourceNotFoundError:
                missing = True
        sizes = {}
        for d in data_disks:
            if d["disk_id"] and d["size_gb"] is None:
                try:
                    sizes[d["disk_id"]] = (arm.get_disk(d["disk_id"]).get("properties") or {}).get("diskSizeGB")
                except ResourceNotFoundError:
                    pass
        return checks.VmFacts(vm_id=vm_id, vm=vm, extensions=extensions, os_disk=os_disk, os_disk_missing=missing,
                              data_disk_sizes=sizes)

    def _node_agent(self, cfg: PipelineConfig, source: checks.SourceFacts,
                    found: checks.Findings) -> tuple[str | None, list[str]]:
        """Batch's supported images (through the first pool's connection), checked against the VM's base image:
        (the node agent SKU or None, Batch's capabilities of the base image)."""
        from batch_images.hooks.batch import BatchPoolHook  # the Azure SDK loads in the worker, not at DAG parse

        conn_id = cfg.pools[0].batch_conn_id
        try:
            images = BatchPoolHook(conn_id).list_supported_images()
        except AirflowNotFoundException:
            found.add("pools[0].batch_conn_id", conn_id, checks.NO_BATCH_CONN, checks.NO_BATCH_CONN_FIX)
            return None, []
        override = self.node_agent_sku_id or cfg.node_agent_sku_id
        agent = checks.check_supported_image(source, images, conn_id, override, found)
        if agent is not None:  # Batch's retirement date of that agent: warn under 90 days, refuse once passed
            checks.check_node_agent_end_of_life(
                agent, images, datetime.now(timezone.utc).date(), "node_agent_sku_id" if override else source.field,
                override or source.config_value, found)
        match = next((i for i in images if checks.image_key(i) == checks.image_key(source.base_image)), None)
        return agent, list((match or {}).get("capabilities") or [])

    @staticmethod
    def _batch_registration(arm, cfg: PipelineConfig) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            provider = arm.arm_get(ids.provider_path(cfg.gallery.subscription_id, ids.BATCH_NAMESPACE))
        except ResourceNotFoundError:
            return None
        return provider.get("registrationState")

    @staticmethod
    def _read_pool(arm, pool) -> checks.PoolFacts:
        """The pool's Batch account (ARM) and its Batch connection (Airflow)."""
        from azure.core.exceptions import ResourceNotFoundError

        from batch_images.hooks.batch import BatchPoolHook

        try:
            account = arm.arm_get(pool.batch_account_id)
        except ResourceNotFoundError:
            account = None
        try:
            hook = BatchPoolHook(pool.batch_conn_id)
            hook.load_connection()
        except AirflowNotFoundException:
            return checks.PoolFacts(account=account, conn_found=False)
        try:
            url, url_error = hook.account_url, None
        except InvalidInput as err:
            url, url_error = None, err
        return checks.PoolFacts(account=account, uses_shared_key=hook.uses_shared_key, account_url=url,
                                account_url_error=url_error, describe=hook.describe())


def _check_image_fit(cfg: PipelineConfig, reads: dict[int, PoolReads], source: checks.SourceFacts,
                     capabilities: list[str], found: checks.Findings) -> None:
    """Per logical pool: template settings the image's OS cannot run are problems, a container setting on a base Batch
    does not list as DockerCompatible a warning (:mod:`batch_images.rules.pool_image_fit`). The template is the one
    :meth:`PreflightOperator._pool_templates` read (a ``template_file`` is not read again)."""
    from batch_images.rules import pool_image_fit

    for i, pool in enumerate(cfg.pools):
        read = reads.get(i)
        template = (read.template if read is not None else pool.pool_template) or {}
        field = template_root(pool, i, pool.adopt_pool_id is not None)
        found.extend(pool_image_fit.image_fit_problems(template, source.os_type, field))
        warning = pool_image_fit.container_warning(template, capabilities, source.lineage)
        if warning:
            found.warning(f"Logical pool {pool.pool_id_prefix}: {warning}")


def _with_target_regions(cfg: PipelineConfig, extra_regions: list[str]) -> PipelineConfig:
    """The config with the Batch accounts' regions it left out added to ``target_regions``."""
    if not extra_regions:
        return cfg
    regions = tuple(cfg.target_regions) + tuple(TargetRegionConfig(name=r) for r in extra_regions)
    return dataclasses.replace(cfg, target_regions=regions)


def pool_specs(plan: Any) -> list[dict]:
    """The specs of the pools the run rolls (``plan.rolled_pools()``: the ``pools`` param's, all when empty), each
    with the run's ``canary_only``; AirflowFailException when it is not a plan."""
    try:
        return [p.to_dict() for p in Plan.from_dict(plan).rolled_pools()]
    except InvalidInput as err:
        raise AirflowFailException(str(err)) from None


def is_real_run(plan: Any) -> bool:
    """False for a dry run (``plan.options.dry_run``): the gate then skips every later task but the teardowns."""
    return not Plan.from_dict(plan).options.dry_run


class DryRunGateOperator(ShortCircuitOperator):
    """``dry_run_gate``: after preflight, skip every later task of a dry run (the teardowns too run, and see the
    dry run in the plan: they write nothing). A real run passes straight through.

    :param plan: the preflight plan. (templated, through ``op_args``)
    """

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(python_callable=is_real_run, op_args=[plan], ignore_downstream_trigger_rules=True, **kwargs)


def builds(plan: Any) -> bool:
    """False for a roll-only run (``plan.options.mode`` rollback / roll_to_existing / revoke): nothing is built."""
    return not Plan.from_dict(plan).options.roll_only


class BuildGateOperator(ShortCircuitOperator):
    """``build_gate``: in a roll-only run (docs/operations.md, "Roll back") skip the build steps (build VM, snapshots, managed
    image); each later task follows its trigger rule, so ``publish_image_version`` (``none_failed``) still runs and
    only readies the existing versions. A build run passes straight through.

    :param plan: the preflight plan. (templated, through ``op_args``)
    """

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(python_callable=builds, op_args=[plan], ignore_downstream_trigger_rules=False, **kwargs)


class PoolSpecsOperator(BaseOperator):
    """Return the plan's ``pools`` list as this task's return value, so later tasks can map over it; first make each
    ``adopt_pool_id`` pool that no logical pool serves yet its logical pool's serving pool (metadata only:
    :mod:`batch_images.operators.adopt`), so plan_roll rolls it like any serving pool.

    Airflow 3 maps only over ``return_value`` XComs ("cannot map over XCom with custom key 'pools'"), and the
    plan is preflight's return value. Usage::

        specs = PoolSpecsOperator(task_id="pool_specs", plan=preflight.output).output
        pools = BatchPoolOperator.partial(task_id="create_pool", image_version_id=...).expand(pool_spec=specs)
        waits = BatchPoolSteadySensor.partial(task_id="wait_for_pool_steady").expand(pool_spec=specs)
        pools >> waits

    :param plan: the preflight plan. (templated)
    """

    template_fields: Sequence[str] = ("plan",)
    ui_color = "#c8e6c9"

    def __init__(self, *, plan: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def execute(self, context: Context) -> list[dict]:
        specs = pool_specs(self.plan)
        from batch_images.operators.adopt import adopt_pools  # the Azure SDK loads in the worker, not at DAG parse

        adopt_pools(specs, self.dag_id, context.get("run_id"), self.log)
        return specs
