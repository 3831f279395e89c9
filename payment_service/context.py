"""The per-instance state every handler is given explicitly, and the base class that holds it.

Its own module so that app (which builds it) and the handler modules (which read it) need not
import each other.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cache import Cache
from .config import Settings
from .faults import FaultState
from .health import Health, Lifecycle
from .metrics import Metrics
from .processor import PaymentWorker
from .storage import Store


@dataclass
class Context:
    settings: Settings
    lifecycle: Lifecycle
    faults: FaultState
    store: Store
    cache: Cache
    metrics: Metrics
    health: Health
    worker: PaymentWorker


class Handlers:
    """Base of the handler classes: built once per app, each reads the context it was given."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
