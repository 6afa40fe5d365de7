"""The trigger form's options through the real DAG (`airflow dags test --conf`, include/pipeline_runner.py) against
the stand-in, checked through the SDKs and the stand-in's request log.

One pipeline, two logical pools in one Batch account (``alpha`` with a smoke test, ``beta``), target regions
westeurope (the gallery's and the account's) and northeurope. Four runs in order, each on its own logical date:

1. ``dry_run``: preflight and the plan only - every name, id, replica count and timeout printed, zero writes in the
   request log, every other task skipped (the teardowns too write nothing), run_summary says DRY RUN and prints the
   plan (no resource lines, no "None").
2. ``version`` 2026.1125.7, ``pools`` [alpha], ``target_regions`` [westeurope]: exactly that version, replicated to
   westeurope only, only alpha gets a pool (beta none).
3. ``canary_only`` (pools [alpha]): version 2026.1126.0 published excluded from latest, the canary alpha-2026-1126-0
   made, steady and smoke-tested and left in role canary; the serving pool not touched at all (same ETag, metadata).
4. a normal run of the same version (``version`` 2026.1126.0): adopts that canary (still run 3's pool) and rolls
   alpha to it; the version is promoted and the old pool deleted.
"""
from __future__ import annotations


import pytest

from batch_images.rules import naming
from tests.e2e._fresh_pipeline import demo_pipeline, fresh_pipeline
from tests.summary_text import block, read_summary
from include.pipeline_runner import run_dag_test

DATES = {"dry": "2026-11-24T00:00:00+00:00", "subset": "2026-11-25T00:00:00+00:00",
         "canary": "2026-11-26T00:00:00+00:00", "adopt": "2026-11-27T00:00:00+00:00"}
V_SUBSET, V_CANARY = "2026.1125.7", "2026.1126.0"


def pipeline(ep: dict, dag_id: str) -> dict:
    cfg, base = demo_pipeline(ep, dag_id)
    cfg["pools"] = [{**base, "pool_id_prefix": "alpha"}, {**base, "pool_id_prefix": "beta", "smoke_test": None}]
    return cfg


