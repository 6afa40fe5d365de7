"""Batch allocation against the VM size table (backends/resource_skus.py): a pool whose VM size cannot boot its
image's Hyper-V generation, or that is not offered in the account's region, is accepted on add and gets no nodes.
Its allocation ends steady with 0 nodes and one resize error.

The resize error is the shape Batch reports when Compute refuses the VMs it asks for: code ``AllocationFailed``,
message "Desired number of <kind> nodes could not be allocated", values ``Provider Error Json`` (Compute's error
body) and ``Provider Error Json Truncated`` "False". Source for the generation case, word for word:
microsoft/ga4gh-tes#43 ("AllocationFailed: The selected VM size 'Standard_D1_v2' cannot boot Hypervisor
Generation '2'"). Compute's message is CRP's verified wording (Azure/Batch#137, skypilot-org/skypilot#133,
jenkinsci/azure-vm-agents-plugin#305).

A size not offered in the region: Batch accepted such a pool and its resize ran out (Azure/batch-shipyard#32: "It
silently failed ... I got a time-out on resize"); that today's Batch reports it as AllocationFailed wrapping
Compute's SkuNotAvailable, as here, is a guess.

Sizes the table does not list, and images whose generation is not known, are not judged.
"""
from __future__ import annotations

import json

from ..core.errors import SkuNotAvailable
from . import marketplace, resource_skus
from .arm_common import parse_id
from .batch_common import account_location

AKA_GEN2 = "https://aka.ms/azuregen2vm"


def _generation_message(vm_size: str, generation: str) -> str:
    digit = generation.upper().lstrip("V")
    return (f"The selected VM size '{vm_size}' cannot boot Hypervisor Generation '{digit}'. If this was a Create "
            "operation please check that the Hypervisor Generation of the Image matches the Hypervisor Generation "
            f"of the selected VM Size. If this was an Update operation please select a Hypervisor Generation "
            f"'{digit}' VM Size. For more information, see {AKA_GEN2}")


def _provider_error(code: str, message: str) -> dict:
    return {"code": "AllocationFailed", "message": "Desired number of dedicated nodes could not be allocated",
            "values": [{"name": "Provider Error Json",
                        "value": json.dumps({"error": {"code": code, "message": message}})},
                       {"name": "Provider Error Json Truncated", "value": "False"}]}


def marketplace_generation(ctx, acct: dict, publisher: str, offer: str, sku: str) -> str | None:
    """The Hyper-V generation of a marketplace image Batch would pick (its newest version in the account's region),
    from the stand-in's published versions; else from the SKU's name ("-gen2" / "-gen1", how publishers name the
    two, e.g. canonical 22_04-lts-gen2: a guess for other names); None when neither tells."""
    try:
        doc = marketplace.resolve(ctx, account_location(acct), publisher, offer, sku, "latest")
        return doc["properties"].get("hyperVGeneration") or None
    except Exception:  # not published in the stand-in: fall back on the name
        s = sku.lower()
        return "V2" if "gen2" in s else "V1" if "gen1" in s else None


def allocation_block(ctx, acct: dict, pool_id: str, vm_size: str | None, generation: str | None) -> dict | None:
    """The resize error a new allocation of ``vm_size`` nodes ends with in the account's region, None when
    Compute would create them. {"code", "message", "values": [{"name", "value"}]}."""
    facts = resource_skus.size_facts(vm_size)
    if facts is None:
        return None
    region = account_location(acct)
    sub = (parse_id(acct.get("id")) or {}).get("subscription") or ""
    if resource_skus.offered(ctx, sub, vm_size, region) is False:
        err = SkuNotAvailable(f"{acct.get('id')}/pools/{pool_id}", region, [], sub)
        return _provider_error(err.code, err.message)
    if generation and generation.upper() not in facts["hyper_v_generations"]:
        return _provider_error("BadRequest", _generation_message(facts["name"], generation))
    return None
