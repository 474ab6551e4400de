#!/bin/sh
# One node of the compose cluster (KRaft, combined broker and controller). Writes its
# server.properties from the environment and the mounted secrets, formats its log
# directory on first start with the SCRAM-SHA-512 credentials of the two super users,
# broker (brokers talk to each other as it, so it must exist before any broker is up) and
# admin (kafka-setup and operators), then runs Kafka.
#   NODE_ID        1, 2 or 3
#   CLUSTER_ID     the same for every node (.env)
#   EXTERNAL_PORT  the host port this node's EXTERNAL listener is published on
set -eu
admin_password=$(cat /run/secrets/kafka_admin)
broker_password=$(cat /run/secrets/kafka_broker)
controller_password=$(cat /run/secrets/kafka_controller)
config=/tmp/server.properties
umask 077
cat >"$config" <<PROPERTIES
node.id=${NODE_ID}
process.roles=broker,controller
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
log.dirs=/var/lib/kafka/data

# BROKER: clients inside the compose network and the brokers themselves; EXTERNAL: the
# host (partners' SDKs on this machine); CONTROLLER: the quorum, never advertised.
listeners=BROKER://:9092,EXTERNAL://:9094,CONTROLLER://:9093
advertised.listeners=BROKER://kafka-${NODE_ID}:9092,EXTERNAL://localhost:${EXTERNAL_PORT}
listener.security.protocol.map=BROKER:SASL_PLAINTEXT,EXTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=BROKER
controller.listener.names=CONTROLLER

# Every client authenticates with SCRAM-SHA-512. The quorum uses PLAIN: SCRAM credentials
# live in the metadata the controllers serve, so they cannot authenticate the controllers.
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.broker.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${broker_password}";
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${controller_password}" user_controller="${controller_password}";

# Default deny: what a principal may do is its ACLs (setup.sh), nothing else.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:broker;User:controller
allow.everyone.if.no.acl.found=false

# Every topic is created on purpose; three copies, two in sync before a write is acked.
auto.create.topics.enable=false
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
log.retention.hours=168
PROPERTIES

# For the health check (kafka-broker-api-versions.sh), as the broker principal.
cat >/tmp/client.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${broker_password}";
PROPERTIES

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id "$CLUSTER_ID" \
    --config "$config" --add-scram "SCRAM-SHA-512=[name=broker,password=${broker_password}]" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_password}]"
exec /opt/kafka/bin/kafka-server-start.sh "$config"
