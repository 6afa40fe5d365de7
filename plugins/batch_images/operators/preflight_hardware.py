"""Preflight's hardware and quota reads: the Resource SKUs of each region the checks need and the Batch accounts'
quotas, judged by :mod:`batch_images.rules.vm_sizes`.

Reads (no writes): ``ArmComputeHook.list_resource_skus`` once per region (the rolled pools' account regions, the
build VM's region, and the target regions this run replicates to with ``Standard_ZRS``); the Batch accounts' ARM
bodies and pool listings are the ones preflight already read. Every problem goes into the run's ``Findings``; each
size checked is logged with the capabilities the checks read.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batch_images.rules import pool_template, roll, vm_sizes
from batch_images.rules import preflight as checks
from batch_images.rules import security as security_rules


@dataclass
class PoolReads:
    """What preflight read for one logical pool: its account's pool listing, its serving pool (listing entry and
    GET JSON), and the template it rolls to (the config's, or the adopted pool's)."""

    listing: list[dict]
    serving: roll.PhysicalPool | None
    serving_json: dict | None
    template: dict | None = None
    jobs_in_use: int | None = None  # the account's active jobs + job schedules (read only for a smoke-tested pool)


@dataclass
class HardwareChecks:
    """One run's SKU reads (one per region) and checks. ``arm``: an :class:`ArmComputeHook`."""

    arm: Any
    found: checks.Findings
    regions: dict[str, vm_sizes.RegionSkus] = field(default_factory=dict)
    logged: set[tuple[str, str]] = field(default_factory=set)

    def skus(self, region: str) -> vm_sizes.RegionSkus:
        if region not in self.regions:
            self.regions[region] = vm_sizes.region_skus(region, self.arm.list_resource_skus(region))
        return self.regions[region]

    def size(self, field_: str, size: str | None, region: str | None, *, generation: str, security_type: str,
             what: str) -> vm_sizes.SkuFacts | None:
        """The size's facts when it can run the image in ``region`` (problems added otherwise, or when unknown)."""
        if not size or not region:
            return None
        skus = self.skus(region)
        problems = vm_sizes.size_problems(field_, size, skus, generation=generation, security_type=security_type,
                                          what=what)
        sku = skus.get(size)
        if sku is not None and (sku.name, region) not in self.logged:
            self.logged.add((sku.name, region))
            self.found.info(vm_sizes.describe(sku))
        self.found.extend(problems)
        return None if problems else sku


def template_root(pool: Any, index: int, adopted: bool) -> str:
    """The config path a pool's template properties are named under."""
    if adopted:
        return f"pools[{index}].adopt_pool_id"
    return f"pools[{index}]." + ("template_file" if pool.template_file is not None else "template")


def check_hardware(arm: Any, cfg: Any, *, options: Any, version: str | None, source: Any, security: Mapping | None,
                   definition: Mapping | None, accounts: Mapping[str, Mapping | None], account_regions: Mapping[str, str],
                   publish_cfg: Any, reads: Mapping[int, PoolReads], pool_ids: list, found: checks.Findings) -> None:
    """Every SKU and quota check of the run (see the module docstring); problems go into ``found``.

    :param accounts: Batch account id -> its ARM body (None: not found, already reported).
    :param reads: pool index -> :class:`PoolReads` (pools whose connection could not be read are absent).
    :param pool_ids: the new pool ids (``check_pool_ids``; may be empty when the version is unknown).
    """
    hw = HardwareChecks(arm, found)
    security_type = vm_sizes.image_security_type(security, definition)
    generation = cfg.image_definition.hyper_v_generation
    for i, pool in enumerate(cfg.pools):
        read = reads.get(i)
        template = read.template if read is not None else pool.pool_template
        if template is None or not options.rolls(pool.pool_id_prefix):
            continue
        adopted = pool.adopt_pool_id is not None
        root = template_root(pool, i, adopted)
        size_field = f"pools[{i}].vm_size" if pool.vm_size is not None else f"{root}.vmSize"
        region = account_regions.get(pool.batch_account_id) or pool.batch_account_location
        sku = hw.size(size_field, template.get("vmSize"), region, generation=generation, security_type=security_type,
                      what=f"pool {pool.pool_id_prefix}")
        if sku is None:
            continue
        found.extend(vm_sizes.ephemeral_os_disk_problems(root, template, sku, getattr(source, "os_disk_size_gb", 0)))
        slots = vm_sizes.task_slots_problem(root, template, sku)
        if slots is not None:
            found.add_error(slots)
    if cfg.base_image is not None and cfg.build is not None:
        build_security = security_rules.security_type(getattr(source, "security_profile", None))
        hw.size("build.vm_size", cfg.build.vm_size, cfg.base_location,
                generation=getattr(source, "hyper_v_generation", None) or generation, security_type=build_security,
                what="the build VM")
    _check_zrs(hw, cfg, publish_cfg, options)
    if version is not None:
        _check_quotas(hw, cfg, options, version, accounts, account_regions, reads, pool_ids)


