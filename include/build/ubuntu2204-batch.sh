#!/bin/bash
# Custom data of the build VM (cloud-init runs it once, as root, on first boot). Batch needs no VM extensions on a
# custom image, so everything the nodes need is installed here. The last act deprovisions the guest (the waagent
# -deprovision+user step Azure documents before generalizing) and powers it off: the pipeline waits for the VM's
# instance view to read PowerState/stopped, then deallocates and generalizes it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
echo "batch-image build: start"
apt-get update
apt-get install -y --no-install-recommends nfs-common jq
mkdir -p /opt/batch-image && date -u +%FT%TZ > /opt/batch-image/built-at
echo "batch-image build: done, deprovisioning"
waagent -force -deprovision+user
poweroff
