"""The run's summary, in the UI: ``run_summary``, the DAG's last task (trigger rule all_done).

What ``make demo`` used to compute on its own: each task's state and duration, the resources the run made, the
image version's replication per region, the serving pools with their node counts, and the temporary snapshots /
managed images left in the work resource group; per logical pool what the roll did (first pool, rolled from X to Y,
skipped and why, canary only), the jobs and job schedules moved, the old pools drained and deleted, who approved and
when; the versions retired and revoked; each task's tries. Its log and its XCom return value hold the text
(:func:`format_summary`: what the UI's XCom tab shows readably); the same as a dict is under XCom key ``summary``
(``make demo`` and the tests read it from there).

The DAG run's note is NOT set: in Airflow 3.3 a task talks to the Execution API only, which has no endpoint that
changes a run's note (a note can be given when a run is triggered, or set through the public REST API / UI by a
user); the summary lives in this task's log and XCom instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from batch_images.rules import ids
from batch_images.rules.errors import InvalidInput
from batch_images.rules.plan import Plan, RollDecision, describe, pulled_list


def _text(value: Any) -> Any:
    """An SDK enum's wire value ("steady"), or the value itself."""
    return getattr(value, "value", value)


def _counts(counts: Any) -> str:
    """``{"idle": 4, "running": 1}`` as ``idle 4, running 1`` (``none`` when empty)."""
    if not isinstance(counts, Mapping):
        return str(counts)
    return ", ".join(f"{state} {n}" for state, n in counts.items() if n) or "none"


def format_summary(s: Mapping[str, Any]) -> str:
    """The summary as text: the mode, each logical pool's roll and approval, versions retired and revoked, retries,
    stages, resources (temporary ones with their fate), replication per region, pools, leftovers; pure, no Azure.
    Sections with nothing to tell are left out (a dry run has no resources, replication or pools)."""
    lines = [f"DAG {s.get('dag_id')} run {s.get('run_id')}"]
    mode = s.get("mode")
    if mode == "dry_run":
        lines += ["", "DRY RUN: preflight and the plan only; nothing was written to Azure, every other task skipped."]
        lines += (s.get("plan_text") or "").splitlines()
    elif mode in ROLL_ONLY_HEADERS:
        lines += ["", ROLL_ONLY_HEADERS[mode].format(version=(s.get("options") or {}).get("version"))]
    elif mode == "canary_only":
        lines += ["", "CANARY ONLY: the version is published excluded from latest (not promoted); the canary pool(s) "
                      "below stay in role canary for you to try; no pool was rolled, the serving pools are untouched. A "
                      "later normal run of the same version adopts the canary; else the sweep removes it after 6 h."]
    lineage = s.get("lineage")
    if lineage:  # a base_image pipeline: the exact marketplace base the version was built from, and why that one
        lines += ["", f"Built from base image {lineage['urn']} ({lineage['why']}), build VM {lineage['build_vm']}"]
    if s.get("rolls"):
        lines += ["", "Rolls (per logical pool):"]
        for r in s["rolls"]:
            lines.append(f"  {roll_line(r)}")
            if approval_line(r.get("approval")):
                lines.append(f"    approval: {approval_line(r.get('approval'))}")
    lines += _version_lines(s)
    if s.get("revoked_serving"):
        lines += ["", "REVOKED versions still serving pools (a later run moves them off):"]
        lines += [f"  {pool} on {version}" for pool, version in sorted(s["revoked_serving"].items())]
    stages = s.get("stages") or []
    lines += ["", retries_line(stages), "", "Stages:"]
    for r in stages:
        secs = "" if r.get("seconds") is None else f"{r['seconds']:7.1f} s"
        tries = f"  try {r['tries']}" if (r.get("tries") or 0) > 1 else ""
        lines.append(f"  {r['task']:<34} {r['state']:<10} {secs}{tries}".rstrip())
    lines += ["", "Resources:", *_resource_lines(s)]
    if s.get("replication"):
        lines += ["", "Replication per region:"]
        for region, r in s["replication"].items():
            lines.append(f"  {region:<14} {r.get('state', '?'):<10} {r.get('progress', '?')}%  "
                         f"replicas {r.get('replicas', '?')}")
    if s.get("pools"):
        lines += ["", "Pools:"]
    for p in s.get("pools") or []:
        if "error" in p:
            lines.append(f"  {p['id']}: {p['error']}")
            continue
        low = (f", {p['current_low_priority_nodes']}/{p['target_low_priority_nodes']} low-priority"
               if p.get("target_low_priority_nodes") or p.get("current_low_priority_nodes") else "")
        lines.append(f"  {p['id']}: {p['allocation_state']}, {p['current_dedicated_nodes']}/"
                     f"{p['target_dedicated_nodes']} dedicated{low}, nodes {_counts(p['node_counts'])}, "
                     f"agent '{p['node_agent_sku_id']}'")
        lines.append(f"    image {p['image']}")
        lines += _settings_lines(p)
        if p.get("moved_jobs"):
            lines.append(f"    jobs moved to it by the roll: {', '.join(p['moved_jobs'])}")
    leftovers = s.get("leftovers")
    lines += ["", f"Leftover temporary snapshots/images: "
                  f"{'unknown' if leftovers is None else len(leftovers)}"]
    lines += [f"  {rid}" for rid in leftovers or []]
    return "\n".join(lines)


