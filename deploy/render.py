"""The deployment files that follow from the code's own declarations, written (or checked)
so they cannot drift from it: every topic a worker creates, with its partitions,
retention and cleanup (``hub._admin``, ``hub.app``), every Kafka principal's ACLs, and the
place's configuration (deploy/local) as ConfigMaps.

    python deploy/render.py           # rewrite the files below
    python deploy/render.py --check   # exit 1 naming each file that is stale (CI)

Writes deploy/k8s/manifests/20-topics.yaml (Strimzi ``KafkaTopic``s), 30-users.yaml
(``KafkaUser``s: SCRAM-SHA-512 and simple ACLs), 40-config.yaml (ConfigMaps) and
deploy/compose/kafka/acls.txt (the same ACLs, for the compose cluster's set-up script).
The partners are deploy/local/partners.yaml's; a place with other partners edits that
file and renders again.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hub import kafka_acls
from hub._admin import retention_config
from hub.app import Hub
from hub.break_glass import break_glass_topic
from hub.config import PROJECT_ROOT, Settings
from hub.partners import load_partners
from hub.topics import Topics

__all__ = ["TopicSpec", "compose_grants", "k8s_principals", "rendered", "strimzi_acls", "topics"]

K8S = PROJECT_ROOT / "deploy" / "k8s" / "manifests"
LOCAL = PROJECT_ROOT / "deploy" / "local"
ACLS_TXT = PROJECT_ROOT / "deploy" / "compose" / "kafka" / "acls.txt"
CLUSTER = "placehub"  # the Strimzi Kafka resource's name (10-kafka.yaml)
REPLICAS = 3
MIN_INSYNC = 2
HEADER = "# Made by deploy/render.py from the code's declarations: edit that, not this.\n"

# kafka-python's operation names (hub.kafka_acls) as Strimzi spells them.
OPERATIONS = {
    "READ": "Read",
    "WRITE": "Write",
    "DESCRIBE": "Describe",
    "CREATE": "Create",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "ALTER_CONFIGS": "AlterConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
}
PATTERNS = {"literal": "literal", "prefixed": "prefix"}
WORKER = "hub"  # the workers' principal is worker-hub (k8s: one Deployment, one user)
COMPOSE_WORKERS = ("hub-1", "hub-2")  # compose: a principal per worker
SIMULATOR = "simulator"


@dataclass(frozen=True)
class TopicSpec:
    """One topic as a worker creates it."""

    name: str
    partitions: int
    config: dict[str, str]


def settings() -> Settings:
    """The deployment's settings: the defaults, three replicas, no environment read."""
    return Settings.model_construct(replication_factor=REPLICAS)


def topics(config: Settings) -> list[TopicSpec]:
    """Every topic the hub and its connectors use, as the code creates them."""
    names, n = Topics(config.topic_prefix), config.partitions
    partners = load_partners(config.partners_file)
    hub = Hub(config)

    def spec(
        name: str, partitions: int, compact: bool = False, hours: float | None = None
    ) -> TopicSpec:
        return TopicSpec(name, partitions, retention_config(config, compact, hours))

    found = [
        # hub._admin.declare_topics
        spec(names.schemas, 1, compact=True),
        spec(names.consent, n, compact=True),
        spec(names.alerts, n, compact=True),
        *(
            spec(topic, n, hours=config.partner_retention_hours)
            for partner in partners
            for topic in (names.partner(partner.id), names.partner_links(partner.id))
        ),
        *(
            spec(topic, n, hours=config.events_retention_hours)
            for topic in (names.events, names.quarantine, names.dlq)
        ),
        spec(names.audit, n),
        *(
            spec(topic, count, hours=config.hop_retention_hours)
            for topic, count in hub.internal_partitions.items()
        ),
        # hub.app.Hub.prepare: the partner registry, published cells and responses, the
        # partners' SQL-poll positions, then the tables' changelogs
        spec(names.partner_registry, n, compact=True),
        spec(names.patterns, n, compact=True),
        spec(names.responses, n, compact=True),
        *(spec(names.partner_positions(partner.id), 1, compact=True) for partner in partners),
        *(
            spec(table.changelog_topic.get_topic_name(), table.partitions or n, compact=True)
            for table in hub.app.tables.values()
        ),
        # created by the API's features at start
        spec(f"{config.topic_prefix}hub.alert-status", n, compact=True),
        spec(names.alert_feedback, n),
        spec(break_glass_topic(config), n),
    ]
    return found


def k8s_principals(config: Settings) -> list[kafka_acls.Principal]:
    """The cluster's users: the admin (a super user), the workers, each partner."""
    names = Topics(config.topic_prefix)
    partners = load_partners(config.partners_file)
    return [
        kafka_acls.admin(),
        kafka_acls.worker(WORKER, config.app_id, names),
        *(kafka_acls.partner(p.id, names) for p in partners),
    ]


def compose_grants(config: Settings) -> dict[str, list[kafka_acls.Grant]]:
    """The compose cluster's principals and grants: a user per worker, the simulated
    place (every demo partner's grants together: it publishes as each of them, so it is
    for a demo or staging place only) and each partner."""
    names = Topics(config.topic_prefix)
    partners = [kafka_acls.partner(p.id, names) for p in load_partners(config.partners_file)]
    found = {
        (w := kafka_acls.worker(name, config.app_id, names)).name: kafka_acls.grants_for(w)
        for name in COMPOSE_WORKERS
    }
    found[SIMULATOR] = sorted({g for p in partners for g in kafka_acls.grants_for(p)})
    found.update({p.name: kafka_acls.grants_for(p) for p in partners})
    return found


