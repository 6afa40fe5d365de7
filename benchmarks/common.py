"""Shared pieces of the benchmarks: the result shape, a stand-in to run against, request/byte counting.

Every benchmark returns a :class:`Bench`: what it measures, its unit, how to read its ratio, and rows of
figures measured side by side in the same run (ours, a reference, their ratio, the target and whether it
was met). Nothing here imports Airflow at module level: the parse benchmark must see a clean process.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"

MET, MISSED, NOT_MEASURED, INFO = "met", "MISSED", "not measured", "info"

# The marketplace image of the seeded fixture's serving pools (tests/reliability/pipeline_harness.py):
# pools for the poll-cost and scale benchmarks need no gallery image, so no pipeline run is spent on them.
UBUNTU_2204 = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
               "version": "latest"}
NODE_AGENT = "batch.node.ubuntu 22.04"
VM_SIZE = "Standard_D2s_v3"  # 2 cores, DSv3 family


@dataclass
class Row:
    """One figure of a benchmark: ours against a reference measured in the same run.

    ``ratio`` is ``reference / ours`` or ``ours / reference`` as the benchmark's ``ratio_reads`` says;
    ``status`` is :data:`MET`, :data:`MISSED`, :data:`NOT_MEASURED` or :data:`INFO` (no target).
    """

    metric: str
    unit: str
    ours: float | None
    reference: float | None = None
    ratio: float | None = None
    target: str = ""
    status: str = INFO
    note: str = ""


@dataclass
class Bench:
    key: str
    title: str
    measures: str
    unit: str
    ratio_reads: str
    reference: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    detail: dict = field(default_factory=dict)   # the raw figures behind the rows (JSON only)
    seconds: float = 0.0
    error: str | None = None

    def add(self, *args, **kwargs) -> Row:
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def as_dict(self) -> dict:
        return asdict(self)


def verdict(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else (MET if ok else MISSED)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def machine() -> dict:
    """What the figures were measured on: cores, memory, CPU model, Python, load at start."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cores = os.cpu_count() or 0
    return {"cores": cores, "memory_gib": mem_gib, "cpu": cpu, "arch": platform.machine(),
            "python": platform.python_version(), "os": platform.system(), "load_1min_at_start": load,
            "short": f"{cores}core-{mem_gib}g-{platform.machine()}"}


# --- the stand-in -----------------------------------------------------------------------------------------------


