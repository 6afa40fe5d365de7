"""Azure Compute Gallery on the stand-in, driven only through the unmodified azure-mgmt-compute SDK:
galleries, image definitions, image versions, per-region replication (progress, failure and the
remove/re-add workaround), Azure's refusals, and persistence across a restart.
"""
from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

FAST = 0.05
GALLERY = "gal_batch_images"
DEFINITION = "ubuntu2204-batch"


def _rg(standin) -> str:
    return standin.endpoints["demo"]["resource_group"]


def _code(err: HttpResponseError) -> str | None:
    return getattr(err.error, "code", None) if err.error is not None else None


def _definition_body(os_state="Generalized", hyper_v="V2", sku="22_04-batch"):
    return {"location": "westeurope", "properties": {
        "osType": "Linux", "osState": os_state, "hyperVGeneration": hyper_v,
        "identifier": {"publisher": "contoso", "offer": "batch-images", "sku": sku},
    }}


def _version_body(image_id: str, regions: list[tuple[str, int]], **pp) -> dict:
    return {"location": "westeurope", "properties": {
        "storageProfile": {"source": {"id": image_id}},
        "publishingProfile": {"targetRegions": [{"name": n, "regionalReplicaCount": c, "storageAccountType": "Standard_LRS"}
                                                for n, c in regions], **pp},
    }}


def _prepare(standin, client, *, image="img-base", snap_prefix="snap") -> str:
    """Gallery + definition + a managed image made from snapshots of the seeded VM; returns the image id."""
    rg = _rg(standin)
    vm = client.virtual_machines.get(rg, standin.endpoints["demo"]["source_vm_id"].rsplit("/", 1)[1])
    sp = vm.properties.storage_profile
    polls = [
        client.galleries.begin_create_or_update(rg, GALLERY, {"location": "westeurope", "properties": {"description": "Batch images"}}, polling_interval=FAST),
        client.snapshots.begin_create_or_update(rg, f"{snap_prefix}-os", {"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": sp.os_disk.managed_disk.id}}}, polling_interval=FAST),
        client.snapshots.begin_create_or_update(rg, f"{snap_prefix}-data0", {"location": "westeurope", "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": sp.data_disks[0].managed_disk.id}}}, polling_interval=FAST),
    ]
    gal, os_snap, data_snap = [p.result() for p in polls]
    assert gal.properties.provisioning_state == "Succeeded"
    d = client.gallery_images.begin_create_or_update(rg, GALLERY, DEFINITION, _definition_body(), polling_interval=FAST)
    img = client.images.begin_create_or_update(rg, image, {"location": "westeurope", "properties": {
        "hyperVGeneration": "V2",
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": os_snap.id}},
                           "dataDisks": [{"lun": 0, "snapshot": {"id": data_snap.id}}]},
    }}, polling_interval=FAST)
    assert d.result().properties.provisioning_state == "Succeeded"
    return img.result().id


def _close(client) -> None:
    """Close the client and the credential it was built with (both keep connections alive)."""
    client.close()
    client._config.credential.close()


def _status(client, rg, version):
    v = client.gallery_image_versions.get(rg, GALLERY, DEFINITION, version, expand="ReplicationStatus")
    rs = v.properties.replication_status
    return v, rs.aggregated_state, {s.region: (s.state, s.progress, s.details) for s in rs.summary}


def _wait_replication(client, rg, version, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        v, agg, regions = _status(client, rg, version)
        if agg in until or time.monotonic() > deadline:
            return v, agg, regions
        time.sleep(0.1)


def _with_version(standin, name: str, regions: list[tuple[str, int]]):
    """A version made (its create operation waited for) from a fresh managed image: (client, rg, image_id)."""
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, name, _version_body(image_id, regions), polling_interval=FAST).result()
    return client, rg, image_id


# --- happy path ----------------------------------------------------------------------------------------

