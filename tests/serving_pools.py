"""A previous night's serving pool, made by hand with the unmodified azure-batch SDK for tests that need one in place
(the roll, preflight's autoscale formula check): the pool id and metadata a previous run of the pipeline leaves
(rules/naming), a marketplace Ubuntu image, fixed-size or autoscaled."""
from __future__ import annotations

from azure.batch import models as bm

from batch_images.rules import naming

UBUNTU = {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2",
          "version": "latest"}


def create_serving_pool(batch, logical_pool: str, version: str, nodes: int = 1, autoscale: str | None = None) -> str:
    """Create the serving pool of `logical_pool` at `version` (``nodes`` dedicated nodes, or autoscaled by the
    formula `autoscale`, evaluated every 5 minutes) through `batch` (a BatchClient); returns its id. No wait."""
    pool_id = naming.pool_id(logical_pool, version)
    md = {naming.TAG_LOGICAL_POOL: logical_pool, naming.TAG_IMAGE_VERSION: version,
          naming.TAG_ROLE: naming.ROLE_SERVING, naming.TAG_SERVING_SINCE: "2026-11-24T03:00:00Z"}
    size = ({"enable_auto_scale": True, "auto_scale_formula": autoscale,
             "auto_scale_evaluation_interval": "PT5M"} if autoscale else {"target_dedicated_nodes": nodes})
    batch.create_pool(bm.BatchPoolCreateOptions(
        id=pool_id, vm_size="Standard_D2s_v3", **size,
        virtual_machine_configuration=bm.VirtualMachineConfiguration(
            image_reference=bm.BatchVmImageReference(**UBUNTU), node_agent_sku_id="batch.node.ubuntu 22.04"),
        metadata=[bm.BatchMetadataItem(name=k, value=v) for k, v in md.items()]))
    return pool_id
