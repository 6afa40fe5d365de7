"""Every DAG file imports cleanly and every DAG carries what an operator of Airflow expects."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found in dags/"


def test_every_dag_has_tags_owner_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and dag_id in dag.doc_md, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow" or dag.default_args.get("owner"), (dag_id, task.task_id)
            assert task.retries >= 1 or task.is_teardown, (dag_id, task.task_id)


def test_the_shipped_pipelines_have_no_cut_off(dagbag):
    """No deadline_minutes in the shipped pipelines: `airflow dags test` (make demo, the pipeline tests) of a DAG with
    a Deadline Alert ends a successful run with an error in Airflow 3.3.2 (apache/airflow#73428)."""
    assert {dag_id: dag.deadline for dag_id, dag in dagbag.dags.items() if dag.deadline} == {}


def test_demo_dag_has_the_recipe_steps_in_order(dagbag):
    dag = dagbag.dags["batch_image_ubuntu2204"]
    # The recipe, then the roll (issue 10): nothing moves users' work before the new pool is steady, passed its
    # smoke test and its version is promoted.
    order = ["preflight", "snapshot_disks", "wait_for_snapshots", "create_managed_image",
             "publish_image_version", "plan_roll", "create_pool", "wait_for_pool_steady", "smoke_test",
             "promote_image_version", "roll_pool"]
    for upstream, downstream in zip(order, order[1:]):
        assert upstream in dag.get_task(downstream).upstream_task_ids | {
            t for t in dag.get_task(downstream).get_flat_relative_ids(upstream=True)}, (upstream, downstream)
    cleanup = dag.get_task("delete_temporary_resources")
    assert cleanup.is_teardown
    assert dag.params["rebuild"] == 0


def test_a_dag_id_declared_in_two_pipelines_files_is_an_import_error(tmp_path, monkeypatch):
    """A copy of demo.yaml with the same dag_id: the DAG file's import error (the UI's "DAG Import Errors") names
    both files and the fix, instead of one DAG silently winning."""
    from airflow.models import DagBag

    demo = (ROOT / "include" / "pipelines" / "demo.yaml").read_text()
    (tmp_path / "demo.yaml").write_text(demo)
    (tmp_path / "contoso.yaml").write_text(demo)
    monkeypatch.setenv("BATCH_IMAGES_PIPELINES_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(ROOT / "dags" / "batch_image_pipelines.py"))
    [error] = bag.import_errors.values()
    assert f"declared in both {tmp_path / 'contoso.yaml'} and {tmp_path / 'demo.yaml'}" in error, error
    assert "its own dag_id" in error and "BATCH_IMAGES_PIPELINES_DIR" in error, error
    assert not bag.dags


def test_dag_file_imports_no_azure_sdk_at_parse_time():
    """DAG files must parse fast: no azure.* module may be imported by merely loading them."""
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "bad = sorted(m for m in sys.modules if m.startswith(('azure.', 'msal')) or m == 'azure'); "
        "print('\\n'.join(bad)); sys.exit(1 if bad else 0)"
    )
    for dag_file in sorted((ROOT / "dags").glob("*.py")):
        proc = subprocess.run([sys.executable, "-c", code, str(dag_file)], capture_output=True, text=True,
                              env={**__import__("os").environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"})
        assert proc.returncode == 0, f"{dag_file.name} imports Azure SDK modules at parse time:\n{proc.stdout}{proc.stderr[-2000:]}"


def _next_run(dag, monkeypatch, now: str, last_run: str | None = None, catchup: bool | None = None):
    """When the scheduler would start the DAG's next scheduled run at ``now`` (UTC), its last scheduled run
    being the one of ``last_run`` (None: never ran), as the dag-processor computes it on every parse, also
    while the DAG is paused: the serialized DAG, as the scheduler reads it."""
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DagRunInfo

    import batch_images.timetables as timetables

    monkeypatch.setattr(timetables, "utcnow", lambda: pendulum.parse(now))
    stored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    if catchup is not None:
        stored.catchup = catchup
        stored.__dict__.pop("_time_restriction", None)
    last = DagRunInfo.exact(pendulum.parse(last_run)) if last_run else None
    info = stored.next_dagrun_info(last_automated_run_info=last)
    return info.run_after.isoformat()


@pytest.mark.parametrize("dag_id", ["batch_image_ubuntu2204", "batch_image_ubuntu2204_base"])
def test_unpausing_starts_no_build_until_the_next_cron_time(dagbag, monkeypatch, dag_id):
    """Issue 22: unpausing an @daily pipeline in the afternoon made scheduled__<today>T00:00 at once (stock
    CronTriggerTimetable with catchup off schedules the last past cron time). Now the first scheduled run is the
    next cron time, whether the DAG never ran or was paused for a week; the base-image pipeline's cron (inside its
    AssetOrTimeSchedule) the same."""
    dag = dagbag.dags[dag_id]
    assert _next_run(dag, monkeypatch, "2026-12-04T15:00:00Z") == "2026-12-05T00:00:00+00:00"
    assert _next_run(dag, monkeypatch, "2026-12-04T15:00:00Z", last_run="2026-11-27T00:00:00Z") == \
        "2026-12-05T00:00:00+00:00"
    # the nightly run is kept when the dag-processor re-parses right after midnight, before the scheduler made the
    # run (5 minutes' grace), and unpausing inside those 5 minutes starts that night's run
    assert _next_run(dag, monkeypatch, "2026-12-04T00:04:00Z", last_run="2026-12-03T00:00:00Z") == \
        "2026-12-04T00:00:00+00:00"
    assert _next_run(dag, monkeypatch, "2026-12-04T00:04:00Z") == "2026-12-04T00:00:00+00:00"
    assert _next_run(dag, monkeypatch, "2026-12-04T00:06:00Z", last_run="2026-12-03T00:00:00Z") == \
        "2026-12-05T00:00:00+00:00"
    # nothing before the pipeline's start_date (demo: 2026-11-01)
    assert _next_run(dag, monkeypatch, "2026-10-20T15:00:00Z") == "2026-11-01T00:00:00+00:00"
    # with catchup (as backfills ask) the cron's own behaviour: the interval after the last run
    assert _next_run(dag, monkeypatch, "2026-12-04T15:00:00Z", last_run="2026-11-27T00:00:00Z", catchup=True) == \
        "2026-11-28T00:00:00+00:00"


def test_a_malformed_version_is_refused_with_the_format_not_a_regex_dump(dagbag):
    """What the REST API (and so the trigger form) answers for a malformed ``version`` (issue 22): Airflow 3.3's
    message quotes the pattern and dumps the schema, so the pattern is the short shape and the schema's title shows
    an example; the 32-bit bound and leading zeros are refused by preflight (tests/rules)."""
    from airflow.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    stored = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags["batch_image_ubuntu2204"]))
    with pytest.raises(ParamValidationError) as info:
        stored.params.deep_merge({"version": "2026.1201"}).validate()
    message = str(info.value)
    first = message.splitlines()[0]
    assert first == r"Invalid input for param version: '2026.1201' does not match '^([0-9]+[.][0-9]+[.][0-9]+)?$'", first
    assert "'title': 'Version (Major.Minor.Patch, e.g. 2026.1201.0)'" in message, message
    assert len(message) < 400, message
    stored.params.deep_merge({"version": "2026.1201.0"}).validate()
    # a negative rebuild: refused by the REST API (the form's number field puts it back to 0 before it is sent)
    with pytest.raises(ParamValidationError, match=r"^Invalid input for param rebuild: -1 is less than the minimum of 0"):
        stored.params.deep_merge({"rebuild": -1}).validate()
