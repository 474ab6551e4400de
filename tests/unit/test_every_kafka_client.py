"""Every Kafka client the project makes takes its brokers and security from
``hub.kafka_clients`` (producers: acks=all and idempotent), and every Faust app its
``broker_credentials`` from ``faust_credentials``: a scan of the source, so that a client
added later without them fails here rather than on a secured cluster."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import kafka_clients
from hub.config import PROJECT_ROOT

SCANNED = [
    *sorted((PROJECT_ROOT / "hub").rglob("*.py")),
    *sorted((PROJECT_ROOT / "connectors").rglob("*.py")),
    *sorted((PROJECT_ROOT / "tests" / "bench").rglob("*.py")),
    PROJECT_ROOT / "tests" / "integration" / "helpers.py",
    PROJECT_ROOT / "tests" / "integration" / "conftest.py",
]

PRODUCERS = {"KafkaProducer", "AIOKafkaProducer", "Producer"}  # Producer: confluent-kafka's
CLIENTS = PRODUCERS | {
    "KafkaConsumer",
    "KafkaAdminClient",
    "KafkaClient",
    "AIOKafkaConsumer",
    "AIOKafkaClient",
    "AIOKafkaAdminClient",
    "Consumer",  # confluent-kafka's
    "AdminClient",
}
FAUST_APPS = {"App", "DurableApp", "HubApp"}
OPTIONS = set(kafka_clients.__all__) - {"DURABLE_PRODUCER", "ssl_context"}
# What only the options may say: where the brokers are, how to connect, how durably to send.
OWN_KEYS = {
    "bootstrap_servers",
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_context",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "acks",
    "enable_idempotence",
}


# The local cluster's own probe (``placehub broker start|status``) connects as the admin
# the set-up itself made (hub.broker_security.client_options), not as PLACEHUB_* says.
EXEMPT = {("hub/broker.py", "a client made with __new__, around the options")}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def problems(source: str) -> Iterator[str]:
    """Each client construction in ``source`` that does not go through the options."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        called = _name(node.func)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "__new__":
            if any(_name(arg) in CLIENTS for arg in node.args):
                yield f"line {node.lineno}: a client made with __new__, around the options"
        elif called in CLIENTS:
            yield from _client_problems(node, called)
        elif called in FAUST_APPS:
            credentials = [k.value for k in node.keywords if k.arg == "broker_credentials"]
            if not (credentials and _calls(credentials[0], {"faust_credentials"})):
                yield f"line {node.lineno}: {called} without broker_credentials=faust_credentials"


def _client_problems(node: ast.Call, called: str) -> Iterator[str]:
    spread = [k.value for k in node.keywords if k.arg is None]
    # confluent-kafka's clients take one dict: its keys are spread from the options in it.
    if node.args and isinstance(node.args[-1], ast.Dict):
        config = node.args[-1]
        spread += [v for k, v in zip(config.keys, config.values, strict=True) if k is None]
        own = {k.value for k in config.keys if isinstance(k, ast.Constant)}
        own &= {"bootstrap.servers", "security.protocol", "acks", "enable.idempotence"}
        if own:
            yield f"line {node.lineno}: {called} sets {', '.join(sorted(own))} itself"
    producer = called in PRODUCERS
    wanted = {f for f in OPTIONS if f.endswith("_producer_options") or not producer}
    if not any(_calls(value, wanted) for value in spread):
        kind = "a producer's options" if producer else "the options"
        yield f"line {node.lineno}: {called} not made with {kind} of hub.kafka_clients"
    own_keys = sorted({k.arg for k in node.keywords if k.arg in OWN_KEYS})
    if own_keys:
        yield f"line {node.lineno}: {called} sets {', '.join(own_keys)} itself"


def _calls(node: ast.expr, functions: set[str]) -> bool:
    return isinstance(node, ast.Call) and _name(node.func) in functions


@pytest.mark.parametrize("path", SCANNED, ids=[str(p.relative_to(PROJECT_ROOT)) for p in SCANNED])
def test_every_kafka_client_is_made_from_the_options(path: Path) -> None:
    name = str(path.relative_to(PROJECT_ROOT))
    found = [p for p in problems(path.read_text()) if (name, p.split(": ", 1)[1]) not in EXEMPT]
    assert found == []


def test_the_scan_finds_a_client_made_without_the_options() -> None:
    source = """
KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
KafkaProducer(**kafka_python_options(settings))
AIOKafkaConsumer(**aiokafka_options(settings), security_protocol="PLAINTEXT")
Producer({"bootstrap.servers": servers, "linger.ms": 5})
faust.App("floor", broker=url)
admin = KafkaAdminClient.__new__(KafkaAdminClient)
KafkaConsumer(**kafka_python_options(settings), group_id=None)
AIOKafkaProducer(**aiokafka_producer_options(settings), linger_ms=5)
Consumer({**confluent_options(settings), "group.id": "g"})
HubApp("placehub", broker_credentials=faust_credentials(settings))
"""
    assert list(problems(source)) == [
        "line 2: KafkaConsumer not made with the options of hub.kafka_clients",
        "line 2: KafkaConsumer sets bootstrap_servers itself",
        "line 3: KafkaProducer not made with a producer's options of hub.kafka_clients",
        "line 4: AIOKafkaConsumer sets security_protocol itself",
        "line 5: Producer sets bootstrap.servers itself",
        "line 5: Producer not made with a producer's options of hub.kafka_clients",
        "line 6: App without broker_credentials=faust_credentials",
        "line 7: a client made with __new__, around the options",
    ]
