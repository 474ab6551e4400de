"""The stages: pure functions over one batch of records, in the order data flows.

gate → quarantine (release) → identity (and links) → view; ``accounting`` keeps the books
of every partner record's fate. Each stage module reads like a rule book: no Faust, no
Kafka, no I/O (``hub.runtime`` carries out what a stage decides).
"""

__all__: list[str] = []
