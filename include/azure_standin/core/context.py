"""The stand-in's shared context: every backend function takes it first."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .clock import Clock
from .faults import Faults
from .store import Store
from .throttle import Throttle
from .tokens import TokenIssuer

# Fixed identities of the local fixture, so airflow_settings.yaml can name them (like Azurite's
# well-known account key). The client secret can be replaced with --client-secret / STANDIN_CLIENT_SECRET.
TENANT_ID = "6f1e2c4a-3b7d-4e8f-9a0b-1c2d3e4f5a6b"
SUBSCRIPTION_ID = "2b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e"
CLIENT_ID = "0c5a1e3f-7d9b-4a2c-8e6f-3b1d5a7c9e0f"
DEFAULT_CLIENT_SECRET = "standin-local-dev-secret"


@dataclass
class StandInConfig:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    tenant_id: str = TENANT_ID
    subscription_id: str = SUBSCRIPTION_ID
    client_id: str = CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    extra: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class StandIn:
    config: StandInConfig
    store: Store
    clock: Clock
    faults: Faults
    tokens: TokenIssuer
    throttle: Throttle = field(default_factory=Throttle)  # ARM's token buckets (core/throttle.py)

    @property
    def lock(self):
        return self.store.lock
