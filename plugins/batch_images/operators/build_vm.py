"""The build VM of a ``base_image`` pipeline (docs/base-image.md, "Building from a marketplace base image").

``prepare_build_vm`` creates a VM from the exact marketplace version preflight chose (``plan.build.base``) with the
custom-data script as ``osProfile.customData``, managed disks named in the plan and a VM-managed NIC in the configured
subnet (no public IP), then waits - deferred, through the generic waiter trigger - until the guest has powered itself
off (the script's last act: deprovision + poweroff; the instance view reads ``PowerState/stopped``).
``generalize_build_vm`` deallocates and generalizes it. The build VM is then the run's source VM: the existing
``snapshot_disks -> wait_for_snapshots -> create_managed_image -> publish_image_version`` chain images its disks
(their ids are in ``plan.source``, known before the VM exists). ``delete_build_vm`` (a teardown: it runs also when a
step failed) deletes the VM; its OS disk, data disks and NIC are created with ``deleteOption: Delete`` and go with it.

Why snapshots rather than capturing the version straight from the generalized VM (``storageProfile.source.
virtualMachineId``): both give Batch the same Generalized version, but the snapshot chain is the one the prepared-VM
source already uses - its adoption on retry, leftover handling, Trusted Launch path, waits and tests apply unchanged -
and the build VM can be deleted as soon as its disks are snapshotted, instead of staying (and being billed) until the
version exists.

Retries adopt: the VM's name derives from the image definition and the image version
(:func:`~batch_images.rules.naming.build_vm_name`), so a retry of the run finds its VM (tag ``run_id``) and waits for
it again; a same-named VM of another run is a leftover and is replaced; one not tagged by this project is refused.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException, AirflowFailException, AirflowSensorTimeout
from batch_images import links
from batch_images.operators._arm import ArmWaitingOperator, ResourceConflict, is_ours
from batch_images.rules import ids, naming
from batch_images.rules import security as security_rules
from batch_images.rules.plan import BuildVm, Plan
from batch_images.waiting import AzureWaitFailed

ADMIN_USERNAME = "azureuser"
SERIAL_TAIL_LINES = 15


def _ssh_public_key() -> str:
    """A fresh ed25519 public key: Azure requires an SSH key (or a password) on a Linux VM; nobody logs in to a build
    VM, so the private key is never kept anywhere."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + \
        " airflow-batch-images-build"


def build_vm_body(plan: Plan, custom_data: bytes) -> dict:
    """The VM PUT body of the plan's build VM (``custom_data``: the script's bytes; base64-encoded here)."""
    build = plan.build
    assert build is not None
    b = build.base
    disk = {"storageAccountType": "Premium_LRS"}
    return {
        "location": build.location,
        "tags": plan.run_tags(),
        "properties": {
            "hardwareProfile": {"vmSize": build.vm_size},
            "storageProfile": {
                "imageReference": {"publisher": b.publisher, "offer": b.offer, "sku": b.sku, "version": b.version},
                "osDisk": {"name": build.os_disk_name, "createOption": "FromImage", "caching": "ReadWrite",
                           "deleteOption": "Delete", "managedDisk": disk},
                "dataDisks": [{"lun": d.lun, "name": naming.build_vm_data_disk_name(build.vm_name, d.lun),
                               "createOption": "Empty", "diskSizeGB": int(d.size_gb or 0), "caching": "None",
                               "deleteOption": "Delete", "managedDisk": disk} for d in build.data_disks],
            },
            "osProfile": {
                "computerName": build.vm_name[:64],
                "adminUsername": ADMIN_USERNAME,
                "customData": base64.b64encode(custom_data).decode(),
                "linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True, "ssh": {
                    "publicKeys": [{"path": f"/home/{ADMIN_USERNAME}/.ssh/authorized_keys",
                                    "keyData": _ssh_public_key()}]}},
            },
            # VM-managed NIC (networkApiVersion 2020-11-01+): made with the VM, deleted with it; no Network SDK needed.
            "networkProfile": {"networkApiVersion": "2020-11-01", "networkInterfaceConfigurations": [{
                "name": build.nic_name,
                "properties": {"primary": True, "deleteOption": "Delete", "ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"subnet": {"id": build.subnet_id}}}]},
            }]},
            # managed boot diagnostics: the serial console log a failed build is reported with
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
            # As preflight planned it (plan.build.security_type): Standard, explicitly - Azure is making Trusted
            # Launch the default for new Gen2 VMs ("Trusted Launch as default", 2025) and a standard source keeps the
            # managed-image path - or Trusted Launch for a base Azure marks Trusted-Launch-only (rules/security.py).
            "securityProfile": security_rules.build_vm_security_profile(build.security_type),
        },
    }