def _check_zrs(hw: HardwareChecks, cfg: Any, publish_cfg: Any, options: Any) -> None:
    """Each target region this run replicates to with Standard_ZRS (its own or the pipeline's type) has zones."""
    for i, region in enumerate(publish_cfg.target_regions):
        own = region.storage_account_type
        if (own or publish_cfg.storage_account_type) != "Standard_ZRS" or not options.keeps_region(region.name):
            continue
        skus = hw.skus(region.name)
        field_ = f"target_regions[{i}].storage_account_type" if own and i < len(cfg.target_regions) \
            else "storage_account_type"
        problem = vm_sizes.zrs_problem(field_, region.name, skus.zones, bool(skus.sizes))
        if problem is not None:
            hw.found.add_error(problem)
        else:
            hw.found.info(f"Target region {region.name}: Standard_ZRS, availability zones {', '.join(skus.zones)}")


def _demand(pool: Any, i: int, read: PoolReads, template: dict) -> vm_sizes.PoolDemand:
    """The new pool's nodes: the template's fixed targets, or an autoscaled template's canary, at least what the
    autoscaled serving pool runs now (the new pool takes over its formula at promotion)."""
    dedicated, low = pool_template.fixed_targets(template, pool.effective_canary_nodes)
    root = template_root(pool, i, pool.adopt_pool_id is not None)
    if pool_template.is_autoscaled(template):
        serving = read.serving_json or {}
        dedicated = max(dedicated, int(serving.get("currentDedicatedNodes") or 0))
        low = max(low, int(serving.get("currentLowPriorityNodes") or 0))
        fields = (f"pools[{i}].canary_nodes",) * 2
    elif pool.vm_size is not None:
        fields = (f"pools[{i}].target_dedicated_nodes", f"pools[{i}].target_low_priority_nodes")
    else:
        fields = (f"{root}.targetDedicatedNodes", f"{root}.targetLowPriorityNodes")
    return vm_sizes.PoolDemand(dedicated_field=fields[0], low_priority_field=fields[1],
                               logical_pool=pool.pool_id_prefix, vm_size=str(template.get("vmSize")),
                               dedicated=dedicated, low_priority=low)


def _check_quotas(hw: HardwareChecks, cfg: Any, options: Any, version: str, accounts: Mapping[str, Mapping | None],
                  account_regions: Mapping[str, str], reads: Mapping[int, PoolReads], pool_ids: list) -> None:
    """Per Batch account: the pools this run creates (a first pool, or a blue/green canary beside the serving pool;
    an in-place roll replaces its serving pool) fit ``poolQuota`` and the core quotas beside the pools it has, and
    their smoke tests' jobs (one per new pool) fit ``activeJobAndJobScheduleQuota`` (moving a job to the new pool
    does not add one)."""
    by_account: dict[str, list[int]] = {}
    for i, pool in enumerate(cfg.pools):
        if i in reads and options.rolls(pool.pool_id_prefix) and accounts.get(pool.batch_account_id):
            by_account.setdefault(pool.batch_account_id, []).append(i)
    for account_id, indexes in by_account.items():
        region = account_regions.get(account_id)
        if not region:
            continue
        name = cfg.pools[indexes[0]].account_name
        listing = reads[indexes[0]].listing
        replaced: set[str] = set()
        demands, new_pools, smoke_jobs = [], [], []
        for i in indexes:
            pool, read = cfg.pools[i], reads[i]
            action = roll.decide(version, read.serving, options.allow_downgrade)
            if action not in (roll.FIRST, roll.ROLL) or read.template is None:
                continue
            strategy = "blue_green" if options.canary_only else roll.effective_strategy(pool.roll.strategy,
                                                                                       options.strategy)
            if i < len(pool_ids) and pool_ids[i]:
                replaced.add(pool_ids[i].lower())  # a canary an earlier try of this run made: counted as new
            if action == roll.ROLL and strategy == "in_place" and read.serving is not None:
                replaced.add(read.serving.pool_id.lower())
            else:
                new_pools.append(pool.pool_id_prefix)
            demands.append(_demand(pool, i, read, read.template))
            if pool.smoke_test is not None:
                smoke_jobs.append(pool.pool_id_prefix)
        if not demands:
            continue
        existing = [p for p in listing if str(p.get("id")).lower() not in replaced]
        account = accounts[account_id] or {}
        problems, notes = vm_sizes.core_quota_problems(name, account, existing, demands, hw.skus(region))
        hw.found.extend(problems)
        quota = vm_sizes.pool_quota_problem(name, account, len(existing), new_pools)
        if quota is not None:
            hw.found.add_error(quota)
        in_use = max((reads[i].jobs_in_use for i in indexes if reads[i].jobs_in_use is not None), default=None)
        if smoke_jobs and in_use is not None:
            jobs = vm_sizes.job_quota_problem(name, account, in_use, smoke_jobs)
            if jobs is not None:
                hw.found.add_error(jobs)
            hw.found.info(f"Batch account {name}: {in_use} active job(s) and job schedule(s), {len(smoke_jobs)} smoke-test "
                          f"job(s) in this run, activeJobAndJobScheduleQuota "
                          f"{(account.get('properties') or {}).get('activeJobAndJobScheduleQuota') or vm_sizes.DEFAULT_JOB_QUOTA}")
        for note in notes:
            hw.found.info(note)
        hw.found.info(f"Batch account {name}: {len(existing)} pool(s), {len(new_pools)} new in this run, poolQuota "
                      f"{(account.get('properties') or {}).get('poolQuota') or vm_sizes.DEFAULT_POOL_QUOTA}")
