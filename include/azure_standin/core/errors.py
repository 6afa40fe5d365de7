"""Errors the backends raise; the responses layer renders them in Azure's wire format.

Moto style: one class per Azure error code (the class name is the code unless it says otherwise), carrying its
HTTP status, so a raise site reads `raise PoolExists("...")` and the code/status pair lives in one place. The
generic `ArmError(status, code, message)` / `BatchError(status, code, message, values)` stay for the few places
that pick a code at run time (injected faults, the node-state table of reboots).

Where a class builds its own message, the wording is Azure's where the docstring says "verified" (see
docs/architecture.md and the backend modules for the sources); the rest follow Azure's patterns.
"""
from __future__ import annotations

from typing import Any


class ArmError(Exception):
    """An ARM error: rendered as {"error": {"code", "message"[, "target"]}} with the given HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 target: str | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.target = target

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        return {"error": error}


class BatchError(Exception):
    """A Batch data-plane error: {"code", "message": {"lang", "value"}, "values": [{"key", "value"}]}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        values: dict[str, str] | list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        if isinstance(values, dict):
            values = list(values.items())
        self.values = values or []
        self.headers = headers or {}

    def body(self, metadata_url: str = "") -> dict:
        body: dict = {
            "odata.metadata": metadata_url + "/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
            "code": self.code,
            "message": {"lang": "en-US", "value": self.message},
        }
        if self.values:
            body["values"] = [{"key": k, "value": v} for k, v in self.values]
        return body


class AuthError(Exception):
    """A refused credential; `code` is Azure's (InvalidAuthenticationToken, ExpiredAuthenticationToken, ...)."""

    def __init__(self, code: str, message: str, status: int = 401):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# --- ARM -------------------------------------------------------------------------------------------

class _ArmCoded(ArmError):
    """An ARM error whose class gives its HTTP status (`STATUS`) and code (`CODE`, default the class name)."""

    STATUS = 400
    CODE: str | None = None

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(self.STATUS, self.CODE or type(self).__name__, message, headers)


class SubscriptionRequestsThrottled(_ArmCoded):
    """429: an empty ARM token bucket (core/throttle.py). The sentence is ARM's, as Azure/ARO-HCP's tests logged it
    from a real answer; Retry-After (whole seconds) rides in ``headers``."""

    STATUS = 429

    def __init__(self, kind: str, subscription: str, principal: str, retry_after: int,
                 headers: dict[str, str] | None = None):
        super().__init__(
            f"Number of '{kind}' requests for subscription '{subscription}' actor '{principal}' exceeded. Please try "
            f"again after '{retry_after}' seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling for additional information.",
            {**(headers or {}), "Retry-After": str(retry_after)})


class AuthorizationFailed(_ArmCoded):
    """403: the caller's role assignments do not grant ``action`` at ``scope`` (backends/authorization.py). ARM's
    sentence, as real answers show it (Azure/ARO-RP issue 66, Azure/Batch issue 154): the client is the application
    id of a service principal (its object id when the token has none)."""

    STATUS = 403

    def __init__(self, client: str, object_id: str, action: str, scope: str):
        super().__init__(
            f"The client '{client}' with object id '{object_id}' does not have authorization to perform action "
            f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh "
            "your credentials.")
        self.action, self.scope = action, scope


class LinkedAuthorizationFailed(_ArmCoded):
    """403: the caller may write the resource but not use a resource it links to (a subnet a NIC joins, an image
    version a pool boots). ARM's sentence, as public logs show it (e.g. AKS and Container Apps deployments refused
    ``Microsoft.Network/virtualNetworks/subnets/join/action`` on the linked subnet; Azure RBAC troubleshooting page)."""

    STATUS = 403

    def __init__(self, client: str, object_id: str, action: str, scope: str, linked_action: str, linked_scope: str):
        super().__init__(
            f"The client '{client}' with object id '{object_id}' has permission to perform action '{action}' on scope "
            f"'{scope}'; however, it does not have permission to perform action(s) '{linked_action}' on the linked "
            f"scope(s) '{linked_scope}' (respectively) or the linked scope(s) are invalid.")
        self.action, self.scope = linked_action, linked_scope


