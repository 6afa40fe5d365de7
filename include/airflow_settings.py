"""Load airflow_settings.yaml (Astro CLI format) into the Airflow metadata DB.

`astro dev start` does this for Astro users; `make demo` calls this module for a plain venv.
With --endpoints, URLs that name the stand-in's default address are rewritten to the address in
that endpoints.json, so the stand-in may run on another PORT.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

DEFAULT_STANDIN = "https://127.0.0.1:8443"


def read_connections(path: Path, standin_base: str | None = None) -> list[dict]:
    doc = yaml.safe_load(path.read_text()) or {}
    conns = (doc.get("airflow") or {}).get("connections") or []
    out = []
    for c in conns:
        extra = c.get("conn_extra") or {}
        if standin_base:
            extra = {k: v.replace(DEFAULT_STANDIN, standin_base) if isinstance(v, str) else v for k, v in extra.items()}
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
    base = json.loads(args.endpoints.read_text())["arm"] if args.endpoints else None
    ids = upsert_connections(read_connections(args.settings, base))
    print(f"loaded connections: {', '.join(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
