"""Shared helpers of the Batch-half tests (preflight, pool operator, steady sensor) against the stand-in.

Connections are env-var JSON built from the stand-in's endpoints. Gallery image versions for pool tests are
built with azure-mgmt-compute directly (snapshot -> managed image -> gallery -> definition -> version).
Deferrable operators are driven like the triggerer does: the trigger is re-instantiated from its
serialised form, run with asyncio, and its event handed back to the method named in the deferral.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from batch_images.operators.pool import BatchPoolOperator
from batch_images.operators.preflight import PreflightOperator
from batch_images.rules import ids
from batch_images.rules.config import load_pipelines
from batch_images.sensors.pool import BatchPoolSteadySensor
from _probes import recorded_probes

ROOT = Path(__file__).resolve().parents[2]
LOGICAL_DATE = datetime(2026, 11, 25, tzinfo=timezone.utc)
VERSION = "2026.1125.0"
RUN_ID = "scheduled__2026-11-25T00:00:00+00:00"
DAG_ID = "batch_image_ubuntu2204"
GALLERY = "galbatchimages"
DEFINITION = "ubuntu2204-batch"


def azure_conn(ep: dict) -> dict:
    return {
        "conn_type": "azure", "login": ep["client_id"], "password": ep["client_secret"],
        "extra": {"tenantId": ep["tenant_id"], "subscriptionId": ep["subscription_id"], "authority": ep["authority"],
                  "arm_endpoint": ep["arm"], "ca_bundle": ep["ca_bundle"]},
    }


def batch_conn(ep: dict, account: str | None = None, shared_key: bool = False) -> dict:
    name = account or ep["demo"]["batch_account"]
    acct = ep["batch_accounts"][name]
    conn = {"conn_type": "azure_batch",
            "extra": {"account_url": acct["endpoint"], "credential_conn_id": "azure_default",
                      "ca_bundle": ep["ca_bundle"]}}
    if shared_key:
        conn.update(login=name, password=acct["primary_key"])
    return conn


def reset_secret_cache() -> None:
    try:  # connections are cached per process; the stand-in's port changes per session
        from airflow.sdk.execution_time.cache import SecretCache

        SecretCache.reset()
    except Exception:
        pass


def set_connections(monkeypatch, ep: dict, shared_key: bool = False, **extra_conns: dict) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_DEFAULT", json.dumps(azure_conn(ep)))
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BATCH_DEFAULT", json.dumps(batch_conn(ep, shared_key=shared_key)))
    for conn_id, conn in extra_conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    reset_secret_cache()


def pipeline_dict(ep: dict, **overrides) -> dict:
    """include/pipelines/demo.yaml's pipeline, pointed at this stand-in's fixture, with top-level overrides."""
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg["source_vm_id"] = demo["source_vm_id"]
    cfg["gallery"]["subscription_id"] = demo["subscription_id"]
    cfg["gallery"]["resource_group"] = demo["resource_group"]
    cfg["pools"][0]["batch_account_id"] = demo["batch_account_id"]
    cfg.update(overrides)
    return cfg


class FakeTI:
    """The part of a task instance the operators use from the context (xcom_push / xcom_pull)."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # XCom must be JSON-able

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.xcom.get(key)


class FakeDagRun:
    def __init__(self, run_id: str, logical_date: datetime | None) -> None:
        self.run_id = run_id
        self.logical_date = logical_date
        self.run_after = logical_date or datetime.now(timezone.utc)
        self.dag_id = DAG_ID


def context_for(logical_date: datetime | None = LOGICAL_DATE, run_id: str = RUN_ID) -> dict:
    return {"ti": FakeTI(), "run_id": run_id, "logical_date": logical_date,
            "dag_run": FakeDagRun(run_id, logical_date), "params": {}}


def in_dag(factory, dag_id: str = DAG_ID):
    """Build an operator inside a DAG (operators read self.dag_id)."""
    with DAG(dag_id=dag_id, schedule=None, start_date=LOGICAL_DATE):
        return factory()


def trigger_from(serialized: tuple[str, dict]):
    classpath, kwargs = serialized
    module, name = classpath.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    return None


