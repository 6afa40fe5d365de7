"""rules/security.py: what the source VM's (or a marketplace base's) security type decides."""
from __future__ import annotations

import pytest

from batch_images.rules import security
from batch_images.rules.errors import InvalidInput

TL = {"securityType": "TrustedLaunch", "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": False}}


def test_standard_and_absent_profiles_take_the_managed_image_path():
    for profile in (None, {}, {"securityType": "Standard"}):
        d = security.decide(profile, "V1")
        assert d == {"security_type": "Standard", "image_path": "managed_image", "definition_feature": None,
                     "pool_security_profile": None}


def test_trusted_launch_takes_snapshots_and_keeps_the_vms_uefi_settings():
    d = security.decide(TL, "V2")
    assert d["image_path"] == "snapshots" and d["definition_feature"] == "TrustedLaunch"
    assert d["pool_security_profile"] == {"securityType": "trustedLaunch",
                                          "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": False}}
    assert security.definition_features(d) == [{"name": "SecurityType", "value": "TrustedLaunch"}]


@pytest.mark.parametrize("profile, generation, words", [
    (TL, "V1", "generation is V1"),
    ({"securityType": "ConfidentialVM"}, "V2", "Confidential VM"),
    ({"securityType": "Quantum"}, "V2", "unknown"),
])
def test_combinations_no_path_can_build_name_the_field_and_fix(profile, generation, words):
    with pytest.raises(InvalidInput) as err:
        security.decide(profile, generation, vm_id="/subscriptions/x/vm")
    assert err.value.field == "source_vm_id" and words in err.value.reason and err.value.fix


def test_definition_feature_checks():
    tl = security.decide(TL, "V2")
    std = security.decide(None, "V2")
    for ok in ("TrustedLaunch", "TrustedLaunchSupported", "TrustedLaunchAndConfidentialVmSupported"):
        assert security.check_definition_feature([{"name": "SecurityType", "value": ok}], tl) is None
    assert "no SecurityType feature" in security.check_definition_feature(None, tl).reason
    assert security.check_definition_feature([{"name": "SecurityType", "value": "ConfidentialVM"}], tl) is not None
    assert security.check_definition_feature(None, std) is None
    assert security.check_definition_feature([{"name": "SecurityType", "value": "TrustedLaunchSupported"}], std) is None
    assert security.check_definition_feature([{"name": "SecurityType", "value": "TrustedLaunch"}], std) is not None


@pytest.mark.parametrize("value, build", [
    ("TrustedLaunch", "TrustedLaunch"), ("trustedlaunch", "TrustedLaunch"),
    ("TrustedLaunchSupported", "Standard"), ("TrustedLaunchAndConfidentialVmSupported", "Standard"),
    ("ConfidentialVmSupported", "Standard"), (None, "Standard"),
])
def test_only_a_trusted_launch_only_base_gets_a_trusted_launch_build_vm(value, build):
    features = [{"name": "IsAcceleratedNetworkSupported", "value": "True"}]
    if value is not None:
        features.append({"name": "SecurityType", "value": value})
    kind = security.base_image_build_security(features)
    assert kind == build
    profile = security.build_vm_security_profile(kind)
    assert security.security_type(profile) == build
    if build == "TrustedLaunch":  # what decide() then plans for it: snapshots, a TrustedLaunch definition, TL pools
        d = security.decide(profile, "V2")
        assert (d["image_path"], d["definition_feature"]) == ("snapshots", "TrustedLaunch")
        assert d["pool_security_profile"]["uefiSettings"] == {"secureBootEnabled": True, "vTpmEnabled": True}


def test_a_confidential_vm_only_base_is_refused_naming_base_image():
    with pytest.raises(InvalidInput) as err:
        security.base_image_build_security([{"name": "SecurityType", "value": "ConfidentialVM"}],
                                           value="contoso:cvm:1:1.0.0")
    assert err.value.field == "base_image" and err.value.value == "contoso:cvm:1:1.0.0"
    assert "Confidential VM" in err.value.reason and "SecurityType" in err.value.fix
