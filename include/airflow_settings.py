"""Load airflow_settings.yaml (Astro CLI format) into the Airflow metadata DB.

`astro dev start` does this for Astro users; `make demo` calls this module for a plain venv.
With --endpoints, the connections are pointed at the stand-in that endpoints.json describes: URLs that
name the stand-in's default address get its address (another PORT) and a ``ca_bundle`` naming the default
state dir's CA (``.standin/ca.pem``) gets its CA file (another STATE_DIR).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

DEFAULT_STANDIN = "https://127.0.0.1:8443"
DEFAULT_CA_BUNDLE = ".standin/ca.pem"  # the CA of `make standin` / `make demo` with the default STATE_DIR


def _for_standin(extra: dict, endpoints: dict) -> dict:
    """``extra`` pointed at the stand-in described by ``endpoints``: its address and its CA file."""
    base = endpoints["arm"]
    out = {k: v.replace(DEFAULT_STANDIN, base) if isinstance(v, str) else v for k, v in extra.items()}
    if isinstance(out.get("ca_bundle"), str) and Path(out["ca_bundle"]) == Path(DEFAULT_CA_BUNDLE) \
            and endpoints.get("ca_bundle"):
        out["ca_bundle"] = endpoints["ca_bundle"]
    return out


def read_connections(path: Path, standin: dict | str | None = None) -> list[dict]:
    """The connections of an Astro settings file as Connection keyword dicts.

    :param standin: the stand-in's endpoints.json document (address and CA are rewritten, see the module
        docstring), or only its base URL (address only), or None (as written).
    """
    if isinstance(standin, str):
        standin = {"arm": standin}
    doc = yaml.safe_load(path.read_text()) or {}
    conns = (doc.get("airflow") or {}).get("connections") or []
    out = []
    for c in conns:
        extra = c.get("conn_extra") or {}
        if standin:
            extra = _for_standin(extra, standin)
        out.append({
            "conn_id": c["conn_id"],
            "conn_type": c["conn_type"],
            "host": c.get("conn_host") or None,
            "schema": c.get("conn_schema") or None,
            "login": c.get("conn_login") or None,
            "password": c.get("conn_password") or None,
            "port": c.get("conn_port") or None,
            "extra": json.dumps(extra) if extra else None,
        })
    return out


def as_env(conns: list[dict]) -> dict[str, str]:
    """The same connections as AIRFLOW_CONN_* variables (JSON form).

    `airflow dags test` runs deferrable triggers in-line, where Airflow 3.3 resolves connections from
    environment variables and secrets backends only, not from the metadata DB.
    """
    env = {}
    for c in conns:
        doc = {k: v for k, v in c.items() if k not in ("conn_id", "extra") and v is not None}
        if c.get("extra"):
            doc["extra"] = json.loads(c["extra"])
        env[f"AIRFLOW_CONN_{c['conn_id'].upper()}"] = json.dumps(doc)
    return env


def upsert_connections(conns: list[dict]) -> list[str]:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        for c in conns:
            session.query(Connection).filter(Connection.conn_id == c["conn_id"]).delete()
            session.add(Connection(**c))
    return [c["conn_id"] for c in conns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settings", type=Path, default=Path(__file__).resolve().parents[1] / "airflow_settings.yaml")
    parser.add_argument("--endpoints", type=Path, help="the stand-in's endpoints.json")
    args = parser.parse_args(argv)
    standin = json.loads(args.endpoints.read_text()) if args.endpoints else None
    ids = upsert_connections(read_connections(args.settings, standin))
    print(f"loaded connections: {', '.join(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