def pool_facts(batch, pool_id: str) -> dict | None:
    """What a run must not change about a serving pool it does not roll."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        p = batch.get_pool(pool_id)
    except ResourceNotFoundError:
        return None
    return {"etag": p.etag, "last_modified": str(p.last_modified), "state": str(p.state),
            "image": p.virtual_machine_configuration.image_reference.virtual_machine_image_id,
            "target": p.target_dedicated_nodes, "metadata": {m.name: m.value for m in p.metadata or []}}


def writes(standin, since: int) -> list[dict]:
    items = standin.control.requests(since=since, items=True)["items"]
    return [r for r in items if r["family"] in ("arm", "batch") and r["write"]]


@pytest.fixture(scope="module")
def runs(standin_session, tmp_path_factory):
    s, ep, tmp, dag_id, cfg, env = fresh_pipeline(standin_session, tmp_path_factory, "options", pipeline)
    batch = s.batch()
    out = {"cfg": cfg, "dag_id": dag_id, "standin": s, "batch": batch}

    def run(name: str, conf: dict):
        mark = s.control.requests()["last_id"]
        result = run_dag_test(dag_id, DATES[name], tmp / f"{name}.log", env=env, pipelines_dir=tmp / "pipelines",
                              conf=conf)
        result.writes = writes(s, mark)
        result.total = len([r for r in s.control.requests(since=mark, items=True)["items"]
                            if r["family"] in ("arm", "batch")])
        out[name] = result
        return result

    run("dry", {"dry_run": True})
    run("subset", {"version": V_SUBSET, "pools": ["alpha"], "target_regions": ["westeurope"]})
    serving = naming.pool_id("alpha", V_SUBSET)
    out["pools_after_subset"] = {p.id for p in batch.list_pools()}
    out["serving_before"] = pool_facts(batch, serving)
    run("canary", {"canary_only": True, "pools": ["alpha"]})
    out["serving_after_canary"] = pool_facts(batch, serving)
    out["canary_pool"] = pool_facts(batch, naming.pool_id("alpha", V_CANARY))
    out["canary_version_excluded"] = version(s, cfg, V_CANARY).publishing_profile.exclude_from_latest
    run("adopt", {"version": V_CANARY, "pools": ["alpha"]})
    return out


def version(standin, cfg: dict, name: str):
    g, d = cfg["gallery"], cfg["image_definition"]
    return standin.compute().gallery_image_versions.get(g["resource_group"], g["name"], d["name"], name)


def states(result) -> dict:
    return {t["task"]: t["state"] for t in result.tasks}


def test_dry_run_writes_nothing_and_prints_the_plan(runs):
    r = runs["dry"]
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    assert r.writes == [], [(w["method"], w["path"]) for w in r.writes]
    assert r.total > 0  # preflight did read Azure and Batch: the zero is measured
    st = states(r)
    assert st.pop("preflight") == "success" and st.pop("dry_run_gate") == "success"
    assert st.pop("run_summary") == "success"
    assert set(st.values()) == {"skipped"}, st  # everything else, the teardowns included
    plan = r.xcoms["preflight:return_value"]
    assert plan["options"]["dry_run"] is True and plan["version"] == "2026.1124.0"
    log = r.log
    assert "DRY RUN - nothing will be written" in log
    for text in [plan["version_id"], plan["image_id"], *plan["snapshot_names"].values(), "alpha-2026-1124-0",
                 "beta-2026-1124-0", "westeurope", "northeurope", "1 replica(s)", "vm size Standard_D2s_v3",
                 "2 dedicated + 0 low-priority node(s)", "resizeTimeout PT15M", "drain timeout 120 min",
                 "timeout 10 min", "replication ", "decision: first: alpha-2026-1124-0 becomes its first serving pool"]:
        assert text in log, text
    lines, summary = read_summary(r)
    assert summary["mode"] == "dry_run" and "alpha-2026-1124-0" in summary["plan_text"]
    assert lines[2:4] == ["DRY RUN: preflight and the plan only; nothing was written to Azure, every other task "
                          "skipped.", f"Plan of {runs['dag_id']} run {r.run['run_id']} (mode dry_run):"]
    for role, name in plan["snapshot_names"].items():  # a column each: no role run into the name
        assert [x for x in lines if x.startswith(f"  {'snapshot ' + role:<16} {name}  /subscriptions/")], role
    assert "      decision: first: beta-2026-1124-0 becomes its first serving pool" in lines
    assert block(lines, "Resources:", 1) == ["  none (a dry run creates nothing)"]
    assert "None" not in "\n".join(lines)
    assert not {"Rolls (per logical pool):", "Versions:", "Replication per region:", "Pools:"} & set(lines)
    assert "  create_pool                        skipped" in lines


def test_version_override_regions_and_pools_subset(runs):
    r = runs["subset"]
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    plan = r.xcoms["preflight:return_value"]
    assert plan["version"] == V_SUBSET and plan["version_id"].endswith(f"/versions/{V_SUBSET}")
    v = version(runs["standin"], runs["cfg"], V_SUBSET)
    assert [t.name.replace(" ", "").lower() for t in v.publishing_profile.target_regions] == ["westeurope"]
    assert v.publishing_profile.exclude_from_latest is False  # promoted
    # only alpha rolled: one mapped roll, one pool, no beta pool at all
    assert [t for t in states(r) if t.startswith("roll_pool")] == ["roll_pool[0]"]
    pools = runs["pools_after_subset"]
    assert naming.pool_id("alpha", V_SUBSET) in pools
    assert not [p for p in pools if p.startswith("beta-")], pools
    # the version's PUT named exactly that version, and no other version was created
    puts = [w for w in r.writes if "/versions/" in w["path"] and w["method"] == "PUT"]
    assert puts and all(w["path"].endswith(f"/versions/{V_SUBSET}") for w in puts)


def test_canary_only_keeps_the_canary_and_leaves_the_serving_pool_untouched(runs):
    r = runs["canary"]
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    assert runs["serving_before"] is not None
    assert runs["serving_after_canary"] == runs["serving_before"]  # same ETag: not one write to it
    serving = naming.pool_id("alpha", V_SUBSET)
    assert not [w for w in r.writes if f"/pools/{serving}" in w["path"]], r.writes
    canary = runs["canary_pool"]
    assert canary is not None and canary["metadata"][naming.TAG_ROLE] == naming.ROLE_CANARY
    assert canary["metadata"][naming.TAG_IMAGE_VERSION] == V_CANARY and canary["state"].lower().endswith("active")
    assert runs["canary_version_excluded"] is True
    st = states(r)
    assert st["smoke_test[0]"] == "success" and st["wait_for_pool_steady[0]"] == "success"
    # what a canary-only run does not do ends skipped, so the grid shows it (issue 22)
    assert st["promote_image_version"] == "skipped" and r.xcoms.get("promote_image_version:return_value") is None
    # roll_pool is never expanded when promotion is skipped: its unexpanded task instance is skipped
    assert st["roll_pool"] == "skipped" and "roll_pool[0]" not in st
    assert st["discard_canaries"] == "skipped" and st["retire_old_versions"] == "skipped"
    assert r.xcoms.get("roll_pool[0]:return_value") is None
    lines, summary = read_summary(r)
    assert summary["mode"] == "canary_only" and lines[2].startswith("CANARY ONLY: the version is published excluded")
    canary_id, serving = naming.pool_id("alpha", V_CANARY), naming.pool_id("alpha", V_SUBSET)
    assert block(lines, "Rolls (per logical pool):", 2) == [
        f"  alpha: canary {canary_id} ({V_CANARY}) made beside {serving} ({V_SUBSET}); nothing moved", ""]
    assert "Versions:" not in lines  # retention skipped: nothing retired
    for task in ("promote_image_version", "roll_pool", "retire_old_versions", "discard_canaries"):
        assert [x for x in lines if x.split() and x.split()[0] == task and x.split()[1] == "skipped"], task
    resources = lines[lines.index("Resources:") + 1:lines.index("Replication per region:") - 1]
    temporary = [x for x in resources if x.startswith(("  snapshot ", "  managed image "))]
    assert len(temporary) == 3 and all(x.endswith(" - deleted by delete_temporary_resources") for x in temporary)
    assert f"  pool           {canary_id}" in resources


def test_a_later_normal_run_of_the_same_version_adopts_the_canary(runs):
    r = runs["adopt"]
    assert r.exit_code == 0 and r.state == "success", r.log[-4000:]
    canary_id = naming.pool_id("alpha", V_CANARY)
    pools = {p.id: p for p in runs["batch"].list_pools()}
    assert canary_id in pools and naming.pool_id("alpha", V_SUBSET) not in pools
    md = {m.name: m.value for m in pools[canary_id].metadata}
    assert md[naming.TAG_ROLE] == naming.ROLE_SERVING
    assert md[naming.TAG_RUN_ID] == runs["canary"].run["run_id"]  # run 3's pool, adopted, not made again
    assert not [w for w in r.writes if w["method"] == "POST" and w["path"].rstrip("/").endswith("/pools")]
    assert version(runs["standin"], runs["cfg"], V_CANARY).publishing_profile.exclude_from_latest is False
    assert "a canary of this run's version: this run adopts it" in r.log
    lines, _ = read_summary(r)
    serving = naming.pool_id("alpha", V_SUBSET)
    assert block(lines, "Rolls (per logical pool):", 1) == [
        f"  alpha: rolled from {serving} ({V_SUBSET}) to {canary_id} ({V_CANARY}); old pools drained and deleted: "
        f"{serving}"]
    assert block(lines, "Versions:", 1) == ["  retired (deleted): none"]
