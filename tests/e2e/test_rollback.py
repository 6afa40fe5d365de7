"""Roll-only runs through the real DAG (`airflow dags test --conf`, include/pipeline_runner.py) against the stand-in,
checked through the SDKs and the stand-in's request log (README, "Roll back").

One pipeline, two logical pools: ``alpha`` in the West Europe Batch account, ``beta`` in the North Europe one.

1. night 1 (build): version V1, both pools' first serving pools.
2. night 2 (build, ``pools`` [alpha], ``target_regions`` [westeurope]): V2 (no North Europe replica); alpha rolled to
   it. A user's job runs on alpha's V2 pool.
3. a dry run of the rollback: its plan names the version alpha would go back to, and nothing is written.
   ``rollback`` (pools [alpha]): alpha serves V1 again; nothing built (no snapshot, image, VM or version write in the
   request log); the V2 pool drained and deleted, its job moved; V2 still exists and is not revoked.
4. ``roll_to_existing`` V2 (pools [beta]): North Europe added to V2 and waited for, then beta rolled from V1 to V2.
5. ``revoke`` V2: tagged revoked and excluded from latest, beta moved off it to the newest version not revoked (V1),
   alpha (on V1) left alone; retention then deletes V2, which nothing uses.
6. bad input, zero writes each: a rollback of alpha (no previous version left), a roll_to_existing to V2 (deleted),
   a roll_to_existing without a version.
"""
from __future__ import annotations

import pytest
from azure.batch import models as bm
from azure.core.exceptions import ResourceNotFoundError

from batch_images.rules import naming
from tests.e2e._fresh_pipeline import demo_pipeline, fresh_pipeline, meta
from tests.job_invariants import jobs_on_missing_pools
from tests.summary_text import block, read_summary
from include.pipeline_runner import connection_env, run_dag_test

DATES = {"night1": "2026-11-25T00:00:00+00:00", "night2": "2026-11-26T00:00:00+00:00",
         "dry_rollback": "2026-11-26T12:00:00+00:00",
         "rollback": "2026-11-27T00:00:00+00:00", "to_existing": "2026-11-28T00:00:00+00:00",
         "revoke": "2026-11-29T00:00:00+00:00", "bad_rollback": "2026-11-30T00:00:00+00:00",
         "bad_deleted": "2026-12-01T00:00:00+00:00", "bad_no_version": "2026-12-02T00:00:00+00:00"}
V1, V2 = "2026.1125.0", "2026.1126.0"
BUILD_OPS = ("Snapshots_", "Images_", "VirtualMachines_", "GalleryImageVersions_")


def pipeline(ep: dict, dag_id: str) -> dict:
    cfg, base = demo_pipeline(ep, dag_id)
    base.update(smoke_test=None, target_low_priority_nodes=0)
    demo = ep["demo"]
    cfg["pools"] = [{**base, "pool_id_prefix": "alpha"},
                    {**base, "pool_id_prefix": "beta", "batch_conn_id": "azure_batch_ne",
                     "batch_account_id": demo["batch_account_ne_id"],
                     "batch_account_location": demo["batch_account_ne_location"]}]
    return cfg