def test_gallery_definition_version_and_listing(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    poller = client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "2024.1001.1", _version_body(image_id, [("westeurope", 2), ("northeurope", 1)]),
        polling_interval=FAST)
    version = poller.result()
    assert version.properties.provisioning_state == "Succeeded"
    # the create operation covers replication: when the SDK's poller returns, every region is Completed
    _, agg, regions = _status(client, rg, "2024.1001.1")
    assert agg == "Completed" and {s[0] for s in regions.values()} == {"Completed"}
    assert version.properties.storage_profile.source.id.lower() == image_id.lower()
    assert version.properties.storage_profile.os_disk_image.size_in_gb == 30
    assert [d.size_in_gb for d in version.properties.storage_profile.data_disk_images] == [64]
    pp = version.properties.publishing_profile
    assert [(t.name, t.regional_replica_count) for t in pp.target_regions] == [("West Europe", 2), ("North Europe", 1)]
    assert pp.published_date is not None and pp.exclude_from_latest is False
    assert version.properties.replication_status is None  # only with $expand

    v, agg, regions = _wait_replication(client, rg, "2024.1001.1", {"Completed", "Failed"})
    assert agg == "Completed"
    assert regions == {"West Europe": ("Completed", 100, ""), "North Europe": ("Completed", 100, "")}

    gal = client.galleries.get(rg, GALLERY)
    assert gal.properties.identifier.unique_name.endswith(GALLERY.upper())
    d = client.gallery_images.get(rg, GALLERY, DEFINITION)
    assert (d.properties.os_type, d.properties.os_state, d.properties.hyper_v_generation) == ("Linux", "Generalized", "V2")
    assert [g.name for g in client.galleries.list_by_resource_group(rg)] == [GALLERY]
    assert GALLERY in [g.name for g in client.galleries.list()]
    assert [i.name for i in client.gallery_images.list_by_gallery(rg, GALLERY)] == [DEFINITION]
    assert [x.name for x in client.gallery_image_versions.list_by_gallery_image(rg, GALLERY, DEFINITION)] == ["2024.1001.1"]


def test_replication_progress_advances_per_region(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    standin.control.set_scale(1)  # then step simulated time by hand
    client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.0", _version_body(image_id, [("westeurope", 1), ("swedencentral", 3)]), polling=False)
    v, agg, regions = _status(client, rg, "1.0.0")
    assert v.properties.provisioning_state == "Creating" and agg == "InProgress"
    assert {r: s[0] for r, s in regions.items()} == {"West Europe": "Replicating", "Sweden Central": "Replicating"}

    standin.control.advance(300)
    v, agg, r1 = _status(client, rg, "1.0.0")
    # the create operation is not done while a region still replicates (Azure/azure-rest-api-specs#3080)
    assert v.properties.provisioning_state == "Creating" and agg == "InProgress"
    assert all(state == "Replicating" and 0 < progress < 100 for state, progress, _ in r1.values())
    # more replicas (and a later region) replicate slower
    assert r1["Sweden Central"][1] < r1["West Europe"][1]

    standin.control.advance(300)
    _, _, r2 = _status(client, rg, "1.0.0")
    assert all(r2[r][1] > r1[r][1] for r in r1)

    standin.control.advance(3000)
    v, agg, r3 = _status(client, rg, "1.0.0")
    assert agg == "Completed" and {s[0] for s in r3.values()} == {"Completed"}
    assert v.properties.provisioning_state == "Succeeded"


def test_an_update_adding_a_region_runs_until_that_region_replicated(standin):
    """A PUT that adds a target region is Updating (its operation not done) until the new region is Completed."""
    client, rg, image_id = _with_version(standin, "1.0.3", [("westeurope", 1)])
    standin.control.set_scale(1)
    client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.3", _version_body(image_id, [("westeurope", 1), ("uksouth", 1)]), polling=False)
    standin.control.advance(200)  # past the operation's own minimum, before UK South's copy (300 s and more)
    v, agg, regions = _status(client, rg, "1.0.3")
    assert v.properties.provisioning_state == "Updating"
    assert regions["West Europe"][0] == "Completed" and regions["UK South"][0] == "Replicating"
    standin.control.advance(3000)
    v, agg, regions = _status(client, rg, "1.0.3")
    assert v.properties.provisioning_state == "Succeeded" and agg == "Completed"


def test_zrs_in_a_region_without_zones_fails_that_regions_replication(standin):
    """Standard_ZRS needs availability zones: West US has none (resource_skus.region_zones), so its replica fails
    and the create operation ends Failed with Azure's message; North Europe (zonal) stores ZRS and completes."""
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    body = _version_body(image_id, [("westeurope", 1), ("northeurope", 1), ("westus", 1)])
    for t in body["properties"]["publishingProfile"]["targetRegions"][1:]:
        t["storageAccountType"] = "Standard_ZRS"
    poller = client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.0.4", body,
                                                                   polling_interval=FAST)
    with pytest.raises(HttpResponseError) as err:
        poller.result()
    assert "Gallery replication jobs failed in one or more regions" in str(err.value)
    assert "region:westus" in str(err.value) and "Standard_ZRS" in str(err.value)
    v, agg, regions = _wait_replication(client, rg, "1.0.4", {"Completed"}, timeout=10.0)
    assert v.properties.provisioning_state == "Failed"
    state, progress, details = regions["West US"]
    assert state == "Failed" and progress < 100 and "Standard_ZRS" in details and "availability zones" in details
    assert regions["North Europe"][0] in ("Replicating", "Completed")  # ZRS in a zonal region is fine
    # the workaround: store West US as LRS (drop it, add it back with another type)
    body["properties"]["publishingProfile"]["targetRegions"] = body["properties"]["publishingProfile"]["targetRegions"][:2]
    client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.0.4", body,
                                                         polling_interval=FAST).result()
    body["properties"]["publishingProfile"]["targetRegions"].append(
        {"name": "westus", "regionalReplicaCount": 1, "storageAccountType": "Standard_LRS"})
    v = client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.0.4", body,
                                                             polling_interval=FAST).result()
    _, agg, regions = _status(client, rg, "1.0.4")
    assert v.properties.provisioning_state == "Succeeded" and agg == "Completed"


