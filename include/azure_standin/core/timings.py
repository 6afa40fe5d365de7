"""Realistic durations (simulated seconds) of the operations the stand-in models.

Figures follow what Azure users report: a snapshot copy takes minutes and grows with the disk; a
managed image a minute or two; gallery replication grows with image size, replicas and regions;
Batch allocation grows with node count. The clock's scale turns them into wall time.
"""
from __future__ import annotations

import math

ARM_RETRY_AFTER = 15.0          # what ARM typically says in Retry-After for compute LROs
SMALL_CREATE = 20.0             # resource groups, galleries, image definitions
DELETE = 30.0


VM_CREATE = 90.0               # a VM PUT until provisioningState Succeeded (disks and NIC made, guest booting)
GUEST_BUILD = 480.0            # a build VM's custom-data script (apt update + installs) until it powers off
VM_DEALLOCATE = 60.0           # POST deallocate until PowerState/deallocated


def snapshot_copy(size_gb: float) -> float:
    return 90.0 + 1.5 * float(size_gb)


def image_create(total_snapshot_gb: float) -> float:
    return 60.0 + 0.5 * float(total_snapshot_gb)


def version_create() -> float:
    """The shortest a version's create/update operation takes; it lasts until every target region has replicated
    (backends/gallery.py `_advance_version`), so region_replication decides its length in practice."""
    return 120.0


def region_replication(image_size_gb: float, replicas: int, region_index: int) -> float:
    """Replication of one target region: size-bound copy plus a share per extra replica.

    Regions replicate in parallel but not all start at once; later regions start a bit later.
    """
    return 300.0 + 6.0 * float(image_size_gb) + 45.0 * max(0, int(replicas) - 1) + 60.0 * region_index


def pool_allocation(node_count: int) -> float:
    """Until allocationState goes back to steady."""
    return 90.0 + 30.0 * math.log2(1 + max(0, int(node_count)))


def node_boot(index: int) -> tuple[float, float, float]:
    """(creating, starting, start task) phase lengths for the index-th node, spread deterministically."""
    jitter = (index * 7919) % 60
    return 60.0 + jitter, 90.0 + (jitter * 3) % 45, 30.0 + (jitter * 5) % 30


def task_run() -> float:
    return 20.0