def run_operator(op, context: dict, max_deferrals: int = 20):
    """execute(); on each deferral run the re-instantiated trigger and resume. Returns (result, events): every
    answer a wait of the operator acted on, in order - from its first probe in the worker when that ended the
    wait (no deferral), else its trigger's event."""
    events: list[dict] = []
    call = lambda: op.execute(context)  # noqa: E731
    with recorded_probes() as probes:
        for _ in range(max_deferrals):
            try:
                result = call()
            except TaskDeferred as deferred:
                events.extend(answer for _, answer in probes if answer is not None)
                probes.clear()
                event = asyncio.run(_first_event(trigger_from(deferred.trigger.serialize())))
                events.append(event)
                kwargs = json.loads(json.dumps(deferred.kwargs or {}))
                method = getattr(op, deferred.method_name)
                call = lambda m=method, e=event, k=kwargs: m(context, event=e, **k)  # noqa: E731
                continue
            events.extend(answer for _, answer in probes if answer is not None)
            return result, events
    raise AssertionError(f"still deferring after {max_deferrals} rounds: {events[-1] if events else None}")


# --- a gallery image version built with azure-mgmt-compute directly ------------------------------------------


def _wait(fn, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def build_image_version(standin, version: str = VERSION, definition: str = DEFINITION, *,
                        regions: tuple[str, ...] = ("westeurope",), os_state: str = "Generalized") -> str:
    """Snapshot the seeded VM's OS disk -> managed image -> gallery -> definition -> version; wait for replication.

    Returns the version id. Idempotent per (definition, version).
    """
    ep = standin.endpoints
    demo = ep["demo"]
    rg, loc = demo["resource_group"], demo["location"]
    compute = standin.compute(polling_interval=0.05)
    vm = compute.virtual_machines.get(rg, demo["source_vm_name"])
    os_disk_id = vm.properties.storage_profile.os_disk.managed_disk.id
    compute.galleries.begin_create_or_update(rg, GALLERY, {"location": loc, "properties": {}}).result()
    compute.gallery_images.begin_create_or_update(rg, GALLERY, definition, {
        "location": loc, "properties": {
            "osType": "Linux", "osState": os_state, "hyperVGeneration": "V2",
            "identifier": {"publisher": "contoso", "offer": "batch-nodes", "sku": definition}},
    }).result()
    if os_state != "Generalized":
        compute.close()
        return ""
    tag = version.replace(".", "-")
    snap = compute.snapshots.begin_create_or_update(rg, f"snap-test-{definition}-{tag}", {
        "location": loc, "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": os_disk_id}},
    }).result()
    image = compute.images.begin_create_or_update(rg, f"img-test-{definition}-{tag}", {
        "location": loc, "properties": {"hyperVGeneration": "V2", "storageProfile": {
            "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": snap.id}}}},
    }).result()
    body = {"location": loc, "properties": {
        "storageProfile": {"source": {"id": image.id}},
        "publishingProfile": {"targetRegions": [{"name": r, "regionalReplicaCount": 1} for r in regions]},
    }}
    created = compute.gallery_image_versions.begin_create_or_update(rg, GALLERY, definition, version, body).result()

    def replicated():
        v = compute.gallery_image_versions.get(rg, GALLERY, definition, version, expand="ReplicationStatus")
        status = v.properties.replication_status
        state = getattr(status, "aggregated_state", None)
        return str(getattr(state, "value", state)).lower() == "completed"

    _wait(replicated, f"replication of {version}")
    compute.close()
    return created.id


def create_definition(standin, definition: str, os_state: str = "Generalized") -> str:
    """A gallery + image definition only (e.g. a Specialized one); returns the definition id."""
    build_image_version(standin, definition=definition, os_state=os_state)
    demo = standin.endpoints["demo"]
    return (f"/subscriptions/{demo['subscription_id']}/resourceGroups/{demo['resource_group']}/providers/"
            f"Microsoft.Compute/galleries/{GALLERY}/images/{definition}")


# --- the Batch pool operator and steady sensor, as the pool tests build them ------------------------------------

POLL = 0.05


