"""Roll-only runs (``mode`` rollback / roll_to_existing / revoke): which existing version each logical pool goes
to, and what refuses the run before anything is written (docs/operations.md, "Roll back").

* ``roll_to_existing``: every selected logical pool to ``params.version``, which must exist, not be revoked and not
  have failed.
* ``rollback``: each selected logical pool to the newest version of its serving pool's ``previous-versions`` that
  still exists and is not revoked (:func:`batch_images.rules.roll.rollback_target`). A pool with no serving pool, or
  with no such version, refuses the run naming the versions that remain.
* ``revoke``: ``params.version`` (which must exist) is revoked; the selected pools that it serves go to the newest
  version that exists, is not revoked and has not failed; pools it does not serve are left alone.
* every mode: a target with no replica in a pool's Batch account region gets one (publish_image_version adds the
  region to the version's targetRegions and the pool waits for it); that is a note, not a refusal.

A revoked version carries the ``revoked`` tag (:data:`~batch_images.rules.naming.TAG_REVOKED`). Pure: the stdlib
only; inputs are the definition's versions as ARM JSON and the serving pools as :class:`~batch_images.rules.roll.
PhysicalPool`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import naming, roll, states
from .errors import InvalidInput
from .ids import region_key
from .run_options import REVOKE, ROLL_TO_EXISTING, ROLLBACK, RunOptions


@dataclass(frozen=True)
class VersionInfo:
    """One existing version as a roll-only run sees it."""

    name: str
    id: str
    revoked: str | None  # the revoked tag's value, None when not revoked
    state: str | None  # provisioningState
    regions: tuple[str, ...]  # publishingProfile.targetRegions names, as region keys

    @classmethod
    def from_arm(cls, version: Mapping[str, Any]) -> VersionInfo:
        props = version.get("properties") or {}
        publishing = props.get("publishingProfile") or {}
        return cls(name=str(version.get("name")), id=str(version.get("id")),
                   revoked=(version.get("tags") or {}).get(naming.TAG_REVOKED),
                   state=props.get("provisioningState"),
                   regions=tuple(region_key(t.get("name")) for t in publishing.get("targetRegions") or []))

    @property
    def usable(self) -> bool:
        """Not revoked and not failed: a pool may be rolled to it."""
        return not self.revoked and not states.is_failed(self.state)


def version_infos(versions: Iterable[Mapping[str, Any]]) -> list[VersionInfo]:
    """The definition's versions, newest first."""
    out = [VersionInfo.from_arm(v) for v in versions]
    return sorted(out, key=lambda v: naming.version_sort_key(v.name), reverse=True)


def revoked_names(versions: Iterable[VersionInfo]) -> list[str]:
    return [v.name for v in versions if v.revoked]


@dataclass(frozen=True)
class RolledPool:
    """A selected logical pool of a roll-only run: its index in ``pools[]``, name, Batch account region, and the
    pool serving it now (None: none)."""

    index: int
    logical_pool: str
    region: str | None
    serving: roll.PhysicalPool | None