class _BuildVmOperator(ArmWaitingOperator):
    template_fields: Sequence[str] = ("plan", "arm_conn_id")
    template_fields_renderers = {"plan": "json"}
    operator_extra_links = links.BUILD_VM_LINKS  # Azure portal link to the VM (batch_images/links.py)

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def _build(self) -> tuple[Plan, BuildVm]:
        plan = Plan.from_dict(self.plan)
        if plan.build is None:
            raise AirflowFailException(f"{self.task_id}: the plan has no build VM (the pipeline's source is "
                                       "source_vm_id, not base_image)")
        return plan, plan.build


class BuildVmOperator(_BuildVmOperator):
    """Create the plan's build VM and wait (deferred) until its guest powered off after the custom-data script.

    :param plan: the preflight plan of a base_image pipeline (``plan.build``). (templated)
    :return: ``{"vm_id", "base": {publisher, offer, sku, version}}``.
    :raises AirflowFailException: the script changed since preflight checked it, or a same-named VM not made by
        this project exists. ``AirflowSensorTimeout`` (not retried): the guest did not power off within
        ``build.timeout_minutes``; the message has the last serial console lines and the guest agent's status.
    """

    timeout_key = "build"

    def execute(self, context: Any) -> dict:
        from batch_images.hooks.credentials import PROJECT_ROOT

        plan, build = self._build()
        path = PROJECT_ROOT / build.custom_data_file
        try:
            data = path.read_bytes()
        except OSError as err:
            raise AirflowFailException(f"build.custom_data_file {build.custom_data_file!r}: cannot read it "
                                       f"({err.strerror or err}); nothing was created") from None
        if hashlib.sha256(data).hexdigest() != build.custom_data_sha256:
            raise AirflowFailException(f"build.custom_data_file {build.custom_data_file!r} changed after preflight "
                                       "checked it; nothing was created. Fix: clear the run to check it again")
        result = {"vm_id": build.vm_id, "base": build.base.to_dict()}
        created_at: float | None = None
        existing = self.hook.find_resource(build.vm_id)
        if existing is not None and not is_ours(existing):
            raise AirflowFailException(f"VM {build.vm_id} already exists and was not made by this project (no tag "
                                       f"{naming.TAG_MANAGED_BY}={naming.MANAGED_BY}); refusing to touch it. Fix: "
                                       "delete or rename it, or set build.resource_group elsewhere")
        if existing is not None and (existing.get("tags") or {}).get(naming.TAG_RUN_ID) != plan.run_tags()[naming.TAG_RUN_ID]:
            self.log.warning("Replacing build VM %s: a leftover of run %r", build.vm_id,
                             (existing.get("tags") or {}).get(naming.TAG_RUN_ID))
            self.delete_and_wait([build.vm_id])
            existing = None
        if existing is None:
            self.log.info("Build VM %s (%s) from %s:%s:%s:%s (%s), custom data %s (%d bytes), subnet %s",
                          build.vm_name, build.vm_size, build.base.publisher, build.base.offer, build.base.sku,
                          build.base.version, build.base_version_detail, build.custom_data_file, len(data),
                          build.subnet_id)
            self.hook.begin_create_vm(build.vm_id, build_vm_body(plan, data))
            created_at = time.time()
        else:
            self.log.info("Adopting build VM %s made by an earlier attempt of this run", build.vm_id)
        return self.wait(context, waiter_name="vm_power_state",
                         waiter_args={"vm_id": build.vm_id, "power_states": ["stopped", "deallocated"],
                                      "created_at": created_at},
                         timeout=self.timeout_seconds(plan), phase="guest", return_value=result)

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        if event.get("status") == "success":
            self.log.info("%s", event.get("message"))
            return event.get("value")
        plan, build = self._build()
        agent = (event.get("state") or {}).get("agent")
        try:
            serial = self.hook.serial_console_tail(build.vm_id, SERIAL_TAIL_LINES)
        except Exception as err:  # noqa: BLE001 - diagnostics are best effort; the failure itself is reported
            serial = f"(boot diagnostics unavailable: {err})"
        details = (f"\nGuest agent: {agent}" if agent else "") + \
            (f"\nLast serial console lines of {build.vm_name}:\n{serial}" if serial else "")
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(
                f"build VM {build.vm_name}: the guest did not power off within build.timeout_minutes "
                f"({build.timeout_seconds / 60:.0f} min): the custom-data script {build.custom_data_file} did not "
                f"finish (it must end with deprovision + poweroff). The teardown deletes the VM.{details}")
        raise AzureWaitFailed(f"build VM {build.vm_name}: {event.get('message')}{details}")


