"""No credential leaves the pipeline: not the client secret, not a bearer token, not a Batch account key.

A stand-in of its own (not the shared fixture) is started with a known, distinctive client secret, the
real DAG runs against it with `airflow dags test`, and everything a run leaves behind for people to
read is scanned:

* the `airflow dags test` output (task logs, trigger logs, exceptions) and every file under Airflow's
  ``[logging] base_log_folder`` that belongs to the DAG (dags test writes none today; scanned if any appear);
* every XCom of the run;
* the rendered template fields of every task instance of the run (table rendered_task_instance_fields);
* the `make demo` summary (the run_summary task's text and its XCom `summary`, via include/demo.py's functions:
  printed text and JSON);
* and, beyond those, the run's deferral state (task_instance.next_kwargs, trigger kwargs) and the
  serialized DAG in the metadata DB.

Account keys only become reachable when a connection holds one, so a second run uses a shared-key Batch
connection (preflight refuses it) and the same scan looks for the key.

Token refusals: tests/standin/test_identity_and_auth.py covers missing, expired, wrong-audience and
other-tenant tokens on ARM and Batch, and a wrong client secret. Added here, because they need a second
stand-in or were not covered: a token signed by another stand-in's key, a token whose payload was altered,
a non-Bearer Authorization scheme, this stand-in refusing the default dev secret, and no 401 echoing the
token it refused.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from include.azure_standin.client import StandInProcess
from include.pipeline_runner import ROOT, RunResult, connection_env, run_dag_test, write_pipeline
from batch_images.rules.config import load_pipelines

LOGICAL_DATE = "2026-11-25T00:00:00+00:00"
JWT_RE = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
BEARER_RE = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}")
ARM_SCOPE = "https://management.azure.com/.default"


@pytest.fixture(scope="module")
def secret_standin(tmp_path_factory):
    secret = f"S3cret-{secrets.token_urlsafe(24)}"
    proc = StandInProcess(tmp_path_factory.mktemp("standin-secret"), time_scale=3000, client_secret=secret)
    proc.start()
    proc.secret = secret
    assert proc.endpoints["client_secret"] == secret
    yield proc
    proc.stop()


@pytest.fixture
def fresh(secret_standin):
    secret_standin.endpoints = secret_standin.control.reset()
    secret_standin.control.set_scale(3000)
    secret_standin.control.clear_requests()
    return secret_standin


def pipeline(ep: dict) -> dict:
    cfg = load_pipelines(ROOT / "include" / "pipelines" / "demo.yaml")[0].to_dict()
    demo = ep["demo"]
    cfg.update(dag_id=f"secrets_{uuid.uuid4().hex[:8]}", poll_interval_seconds=1, source_vm_id=demo["source_vm_id"])
    cfg["gallery"].update(subscription_id=demo["subscription_id"], resource_group=demo["resource_group"])
    cfg["pools"][0]["batch_account_id"] = demo["batch_account_id"]
    return cfg


def forbidden_values(standin) -> dict[str, str]:
    """The credentials the scan looks for, by name (never printed by an assertion)."""
    out = {"client secret": standin.secret}
    for name, acct in standin.endpoints["batch_accounts"].items():
        out[f"account key of {name}"] = acct["primary_key"]
    return out


def run_artifacts(result: RunResult, dag_id: str) -> dict[str, str]:
    """Everything the run left for people to read, as text, by where it came from."""
    from airflow.configuration import conf
    from airflow.models import TaskInstance, Trigger
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    out = {"dags test output": result.log, "xcom": json.dumps(result.xcoms, default=str, sort_keys=True)}
    log_dir = Path(conf.get("logging", "base_log_folder"))
    for path in sorted(log_dir.rglob("*")) if log_dir.is_dir() else []:
        if path.is_file() and f"dag_id={dag_id}" in str(path):
            out[f"log file {path.relative_to(log_dir)}"] = path.read_text(errors="replace")
    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == result.run["run_id"]).all()
        for row in rows:
            out[f"rendered fields of {row.task_id}[{row.map_index}]"] = json.dumps(
                {"rendered_fields": row.rendered_fields, "k8s_pod_yaml": row.k8s_pod_yaml}, default=str)
        # Beyond the brief, also in the metadata DB: deferral state and the serialized DAG.
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id,
                                                 TaskInstance.run_id == result.run["run_id"]).all()
        out["task instances (next_method, next_kwargs)"] = json.dumps(
            [[ti.task_id, ti.map_index, ti.next_method, ti.next_kwargs] for ti in tis], default=str)
        trigger_ids = [ti.trigger_id for ti in tis if ti.trigger_id]
        triggers = session.query(Trigger).filter(Trigger.id.in_(trigger_ids)).all() if trigger_ids else []
        out["triggers (kwargs)"] = json.dumps([[t.classpath, t.kwargs] for t in triggers], default=str)
        dags = session.query(SerializedDagModel).filter(SerializedDagModel.dag_id == dag_id).all()
        out["serialized DAG"] = json.dumps([d.data for d in dags], default=str)
    return out


def demo_summary(standin, result: RunResult, dag_id: str, tmp: Path, capsys) -> dict[str, str]:
    """The `make demo` summary for this run, made by include/demo.py's functions as main() makes it."""
    from include.demo import build_summary, print_summary

    night = {"night": 1, "logical_date": LOGICAL_DATE, "exit_code": result.exit_code,
             "wall_seconds": round(result.wall_seconds, 1), "batch_requests": 0, "arm_requests": 0,
             "rolls": [v for k, v in sorted(result.xcoms.items())
                     if k.startswith("roll_pool[") and k.endswith(":return_value") and v]}
    summary = build_summary(dag_id, result, [night], standin.control.requests(), 3000.0, tmp / "demo-summary.json")
    assert summary["run_summary"]["pools"], "the run_summary task's XCom summary is what make demo keeps"
    capsys.readouterr()
    print_summary(summary)
    return {"demo summary (printed)": capsys.readouterr().out,
            "demo summary (json)": Path(summary["summary_path"]).read_text()}