#: resources kinds a run makes only for the build; delete_temporary_resources deletes them
TEMPORARY_KINDS = ("snapshots", "managed image")
#: a ``resources`` kind as one line's label
LABELS = {"snapshots": "snapshot", "pools": "pool"}


def _resource_lines(s: Mapping[str, Any]) -> list[str]:
    """One line per resource id the run made (none for a kind it did not make); a temporary one says whether
    delete_temporary_resources deleted it or it was left."""
    deleted = {str(i).lower() for i in s.get("deleted_temporary") or []}
    left = {str(i).lower() for i in s.get("leftovers") or []}
    out = []
    for kind, rids in (s.get("resources") or {}).items():
        for rid in rids if isinstance(rids, list) else [rids]:
            if not rid:
                continue
            fate = ""
            if kind in TEMPORARY_KINDS:
                fate = (" - deleted by delete_temporary_resources" if str(rid).lower() in deleted
                        else " - left (see the leftovers below)" if str(rid).lower() in left else "")
            out.append(f"  {LABELS.get(kind, kind):<14} {rid}{fate}")
    if out:
        return out
    return ["  none (a dry run creates nothing)" if s.get("mode") == "dry_run" else "  none"]


def _version_lines(s: Mapping[str, Any]) -> list[str]:
    """What retire_old_versions did (``retired``: None when it did not run) and the version a revoke run revoked."""
    retired, revoked = s.get("retired"), s.get("revoked") or []
    if retired is None and not revoked:
        return []
    out = ["", "Versions:"]
    if revoked:
        out.append(f"  revoked: {', '.join(revoked)}")
    if retired is not None:
        deleted = [_name(v) for v in retired.get("deleted") or []]
        out.append(f"  retired (deleted): {', '.join(deleted) if deleted else 'none'}")
        eol = retired.get("end_of_life") or {}
        if eol:
            out.append("  end of life set: " + ", ".join(f"{_name(v)} on {day}" for v, day in sorted(eol.items())))
    return out


def _name(version_id: str) -> str:
    """A gallery image version's name (the last segment of its id)."""
    return str(version_id).rstrip("/").rsplit("/", 1)[-1]


def retries_line(stages: Sequence[Mapping[str, Any]]) -> str:
    """``retried: task (N tries), ...``, ``no task was retried``, or ``tries not read`` (no stage has ``tries``)."""
    if not any(st.get("tries") is not None for st in stages):
        return "tries not read"
    again = [f"{st['task']} ({st['tries']} tries)" for st in stages if (st.get("tries") or 0) > 1]
    return f"retried: {', '.join(again)}" if again else "no task was retried"