@dataclass
class Targets:
    """The decision: ``version`` pool index -> the version it goes to; ``not_rolled`` logical pool -> why it is left
    alone (a revoke run's pools on other versions); ``add_regions`` version name -> regions to add to it;
    ``problems`` refusals (params.* fields); ``notes`` lines for the log and the dry-run plan."""

    version: dict[int, str] = field(default_factory=dict)
    not_rolled: dict[str, str] = field(default_factory=dict)
    add_regions: dict[str, list[str]] = field(default_factory=dict)
    problems: list[InvalidInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def newest(self) -> str | None:
        """The newest target (the plan's ``version`` for a run whose pools go to different versions)."""
        names = set(self.version.values())
        return max(names, key=naming.version_sort_key) if names else None


def _listing(versions: Sequence[VersionInfo], usable_only: bool = False) -> str:
    names = [v.name + (" (revoked)" if v.revoked else "") for v in versions if v.usable or not usable_only]
    return ", ".join(names) or "none"


def choose_targets(options: RunOptions, versions: Sequence[VersionInfo], pools: Sequence[RolledPool],
                   definition: str) -> Targets:
    """Each selected logical pool's target version for a roll-only run (see the module docstring).

    :param versions: the definition's versions (:func:`version_infos`, newest first).
    :param pools: the selected logical pools (``params.pools``; all when empty).
    :param definition: the image definition's name, for messages.
    """
    out = Targets()
    by_name = {v.name: v for v in versions}
    usable = [v for v in versions if v.usable]
    mode = options.mode
    listing = f"versions of {definition}, newest first: {_listing(versions)}"
    if mode in (ROLL_TO_EXISTING, REVOKE):
        wanted = by_name.get(options.version or "")
        if wanted is None:
            out.problems.append(InvalidInput(
                "params.version", options.version, f"no such image version in {definition} (never built, or deleted "
                "by retention)", f"pick one that exists ({listing})"))
            return out
        if mode == ROLL_TO_EXISTING and not wanted.usable:
            why = f"it is revoked ({wanted.revoked})" if wanted.revoked else f"it is {wanted.state}"
            out.problems.append(InvalidInput(
                "params.version", wanted.name, f"{why}: a pool is never rolled to it",
                f"pick a version that is not revoked: {_listing(versions, usable_only=True)}"))
            return out
    for p in pools:
        if mode == ROLL_TO_EXISTING:
            out.version[p.index] = options.version or ""
        elif mode == ROLLBACK:
            if p.serving is None:
                out.problems.append(InvalidInput(
                    "params.pools", p.logical_pool, "logical pool has no serving pool: there is nothing to roll back",
                    "leave it out of pools (or run mode build to make its first pool)"))
                continue
            target, _ = roll.rollback_target(p.serving.history, [v.name for v in usable])
            if target is None:
                history = ", ".join(p.serving.history) or "none recorded"
                out.problems.append(InvalidInput(
                    "params.mode", "rollback", f"logical pool {p.logical_pool} (serving pool {p.serving.pool_id} on "
                    f"{p.serving.version}) has no earlier version to go back to that still exists and is not revoked "
                    f"(previous-versions: {history})",
                    f"use mode roll_to_existing with one of: {_listing(versions, usable_only=True)}; or leave "
                    f"{p.logical_pool} out of pools"))
                continue
            out.version[p.index] = target
            out.notes.append(f"Logical pool {p.logical_pool}: back from {p.serving.version} to {target}")
        else:  # revoke
            if p.serving is None or p.serving.version != options.version:
                on = f"it is served by {p.serving.pool_id} on {p.serving.version}" if p.serving else "no serving pool"
                out.not_rolled[p.logical_pool] = f"not on the revoked version {options.version} ({on})"
                continue
            newest = next((v for v in usable if v.name != options.version), None)
            if newest is None:
                out.problems.append(InvalidInput(
                    "params.version", options.version, f"revoking it leaves logical pool {p.logical_pool} no version "
                    f"to move to ({listing})", "build a new version first (mode build), then revoke this one"))
                continue
            out.version[p.index] = newest.name
            out.notes.append(f"Logical pool {p.logical_pool}: off the revoked {options.version} to {newest.name}")
    for p in pools:
        target = by_name.get(out.version.get(p.index, ""))
        if target is None or not p.region or region_key(p.region) in target.regions:
            continue
        regions = out.add_regions.setdefault(target.name, [])
        if region_key(p.region) not in regions:
            regions.append(region_key(p.region))
            out.notes.append(f"Version {target.name} has no replica in {p.region} (logical pool {p.logical_pool}'s "
                             "Batch account region): publish_image_version adds that region and the pool waits "
                             "for it")
    return out


def revoked_target_problem(version: str, versions: Sequence[VersionInfo], field_name: str) -> InvalidInput | None:
    """A build run whose version exists and is revoked: refused (a revoked version is never rolled to)."""
    info = next((v for v in versions if v.name == version), None)
    if info is None or not info.revoked:
        return None
    return InvalidInput(field_name, version, f"image version {version} exists and is revoked ({info.revoked}); a "
                        "revoked version is never built again or rolled to",
                        "build the next version (raise rebuild, or give a new version)")
