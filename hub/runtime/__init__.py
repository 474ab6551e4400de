"""The runtime: the only code that touches Faust and aiokafka.

- ``run``: a stage as a Faust agent (batch → effects → deliveries awaited → ack).
- ``transport``: Faust's aiokafka driver with the hub's consumer settings (fetch wait,
  static group membership, leaving the group on a clean stop, commits from ``commits``),
  an idempotent producer, and the app's Kafka credentials (``faust_credentials``).
- ``commits``: how far a stream partition may be committed (what its stage has done).
- ``watchdog``: reads again a stream partition whose commits stopped at a record.
- ``flow``: the gate waits while a worker's consents are far behind (a bulk load's).
"""

from hub.runtime.run import Health, Stage, StageRunner, Stores, producer_of

__all__ = ["Health", "Stage", "StageRunner", "Stores", "producer_of"]