def approval_entry(value: Any) -> dict | None:
    """approve_roll's XCom (the standard provider's HITL result: ``chosen_options``, ``params_input``,
    ``responded_by_user`` {id, name}, ``responded_at``; or ``{"auto": True}`` for a pool needing none) as
    ``{"needed": False}`` or ``{"needed": True, "choice", "by", "at" (ISO 8601), "comment"}``; None without one."""
    if not isinstance(value, Mapping):
        return None
    if value.get("auto"):
        return {"needed": False}
    user = value.get("responded_by_user") or value.get("responded_by") or {}
    by = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else user
    at = value.get("responded_at")
    params = value.get("params_input") or {}
    comment = params.get("comment") if isinstance(params, Mapping) else None
    if comment is None and isinstance(params, Mapping) and params:
        comment = ", ".join(f"{k}={v}" for k, v in params.items())
    return {"needed": True, "choice": (list(value.get("chosen_options") or []) or [None])[0],
            "by": None if by is None else str(by), "at": at.isoformat() if hasattr(at, "isoformat") else at,
            "comment": comment}


def approval_line(a: Mapping[str, Any] | None) -> str | None:
    """A ``rolls`` entry's approval as text, None when the pipeline has no approval step."""
    if not a:
        return None
    if not a.get("needed"):
        return "no approval needed"
    if a.get("missing"):
        return f"not approved ({a['missing']})"
    verb = "approved" if a.get("choice") in (None, "Approve") else f"answered {a['choice']}"
    text = f"{verb} by {a.get('by') or 'unknown'} at {a.get('at') or 'unknown time'}"
    return text + (f', comment "{a["comment"]}"' if a.get("comment") else ", no comment")


ROLL_ONLY_HEADERS = {
    "rollback": "ROLLBACK: nothing was built; each logical pool below went back to the version it served before.",
    "roll_to_existing": "ROLL TO EXISTING VERSION {version}: nothing was built; the pools below were rolled to it.",
    "revoke": "REVOKE {version}: tagged revoked and excluded from latest; the pools it served were moved to the newest "
              "version that is not revoked; retention deletes it once nothing uses it.",
}


def roll_line(r: Mapping[str, Any]) -> str:
    """One logical pool's roll as a sentence (``rolls`` entries of the summary)."""
    name, action = r.get("logical_pool"), r.get("action")
    to = f"{r.get('pool_id')} ({r.get('version')})"
    frm = f"{r.get('from_pool_id')} ({r.get('from_version')})"
    text = {"first": f"{name}: first pool {to}",
            "current": f"{name}: already served by {to}",
            "skip_downgrade": f"{name}: not rolled, {frm} runs a newer version than {r.get('version')}",
            "canary_only": f"{name}: canary {to} made beside {frm}; nothing moved",
            "not_rolled": f"{name}: {r.get('why')}"}.get(action)
    if text is None:
        text = f"{name}: rolled from {frm} to {to}"
        if r.get("done") is False:
            text += " - NOT finished (see roll_pool's log)"
    extra = [f"{k} {', '.join(r[key])}" for k, key in (("job schedules moved:", "moved_schedules"),
                                                       ("jobs moved:", "moved_jobs"),
                                                       ("old pools drained and deleted:", "deleted_pools"))
             if r.get(key)]
    return text + (f"; {'; '.join(extra)}" if extra else "")


def roll_entry(d: RollDecision, result: Mapping[str, Any], approval: Mapping[str, Any] | None = None) -> dict:
    """A ``rolls`` entry from plan_roll's decision, roll_pool's result (empty when it did not finish) and
    :func:`approval_entry` (None: no approval step in this pipeline)."""
    action = "canary_only" if d.canary_only and d.makes_new_pool else d.roll_action
    return {"logical_pool": d.logical_pool, "action": action, "mode": d.run_mode,
            "from_pool_id": d.serving_pool_id, "from_version": d.serving_version,
            "pool_id": result.get("pool_id") or d.pool_id, "version": d.version,
            "done": bool(result) if action == "roll" else None,
            "moved_schedules": list(result.get("moved_schedules") or []),
            "moved_jobs": list(result.get("moved_jobs") or []),
            "deleted_pools": list(result.get("deleted_pools") or []),
            "approval": dict(approval) if approval else None}