def pool_spec(env, **overrides) -> dict:
    """The plan's pool entry, as PreflightOperator makes it (run against the stand-in)."""
    cfg = pipeline_dict(env.endpoints)
    op = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=cfg))
    plan = op.execute(context_for())
    spec = dict(plan["pools"][0])
    spec.update(overrides)
    return spec


def create(spec: dict, version_id: str, context=None) -> str:
    op = in_dag(lambda: BatchPoolOperator(task_id="create_pool", pool_spec=spec, image_version_id=version_id))
    return op.execute(context or context_for())


def sensor(spec: dict, **kwargs) -> BatchPoolSteadySensor:
    kwargs.setdefault("poll_interval", POLL)
    return in_dag(lambda: BatchPoolSteadySensor(task_id="wait_for_pool", pool_spec=spec, **kwargs))


def _state(**kw):
    base = {"pool_id": "p", "found": True, "state": "active", "allocation_state": "steady", "target_dedicated_nodes": 4,
            "target_low_priority_nodes": 0, "max_unhealthy_node_share": 0.0, "current_dedicated_nodes": 4, "current_low_priority_nodes": 0,
            "resize_errors": [], "nodes": {"idle": 4}}
    base.update(kw)
    return base


# --- plans ------------------------------------------------------------------------------------------------------


def plan_for(standin, version: str, keep_versions: int, end_of_life_days: int | None = 30) -> dict:
    """The plan fields retention reads (the rest as preflight would write them for the seeded fixture)."""
    demo = standin.endpoints["demo"]
    sub, rg = demo["subscription_id"], demo["resource_group"]
    return {
        "dag_id": DAG_ID, "run_id": RUN_ID, "version": version, "location": demo["location"],
        "work_resource_group": rg, "work_subscription_id": sub,
        "source": {"vm_id": demo["source_vm_id"], "vm_name": demo["source_vm_name"], "os_disk_id": "unused",
                   "os_type": "Linux", "hyper_v_generation": "V2"},
        "gallery": {"subscription_id": sub, "resource_group": rg, "name": GALLERY, "location": demo["location"],
                    "id": ids.gallery_id(sub, rg, GALLERY).id},
        "image_definition": {"name": DEFINITION, "os_type": "Linux", "hyper_v_generation": "V2", "publisher": "contoso",
                             "offer": "batch", "sku": "2204", "id": ids.gallery_image_id(sub, rg, GALLERY, DEFINITION).id},
        "version_id": ids.gallery_image_version_id(sub, rg, GALLERY, DEFINITION, version).id,
        "target_regions": [{"name": demo["location"], "regional_replica_count": 1}],
        "keep_versions": keep_versions, "end_of_life_days": end_of_life_days,
        "pools": [{"batch_conn_id": "azure_batch_default", "batch_account_id": demo["batch_account_id"],
                   "pool_id": "unused", "vm_size": "Standard_D2s_v3", "target_dedicated_nodes": 1,
                   "target_low_priority_nodes": 0, "resize_timeout": "PT15M",
                   "node_agent_sku_id": "batch.node.ubuntu 22.04"}],
    }


def base_pipeline(ep: dict, **overrides) -> dict:
    """include/pipelines/base-ubuntu2204.yaml's pipeline, pointed at this stand-in's fixture."""
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "base-ubuntu2204.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg["gallery"]["subscription_id"] = demo["subscription_id"]
    cfg["gallery"]["resource_group"] = demo["resource_group"]
    cfg["pools"][0]["batch_account_id"] = demo["batch_account_id"]
    for key, value in overrides.items():
        section, _, name = key.partition("__")
        if name:
            cfg[section] = {**cfg[section], name: value}
        else:
            cfg[key] = value
    return cfg


def preflight_plan(pipeline: dict, params: dict | None = None, events: dict | None = None):
    """PreflightOperator's plan for ``pipeline`` (rebuild "0"), with the trigger form's ``params`` and the
    triggering Asset ``events`` (``{uri: [event with .extra]}``) in the context."""
    op = in_dag(lambda: PreflightOperator(task_id="preflight", pipeline=pipeline, rebuild="0"))
    context = context_for()
    context["params"] = params or {}
    if events is not None:
        context["triggering_asset_events"] = events
    return op.execute(context)
