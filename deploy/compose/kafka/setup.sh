#!/bin/sh
# Run once the three brokers answer (the kafka-setup service): gives every principal in
# acls.txt its SCRAM-SHA-512 credential (the password in secrets/kafka/<principal>, made
# by make-secrets.sh) and its ACLs. Idempotent: a credential is set again, an ACL that
# exists is left as it is. acls.txt is made by deploy/render.py from hub/kafka_acls.py.
set -eu
bootstrap=kafka-1:9092,kafka-2:9092,kafka-3:9092
bin=/opt/kafka/bin
secrets=/compose/secrets/kafka
umask 077
cat >/tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$secrets/admin")";
PROPERTIES

for principal in $(grep -v '^#' /compose/kafka/acls.txt | cut -d' ' -f1 | sort -u); do
  "$bin/kafka-configs.sh" --bootstrap-server "$bootstrap" --command-config /tmp/admin.properties \
    --alter --entity-type users --entity-name "$principal" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(cat "$secrets/$principal")]"
done

grep -v '^#' /compose/kafka/acls.txt | while read -r principal resource pattern name operations; do
  case "$resource" in
    topic) target="--topic $name" ;;
    group) target="--group $name" ;;
    cluster) target="--cluster" ;;
    *) echo "acls.txt: resource: unknown type" >&2; exit 1 ;;
  esac
  flags=""
  for operation in $(echo "$operations" | tr ',' ' '); do
    flags="$flags --operation $operation"
  done
  # shellcheck disable=SC2086  # target and flags are lists of words on purpose
  "$bin/kafka-acls.sh" --bootstrap-server "$bootstrap" --command-config /tmp/admin.properties \
    --add --allow-principal "User:$principal" --resource-pattern-type "$pattern" $target $flags
done
echo "kafka-setup: credentials and ACLs in place"
