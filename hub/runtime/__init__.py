"""The runtime: the only code that touches Faust and aiokafka (``run``: batch → effects →
deliveries awaited → ack)."""

from hub.runtime.run import Health, Stage, StageRunner, Stores, producer_of

__all__ = ["Health", "Stage", "StageRunner", "Stores", "producer_of"]