def leaks(artifacts: dict[str, str], forbidden: dict[str, str]) -> list[str]:
    """'<what> in <where>' for every credential or token found; values themselves are not reported."""
    found = []
    for where, text in artifacts.items():
        for what, value in forbidden.items():
            if value and value in text:
                found.append(f"{what} in {where}")
        for m in JWT_RE.finditer(text):
            found.append(f"a JWT ({m.group()[:12]}...) in {where}")
        for m in BEARER_RE.finditer(text):
            found.append(f"a bearer credential ({m.group()[:14]}...) in {where}")
    return found


def test_a_full_run_leaves_no_secret_token_or_key_anywhere(fresh, tmp_path, capsys, reliability_row):
    ep = fresh.endpoints
    cfg = pipeline(ep)
    write_pipeline(tmp_path / "pipelines", cfg)
    result = run_dag_test(cfg["dag_id"], LOGICAL_DATE, tmp_path / "dags-test.log", env=connection_env(ep),
                          pipelines_dir=tmp_path / "pipelines")
    assert result.exit_code == 0 and result.state == "success", result.log[-3000:]

    artifacts = run_artifacts(result, cfg["dag_id"])
    artifacts.update(demo_summary(fresh, result, cfg["dag_id"], tmp_path, capsys))

    # The scan reads real material: the run authenticated with this secret (tokens were issued), the log
    # names the service principal, every task has rendered fields, and the regex finds this stand-in's tokens.
    requests = fresh.control.requests()
    assert requests["by_family"].get("identity", 0) > 0 and requests["writes"] > 0
    assert ep["client_id"] in artifacts["dags test output"] and "Preflight passed" in artifacts["dags test output"]
    assert "preflight:return_value" in artifacts["xcom"]
    assert sum(k.startswith("rendered fields of ") for k in artifacts) == len(result.tasks) >= 9
    assert "Pools:" in artifacts["demo summary (printed)"] and "steady" in artifacts["demo summary (printed)"]
    live_token = fresh.control.token()
    assert JWT_RE.fullmatch(live_token) and leaks({"probe": f"Authorization: Bearer {live_token}"}, {})

    forbidden = forbidden_values(fresh)
    assert len(leaks({"probe": " ".join(forbidden.values())}, forbidden)) == len(forbidden)  # the scan finds each
    print({where: len(text) for where, text in artifacts.items()})  # what was scanned (pytest -s shows it)
    found = leaks(artifacts, forbidden)
    assert found == [], found
    reliability_row("secrets: full run (log, XCom, rendered fields, summary)", runs=1, survived=not found,
                    leaked=len(found), note=f"{len(artifacts)} artifacts scanned; secret, JWTs, account keys")