def test_failed_region_is_fixed_by_removing_and_re_adding_it(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    standin.control.add_fault("replication_failed", match={"region": "northeurope"},
                              message="Injected: the storage copy to North Europe failed.")
    regions = [("westeurope", 1), ("northeurope", 1)]
    poller = client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.1", _version_body(image_id, regions), polling_interval=FAST)
    with pytest.raises(HttpResponseError) as err:  # the create operation ends Failed with the failed region
        poller.result()
    assert "{region:northeurope, detail:" in str(err.value) and "removing the failed regions" in str(err.value)
    v, agg, status = _wait_replication(client, rg, "1.0.1", {"Failed"})
    assert agg == "Failed"
    assert status["West Europe"][0] in ("Replicating", "Completed")
    state, progress, details = status["North Europe"]
    assert state == "Failed" and progress < 100 and "Injected: the storage copy to North Europe failed." in details
    assert v.properties.provisioning_state == "Failed"

    # 1) drop the failed region
    v = client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.1", _version_body(image_id, regions[:1]), polling_interval=FAST).result()
    assert v.properties.provisioning_state == "Succeeded"
    assert [t.name for t in v.properties.publishing_profile.target_regions] == ["West Europe"]
    _, agg, status = _wait_replication(client, rg, "1.0.1", {"Completed"})
    assert agg == "Completed" and list(status) == ["West Europe"]

    # 2) add it back: it replicates again from zero and completes this time
    v = client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.1", _version_body(image_id, regions), polling_interval=FAST).result()
    assert v.properties.provisioning_state == "Succeeded"
    _, agg, status = _wait_replication(client, rg, "1.0.1", {"Completed", "Failed"})
    assert agg == "Completed" and status["North Europe"] == ("Completed", 100, "")
    assert client.gallery_image_versions.get(rg, GALLERY, DEFINITION, "1.0.1").properties.provisioning_state == "Succeeded"


def test_safety_profile_lets_a_failed_region_go_but_keeps_a_completed_one(standin):
    """allowDeletionOfReplicatedLocations false protects "replicated regions": the remove/re-add retry of a region
    whose replication failed still works on such a version, dropping a completed region is refused."""
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    standin.control.add_fault("replication_failed", match={"region": "northeurope"}, message="Injected failure.")
    regions = [("westeurope", 1), ("northeurope", 1)]
    safety = {"safetyProfile": {"allowDeletionOfReplicatedLocations": False}}

    def put(regs):
        body = _version_body(image_id, regs)
        body["properties"].update(safety)
        return client.gallery_image_versions.begin_create_or_update(
            rg, GALLERY, DEFINITION, "1.0.2", body, polling_interval=FAST).result()

    with pytest.raises(HttpResponseError):  # North Europe fails: so does the create operation
        put(regions)
    _, agg, status = _wait_replication(client, rg, "1.0.2", {"Failed"})
    assert agg == "Failed" and status["North Europe"][0] == "Failed"
    assert [t.name for t in put(regions[:1]).properties.publishing_profile.target_regions] == ["West Europe"]
    _wait_replication(client, rg, "1.0.2", {"Completed"})
    put(regions)
    _, agg, status = _wait_replication(client, rg, "1.0.2", {"Completed", "Failed"})
    assert agg == "Completed"

    with pytest.raises(HttpResponseError) as err:   # the same region, now replicated, may not go any more
        put(regions[:1])
    assert err.value.status_code == 409 and _code(err.value) == "OperationNotAllowed"
    assert "North Europe" in str(err.value) and "allowDeletionOfReplicatedLocations" in str(err.value)
    _, agg, status = _status(client, rg, "1.0.2")
    assert set(status) == {"West Europe", "North Europe"} and agg == "Completed"


def test_version_lro_failure_surfaces_through_the_poller(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    standin.control.add_fault("lro_failed", match={"resource_type": "versions", "name_regex": r"^9\."},
                              code="GalleryImageVersionCreationFailed", message="Injected: version creation failed.")
    poller = client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "9.0.0", _version_body(image_id, [("westeurope", 1)]), polling_interval=FAST)
    with pytest.raises(HttpResponseError, match="Injected: version creation failed."):
        poller.result()
    v, agg, status = _status(client, rg, "9.0.0")
    assert v.properties.provisioning_state == "Failed" and agg == "Failed"


# --- Azure's refusals ----------------------------------------------------------------------------------

def test_bad_version_names_are_invalid_parameter(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    for bad in ("1.0", "1.0.0.0", "v1.0.0", "1.0.2147483648", "2024.10.01-1"):
        with pytest.raises(HttpResponseError) as err:
            client.gallery_image_versions.begin_create_or_update(
                rg, GALLERY, DEFINITION, bad, _version_body(image_id, [("westeurope", 1)]))
        assert err.value.status_code == 400 and _code(err.value) == "InvalidParameter", bad
        assert "Major(int).Minor(int).Patch(int)" in err.value.message


def test_publishing_profile_rules(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    cases = [
        ([("northeurope", 1)], "must contain the location of image version"),
        ([("westeurope", 0)], "out of range"),
        ([("westeurope", 101)], "out of range"),
        ([("westeurope", 1), ("West Europe", 1)], "Duplicate regions"),
    ]
    for regions, text in cases:
        with pytest.raises(HttpResponseError) as err:
            client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.2.3", _version_body(image_id, regions))
        assert err.value.status_code == 400 and _code(err.value) == "InvalidParameter" and text in err.value.message
    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_create_or_update(
            rg, GALLERY, DEFINITION, "1.2.3", _version_body(image_id, [("westeurope", 1)], endOfLifeDate="2001-01-01T00:00:00Z"))
    assert "EndOfLifeDate must be set to a future date." in err.value.message


def test_replacing_a_version_source_is_property_change_not_allowed(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    other_id = client.images.begin_create_or_update(rg, "img-other", {"location": "westeurope", "properties": {
        "hyperVGeneration": "V2",
        "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                      "snapshot": {"id": client.snapshots.get(rg, "snap-os").id}}},
    }}, polling_interval=FAST).result().id
    client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.0", _version_body(image_id, [("westeurope", 1)]), polling_interval=FAST).result()
    with pytest.raises(ResourceExistsError) as err:
        client.gallery_image_versions.begin_create_or_update(
            rg, GALLERY, DEFINITION, "1.0.0", _version_body(other_id, [("westeurope", 1)]))
    assert err.value.status_code == 409 and _code(err.value) == "PropertyChangeNotAllowed"
    assert "galleryImageVersion.properties.storageProfile.source.id" in err.value.message


def test_source_must_match_the_definition(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    # a V1 definition cannot take the V2 image, nor the V2 snapshot: Azure accepts the PUT and the operation fails
    # at once with code Conflict (public reports, see backends/gallery.py _generation_conflict)
    client.gallery_images.begin_create_or_update(rg, GALLERY, "gen1", _definition_body(hyper_v="V1", sku="gen1"), polling_interval=FAST).result()
    snap_id = client.snapshots.get(rg, "snap-os").id
    by_snapshot = {"location": "westeurope", "properties": {"storageProfile": {"osDiskImage": {"source": {"id": snap_id}}}}}
    for name, body, source in (("1.0.0", _version_body(image_id, [("westeurope", 1)]), image_id),
                               ("1.0.1", by_snapshot, snap_id)):
        poller = client.gallery_image_versions.begin_create_or_update(rg, GALLERY, "gen1", name, body, polling_interval=FAST)
        with pytest.raises(HttpResponseError) as err:
            poller.result()
        assert _code(err.value) == "Conflict", err.value
        assert (f"The resource with id '{source}' has a different Hypervisor generation ['V2'] than the parent gallery "
                "image Hypervisor generation ['V1']." in err.value.message)
        assert client.gallery_image_versions.get(rg, GALLERY, "gen1", name).provisioning_state == "Failed"
    # a missing source image
    gone = image_id.rsplit("/", 1)[0] + "/does-not-exist"
    with pytest.raises(ResourceNotFoundError) as err:
        client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.0.0", _version_body(gone, [("westeurope", 1)]))
    assert _code(err.value) == "NotFound" and gone in err.value.message
    # a running (not generalized) VM as source of a Generalized definition
    vm_id = standin.endpoints["demo"]["source_vm_id"]
    body = _version_body(image_id, [("westeurope", 1)])
    body["properties"]["storageProfile"] = {"source": {"virtualMachineId": vm_id}}
    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_create_or_update(rg, GALLERY, DEFINITION, "1.0.0", body)
    assert "OS State in the parent gallery image ('Generalized') is not 'Specialized'" in err.value.message
    # a parent that does not exist
    with pytest.raises(ResourceNotFoundError) as err:
        client.gallery_image_versions.begin_create_or_update(rg, GALLERY, "no-def", "1.0.0", _version_body(image_id, [("westeurope", 1)]))
    assert _code(err.value) == "ParentResourceNotFound"


def test_definition_immutable_properties_and_duplicate_identifier(standin):
    client = standin.compute()
    rg = _rg(standin)
    _prepare(standin, client)
    for field, body in (
        ("osState", _definition_body(os_state="Specialized")),
        ("hyperVGeneration", _definition_body(hyper_v="V1")),
        ("identifier.sku", _definition_body(sku="other-sku")),
    ):
        with pytest.raises(ResourceExistsError) as err:
            client.gallery_images.begin_create_or_update(rg, GALLERY, DEFINITION, body)
        assert _code(err.value) == "PropertyChangeNotAllowed"
        assert f"Changing property 'galleryImage.properties.{field}' is not allowed." == err.value.error.message
    # an update that changes nothing immutable is fine
    body = _definition_body()
    body["properties"]["description"] = "now with a description"
    d = client.gallery_images.begin_create_or_update(rg, GALLERY, DEFINITION, body, polling_interval=FAST).result()
    assert d.properties.description == "now with a description"
    with pytest.raises(ResourceExistsError) as err:
        client.gallery_images.begin_create_or_update(rg, GALLERY, "same-identifier", _definition_body())
    assert _code(err.value) == "OperationNotAllowed"


def test_nested_resources_block_deletes_then_everything_deletes(standin):
    client, rg, image_id = _with_version(standin, "1.0.0", [("westeurope", 1)])
    with pytest.raises(ResourceExistsError) as err:
        client.galleries.begin_delete(rg, GALLERY)
    assert _code(err.value) == "CannotDeleteResource"
    with pytest.raises(ResourceExistsError) as err:
        client.gallery_images.begin_delete(rg, GALLERY, DEFINITION)
    assert err.value.error.message == "Can not delete resource before nested resources are deleted."

    client.gallery_image_versions.begin_delete(rg, GALLERY, DEFINITION, "1.0.0", polling_interval=FAST).result()
    assert list(client.gallery_image_versions.list_by_gallery_image(rg, GALLERY, DEFINITION)) == []
    client.gallery_images.begin_delete(rg, GALLERY, DEFINITION, polling_interval=FAST).result()
    client.galleries.begin_delete(rg, GALLERY, polling_interval=FAST).result()
    with pytest.raises(ResourceNotFoundError):
        client.galleries.get(rg, GALLERY)
    # deleting again: nothing there, 204
    assert client.galleries.begin_delete(rg, GALLERY, polling_interval=FAST).result() is None


def test_gallery_names_follow_azure_rules(standin):
    client = standin.compute()
    with pytest.raises(HttpResponseError) as err:
        client.galleries.begin_create_or_update(_rg(standin), "gal-with-dashes", {"location": "westeurope"})
    assert err.value.status_code == 400 and "including dashes, are disallowed" in err.value.message


# --- persistence -----------------------------------------------------------------------------------------

def test_state_and_in_flight_operations_survive_a_restart(standin):
    client = standin.compute()
    rg = _rg(standin)
    image_id = _prepare(standin, client)
    client.gallery_image_versions.begin_create_or_update(
        rg, GALLERY, DEFINITION, "1.0.0", _version_body(image_id, [("westeurope", 1)]), polling_interval=FAST).result()

    standin.control.set_scale(1)  # the next create stays in flight across the restart
    vm = client.virtual_machines.get(rg, standin.endpoints["demo"]["source_vm_id"].rsplit("/", 1)[1])
    poller = client.snapshots.begin_create_or_update(rg, "snap-inflight", {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": vm.properties.storage_profile.os_disk.managed_disk.id}}},
        polling_interval=3600)  # this poller's thread goes to sleep; the operation is resumed below from its token
    token = poller.continuation_token()
    assert client.snapshots.get(rg, "snap-inflight").properties.provisioning_state == "Creating"
    _close(client)

    # Killed, not stopped: nothing may depend on a clean shutdown. Same state dir and port; the
    # fixture's time scale (3000) applies again, so the in-flight copy finishes soon after.
    standin.restart(kill=True)
    client = standin.compute()
    snap = client.snapshots.begin_create_or_update(rg, "snap-inflight", None, continuation_token=token,
                                                   polling_interval=FAST).result()
    assert snap.properties.provisioning_state == "Succeeded"
    v, agg, _ = _wait_replication(client, rg, "1.0.0", {"Completed"})
    assert v.properties.storage_profile.source.id.lower() == image_id.lower() and agg == "Completed"
    assert client.images.get(rg, "img-base").properties.provisioning_state == "Succeeded"
    assert [g.name for g in client.galleries.list_by_resource_group(rg)] == [GALLERY]
    _close(client)


# --- the contract with the Batch backend (in-process, on a fresh state dir) --------------------------------

def test_version_for_pool_reports_lineage_and_regions(tmp_path):
    from include.azure_standin.backends import disks, images, vms
    from include.azure_standin.backends import gallery as g
    from include.azure_standin.core.context import StandInConfig
    from include.azure_standin.server import build_context, seed

    ctx = build_context(StandInConfig(state_dir=tmp_path), scale=1)
    demo = seed(ctx)
    sub, rg = demo["subscription_id"], demo["resource_group"]
    vm = vms.get_vm(ctx, sub, rg, demo["source_vm_name"])
    os_disk = vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
    disks.create_snapshot(ctx, sub, rg, "s-os", {"location": "westeurope", "properties": {
        "creationData": {"createOption": "Copy", "sourceResourceId": os_disk}}})
    ctx.clock.advance(3600)
    img, _ = images.create_image(ctx, sub, rg, "img", {"location": "westeurope", "properties": {
        "hyperVGeneration": "V2", "storageProfile": {"osDisk": {
            "osType": "Linux", "osState": "Generalized", "snapshot": {"id": disks.snapshot_id(sub, rg, "s-os")}}}}})
    g.create_gallery(ctx, sub, rg, GALLERY, {"location": "westeurope"})
    g.create_definition(ctx, sub, rg, GALLERY, DEFINITION, _definition_body())
    ctx.clock.advance(3600)
    for name, regions in (("1.0.0", [("westeurope", 1), ("eastus", 2)]), ("1.1.0", [("westeurope", 1)])):
        g.create_version(ctx, sub, rg, GALLERY, DEFINITION, name, _version_body(img["id"], regions))
    g.create_version(ctx, sub, rg, GALLERY, DEFINITION, "2.0.0",
                     _version_body(img["id"], [("westeurope", 1)], excludeFromLatest=True))

    vid = g.version_id(sub, rg, GALLERY, DEFINITION, "1.0.0")
    v = g.version_for_pool(ctx, vid.upper())  # ids are case-insensitive
    assert v["id"] == vid
    assert (v["os_type"], v["os_state"], v["hyper_v_generation"]) == ("Linux", "Generalized", "V2")
    assert v["definition_identifier"] == {"publisher": "contoso", "offer": "batch-images", "sku": "22_04-batch"}
    assert v["base_image"] == {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                               "sku": "22_04-lts-gen2", "version": "22.04.202410020"}
    assert v["purchase_plan"] is None
    assert v["regions"] == {"westeurope": "Replicating", "eastus": "Replicating"}
    assert v["replica_counts"] == {"westeurope": 1, "eastus": 2}
    ctx.clock.advance(24 * 3600)
    assert g.version_for_pool(ctx, vid)["regions"] == {"westeurope": "Completed", "eastus": "Completed"}
    # a definition id floats to the latest version not excluded from latest
    assert g.version_for_pool(ctx, g.definition_id(sub, rg, GALLERY, DEFINITION))["name"] == "1.1.0"
    assert g.version_for_pool(ctx, vid.rsplit("/", 1)[0] + "/9.9.9") is None
    assert g.version_for_pool(ctx, "/subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/images/z") is None
    ctx.store.close()


# --- version update (PATCH) and safetyProfile: what a roll and retention rely on -------------------------

def _future_eol(days: int = 30) -> str:
    return time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() + days * 86400))


def test_version_update_promotes_an_excluded_version_and_keeps_its_replicas(standin):
    from azure.batch import models as bm
    from batch_helpers import POLL, build_image_version, pool_options, wait_pool

    first = build_image_version(standin, version="1.0.0", regions=["westeurope", "northeurope"])
    build_image_version(standin, tag="b", version="2.0.0", regions=["westeurope", "northeurope"],
                        excludeFromLatest=True)
    client, rg = standin.compute(), _rg(standin)
    gal, defn = "galbatch", "ubuntu2204-batch"
    # nothing that floats to "latest" picks up an excluded version
    batch = standin.batch()
    batch.create_pool(pool_options("p-latest", first.definition_id, nodes=1))
    wait_pool(batch, "p-latest")
    assert [n.virtual_machine_info.image_reference.exact_version for n in batch.list_nodes("p-latest")] == ["1.0.0"]

    eol = _future_eol()
    v = client.gallery_image_versions.begin_update(rg, gal, defn, "2.0.0", {"properties": {
        "publishingProfile": {"excludeFromLatest": False, "endOfLifeDate": eol}}}, polling_interval=FAST).result()
    pp = v.properties.publishing_profile
    assert v.properties.provisioning_state == "Succeeded" and pp.exclude_from_latest is False
    assert pp.end_of_life_date.strftime("%Y-%m-%d") == eol[:10]
    assert sorted(r.name for r in pp.target_regions) == ["North Europe", "West Europe"]   # PATCH keeps the rest
    states = {s.region: s.state for s in client.gallery_image_versions.get(
        rg, gal, defn, "2.0.0", expand="ReplicationStatus").properties.replication_status.summary}
    assert states == {"West Europe": "Completed", "North Europe": "Completed"}   # no replication again

    batch.begin_resize_pool("p-latest", bm.BatchPoolResizeOptions(target_dedicated_nodes=2),
                            polling_interval=POLL).result()
    wait_pool(batch, "p-latest")
    assert sorted(n.virtual_machine_info.image_reference.exact_version
                  for n in batch.list_nodes("p-latest")) == ["1.0.0", "2.0.0"]

    with pytest.raises(ResourceNotFoundError):   # a PATCH never creates
        client.gallery_image_versions.begin_update(rg, gal, defn, "9.0.0", {"properties": {
            "publishingProfile": {"excludeFromLatest": False}}}, polling_interval=FAST)
    with pytest.raises(HttpResponseError) as err:   # the same end-of-life rule as on create
        client.gallery_image_versions.begin_update(rg, gal, defn, "2.0.0", {"properties": {
            "publishingProfile": {"endOfLifeDate": "2020-01-01T00:00:00Z"}}}, polling_interval=FAST)
    assert err.value.status_code == 400 and "future" in str(err.value)


def test_safety_profile_guards_region_removal_and_early_deletion(standin):
    from batch_helpers import build_image_version

    build_image_version(standin, version="1.0.0", regions=["westeurope", "northeurope"],
                        endOfLifeDate=_future_eol(),
                        properties={"safetyProfile": {"allowDeletionOfReplicatedLocations": False,
                                                      "blockDeletionBeforeEndOfLife": True}})
    client, rg = standin.compute(), _rg(standin)
    gal, defn = "galbatch", "ubuntu2204-batch"
    only_we = {"targetRegions": [{"name": "westeurope", "regionalReplicaCount": 1}]}

    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_update(rg, gal, defn, "1.0.0", {"properties": {
            "publishingProfile": only_we}}, polling_interval=FAST)
    assert err.value.status_code == 409 and _code(err.value) == "OperationNotAllowed"
    assert "North Europe" in str(err.value) and "allowDeletionOfReplicatedLocations" in str(err.value)
    with pytest.raises(HttpResponseError) as err:
        client.gallery_image_versions.begin_delete(rg, gal, defn, "1.0.0", polling_interval=FAST)
    assert err.value.status_code == 409 and "blockDeletionBeforeEndOfLife" in str(err.value)
    v = client.gallery_image_versions.get(rg, gal, defn, "1.0.0")
    assert len(v.properties.publishing_profile.target_regions) == 2   # both refusals changed nothing
    assert v.properties.safety_profile.allow_deletion_of_replicated_locations is False

    # lifting the guards (PATCH of safetyProfile alone) lets both through
    client.gallery_image_versions.begin_update(rg, gal, defn, "1.0.0", {"properties": {"safetyProfile": {
        "allowDeletionOfReplicatedLocations": True, "blockDeletionBeforeEndOfLife": False}}},
        polling_interval=FAST).result()
    v = client.gallery_image_versions.begin_update(rg, gal, defn, "1.0.0", {"properties": {
        "publishingProfile": only_we}}, polling_interval=FAST).result()
    assert [r.name for r in v.properties.publishing_profile.target_regions] == ["West Europe"]
    client.gallery_image_versions.begin_delete(rg, gal, defn, "1.0.0", polling_interval=FAST).result()
    with pytest.raises(ResourceNotFoundError):
        client.gallery_image_versions.get(rg, gal, defn, "1.0.0")
