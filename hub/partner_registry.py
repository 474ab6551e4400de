"""Partners added while the hub runs (``placehub partners add``): one compacted topic,
``hub.partners``, that every worker reads, so a new partner joins running workers without
a redeploy (``hub.partner_join``).

The deployment's partners file lists the partners a place starts with; the registry adds
to it. A record is keyed by partner id. Its value is JSON, not Avro: it is the hub's own
configuration, written and read only by the hub, not a contract partners code against. It
names the partner, its HTTP ingest user with that user's token *hash* (never the token),
and whether the partner was removed. Registrations are never deleted, only marked removed:
a worker started later must still read a removed partner's topic, so that what it
published before reaches a fate and its books still balance.
"""

from __future__ import annotations

import time
from typing import Self

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from hub._admin import ensure_topic
from hub.config import Settings
from hub.config_files import first_error
from hub.errors import BrokerError, InputError
from hub.kafka_clients import kafka_python_options, kafka_python_producer_options
from hub.partners import Partner
from hub.topics import Topics
from hub.users import Role, User

__all__ = [
    "Registration",
    "decode",
    "encode",
    "ensure_registry",
    "read_registrations",
    "write_registration",
]

_READ_TIMEOUT_S = 30.0


class Registration(BaseModel):
    """One partner added with ``placehub partners add`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: Partner
    ingest_user: User
    removed: bool = False

    @model_validator(mode="after")
    def _ingest_user_is_the_partners(self) -> Self:
        """A registration can only ever give its own partner an ingest user."""
        user = self.ingest_user
        if user.role is not Role.PARTNER or user.partner != self.partner.id:
            raise ValueError("ingest_user must have role partner and name the partner")
        return self


def encode(registration: Registration) -> bytes:
    """The record value for ``registration``."""
    return registration.model_dump_json().encode()


def decode(value: bytes) -> Registration:
    """A record value as a registration; InputError names the field and rule, not a value."""
    try:
        return Registration.model_validate_json(value)
    except ValidationError as exc:
        raise InputError(f"partner registration: {first_error(exc)}") from None


def ensure_registry(settings: Settings) -> str:
    """Create the registry topic if it is missing (compacted); its name."""
    topic = Topics(settings.topic_prefix).partner_registry
    ensure_topic(settings, topic, partitions=settings.partitions, compact=True)
    return topic


def read_registrations(settings: Settings) -> dict[str, Registration]:
    """Every partner's latest registration, read to the topic's end (blocking: for start-up
    and the command line; the topic must exist, ``ensure_registry``). A record that is not
    a registration is skipped."""
    topic = Topics(settings.topic_prefix).partner_registry
    consumer = KafkaConsumer(**kafka_python_options(settings), enable_auto_commit=False)
    found: dict[str, Registration] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise BrokerError(f"{topic} was not read to its end in time")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key is None or record.value is None:
                        continue
                    try:
                        found[record.key.decode()] = decode(record.value)
                    except (InputError, UnicodeDecodeError):
                        continue
    except KafkaError as exc:
        raise BrokerError(f"reading {topic} failed ({type(exc).__name__})") from None
    finally:
        consumer.close()
    return found


def write_registration(settings: Settings, registration: Registration) -> None:
    """Write ``registration`` and wait until every in-sync replica has it."""
    topic = ensure_registry(settings)
    producer = KafkaProducer(**kafka_python_producer_options(settings))
    try:
        key = registration.partner.id.encode()
        sent = producer.send(topic, key=key, value=encode(registration))
        sent.get(timeout=settings.request_timeout_ms / 1000)
    except KafkaError as exc:
        raise BrokerError(f"writing to {topic} failed ({type(exc).__name__})") from None
    finally:
        producer.close()
