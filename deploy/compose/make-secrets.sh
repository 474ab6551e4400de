#!/bin/sh
# Makes the compose deployment's secrets: random values in ./secrets (git-ignored), one
# file each, never overwriting one that exists (delete a file and run again to rotate it;
# docs/operations.md says what else a rotation needs). Nothing secret is committed.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets/kafka
chmod 700 secrets
random() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
new_secret() {  # new_secret FILE BYTES
  if [ ! -s "$1" ]; then
    random "$2" >"$1"
    # Readable inside the containers (each runs as its own user); the folder stays 0700.
    chmod 444 "$1"
    echo "made $1"
  fi
}
new_secret secrets/place_key 32       # the place key: the partners' connectors (here the simulator)
new_secret secrets/worker_secret 32   # workers sign their calls to each other (>= 32 bytes)
new_secret secrets/metrics_token 24   # the Prometheus scrape token (>= 16 bytes)
for principal in admin broker controller \
    $(grep -v '^#' kafka/acls.txt | cut -d' ' -f1 | sort -u); do
  new_secret "secrets/kafka/$principal" 24
done