class RoleAssignmentExists(_ArmCoded):
    """409: another assignment of the same role to the same principal at the same scope (message: a guess at ARM's
    wording)."""

    STATUS = 409


class RoleDefinitionDoesNotExist(_ArmCoded):
    """400 (status a guess): a role assignment names a role definition id that does not exist."""


class RoleAssignmentNotFound(_ArmCoded):
    """404 (code and message a guess): GET of a role assignment that does not exist."""

    STATUS = 404


class RoleDefinitionNotFound(_ArmCoded):
    """404 (code and message a guess): GET of a role definition that does not exist."""

    STATUS = 404


class InvalidRoleAssignmentScope(_ArmCoded):
    """400 (code a guess): a custom role assigned outside its ``assignableScopes``, or a built-in role edited."""


class InvalidParameter(_ArmCoded):
    """400: a request property Compute (CRP) refuses."""


class RequiredParameterMissing(InvalidParameter):
    """400 InvalidParameter for a missing required property (CRP's verified pattern)."""

    CODE = "InvalidParameter"

    def __init__(self, param: str):
        super().__init__(f"Required parameter '{param}' is missing (null).")


class BadRequest(_ArmCoded):
    """400 BadRequest (the Disk RP's code for a change it does not allow)."""


class TrustedLaunchRequired(BadRequest):
    """400 BadRequest: a VM or scale set without ``securityProfile.securityType`` TrustedLaunch from an image that
    only makes Trusted Launch VMs. The wording is CRP's for a gallery image whose definition has
    ``SecurityType=TrustedLaunch`` (quoted in hashicorp/terraform-provider-azurerm#23148, kubermatic/machine-controller
    #2013, jenkinsci/azure-vm-agents-plugin#459); no public report quotes it for a marketplace image, so the stand-in
    answers the same for one (the word "gallery" dropped: a guess)."""

    CODE = "BadRequest"

    def __init__(self):
        super().__init__("The provided image only supports creation of VMs and VM Scale Sets with 'TrustedLaunch' "
                         "security type.")


class InvalidRequestContent(_ArmCoded):
    """400: a body that is not JSON."""

    def __init__(self, message: str = "The request content was invalid and could not be deserialized."):
        super().__init__(message)


class MissingApiVersionParameter(_ArmCoded):
    """400: no ?api-version=."""

    def __init__(self, message: str = "The api-version query parameter (?api-version=) is required for all requests."):
        super().__init__(message)


class LocationRequired(_ArmCoded):
    """400: a create without `location`."""

    def __init__(self, message: str = "The location property is required for this definition."):
        super().__init__(message)


class LocationNotAvailableForResourceType(_ArmCoded):
    """400: an unknown region; `available` are the display names ARM lists."""

    def __init__(self, location: str, resource_type: str, available: list[str]):
        super().__init__(f"The provided location '{location}' is not available for resource type "
                         f"'{resource_type}'. List of available regions for the resource type is "
                         f"'{','.join(available)}'.")


class NotFound(_ArmCoded):
    """404 NotFound: a referenced source (snapshot source, image version source) or an operation is missing."""

    STATUS = 404


class ResourceNotFound(_ArmCoded):
    """404 for a missing tracked resource (verified wording)."""

    STATUS = 404

    def __init__(self, resource_type: str, name: str, resource_group: str):
        super().__init__(f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not "
                         "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")


class ResourceGroupNotFound(_ArmCoded):
    STATUS = 404

    def __init__(self, resource_group: str):
        super().__init__(f"Resource group '{resource_group}' could not be found.")


class ParentResourceNotFound(_ArmCoded):
    """404 for a child of a missing parent (verified wording)."""

    STATUS = 404

    def __init__(self, parent: str):
        super().__init__(f"Can not perform requested operation on nested resource. Parent resource '{parent}' "
                         "not found.")


class SubscriptionNotFound(_ArmCoded):
    STATUS = 404


class Conflict(_ArmCoded):
    STATUS = 409


class OperationNotAllowed(_ArmCoded):
    STATUS = 409


class PropertyChangeNotAllowed(_ArmCoded):
    """409 (verified): "Changing property '<path>' is not allowed."."""

    STATUS = 409

    def __init__(self, prop: str):
        super().__init__(f"Changing property '{prop}' is not allowed.")


