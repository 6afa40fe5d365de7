"""What preflight reads for a ``base_image`` pipeline, where a build VM made from a marketplace image is the source.

:func:`read_base_image` is the whole read, called by :class:`~batch_images.operators.preflight.PreflightOperator`
instead of reading a source VM: the exact base version (:func:`base_image_facts`), the version name for that base
(:func:`version_name_for_base`), the custom-data file (:func:`read_custom_data`), then the build VM as it will be
(the source the other checks see) and the plan's ``build``. Only ARM GETs; the checks are
:mod:`batch_images.rules.preflight`. The Azure SDK is imported inside the functions (DAG parsing loads none).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from batch_images.rules import naming
from batch_images.rules import preflight as checks
from batch_images.rules.config import PipelineConfig
from batch_images.rules.plan import BuildVm


def read_base_image(arm: Any, cfg: PipelineConfig, version: str | None, context: Mapping[str, Any],
                    found: checks.Findings, log: logging.Logger, explicit_version: bool = False,
                    ) -> tuple[checks.SourceFacts | None, BuildVm | None, str | None]:
    """``(the build VM as the source, the plan's build, the version name)`` of a base_image pipeline; problems go
    to ``found`` (then the build is None). ``version`` is the run's version name (None when it is not valid);
    ``explicit_version``: it is the run's ``params.version``, kept as given."""
    facts = base_image_facts(arm, cfg, context, found, log)
    if version is not None and facts.version is not None and not explicit_version:
        version = version_name_for_base(arm, cfg, version, facts.version, log)
    source = checks.check_base_image(cfg, version, facts, found)
    custom = checks.check_custom_data(cfg.build.custom_data_file, read_custom_data(cfg.build.custom_data_file), found)
    if source is None or custom is None or not source.usable:
        return source, None, version
    return source, checks.build_vm_plan(cfg, source, facts, custom), version


def base_image_facts(arm: Any, cfg: PipelineConfig, context: Mapping[str, Any], found: checks.Findings,
                     log: logging.Logger) -> checks.BaseImageFacts:
    """The base version asked for - the trigger form's ``base_image_version`` > the triggering Asset event's extra
    ``version`` > ``base_image.version`` - with ``latest`` resolved to the newest version name, and the marketplace's
    ``VirtualMachineImages_Get`` of it (``image`` None: no such version). A bad form value is a problem in
    ``found``."""
    b, location, sub = cfg.base_image, cfg.base_location, cfg.gallery.subscription_id
    params = context.get("params") or {}
    param = checks.check_base_version_param(params.get("base_image_version"), found)
    uri = naming.base_image_asset_uri(location, b.publisher, b.offer, b.sku)
    events = checks.event_base_versions(context.get("triggering_asset_events"), uri)
    wanted, why, detail = checks.choose_base_version(param, events, b.version)
    exact: str | None = wanted
    if wanted == "latest":
        exact = _newest_base_version(arm, cfg)
        detail = f"latest resolved to {exact}" if exact else detail
    image = arm.find_base_image_version(location, b.publisher, b.offer, b.sku, exact, subscription_id=sub) \
        if exact else None
    log.info("Base image version: %s (%s)", exact, detail)
    return checks.BaseImageFacts(field="params.base_image_version" if why == "param" else "base_image",
                                 requested=wanted, source=why, detail=detail,
                                 version=exact if image is not None else None, image=image)


def _newest_base_version(arm: Any, cfg: PipelineConfig) -> str | None:
    """The newest marketplace version of the configured base, picked numerically from every name: ARM's
    ``$orderby=name`` sorts as text, so 8.10 < 8.9 (Azure/azure-rest-api-specs#30142), as the base-image watcher
    does. None when the image has no version, or does not exist (404 NotFound: reported by the checks)."""
    from azure.core.exceptions import ResourceNotFoundError  # the Azure SDK loads in the worker, not at DAG parse

    from batch_images.rules.base_watch import newest_version

    b = cfg.base_image
    try:
        names = arm.list_base_image_versions(cfg.base_location, b.publisher, b.offer, b.sku,
                                             subscription_id=cfg.gallery.subscription_id)
    except ResourceNotFoundError:
        names = []
    return newest_version(names)


def version_name_for_base(arm: Any, cfg: PipelineConfig, version: str, base_version: str, log: logging.Logger) -> str:
    """``version``, or the next free ``N`` of its date when the definition's ``version`` was built from another
    base version (its ``naming.TAG_BASE_VERSION`` tag; :func:`naming.version_for_base`)."""
    existing = {v.get("name"): (v.get("tags") or {}).get(naming.TAG_BASE_VERSION)
                for v in versions_of(arm, cfg.image_definition_id)}
    built = naming.version_for_base(version, existing, base_version)
    if built != version:
        log.info("Version %s exists, built from base version %s; this run builds %s from %s as %s",
                 version, existing.get(version), base_version, base_version, built)
    return built


def versions_of(arm: Any, definition_id: str) -> list[dict]:
    """The image definition's versions (none when the gallery or the definition does not exist yet)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return arm.list_versions(definition_id)
    except ResourceNotFoundError:
        return []


def read_custom_data(path: str) -> bytes | None:
    """The custom-data file's bytes (``path`` relative to the project root); None when it is not a readable file."""
    from batch_images.hooks.credentials import PROJECT_ROOT

    file = PROJECT_ROOT / path
    try:
        return file.read_bytes() if file.is_file() else None
    except OSError:
        return None
