"""placehub's hub: consented events in, a joined-up person view out.

Reading guide, in the order data flows:

- ``models``, ``codec``, ``registry``, ``serde``: the contracts (Avro schemas in
  ``schemas/``, loaded by ``schema_files``), the Confluent wire format and the ``_schemas``
  topic registry;
  ``compatibility`` and ``contracts`` (evolution rules, the catalogue and its history),
  ``registry_api`` (the Confluent REST API), ``catalogue`` and ``examples`` (the docs).
- ``stages``: the pure batch functions, in the order data flows: ``gate`` (decode →
  schema → lawful basis; each record to exactly one of identity, quarantine or the
  dead-letter queue), ``quarantine`` (hold, release, withdraw, expire), ``links``,
  ``identity`` (which person a set of pseudonymous tokens belongs to), ``view`` (folding
  events into the person-centred view, and minimising it for a caller; ``refs``: its index
  of partners' record refs), ``alerts`` (the place's alert rules over each changed
  timeline), ``pattern_people`` and ``patterns`` (each person's cells in open calendar
  windows, ``pattern_windows``, with the flows between services, ``pattern_flows``; each
  window's counts, published after disclosure control); ``accounting`` keeps every
  partner record's fate, ``effects`` is what a stage returns.
- ``disclosure``: the rule every aggregate goes through before it leaves the hub;
  ``exports`` writes controlled tables as CSV and JSON.
- ``alerts``: the alert rules as code (conditions, loading, evaluation, cooldown).
- ``runtime``: the only code that touches Faust and aiokafka: it runs a stage, delivers
  its effects, awaits them, and only then lets Faust commit; ``batch`` is the envelope of
  the internal hops.
- ``app``: the declaration (topics, tables, which stage reads what); ``web`` the HTTP API,
  with ``people_api`` (person reads, break glass), ``lookup`` (a person found from one's
  own record), ``alerts_api`` (the inbox), ``alert_stream`` (live alerts over server-sent
  events, fed by ``alert_feed``), ``alert_status`` and ``alert_status_api`` (open,
  acknowledged, closed), ``patterns_api`` (the stewards' patterns, from ``pattern_book``:
  each worker's copy of ``hub.patterns``), ``flows_api`` (the flows between services, a
  matrix per window, from the same copy), ``responses`` and ``responses_api`` (the
  learning cycle: stewards' collective responses on ``hub.responses``, each evaluated
  against the published patterns), ``access_history`` (subject access requests),
  ``owner_reads`` (who read a partner's data), ``audit`` (the audit trail they write).
- Pages served by every worker: ``practitioner_page`` (alerts, feedback, timelines) and
  ``steward_page`` (the place's patterns, system health and responses, drawn from
  ``steward_charts``; the flow matrix's series from ``steward_flows``),
  sharing ``_pages`` (headers, forms, sign-in).
- ``webhooks``: each partner's signed alert notifications (``webhook_notices``: what
  they say; ``webhook_sender``: attempts, backoff, figures; the signature in
  ``connectors.webhooks``).
- ``config``, ``partners``, ``users``: settings and deployment config files.
- ``broker``: the local Kafka broker; ``worker``, ``demo``, ``cli``: how it all runs.
"""

__all__: list[str] = []