class GeneralizeBuildVmOperator(_BuildVmOperator):
    """Deallocate the (powered-off) build VM, wait until it is deallocated, generalize it.

    :param plan: the preflight plan of a base_image pipeline. (templated)
    :return: the build VM's id.
    """

    timeout_key = "deallocate"

    def execute(self, context: Any) -> str:
        plan, build = self._build()
        self.hook.begin_deallocate_vm(build.vm_id)
        return self.wait(context, waiter_name="vm_power_state",
                         waiter_args={"vm_id": build.vm_id, "power_states": ["deallocated"]},
                         timeout=self.timeout_seconds(plan), phase="deallocated", return_value=build.vm_id)

    def after_wait(self, context: Any, event: dict, phase: str, extra: dict) -> Any:
        self.check_event(event, "deallocating the build VM")
        plan, build = self._build()
        self.hook.generalize_vm(build.vm_id)
        self.log.info("Build VM %s generalized: its disks are the image's source", build.vm_name)
        return event.get("value")


class DeleteBuildVmOperator(_BuildVmOperator):
    """Teardown: delete the build VM (its NIC and disks have ``deleteOption: Delete``), then any of its planned disks
    still there (a VM create that failed half-way); fail when something is left.

    :param plan: the preflight plan (a plan without ``build`` is a no-op). (templated)
    :return: the ids deleted.
    """

    operator_extra_links = ()  # the VM it deletes has no portal page afterwards

    def execute(self, context: Any) -> list[str]:
        plan = Plan.from_dict(self.plan) if self.plan else None
        if plan is not None and plan.options.roll_only:
            raise AirflowSkipException(f"Mode {plan.options.mode}: nothing was built, no build VM to delete")
        if plan is None or plan.build is None:
            self.log.info("No build VM in this run")
            return []
        build = plan.build
        deleted: list[str] = []
        vm = self.hook.find_resource(build.vm_id)
        if vm is not None and not is_ours(vm):
            raise ResourceConflict(f"VM {build.vm_id} is not tagged {naming.TAG_MANAGED_BY}={naming.MANAGED_BY}: "
                                     "not deleting it")
        if vm is not None:
            self.delete_and_wait([build.vm_id])
            deleted.append(build.vm_id)
        disks = [plan.source.os_disk_id] + [d.disk_id for d in plan.source.data_disks if d.disk_id]
        left = [d for d in disks if self.hook.find_resource(d) is not None]
        if left:  # made by a create that failed before the VM existed, or detached: ours by their planned names
            self.delete_and_wait(left)
            deleted += left
        nic_id = ids.network_interface_id(build.subscription_id, build.resource_group, build.nic_name).id
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.hook.arm_get(nic_id)
        except ResourceNotFoundError:  # gone with the VM, as it should be
            pass
        else:
            raise ResourceConflict(f"the build VM's NIC {nic_id} is still there after the VM was deleted "
                                     "(deleteOption Delete should have removed it); delete it by hand")
        self.log.info("Build VM %s deleted with its NIC and disks: %s", build.vm_name, ", ".join(deleted) or "none")
        return deleted
