"""End to end (issue 7 item 3): the real DAG run with `airflow dags test` against the stand-in, for the seeded
Trusted Launch VM (no managed image ever requested, version from the snapshots, pool with securityProfile, steady)
and for the seeded standard Gen1 VM (the recipe's managed image path, unchanged). Checked through the SDKs and the
stand-in's request log.
"""
from __future__ import annotations

import uuid

from batch_images.rules import naming
from batch_images.rules.config import load_pipelines
from include.pipeline_fixtures import short_field_pool
from include.pipeline_runner import ROOT, connection_env, run_dag_test, write_pipeline
from tests.run_states import not_succeeded

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
VERSION = "2026.1125.0"
NODES = 2


def _text(value):
    return None if value is None else str(getattr(value, "value", value))


def _pipeline(ep: dict, dag_id: str, vm_id: str, definition: str, generation: str) -> dict:
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=dag_id, poll_interval_seconds=1, source_vm_id=vm_id,
               target_regions=[{"name": "westeurope"}])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    cfg["image_definition"].update(name=definition, sku=definition, hyper_v_generation=generation)
    cfg["pools"] = [short_field_pool(cfg["pools"][0], batch_account_id=demo["batch_account_id"],
                                     target_dedicated_nodes=NODES, pool_id_prefix=definition[:20])]
    return cfg


def _run(standin, tmp_path, vm_id: str, definition: str, generation: str):
    ep = standin.endpoints
    dag_id = f"e2e_{definition.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    cfg = _pipeline(ep, dag_id, vm_id, definition, generation)
    write_pipeline(tmp_path / "pipelines", cfg)
    mark = standin.control.requests()["last_id"]
    result = run_dag_test(dag_id, LOGICAL_DATE, tmp_path / "run.log", env=connection_env(ep),
                          pipelines_dir=tmp_path / "pipelines", timeout=400)
    states = {t["task"]: t["state"] for t in result.tasks}
    assert result.exit_code == 0 and result.state == "success", (states, result.log[-3000:])
    assert not_succeeded(states) == {}, states
    items = standin.control.requests(since=mark, items=True)["items"]
    return cfg, result, items


def _common_checks(standin, cfg: dict, items: list[dict]):
    demo = standin.endpoints["demo"]
    rg = demo["resource_group"]
    compute = standin.compute()
    definition = compute.gallery_images.get(rg, cfg["gallery"]["name"], cfg["image_definition"]["name"])
    version = compute.gallery_image_versions.get(rg, cfg["gallery"]["name"], cfg["image_definition"]["name"], VERSION)
    # No temporary resource is left.
    assert list(compute.snapshots.list_by_resource_group(rg)) == []
    assert list(compute.images.list_by_resource_group(rg)) == []
    compute.close()
    batch = standin.batch()
    pool_id = naming.pool_id(cfg["pools"][0]["pool_id_prefix"], VERSION)
    pool = batch.get_pool(pool_id)
    states = {_text(n.state) for n in batch.list_nodes(pool_id)}
    batch.close()
    assert _text(pool.allocation_state) == "steady" and pool.current_dedicated_nodes == NODES
    assert states == {"idle"}, states
    assert pool.virtual_machine_configuration.image_reference.virtual_machine_image_id.lower() == version.id.lower()
    return definition, version, pool


def test_trusted_launch_vm_runs_to_a_steady_pool_without_a_managed_image(standin, tmp_path):
    demo = standin.endpoints["demo"]
    cfg, result, items = _run(standin, tmp_path, demo["trusted_launch_vm_id"], "ubuntu2204-tl", "V2")
    image_requests = [f"{r['method']} {r['path']}" for r in items if r["op"].startswith("Images_")
                      and r["method"] != "GET"]
    assert image_requests == [], image_requests  # never even attempted
    assert "No managed image: the source VM is TrustedLaunch" in result.log

    definition, version, pool = _common_checks(standin, cfg, items)
    features = {f.name: f.value for f in definition.properties.features or []}
    assert features == {"SecurityType": "TrustedLaunch"}
    storage = version.properties.storage_profile
    assert storage.source is None or storage.source.id is None
    assert "/snapshots/snap-vm-prepared-ubuntu2204-tl-os-" in storage.os_disk_image.source.id
    assert [d.lun for d in storage.data_disk_images] == [0]
    sp = pool.virtual_machine_configuration.security_profile
    assert _text(sp.security_type) == "trustedLaunch"
    assert sp.uefi_settings.secure_boot_enabled is True and sp.uefi_settings.vtpm_enabled is True


def test_standard_gen1_vm_still_uses_the_managed_image(standin, tmp_path):
    demo = standin.endpoints["demo"]
    cfg, result, items = _run(standin, tmp_path, demo["gen1_vm_id"], "ubuntu2204-gen1", "V1")
    created = [r["path"] for r in items if r["op"] == "Images_CreateOrUpdate" and r["status"] in (200, 201)]
    assert len(created) == 1 and "/images/img-ubuntu2204-gen1-2026-1125-0" in created[0]
    definition, version, pool = _common_checks(standin, cfg, items)  # the image was deleted by the teardown
    assert not definition.properties.features
    assert definition.properties.hyper_v_generation == "V1"
    assert version.properties.storage_profile.source.id.lower().endswith("/images/img-ubuntu2204-gen1-2026-1125-0")
    assert pool.virtual_machine_configuration.security_profile is None