class StandIn:
    """A stand-in process on a temp state dir, plus SDK clients and Airflow connections for it.

    ``use_connections()`` sets ``AIRFLOW_CONN_AZURE_DEFAULT`` / ``AIRFLOW_CONN_AZURE_BATCH_DEFAULT`` in this
    process (the project's hooks read them like any Airflow connection).
    """

    def __init__(self, time_scale: float = 3000.0, workdir: Path | None = None):
        from include.azure_standin.client import StandInProcess

        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-"))
        self.proc = StandInProcess(self.workdir / "standin", time_scale=time_scale)
        self.endpoints: dict = {}

    def __enter__(self) -> StandIn:
        self.endpoints = self.proc.start()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stop()

    @property
    def control(self):
        return self.proc.control

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def reset(self, scale: float) -> dict:
        self.endpoints = self.control.reset()
        self.control.set_scale(scale)
        self.endpoints = self.control.call("GET", "/endpoints")
        return self.endpoints

    def batch(self, **kwargs):
        from include.azure_standin.client import batch_client

        return batch_client(self.endpoints, **kwargs)

    def connection_env(self) -> dict[str, str]:
        from include.pipeline_runner import connection_env

        return connection_env(self.endpoints)

    def use_connections(self) -> None:
        os.environ.update(self.connection_env())
        try:  # connections are cached per process; a reset changes the Batch account keys, not the URLs
            from airflow.sdk.execution_time.cache import SecretCache

            SecretCache.reset()
        except Exception:
            pass

    def raise_quota(self, cores: int) -> None:
        """What an approved quota request does: dedicated cores and the DSv3 family (VM_SIZE's)."""
        self.control.call("PUT", "/batch/quotas", {
            "account": self.endpoints["demo"]["batch_account"], "dedicatedCoreQuota": cores,
            "dedicatedCoreQuotaPerVMFamily": [{"name": "standardDSv3Family", "coreQuota": cores}],
            "poolQuota": 200})

    def last_request_id(self) -> int:
        """The id of the newest logged request (0 if none): later figures count what came after it."""
        return int(self.control.requests()["last_id"] or 0)

    def requests_since(self, since: int, items: bool = False) -> dict:
        return self.control.requests(since=since, items=items)

    def clock(self) -> tuple[float, float, float]:
        """``(sim_now, scale, real_now)`` read together: maps the stand-in's simulated event times to wall time."""
        t0 = time.time()
        c = self.control.call("GET", "/clock")
        t1 = time.time()
        return float(c["now"]), float(c["scale"]), (t0 + t1) / 2

    def rss_bytes(self) -> dict:
        """The stand-in process's resident memory now and its peak (VmRSS, VmHWM from /proc)."""
        out = {}
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(("VmRSS", "VmHWM")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
        except OSError:
            pass
        return {"rss": out.get("VmRSS"), "peak": out.get("VmHWM")}

    def create_marketplace_pool(self, pool_id: str, nodes: int) -> float:
        """``Pool_Add`` of a marketplace-image pool with ``nodes`` dedicated nodes; returns its seconds."""
        from azure.batch import models as bm

        batch = self.batch()
        t0 = time.perf_counter()
        batch.create_pool(bm.BatchPoolCreateOptions(
            id=pool_id, vm_size=VM_SIZE, target_dedicated_nodes=nodes,
            resize_timeout=_timedelta(minutes=max(15, 15 * -(-nodes // 1000))),
            virtual_machine_configuration=bm.VirtualMachineConfiguration(
                image_reference=bm.BatchVmImageReference(**UBUNTU_2204), node_agent_sku_id=NODE_AGENT),
        ))
        return time.perf_counter() - t0

    def settle(self, pool_id: str, nodes: int, timeout: float = 120.0) -> float:
        """Jump simulated time until the pool is steady with every node idle; returns the real seconds spent."""
        batch = self.batch()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            self.control.advance(3600)
            counts = idle_counts(batch, pool_id)
            pool = batch.get_pool(pool_id)
            if str(getattr(pool.allocation_state, "value", pool.allocation_state)).lower() == "steady" \
                    and counts == nodes:
                return time.perf_counter() - t0
        raise TimeoutError(f"pool {pool_id} did not settle with {nodes} idle nodes in {timeout}s")


def _timedelta(**kw):
    from datetime import timedelta

    return timedelta(**kw)


def idle_counts(batch, pool_id: str) -> int:
    for c in batch.list_pool_node_counts(filter=f"poolId eq '{pool_id}'"):
        if c.pool_id == pool_id and c.dedicated:
            return int(c.dedicated.idle or 0)
    return 0


class WireMeter:
    """Counts responses and response bytes seen by an azure-core client (its ``raw_response_hook``).

    Pass ``meter.client_options`` to a hook's ``client_options`` (or a client constructor). Bytes are the
    body sizes as received (Content-Length, else the body read), headers excluded.
    """

    def __init__(self) -> None:
        self.responses = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def _hook(self, pipeline_response: Any) -> None:
        http = pipeline_response.http_response
        size = http.headers.get("Content-Length")
        if size is None:
            try:
                size = len(http.body() or b"")
            except Exception:
                size = 0
        with self._lock:
            self.responses += 1
            self.bytes += int(size)

    @property
    def client_options(self) -> dict:
        return {"raw_response_hook": self._hook}

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.responses, self.bytes


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
