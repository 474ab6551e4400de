"""placehub's hub: consented events in, a joined-up person view out.

Reading guide, in the order data flows:

- ``models``, ``codec``, ``registry``, ``serde``: the contracts (Avro schemas in
  ``schemas/``), the Confluent wire format and the ``_schemas`` topic registry;
  ``compatibility`` and ``contracts`` (evolution rules, the catalogue and its history),
  ``registry_api`` (the Confluent REST API), ``catalogue`` and ``examples`` (the docs).
- ``gate``: decode → schema → lawful basis; each record goes to exactly one of the view,
  quarantine or the dead-letter queue.
- ``identity``: which person a set of pseudonymous tokens belongs to.
- ``view``: folding events into the person-centred view, and minimising it for a caller.
- ``app``: the Faust wiring that carries the decisions out; ``web`` the HTTP API.
- ``config``, ``partners``, ``users``: settings and deployment config files.
- ``broker``: the local Kafka broker; ``worker``, ``demo``, ``cli``: how it all runs.
"""

__all__: list[str] = []