@pytest.fixture(scope="module")
def runs(standin_session, tmp_path_factory):
    s, ep, tmp, dag_id, cfg, env = fresh_pipeline(standin_session, tmp_path_factory, "rollback", pipeline)
    env = {**env, "AIRFLOW_CONN_AZURE_BATCH_NE": connection_env(ep, ep["demo"]["batch_account_ne"])[
        "AIRFLOW_CONN_AZURE_BATCH_DEFAULT"]}
    batch, batch_ne = s.batch(), s.batch(ep["demo"]["batch_account_ne"])
    out = {"cfg": cfg, "standin": s, "batch": batch, "batch_ne": batch_ne}

    def run(name: str, conf: dict | None = None):
        mark = s.control.requests()["last_id"]
        result = run_dag_test(dag_id, DATES[name], tmp / f"{name}.log", env=env, pipelines_dir=tmp / "pipelines",
                              conf=conf or {})
        items = s.control.requests(since=mark, items=True)["items"]
        result.writes = [r for r in items if r["family"] in ("arm", "batch") and r["write"] and r["status"] < 400]
        result.requests = {"arm": sum(r["family"] == "arm" for r in items),
                           "batch": sum(r["family"] == "batch" for r in items)}
        out[name] = result
        return result

    run("night1")
    run("night2", {"pools": ["alpha"], "target_regions": ["westeurope"]})
    v2_pool = naming.pool_id("alpha", V2)
    if out["night2"].exit_code == 0:  # a user's job on the pool the rollback replaces
        batch.create_job(bm.BatchJobCreateOptions(id="user-job", pool_info=bm.BatchPoolInfo(pool_id=v2_pool)))
    run("dry_rollback", {"mode": "rollback", "pools": ["alpha"], "dry_run": True})
    run("rollback", {"mode": "rollback", "pools": ["alpha"]})
    out["after_rollback"] = {"pools": {p.id: meta(p) for p in batch.list_pools()},
                             "user_job_pool": batch.get_job("user-job").pool_info.pool_id
                             if out["night2"].exit_code == 0 else None,
                             "v2": version(s, cfg, V2), "missing": jobs_on_missing_pools(s)}
    run("to_existing", {"mode": "roll_to_existing", "version": V2, "pools": ["beta"]})
    out["after_to_existing"] = {"pools": {p.id: meta(p) for p in batch_ne.list_pools()}, "v2": version(s, cfg, V2)}
    run("revoke", {"mode": "revoke", "version": V2})
    out["after_revoke"] = {"beta": {p.id: meta(p) for p in batch_ne.list_pools()},
                           "alpha": {p.id: meta(p) for p in batch.list_pools()}, "v2": version(s, cfg, V2),
                           "missing": jobs_on_missing_pools(s)}
    run("bad_rollback", {"mode": "rollback", "pools": ["alpha"]})
    run("bad_deleted", {"mode": "roll_to_existing", "version": V2})
    run("bad_no_version", {"mode": "roll_to_existing"})
    return out


def version(standin, cfg: dict, name: str):
    g, d = cfg["gallery"], cfg["image_definition"]
    try:
        return standin.compute().gallery_image_versions.get(g["resource_group"], g["name"], d["name"], name)
    except ResourceNotFoundError:
        return None


def states(result) -> dict:
    return {t["task"]: t["state"] for t in result.tasks}


def test_builds_make_v1_then_v2_on_alpha(runs):
    for name in ("night1", "night2"):
        assert runs[name].exit_code == 0, runs[name].log[-4000:]


def test_a_dry_run_rollback_names_the_version_each_pool_goes_back_to(runs):
    r = runs["dry_rollback"]
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    assert r.writes == [], [(w["method"], w["path"]) for w in r.writes]
    for text in ("(mode dry_run)", f"roll only        builds nothing; pools go to existing version(s): {V1}",
                 f"goes to existing version {V1}",
                 f"decision: roll {naming.pool_id('alpha', V2)} on {V2} -> {naming.pool_id('alpha', V1)}"):
        assert text in r.log, text


def test_rollback_serves_v1_again_without_building_anything(runs):
    r = runs["rollback"]
    assert r.exit_code == 0 and r.state == "success", r.log[-6000:]
    build_writes = [(w["method"], w["op"]) for w in r.writes if w["op"].startswith(BUILD_OPS)]
    assert build_writes == []
    after = runs["after_rollback"]
    v1_pool, v2_pool = naming.pool_id("alpha", V1), naming.pool_id("alpha", V2)
    assert set(after["pools"]) == {v1_pool}, after["pools"]  # the V2 pool drained and deleted
    md = after["pools"][v1_pool]
    assert md[naming.TAG_ROLE] == naming.ROLE_SERVING and md[naming.TAG_IMAGE_VERSION] == V1
    assert naming.TAG_PREVIOUS_VERSIONS not in md  # back at the start of its history
    assert after["user_job_pool"] == v1_pool and after["missing"] == []
    v2 = after["v2"]
    assert v2 is not None and naming.TAG_REVOKED not in (v2.tags or {})  # kept, not revoked
    st = states(r)
    for task in ("snapshot_disks", "wait_for_snapshots", "create_managed_image", "publish_image_version",
                 "delete_temporary_resources"):
        assert st[task] == "skipped", (task, st[task])
    assert st["ready_existing_versions"] == "success" and st["roll_pool[0]"] == "success"
    roll = r.xcoms["roll_pool[0]:return_value"]
    assert roll["version"] == V1 and roll["deleted_pools"] == [v2_pool]
    # the summary tells it: the mode, alpha back on V1 with the user's job moved, V2 kept, nothing temporary
    lines, summary = read_summary(r)
    assert summary["mode"] == "rollback" and lines[2] == ("ROLLBACK: nothing was built; each logical pool below went "
                                                          "back to the version it served before.")
    assert block(lines, "Rolls (per logical pool):", 2) == [
        f"  alpha: rolled from {v2_pool} ({V2}) to {v1_pool} ({V1}); jobs moved: user-job; old pools drained and "
        f"deleted: {v2_pool}", ""]
    assert block(lines, "Versions:", 1) == ["  retired (deleted): none"]
    assert block(lines, "Resources:", 2) == [f"  pool           {v1_pool}", ""]  # no snapshot / image lines
    print(f"\nrollback: {r.requests['arm']} ARM + {r.requests['batch']} Batch requests; night 2 (a build): "
          f"{runs['night2'].requests['arm']} ARM + {runs['night2'].requests['batch']} Batch")