def _settings_lines(p: Mapping[str, Any]) -> list[str]:
    """A pool's template settings (subnet, task slots, autoscale and its last evaluation) and its drift from the
    template, as summary lines; nothing for a summary written before these keys existed."""
    lines = []
    if p.get("subnet_id"):
        lines.append(f"    subnet {p['subnet_id']}")
    if p.get("task_slots_per_node"):
        fill = f", {p['node_fill_type']} fill" if p.get("node_fill_type") else ""
        lines.append(f"    {p['task_slots_per_node']} task slot(s) per node{fill}")
    auto = p.get("auto_scale")
    if auto and auto.get("enabled"):
        lines.append(f"    autoscale enabled, evaluated every {auto.get('evaluation_interval')}: {auto.get('formula')}")
        run = auto.get("last_run")
        if run:
            error = run.get("error")
            lines.append(f"    last autoscale run {run.get('timestamp')}: " + (
                f"error {error.get('code')}: {error.get('message')}" if error else str(run.get("results"))))
    elif auto is not None:
        lines.append("    autoscale disabled (fixed size)")
    drift = p.get("drift")
    if drift is not None:
        lines += ["    matches the template"] if not drift else (
            ["    differs from the template (the next roll replaces it with the template):"]
            + [f"      {d}" for d in drift])
    return lines


def pool_settings(pool: Mapping[str, Any], template: Mapping[str, Any] | None) -> dict:
    """From a pool's ``GET /pools/{id}`` JSON: ``{"subnet_id", "task_slots_per_node", "node_fill_type",
    "auto_scale": {"enabled", "formula", "evaluation_interval", "last_run": {"timestamp", "results", "error"} or
    None}, "drift": [lines] (rules/pool_template.drift; [] when it matches) or None without a template}``."""
    from batch_images.rules import pool_template

    run = pool.get("autoScaleRun")
    return {
        "subnet_id": (pool.get("networkConfiguration") or {}).get("subnetId"),
        "task_slots_per_node": pool.get("taskSlotsPerNode"),
        "node_fill_type": (pool.get("taskSchedulingPolicy") or {}).get("nodeFillType"),
        "auto_scale": {"enabled": bool(pool.get("enableAutoScale")), "formula": pool.get("autoScaleFormula"),
                       "evaluation_interval": pool.get("autoScaleEvaluationInterval"),
                       "last_run": {k: run.get(k) for k in ("timestamp", "results", "error")}
                       if isinstance(run, Mapping) else None},
        "drift": pool_template.drift(template, pool) if template is not None else None,
    }


def tries(ti: Any, task_id: str, map_index: int, logical_date: Any) -> int | None:
    """A task instance's try number in this run, or None when it cannot be read.

    The Execution API (all a task may talk to in Airflow 3.3) gives no try number in its breadcrumbs; its "previous
    task instance" request does (``GET /execution/task-instances/previous/{dag_id}/{task_id}``: the newest TI with a
    logical date before the one given). Asked with this run's logical date plus a microsecond, it answers this run's
    TI - checked by its run id, since Airflow 3 allows two runs with one logical date. A run without a logical date
    (a manual run triggered with none) has no tries shown."""
    if logical_date is None:
        return None
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import GetPreviousTI

        found = task_runner.SUPERVISOR_COMMS.send(GetPreviousTI(
            dag_id=ti.dag_id, task_id=task_id, map_index=map_index,
            logical_date=logical_date + timedelta(microseconds=1))).task_instance
    except Exception:  # noqa: BLE001 - tries are a nicety; never fail the summary for them
        return None
    return found.try_number if found is not None and found.run_id == ti.run_id else None


