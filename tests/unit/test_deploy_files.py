"""The deployment files (deploy/compose, deploy/k8s) validate against their schemas, the
validator refuses a broken copy naming the field, and the generated Kafka resources say
what the code does: the topics the workers create, the grants hub.kafka_acls gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import hub._admin
import hub.app
import hub.partner_join
import hub.partner_registry
from hub import kafka_acls
from hub._admin import retention_config
from hub.app import Hub
from hub.config import PROJECT_ROOT, Settings
from hub.partners import load_partners

VALIDATE = PROJECT_ROOT / "scripts" / "validate-deploy.py"
MANIFESTS = PROJECT_ROOT / "deploy" / "k8s" / "manifests"
COMPOSE = PROJECT_ROOT / "deploy" / "compose"
PARTNERS = PROJECT_ROOT / "deploy" / "local" / "partners.yaml"
# kafka-acls.sh's and Strimzi's operation names, back to hub.kafka_acls' (kafka-python's).
OPERATIONS = {
    "Read": "READ",
    "Write": "WRITE",
    "Describe": "DESCRIBE",
    "Create": "CREATE",
    "DescribeConfigs": "DESCRIBE_CONFIGS",
    "AlterConfigs": "ALTER_CONFIGS",
    "IdempotentWrite": "IDEMPOTENT_WRITE",
}
PATTERNS = {"literal": "literal", "prefix": "prefixed", "prefixed": "prefixed"}
# Topics made by parts of the hub other than Hub.prepare (features at start).
MADE_ELSEWHERE = {
    "hub.alert-status",
    "hub.alert-feedback",
    "hub.break-glass",
}


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VALIDATE), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_every_deployment_file_validates_and_is_rendered_from_the_code() -> None:
    run = validate()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "deployment files valid" in run.stdout


@pytest.mark.parametrize(
    ("path", "good", "bad", "named"),
    [
        (
            MANIFESTS / "20-topics.yaml",
            "  replicas: 3\n",
            "  replica: 3\n",
            "KafkaTopic/schemas: spec: Additional properties are not allowed ('replica'",
        ),
        (
            MANIFESTS / "10-kafka.yaml",
            "type: scram-sha-512",
            "type: scram-sha-256",
            "Kafka/placehub: spec.kafka.listeners.0.authentication.type: 'scram-sha-256'",
        ),
        (
            MANIFESTS / "60-hub.yaml",
            "  replicas: 2\n",
            "  replicas: two\n",
            "Deployment/placehub-worker: spec.replicas: 'two' is not of type 'integer'",
        ),
        (
            COMPOSE / "compose.yaml",
            "  hub-2:\n",
            "  hub-2:\n    replica: 2\n",
            "compose: $.services['hub-2']: 'replica' does not match",
        ),
    ],
)
def test_a_broken_copy_is_refused_with_the_field_named(
    tmp_path: Path, path: Path, good: str, bad: str, named: str
) -> None:
    text = path.read_text()
    assert good in text
    copy = tmp_path / path.name
    copy.write_text(text)
    assert validate(copy).returncode == 0  # the copy itself is fine: the edit breaks it
    copy.write_text(text.replace(good, bad, 1))
    run = validate(copy)
    assert run.returncode == 1
    assert f"{copy}: {named}" in run.stderr


def _grants(rules: list[dict[str, Any]]) -> list[kafka_acls.Grant]:
    """A KafkaUser's ACL rules as hub.kafka_acls grants."""
    found = set()
    for rule in rules:
        resource = rule["resource"]
        name = resource.get("name", "kafka-cluster")
        pattern = PATTERNS[resource.get("patternType", "literal")]
        for operation in rule["operations"]:
            found.add(kafka_acls.Grant(resource["type"], name, pattern, OPERATIONS[operation]))
    return sorted(found)


