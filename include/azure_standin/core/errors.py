"""Errors the backends raise; the responses layer renders them in Azure's wire format."""
from __future__ import annotations


class ArmError(Exception):
    """An ARM error: rendered as {"error": {"code", "message"}} with the given HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


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