class RunSummaryOperator(BaseOperator):
    """Summarise the run (see the module docstring); never fails the run for a summary it cannot complete.

    :param plan_task_id: the PreflightOperator's task id; its plan is pulled at run time (not an XComArg, which would
        make preflight - a setup - a direct upstream and skip the summary when preflight fails). No plan: stages only.
    :param arm_conn_id: the Azure connection for the version and the leftovers.
    :return: the summary as text (:func:`format_summary`, also in the log). The same as a dict is pushed under XCom
        key ``summary``: ``{"dag_id", "run_id", "stages": [{"task", "state", "seconds", "tries" (None: not
        read)}], "retried": {task: tries}, "resources": {kind: id or [ids]},
        "replication": {region: {"state", "progress", "replicas"}}, "pools": [{"id", "allocation_state",
        "current_dedicated_nodes", "target_dedicated_nodes", "node_counts", "image", ..., the pool's template
        settings (:func:`pool_settings`: subnet, task slots, autoscale, drift from the plan's template), "moved_jobs":
        [job ids the roll moved to that pool]}],
        "rolls": [{"logical_pool", "action", "from_pool_id", "from_version", "pool_id", "version", "done",
        "moved_schedules", "moved_jobs", "deleted_pools", "approval": :func:`approval_entry` or None}],
        "retired": retire_old_versions' ``{"deleted": [version ids], "end_of_life": {id: date}}`` or None (it did
        not run), "revoked": [the version a revoke run revoked], "deleted_temporary": [ids delete_temporary_resources
        deleted or found gone], "leftovers": [ids] or None (not read), "errors": [what could not be read]}`` - ids
        and counts only, no secret; a base_image pipeline's adds ``"lineage": {"urn": publisher:offer:sku:version,
        "source", "why", "build_vm"}``; a run with a mode, ``"mode"`` (:meth:`RunOptions.run_kind`) and
        ``"options"``; a dry run, ``"plan_text"``; a revoke run, ``"revoked_serving": {pool id: version}``.
    """

    template_fields: Sequence[str] = ("plan_task_id", "arm_conn_id")
    ui_color = "#e8f0fe"

    def __init__(self, *, plan_task_id: str = "preflight", arm_conn_id: str = "azure_default", **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        kwargs.setdefault("retries", 0)  # a summary is read once; a retry would only repeat the same reads
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.arm_conn_id = arm_conn_id

    def execute(self, context: Any) -> str:
        ti = context["ti"]
        errors: list[str] = []
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        plan = plan if isinstance(plan, Mapping) else None
        stages = self.stages(ti, (context.get("dag_run") and context["dag_run"].logical_date) or None)
        summary: dict[str, Any] = {"dag_id": ti.dag_id, "run_id": ti.run_id, "stages": stages,
                                   "retried": {st["task"]: st["tries"] for st in stages if (st.get("tries") or 0) > 1},
                                   "resources": {}, "replication": {}, "pools": [], "leftovers": None,
                                   "errors": errors}
        pull = ti.xcom_pull
        retired = pull(task_ids="retire_old_versions")
        summary["retired"] = ({"deleted": list(retired.get("deleted") or []),
                               "end_of_life": dict(retired.get("end_of_life") or {})}
                              if isinstance(retired, Mapping) else None)
        cleaned = pull(task_ids="delete_temporary_resources")
        summary["deleted_temporary"] = ([*(cleaned.get("deleted") or []), *(cleaned.get("already_gone") or [])]
                                        if isinstance(cleaned, Mapping) else [])
        snapshots = pull(task_ids="snapshot_disks") or []
        summary["resources"] = {
            "snapshots": [s["id"] if isinstance(s, Mapping) else s for s in snapshots],
            "managed image": pull(task_ids="create_managed_image"),
            "image version": pull(task_ids="publish_image_version"),
            "pools": [],
        }
        rolled = {r.get("logical_pool"): r for r in pulled_list(pull(task_ids="roll_pool")) if isinstance(r, Mapping)}
        # (batch_conn_id, pool id, moved jobs, logical pool): the serving pool after the roll, else the run's new pool
        pools = []
        approvals = "approve_roll" in ti.task.dag.task_dict  # only pipelines with a require_approval pool have it
        states = {st["task"]: st["state"] for st in stages}
        for i, value in enumerate(pulled_list(pull(task_ids="plan_roll"))):
            try:
                d = RollDecision.from_dict(value, f"plan_roll[{i}]")
            except InvalidInput as err:  # report, don't fail the summary
                errors.append(str(err))
                continue
            r = rolled.get(d.logical_pool) or {}
            pools.append((d.batch_conn_id, r.get("pool_id") or d.pool_id, list(r.get("moved_jobs") or []),
                          d.logical_pool))
            approval = None
            if approvals:
                approval = approval_entry(pull(task_ids="approve_roll", map_indexes=i)) or {
                    "needed": True, "missing": f"approve_roll[{i}] {states.get(f'approve_roll[{i}]', 'did not run')}"
                                               ": rejected, or its upstream did not succeed"}
            summary.setdefault("rolls", []).append(roll_entry(d, r, approval))
        summary["resources"]["pools"] = [p for _, p, _, _ in pools]
        build = (plan or {}).get("build")
        if isinstance(build, Mapping):
            b = build.get("base") or {}
            summary["lineage"] = {
                "urn": ":".join(str(b.get(k)) for k in ("publisher", "offer", "sku", "version")),
                "source": build.get("base_version_source"), "why": build.get("base_version_detail"),
                "build_vm": build.get("vm_name")}
        if plan is not None:
            try:
                typed = Plan.from_dict(plan)
                summary["mode"], summary["options"] = typed.options.run_kind, typed.options.to_dict()
                if typed.options.mode == "revoke" and typed.options.version:
                    summary["revoked"] = [typed.options.version]
                if typed.options.dry_run:
                    summary["plan_text"] = describe(typed)
                summary.setdefault("rolls", []).extend(
                    {"logical_pool": name, "action": "not_rolled", "why": why} for name, why in typed.not_rolled.items())
                if typed.revoked_versions:
                    summary["revoked_serving"] = self.revoked_serving(typed, errors)
            except InvalidInput as err:  # report, don't fail the summary
                errors.append(str(err))
            self._azure(plan, summary, errors)
        # a template pool's drift is against the plan's template; an adopted pool's template is its own spec (none)
        templates = {p.get("logical_pool"): p.get("template") for p in (plan or {}).get("pools") or []
                     if isinstance(p, Mapping) and p.get("template") and p.get("adopt_pool_id") is None}
        for conn_id, pool_id, moved_jobs, logical in pools:
            summary["pools"].append({**self.pool_state(conn_id, pool_id, errors, templates.get(logical)),
                                     "moved_jobs": moved_jobs})
        text = format_summary(summary)
        self.log.info("Run summary:\n%s", text)
        for e in errors:
            self.log.warning("Summary incomplete: %s", e)
        ti.xcom_push(key="summary", value=summary)
        return text

    @staticmethod
    def revoked_serving(plan: Plan, errors: list[str]) -> dict[str, str]:
        """Pool id -> revoked version, for every pool of the plan's Batch accounts that still runs a revoked one."""
        from batch_images.hooks.batch import BatchPoolHook
        from batch_images.rules import naming

        out: dict[str, str] = {}
        for conn_id in dict.fromkeys(p.batch_conn_id for p in plan.pools):
            try:
                hook = BatchPoolHook(conn_id)
                for entry in hook.list_pool_listing():
                    version = (entry.get("metadata") or {}).get(naming.TAG_IMAGE_VERSION)
                    if version in plan.revoked_versions and (entry.get("state") or "").lower() != "deleting":
                        out[str(entry.get("id"))] = version
            except Exception as err:  # noqa: BLE001 - report, don't fail the summary
                errors.append(f"pools of {conn_id}: {str(err).splitlines()[0]}")
        return out

    @staticmethod
    def stages(ti: Any, logical_date: Any = None) -> list[dict]:
        """Every finished task instance of the run (task order of the DAG), its state, duration in seconds and
        tries (:func:`tries`; None without a logical date)."""
        order = {t: i for i, t in enumerate(ti.task.dag.task_dict)}
        crumbs = [c for c in ti.get_task_breadcrumbs(ti.dag_id, ti.run_id) if c.get("task_id") != ti.task_id]
        crumbs.sort(key=lambda c: (order.get(c["task_id"], len(order)), c.get("map_index", -1)))
        out = []
        for c in crumbs:
            idx = c.get("map_index", -1)
            secs = c.get("duration")
            out.append({"task": c["task_id"] if idx is None or idx < 0 else f"{c['task_id']}[{idx}]",
                        "state": str(_text(c.get("state"))), "seconds": None if secs is None else round(secs, 1),
                        "tries": tries(ti, c["task_id"], -1 if idx is None else idx, logical_date)})
        return out

    def _azure(self, plan: Mapping, summary: dict, errors: list[str]) -> None:
        from batch_images.hooks.arm import ArmComputeHook

        hook = ArmComputeHook(azure_conn_id=self.arm_conn_id)
        version_id = summary["resources"].get("image version") or plan.get("version_id")
        try:
            version = hook.find_resource(version_id, expand="ReplicationStatus") if version_id else None
        except Exception as err:  # noqa: BLE001 - report, don't fail the summary
            version, _ = None, errors.append(f"image version {version_id}: {str(err).splitlines()[0]}")
        props = (version or {}).get("properties") or {}
        for s in (props.get("replicationStatus") or {}).get("summary") or []:
            summary["replication"][s.get("region")] = {"state": s.get("state"), "progress": s.get("progress")}
        for t in (props.get("publishingProfile") or {}).get("targetRegions") or []:
            summary["replication"].setdefault(t.get("name"), {})["replicas"] = t.get("regionalReplicaCount")
        try:
            sub, rg = plan.get("work_subscription_id"), plan["work_resource_group"]
            summary["leftovers"] = [r["id"] for kind in (ids.SNAPSHOT, ids.IMAGE)
                                    for r in hook.list_in_resource_group(sub, rg, kind)[0]]
        except Exception as err:  # noqa: BLE001
            errors.append(f"leftovers in {plan.get('work_resource_group')}: {str(err).splitlines()[0]}")

    def pool_state(self, conn_id: str | None, pool_id: str, errors: list[str],
                   template: Mapping[str, Any] | None = None) -> dict:
        """One pool's allocation state, node counts, image and template settings (:func:`pool_settings`, drift from
        ``template`` when given), as the Batch data plane reports them (GET pool as JSON, node counts)."""
        from batch_images.hooks.batch import BatchPoolHook

        try:
            hook = BatchPoolHook(conn_id) if conn_id else BatchPoolHook()
            pool = hook.get_pool_json(pool_id)
            if pool is None:
                return {"id": pool_id, "error": "no such pool"}
            counts = hook.pool_node_counts(pool_id)
        except Exception as err:  # noqa: BLE001 - report, don't fail the summary
            errors.append(f"pool {pool_id}: {str(err).splitlines()[0]}")
            return {"id": pool_id, "error": str(err).splitlines()[0]}
        vmc = pool.get("virtualMachineConfiguration") or {}
        return {
            "id": pool.get("id"), "allocation_state": pool.get("allocationState"), "vm_size": pool.get("vmSize"),
            "image": (vmc.get("imageReference") or {}).get("virtualMachineImageId"),
            "node_agent_sku_id": vmc.get("nodeAgentSKUId"),
            "current_dedicated_nodes": pool.get("currentDedicatedNodes"),
            "target_dedicated_nodes": pool.get("targetDedicatedNodes"),
            "current_low_priority_nodes": pool.get("currentLowPriorityNodes"),
            "target_low_priority_nodes": pool.get("targetLowPriorityNodes"),
            "node_counts": counts.get("dedicated") or {},
            **pool_settings(pool, template),
        }