def test_a_refused_shared_key_connection_does_not_echo_the_account_key(fresh, tmp_path, reliability_row):
    ep = fresh.endpoints
    cfg = pipeline(ep)
    write_pipeline(tmp_path / "pipelines", cfg)
    env = connection_env(ep)
    name = ep["demo"]["batch_account"]
    batch = json.loads(env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"])
    batch.update(login=name, password=ep["batch_accounts"][name]["primary_key"])
    env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"] = json.dumps(batch)
    result = run_dag_test(cfg["dag_id"], LOGICAL_DATE, tmp_path / "dags-test.log", env=env,
                          pipelines_dir=tmp_path / "pipelines")
    assert result.task_state("preflight") == "failed" and "Shared Key" in result.log, result.log[-3000:]
    assert fresh.control.requests()["write_attempts"] == 0

    found = leaks(run_artifacts(result, cfg["dag_id"]), forbidden_values(fresh))
    assert found == [], found
    reliability_row("secrets: shared-key connection refused", runs=1, survived=not found, leaked=len(found),
                    writes_before_refusal=0, note="account key held by the connection appears nowhere")


# --- token refusals the identity tests do not cover ----------------------------------------------------------------


def _get(standin, url: str, authorization: str | None):
    ctx = ssl.create_default_context(cafile=standin.endpoints["ca_bundle"])
    req = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _vm_url(standin) -> str:
    return f"{standin.endpoints['arm']}{standin.endpoints['demo']['source_vm_id']}?api-version=2024-07-01"


def _pools_url(standin) -> str:
    acct = standin.endpoints["batch_accounts"][standin.endpoints["demo"]["batch_account"]]
    return f"{acct['endpoint']}/pools?api-version=2025-06-01"


def _tampered(token: str) -> str:
    """Same header and signature, payload changed (appid swapped): the signature no longer matches."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["appid"] = claims["azp"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


def test_default_dev_secret_is_refused_by_a_stand_in_with_another_secret(fresh):
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientSecretCredential

    ep = fresh.endpoints
    assert ep["client_secret"] != "standin-local-dev-secret"
    cred = ClientSecretCredential(ep["tenant_id"], ep["client_id"], "standin-local-dev-secret",
                                  authority=ep["authority"], disable_instance_discovery=True,
                                  connection_verify=ep["ca_bundle"])
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215") as info:
        cred.get_token(ARM_SCOPE)
    assert ep["client_secret"] not in str(info.value)


@pytest.mark.parametrize("plane", ["arm", "batch"])
def test_tokens_not_signed_by_this_stand_in_are_refused(fresh, standin, plane):
    """`standin` is the shared fixture: same tenant and client, another signing key."""
    audience = "https://management.azure.com" if plane == "arm" else "https://batch.core.windows.net/"
    url = _vm_url(fresh) if plane == "arm" else _pools_url(fresh)
    own = fresh.control.token(audience=audience)
    assert _get(fresh, url, f"Bearer {own}")[0] == 200  # the control: a token of this stand-in passes
    foreign = standin.control.token(audience=audience)
    # Batch also takes Shared Key signatures, and answers a bad one 403 AuthenticationFailed as Azure does.
    shared_key_status = 401 if plane == "arm" else 403
    for case, authorization, expected in [
            ("another stand-in's key", f"Bearer {foreign}", 401),
            ("payload altered", f"Bearer {_tampered(own)}", 401),
            ("not a JWT", "Bearer not-a-token", 401),
            ("Basic scheme", "Basic " + base64.b64encode(b"client:secret").decode(), 401),
            ("SharedKey scheme, bad signature", f"SharedKey batchimages:{own[:20]}", shared_key_status)]:
        status, body = _get(fresh, url, authorization)
        assert status == expected, (case, status, body[:300])
        token_part = authorization.split(" ", 1)[1]
        assert token_part not in body, case  # a refusal never echoes the credential it refused
        if plane == "arm":
            code = json.loads(body)["error"]["code"]
            assert code in ("InvalidAuthenticationToken", "AuthenticationFailed"), (case, code)
        else:
            assert json.loads(body)["code"], case
