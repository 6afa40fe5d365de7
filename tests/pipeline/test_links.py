"""Azure portal links (issue 12): every task that creates or waits for a resource links to its portal page.

A real `airflow dags test` run of the demo pipeline against the stand-in; the links are what the worker stored when
each task ended (the XCom the UI reads, key ``AzurePortalLink.xcom_key``), and ``get_link`` itself, called with the
task instance key of that run, gives the same URLs.
"""
from __future__ import annotations

import uuid

import pytest

from batch_images.links import AzurePortalLink, portal_url
from tests.pipeline._demo_run import run_demo


@pytest.fixture(scope="module")
def run(standin_session, tmp_path_factory):
    dag_id = f"links_{uuid.uuid4().hex[:8]}"
    result = run_demo(standin_session, tmp_path_factory.mktemp("links"), dag_id)
    return dag_id, result, standin_session.endpoints


def link(result, task: str, kind: str):
    return result.xcoms.get(f"{task}:{AzurePortalLink('x', lambda o, v: None, kind).xcom_key}")


def test_every_resource_task_links_to_its_portal_page(run):
    dag_id, r, ep = run
    assert r.exit_code == 0, r.log[-4000:]
    tenant, demo = ep["tenant_id"], ep["demo"]
    x = r.xcoms
    os_snapshot = next(s["id"] for s in x["snapshot_disks:return_value"] if s["role"] == "os")
    version = x["publish_image_version:return_value"]
    pool_id = x["create_pool[0]:return_value"]
    pool_arm = f"{demo['batch_account_id']}/pools/{pool_id}"
    expected = {
        ("snapshot_disks", "snapshot"): os_snapshot,
        ("wait_for_snapshots", "resource"): x["wait_for_snapshots:return_value"][0],
        ("create_managed_image", "managed_image"): x["create_managed_image:return_value"],
        ("publish_image_version", "image_version"): version,
        ("promote_image_version", "image_version"): version,
        ("create_pool[0]", "batch_pool"): pool_arm,
        ("wait_for_pool_steady[0]", "batch_pool"): pool_arm,
        ("roll_pool[0]", "batch_pool"): pool_arm,
    }
    for (task, kind), rid in expected.items():
        assert rid and rid.startswith("/subscriptions/"), (task, rid)
        assert link(r, task, kind) == f"https://portal.azure.com/#@{tenant}/resource{rid}", task
    assert "/Microsoft.Batch/batchAccounts/" in pool_arm and pool_arm.endswith(f"/pools/{pool_id}")


def test_get_link_reads_the_runs_xcom(run, monkeypatch):
    """get_link with the TaskInstanceKey of the run: the same URL the worker stored (XCom read from the DB)."""
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    import batch_images.links as links

    dag_id, r, ep = run
    run_id = r.run["run_id"]

    class DbXCom:  # the worker reads through the Execution API; outside a worker the same row is in the DB
        @staticmethod
        def get_value(*, ti_key, key):
            with create_session() as session:
                row = session.scalars(XComModel.get_many(
                    run_id=ti_key.run_id, key=key, dag_ids=ti_key.dag_id, task_ids=ti_key.task_id,
                    map_indexes=ti_key.map_index)).first()
                return XComModel.deserialize_value(row) if row is not None else None

    monkeypatch.setattr(links, "XCom", DbXCom)
    monkeypatch.setattr(links, "tenant_of", lambda conn_id: ep["tenant_id"])
    key = TaskInstanceKey(dag_id, "create_managed_image", run_id, 1, -1)

    class Rendered:
        plan = None
    url = links.IMAGE_LINKS[0].get_link(Rendered(), ti_key=key)
    assert url == portal_url(r.xcoms["create_managed_image:return_value"], ep["tenant_id"])
    assert url == link(r, "create_managed_image", "managed_image")