class SkuNotAvailable(_ArmCoded):
    """409 (verified wording: Azure/pcs-cli#147, azuredevcollege/trainingdays#84, MicrosoftDocs/azure-docs-cli#599;
    the 409 status: Azure-Samples/azuresandbox#70): a VM size the subscription cannot create in that region or
    zone."""

    STATUS = 409

    def __init__(self, resource_id: str, location: str, zones: list[str], subscription: str):
        super().__init__(f"The requested size for resource '{resource_id}' is currently not available in location "
                         f"'{location}' zones '{','.join(zones)}' for subscription '{subscription}'. Please try another "
                         "size or deploy to a different location or zones. See https://aka.ms/azureskunotavailable for "
                         "details.")


class CannotDeleteResource(_ArmCoded):
    STATUS = 409


class InvalidResourceLocation(_ArmCoded):
    STATUS = 409


class InvalidResourceGroupLocation(_ArmCoded):
    STATUS = 409


# --- Batch data plane --------------------------------------------------------------------------------

INVALID_PROPERTY_VALUE = "The value provided for one of the properties in the request body is invalid."
MISSING_PROPERTY = "A required property was not specified in the request body."


class _BatchCoded(BatchError):
    """A Batch error whose class gives its HTTP status (`STATUS`) and code (the class name)."""

    STATUS = 409

    def __init__(self, message: str, values: dict[str, str] | list[tuple[str, str]] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(self.STATUS, type(self).__name__, message, values, headers)


class InvalidPropertyValue(_BatchCoded):
    """400 with values PropertyName, PropertyValue (when there is one), Reason."""

    STATUS = 400

    def __init__(self, name: str, value: Any, reason: str):
        values = [("PropertyName", name)]
        if value is not None:
            values.append(("PropertyValue", str(value)))
        values.append(("Reason", reason))
        super().__init__(INVALID_PROPERTY_VALUE, values)


class MissingRequiredProperty(_BatchCoded):
    STATUS = 400

    def __init__(self, name: str):
        super().__init__(MISSING_PROPERTY, [("PropertyName", name)])


class InvalidRequestBody(_BatchCoded):
    STATUS = 400

    def __init__(self, message: str = "The specified Request Body is not syntactically valid.",
                 values: dict[str, str] | list[tuple[str, str]] | None = None):
        super().__init__(message, values)


class UnknownProperty(InvalidRequestBody):
    """400 InvalidRequestBody for a property the entity type does not define. Batch's OData layer answers so, with
    the Reason "The property '<name>' does not exist on type 'Microsoft.Azure.Batch.Protocol.Entities.<Type>'. Make
    sure to only use property values that are defined by the type." (verified for a Batch request in
    Azure/azure-batch-software-entitlement docs/rest-api.md: "InvalidRequestBody ... contained additional/misspelt
    properties"). The entity type names of the pool bodies and the PropertyName value are guesses."""

    def __init__(self, name: str, entity: str):
        super().__init__(values=[
            ("PropertyName", name),
            ("Reason", f"The property '{name}' does not exist on type 'Microsoft.Azure.Batch.Protocol.Entities."
                       f"{entity}'. Make sure to only use property values that are defined by the type.")])
        self.code = "InvalidRequestBody"


class AutoScalingFormulaSyntaxError(_BatchCoded):
    """400: an autoscale formula Batch cannot parse, at pool add and enableautoscale (code and status from Batch's
    error-code table, "Batch Status and Error Codes": "The specified auto-scaling formula has a syntax error."; the
    spec: "The formula is checked for validity before the Pool is created"). values PropertyName, Reason: a guess."""

    STATUS = 400

    def __init__(self, reason: str):
        super().__init__("The specified auto-scaling formula has a syntax error.",
                         [("PropertyName", "autoScaleFormula"), ("Reason", reason)])


class AutoScaleFormulaTooLong(_BatchCoded):
    """400: a formula over 8192 characters (BatchErrorCodeStrings.AutoScaleFormulaTooLong in Microsoft.Azure.Batch:
    "The maximum length is 8192 characters")."""

    STATUS = 400

    def __init__(self, length: int):
        super().__init__("The specified auto-scaling formula exceeds lengths limit.",
                         [("PropertyName", "autoScaleFormula"), ("Reason", f"{length} characters; at most 8192.")])


class TooManyEnableAutoScaleRequests(_BatchCoded):
    """503: enableautoscale on the same pool within 30 s of the previous one (Batch's error-code table: "Too many
    Enable Pool AutoScale requests are issued on the pool."; the 30 s from the Pool_EnableAutoScale docs)."""

    STATUS = 503


class ConditionNotMet(_BatchCoded):
    """412: If-Match / If-None-Match did not hold."""

    STATUS = 412

    def __init__(self, message: str = "The condition specified using HTTP conditional header(s) is not met."):
        super().__init__(message)


class AuthenticationFailed(_BatchCoded):
    STATUS = 403


class AuthorizationFailure(_BatchCoded):
    """403: an Entra ID caller of the Batch data plane whose roles lack the action (backends/authorization.py). The
    code is what Batch answers (Azure/BatchExplorer issue 2260, a pool create refused); the message and the
    ``values`` naming the action and scope are a guess."""

    STATUS = 403

    def __init__(self, action: str, scope: str):
        super().__init__("This request is not authorized to perform this operation.",
                         [("Action", action), ("Scope", scope)])
        self.action, self.scope = action, scope


class EmptyMetadataKey(_BatchCoded):
    STATUS = 400


class InvalidQueryParameterValue(_BatchCoded):
    STATUS = 400


class OutOfRangeQueryParameterValue(_BatchCoded):
    STATUS = 400


class RequestBodyTooLarge(_BatchCoded):
    STATUS = 400


class InternalError(_BatchCoded):
    STATUS = 500


class AccountNotFound(_BatchCoded):
    STATUS = 404


class PoolNotFound(_BatchCoded):
    STATUS = 404


class NodeNotFound(_BatchCoded):
    STATUS = 404


class JobNotFound(_BatchCoded):
    STATUS = 404


class JobScheduleNotFound(_BatchCoded):
    STATUS = 404


class TaskNotFound(_BatchCoded):
    STATUS = 404


class PoolExists(_BatchCoded):
    pass


class PoolBeingDeleted(_BatchCoded):
    pass


class PoolBeingResized(_BatchCoded):
    pass


class PoolQuotaReached(_BatchCoded):
    pass


class OperationInvalidForCurrentState(_BatchCoded):
    pass


class ActiveJobAndScheduleQuotaReached(_BatchCoded):
    pass


class JobExists(_BatchCoded):
    pass


class JobWithSameIdExists(_BatchCoded):
    pass


class JobBeingDeleted(_BatchCoded):
    pass


class JobBeingTerminated(_BatchCoded):
    pass


class JobCompleted(_BatchCoded):
    pass


class JobNotActive(_BatchCoded):
    """409: a job operation that needs an active job (disable of a completed or terminating job). The code is
    Batch's (BatchErrorCodeStrings.JobNotActive: "A job operation was attempted which is not permitted when the job
    is not active."); the message wording is a guess."""


class JobScheduleExists(_BatchCoded):
    pass


class JobScheduleWithSameIdExists(_BatchCoded):
    pass


class JobScheduleBeingDeleted(_BatchCoded):
    pass


class JobScheduleBeingTerminated(_BatchCoded):
    pass


class JobScheduleCompleted(_BatchCoded):
    pass


class TaskExists(_BatchCoded):
    pass


class ArtifactNotFound(NotFound):
    """404 NotFound "Artifact: VMImage was not found." for a marketplace publisher/offer/sku/version that does not
    exist (VirtualMachineImages_List / _Get). Code and wording verified in public reports: Azure/vagrant-azure issue
    147 (the response body), danielsollondon/azvmimagebuilder issue 80 (the `$orderby=name desc&$top=1` list)."""

    CODE = "NotFound"

    def __init__(self, message: str = "Artifact: VMImage was not found."):
        super().__init__(message)


class ImageNotFound(_ArmCoded):
    """404 ImageNotFound: a VM PUT whose ``imageReference`` names no marketplace image. Wording verified in
    Azure/AzureStack-QuickStart-Templates issue 190 ("The platform image 'P:O:S:V' is not available. Verify that all
    fields in the storage profile are correct."); the 404 status is a guess (ARM reports it through a deployment)."""

    STATUS = 404