def test_roll_to_existing_adds_the_missing_region_then_rolls(runs):
    r = runs["to_existing"]
    assert r.exit_code == 0 and r.state == "success", r.log[-6000:]
    v2 = runs["after_to_existing"]["v2"]
    regions = sorted(t.name.replace(" ", "").lower() for t in v2.publishing_profile.target_regions)
    assert regions == ["northeurope", "westeurope"]
    assert "adding northeurope x1" in r.log
    pools = runs["after_to_existing"]["pools"]
    assert set(pools) == {naming.pool_id("beta", V2)}
    assert pools[naming.pool_id("beta", V2)][naming.TAG_PREVIOUS_VERSIONS] == V1
    assert [w for w in r.writes if w["op"].startswith(("Snapshots_", "Images_", "VirtualMachines_"))] == []


def test_revoke_moves_pools_off_the_version_and_retention_deletes_it(runs):
    r = runs["revoke"]
    assert r.exit_code == 0 and r.state == "success", r.log[-6000:]
    after = runs["after_revoke"]
    assert set(after["beta"]) == {naming.pool_id("beta", V1)}
    assert set(after["alpha"]) == {naming.pool_id("alpha", V1)}  # alpha was on V1: left alone
    assert "Logical pool alpha: not on the revoked version" in r.log
    revoked_put = [w for w in r.writes if w["op"].startswith("GalleryImageVersions_") and w["method"] == "PUT"]
    assert revoked_put, "the version was never revoked"
    assert after["v2"] is None  # retention: revoked and no longer used
    assert V2 in r.xcoms["retire_old_versions:return_value"]["deleted"][0]
    assert after["missing"] == []
    lines, summary = read_summary(r)
    assert lines[2].startswith(f"REVOKE {V2}: tagged revoked and excluded from latest")
    beta_v1, beta_v2 = naming.pool_id("beta", V1), naming.pool_id("beta", V2)
    rolls = block(lines, "Rolls (per logical pool):", 2)
    assert f"  beta: rolled from {beta_v2} ({V2}) to {beta_v1} ({V1}); old pools drained and deleted: {beta_v2}" \
        in rolls
    assert [x for x in rolls if x.startswith(f"  alpha: not on the revoked version {V2}")], rolls
    assert block(lines, "Versions:", 2) == [f"  revoked: {V2}", f"  retired (deleted): {V2}"]


@pytest.mark.parametrize("name, words", [
    ("bad_rollback", "logical pool alpha (serving pool alpha-2026-1125-0 on 2026.1125.0) has no earlier version"),
    ("bad_deleted", "no such image version"),
    ("bad_no_version", "mode roll_to_existing needs the existing version to roll to"),
])
def test_bad_roll_only_input_is_refused_before_any_write(runs, name, words):
    r = runs[name]
    assert r.exit_code != 0 and r.writes == [], [(w["method"], w["path"]) for w in r.writes]
    assert words in r.log
    assert states(r)["preflight"] == "failed"