def _labels() -> dict[str, str]:
    return {"strimzi.io/cluster": CLUSTER}


def _resource_name(topic: str) -> str:
    """A Kubernetes name for ``topic`` (``_schemas`` has an underscore; names cannot)."""
    return topic.replace("_", "").lower()


def topic_resources(specs: list[TopicSpec]) -> Iterator[dict[str, Any]]:
    """A ``KafkaTopic`` for each topic: three replicas, two in sync for an acked write."""
    for topic in specs:
        yield {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {"name": _resource_name(topic.name), "labels": _labels()},
            "spec": {
                "topicName": topic.name,
                "partitions": topic.partitions,
                "replicas": REPLICAS,
                "config": {**topic.config, "min.insync.replicas": str(MIN_INSYNC)},
            },
        }


def strimzi_acls(grants: list[kafka_acls.Grant]) -> list[dict[str, Any]]:
    """``grants`` as a ``KafkaUser``'s ACL rules, one per resource with its operations."""
    rules: dict[tuple[str, str, str], list[str]] = {}
    for grant in grants:
        key = (grant.resource, grant.name, grant.pattern)
        rules.setdefault(key, []).append(OPERATIONS[grant.operation])
    found = []
    for (resource, name, pattern), operations in rules.items():
        target: dict[str, str] = {"type": resource}
        if resource != "cluster":  # the cluster has no name in Strimzi's ACLs
            target |= {"name": name, "patternType": PATTERNS[pattern]}
        found.append({"resource": target, "operations": sorted(operations)})
    return found


def user_resources(users: list[kafka_acls.Principal]) -> Iterator[dict[str, Any]]:
    """A ``KafkaUser`` for each principal (the User Operator makes its password Secret);
    the admin is a super user (10-kafka.yaml) and has no ACLs."""
    for user in users:
        spec: dict[str, Any] = {"authentication": {"type": "scram-sha-512"}}
        grants = kafka_acls.grants_for(user)
        if grants:
            spec["authorization"] = {"type": "simple", "acls": strimzi_acls(grants)}
        yield {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {
                "name": user.name,
                "labels": {**_labels(), "placehub.org/role": user.role.value},
            },
            "spec": spec,
        }


def config_maps() -> Iterator[dict[str, Any]]:
    """The place's configuration files (deploy/local) as ConfigMaps, a file per key."""
    for name, sources in (
        ("placehub-partners", [LOCAL / "partners.yaml"]),
        ("placehub-users", [LOCAL / "users.yaml"]),
        ("placehub-agreements", sorted((LOCAL / "agreements").glob("*.yaml"))),
        ("placehub-alert-rules", sorted((LOCAL / "alerts").glob("*.yaml"))),
    ):
        yield {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "placehub"}},
            "data": {path.name: path.read_text() for path in sources},
        }


def acl_lines(grants: dict[str, list[kafka_acls.Grant]]) -> str:
    """The grants as ``principal resource pattern name operations`` lines, a line per
    resource, in kafka-acls.sh's words (``prefixed``; ``DescribeConfigs,Read``)."""
    lines = [
        f"{user} {rule['resource']['type']} {pattern} {name} {','.join(rule['operations'])}"
        for user, held in grants.items()
        for rule in strimzi_acls(held)
        for name, pattern in [_pattern_and_name(rule["resource"])]
    ]
    return HEADER + "# principal resource pattern name operations\n" + "\n".join(lines) + "\n"


def _pattern_and_name(resource: dict[str, str]) -> tuple[str, str]:
    if resource["type"] == "cluster":
        return "kafka-cluster", "literal"
    pattern = "prefixed" if resource["patternType"] == "prefix" else "literal"
    return resource["name"], pattern


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMaps' files) as literal blocks, readable in review."""


def _block(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _block)


def _documents(documents: Iterator[dict[str, Any]]) -> str:
    return HEADER + "".join(
        "---\n" + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100) for doc in documents
    )


def rendered() -> dict[Path, str]:
    """Each file this module makes, with its text."""
    config = settings()
    return {
        K8S / "20-topics.yaml": _documents(topic_resources(topics(config))),
        K8S / "30-users.yaml": _documents(user_resources(k8s_principals(config))),
        K8S / "40-config.yaml": _documents(config_maps()),
        ACLS_TXT: acl_lines(compose_grants(config)),
    }


def main(argv: list[str]) -> int:
    """Write the files, or with ``--check`` name the stale ones (exit 1), or with
    ``--kafka-user ID`` print the ``KafkaUser`` of a partner added with ``placehub partners
    add --no-kafka-user`` (on Strimzi the User Operator owns every principal)."""
    if "--kafka-user" in argv:
        partner_id = argv[argv.index("--kafka-user") + 1]
        names = Topics(settings().topic_prefix)
        print(_documents(user_resources([kafka_acls.partner(partner_id, names)])), end="")
        return 0
    stale = []
    for path, text in rendered().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if "--check" in argv:
            stale.append(str(path.relative_to(PROJECT_ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    for name in stale:
        print(f"{name} is stale: run `python deploy/render.py`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