def test_the_kafka_users_hold_exactly_the_grants_of_hub_kafka_acls() -> None:
    partners = [p.id for p in load_partners(PARTNERS)]
    expected = {
        p.name: p
        for p in [
            kafka_acls.admin(),
            kafka_acls.worker("hub", "placehub"),
            *map(kafka_acls.partner, partners),
        ]
    }
    users = {doc["metadata"]["name"]: doc for doc in documents(MANIFESTS / "30-users.yaml")}
    assert sorted(users) == sorted(expected)
    for name, user in users.items():
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        rules = user["spec"].get("authorization", {"acls": []})["acls"]
        assert _grants(rules) == kafka_acls.grants_for(expected[name]), name
    partner = users["partner-city-food-bank"]["spec"]["authorization"]["acls"]
    assert {"type": "topic", "name": "hub.events", "patternType": "literal"} not in [
        rule["resource"] for rule in partner
    ]


def test_the_compose_acls_are_hub_kafka_acls_grants() -> None:
    held: dict[str, set[kafka_acls.Grant]] = {}
    for line in (COMPOSE / "kafka" / "acls.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        principal, resource, pattern, name, operations = line.split(" ")
        held.setdefault(principal, set()).update(
            kafka_acls.Grant(resource, name, PATTERNS[pattern], OPERATIONS[op])
            for op in operations.split(",")
        )
    partners = [kafka_acls.partner(p.id) for p in load_partners(PARTNERS)]
    expected = {
        "worker-hub-1": kafka_acls.grants_for(kafka_acls.worker("hub-1", "placehub")),
        "worker-hub-2": kafka_acls.grants_for(kafka_acls.worker("hub-2", "placehub")),
        # The simulated place publishes as every partner: their grants together, no more.
        "simulator": sorted({g for p in partners for g in kafka_acls.grants_for(p)}),
        **{p.name: kafka_acls.grants_for(p) for p in partners},
    }
    assert {name: sorted(grants) for name, grants in held.items()} == expected


def test_the_kafka_topics_are_the_topics_the_workers_create(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings.model_construct(replication_factor=3)
    created: dict[str, tuple[int, dict[str, str]]] = {}

    def record(
        config: Settings,
        name: str,
        *,
        partitions: int,
        compact: bool = False,
        retention_hours: float | None = None,
        **_: Any,
    ) -> None:
        created[name] = (partitions, retention_config(config, compact, retention_hours))

    monkeypatch.setattr(hub._admin, "ensure_topic", record)
    monkeypatch.setattr(hub.app, "ensure_topic", record)
    monkeypatch.setattr(hub.partner_registry, "ensure_topic", record)
    monkeypatch.setattr(hub.partner_join, "read_registrations", lambda _: {})
    worker = Hub(settings)
    monkeypatch.setattr(worker.serde, "schema_for", lambda *args: None)
    monkeypatch.setattr(worker.registry, "subjects", lambda: {})
    worker.prepare()  # what a worker creates at start, recorded instead of created

    topics = {
        doc["spec"]["topicName"]: doc["spec"] for doc in documents(MANIFESTS / "20-topics.yaml")
    }
    assert set(created) <= set(topics)
    assert set(topics) - set(created) == MADE_ELSEWHERE
    assert any(name.endswith("-changelog") for name in created)  # the tables' too
    for name, (partitions, config) in created.items():
        spec = topics[name]
        assert (spec["partitions"], spec["replicas"]) == (partitions, 3), name
        assert spec["config"] == {**config, "min.insync.replicas": "2"}, name


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return loaded


def test_every_file_and_secret_the_compose_file_names_is_there() -> None:
    compose = _compose()
    declared = compose["secrets"]
    for name, service in compose["services"].items():
        assert set(service.get("secrets", [])) <= set(declared), name
        for env_file in service.get("env_file", []):
            assert (COMPOSE / env_file).is_file(), (name, env_file)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not source.startswith("./secrets/"):
                assert (COMPOSE / source).exists(), (name, source)
        if "build" in service:
            context = COMPOSE / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name
    # The secrets' files are made by make-secrets.sh, under the git-ignored secrets/.
    made = (COMPOSE / "make-secrets.sh").read_text()
    acls = (COMPOSE / "kafka" / "acls.txt").read_text().splitlines()
    principals = {"admin", "broker", "controller"} | {
        line.split(" ")[0] for line in acls if not line.startswith("#")
    }
    for name, secret in declared.items():
        path = secret["file"]
        if path.startswith("./secrets/kafka/"):  # a password per principal
            assert path.removeprefix("./secrets/kafka/") in principals, name
        else:
            assert path.startswith("./secrets/") and path.removeprefix("./") in made, name


def _placehub_variables() -> dict[str, set[str]]:
    """Every PLACEHUB_* variable each deployment file sets."""
    found: dict[str, set[str]] = {}
    for path in [COMPOSE / "hub.env", COMPOSE / "worker.env"]:
        found[path.name] = {
            line.split("=")[0] for line in path.read_text().splitlines() if line[:1].isupper()
        }
    found["compose.yaml"] = {
        key for service in _compose()["services"].values() for key in service.get("environment", {})
    }
    for path in [MANIFESTS / "60-hub.yaml", *sorted((MANIFESTS.parent / "jobs").glob("*.yaml"))]:
        for doc in documents(path):
            if doc["kind"] in ("Deployment", "Job"):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    found.setdefault(path.name, set()).update(e["name"] for e in container["env"])
    return found


def test_every_setting_the_deployment_files_give_is_one_placehub_reads() -> None:
    known = {f"PLACEHUB_{name.upper()}" for name in Settings.model_fields}
    for name, variables in _placehub_variables().items():
        placehub = {v for v in variables if v.startswith("PLACEHUB_")}
        assert placehub, name
        assert placehub <= known, (name, sorted(placehub - known))


def test_the_workers_deployment_uses_what_the_other_manifests_make() -> None:
    (deployment,) = [d for d in documents(MANIFESTS / "60-hub.yaml") if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    maps = {d["metadata"]["name"] for d in documents(MANIFESTS / "40-config.yaml")}
    assert {v["configMap"]["name"] for v in volumes.values() if "configMap" in v} == maps
    users = {d["metadata"]["name"] for d in documents(MANIFESTS / "30-users.yaml")}
    assert env["PLACEHUB_SASL_USERNAME"] in users
    assert volumes["kafka-user"]["secret"]["secretName"] == env["PLACEHUB_SASL_USERNAME"]
    secrets = {d["metadata"]["name"]: d for d in documents(MANIFESTS / "50-secrets.yaml")}
    held = set(secrets[volumes["placehub-secrets"]["secret"]["secretName"]]["stringData"])
    for variable in ("PLACEHUB_WORKER_SECRET_FILE", "PLACEHUB_METRICS_TOKEN_FILE"):
        assert env[variable].removeprefix("/run/secrets/placehub/") in held, variable
    assert "PLACEHUB_PLACE_KEY_FILE" not in env  # workers never need the place key
    partitions = {
        d["spec"]["topicName"]: d["spec"]["partitions"]
        for d in documents(MANIFESTS / "20-topics.yaml")
    }
    assert partitions["hub.events"] == int(env["PLACEHUB_PARTITIONS"])
    assert deployment["spec"]["replicas"] == 2


def test_the_compose_prometheus_config_passes_promtool_where_it_is_mounted(tmp_path: Path) -> None:
    """Laid out as the prometheus service mounts it (config and rules side by side in
    /etc/prometheus, the scrape token a secret), with the token's path moved into tmp_path
    (promtool requires the file to exist)."""
    service = _compose()["services"]["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in service["volumes"])
    assert mounts["./prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["../prometheus/rules.yml"] == "/etc/prometheus/rules.yml"
    assert "metrics_token" in service["secrets"]
    etc = tmp_path / "etc" / "prometheus"
    etc.mkdir(parents=True)
    token = tmp_path / "metrics_token"
    token.write_text("a-scrape-token-for-the-check\n")
    config = (COMPOSE / "prometheus.yml").read_text()
    assert "/run/secrets/metrics_token" in config
    (etc / "prometheus.yml").write_text(config.replace("/run/secrets/metrics_token", str(token)))
    (etc / "rules.yml").write_text(
        (PROJECT_ROOT / "deploy" / "prometheus" / "rules.yml").read_text()
    )
    done = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=etc,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
