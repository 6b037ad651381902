#!/usr/bin/env bash
# The compose stack, end to end (CI runs this from .ci/run): builds every image with
# build-images.sh, `docker-compose up -d` of deploy/compose.yaml, waits until every container is
# healthy (order-lb, the HAProxy in front of the two order-service containers, included), places
# an order through the published order port (order-lb) and waits for it to be confirmed,
# then prints the image sizes and how long the stack took from `up` to all healthy. With --chaos
# it then runs the container chaos schedule against the stack: `orderflow verify --backend
# containers` (docs/RELIABILITY.md), which must end with every invariant holding. Always tears
# the stack down (`down -v`); on failure prints the containers' last log lines first.
#
# Usage: deploy/docker/compose-smoke.sh [--no-build] [--chaos]
# Environment: COMPOSE_PROJECT_NAME (default orderflow-smoke, apart from a developer's own
# `orderflow` stack), HEALTH_TIMEOUT_SECS (default 300), ORDER_TIMEOUT_SECS (default 90).
# The chaos run: CHAOS_FAULTS (default 11: every family of the containers backend, both NATS
# partitions), CHAOS_DURATION (220s), CHAOS_MAX_HOLD (8s), CHAOS_RATE (orders/s, 20),
# CHAOS_SEED (1), CHAOS_REPORT (JSON report, default $CARGO_TARGET_DIR/compose-chaos-report.json).
# Host ports are picked free at random, so a local nats-server on 4222 or a service on 8080 does
# not get in the way.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=1
chaos=0
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    --chaos) chaos=1 ;;
    *) echo "usage: $0 [--no-build] [--chaos]" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
phase() { printf '\n== compose-smoke: %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-orderflow-smoke}
health_timeout=${HEALTH_TIMEOUT_SECS:-300}
order_timeout=${ORDER_TIMEOUT_SECS:-90}
compose=(docker-compose -f deploy/compose.yaml)
command -v docker-compose >/dev/null || { echo "compose-smoke: docker-compose is missing" >&2; exit 1; }

if [ "$build" = 1 ]; then
  phase "deploy/docker/build-images.sh"
  bash deploy/docker/build-images.sh
fi

# Secrets for this run only; free host ports for what compose publishes.
# NATS identities and TLS: made with the orderflow CLI when missing (kept when present), and
# owned by the containers' user (uid 65532), which must read the seeds and the server key.
orderflow_bin=${ORDERFLOW_BIN:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/image/orderflow}
[ -x "$orderflow_bin" ] || orderflow_bin=$(command -v orderflow) \
  || { echo "compose-smoke: no orderflow binary (run build-images.sh, or set ORDERFLOW_BIN)" >&2; exit 1; }
if [ ! -f deploy/nats/creds/auth.conf ]; then
  phase "orderflow nats credentials --out deploy/nats/creds"
  "$orderflow_bin" nats credentials --out deploy/nats/creds >/dev/null
fi
if [ ! -f deploy/nats/certs/server.pem ]; then
  phase "orderflow certs --out deploy/nats/certs"
  "$orderflow_bin" certs --out deploy/nats/certs >/dev/null
fi
if [ "$(id -u)" = 0 ]; then
  chown -R 65532:65532 deploy/nats/creds deploy/nats/certs
fi

POSTGRES_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
ORDERFLOW_ADMIN_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
NATS_ROUTE_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export POSTGRES_PASSWORD ORDERFLOW_ADMIN_TOKEN NATS_ROUTE_PASSWORD
read -r ORDER_HOST_PORT ANALYTICS_HOST_PORT GATEWAY_HOST_PORT NATS_HOST_PORT NATS_2_HOST_PORT \
  NATS_3_HOST_PORT NATS_MONITOR_HOST_PORT POSTGRES_HOST_PORT PROMETHEUS_HOST_PORT < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(9)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
export ORDER_HOST_PORT ANALYTICS_HOST_PORT GATEWAY_HOST_PORT NATS_HOST_PORT NATS_2_HOST_PORT \
  NATS_3_HOST_PORT NATS_MONITOR_HOST_PORT POSTGRES_HOST_PORT PROMETHEUS_HOST_PORT

ok=0
teardown() {
  if [ "$ok" != 1 ]; then
    echo "compose-smoke: FAILED; container states and last log lines:" >&2
    "${compose[@]}" ps >&2 || true
    "${compose[@]}" logs --no-color --tail=60 >&2 || true
  fi
  phase "docker-compose down -v"
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
}
trap teardown EXIT

phase "haproxy -c deploy/haproxy/haproxy.cfg (in orderflow/haproxy:${ORDERFLOW_TAG:-dev})"
docker run --rm --network none -v "$PWD/deploy/haproxy:/etc/haproxy:ro" \
  "orderflow/haproxy:${ORDERFLOW_TAG:-dev}" -c -f /etc/haproxy/haproxy.cfg

phase "docker-compose up -d (project $COMPOSE_PROJECT_NAME)"
up_start=$(date +%s)
# docker-compose v1 has no --wait, but `up` itself waits for each `condition: service_healthy`
# before starting what depends on it; the loop below waits for the rest.
"${compose[@]}" up -d --no-build
deadline=$((up_start + health_timeout))
while :; do
  mapfile -t ids < <("${compose[@]}" ps -q)
  [ "${#ids[@]}" -gt 0 ] || { echo "compose-smoke: no containers" >&2; exit 1; }
  states=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}} {{.State.ExitCode}}' "${ids[@]}")
  # Every container healthy, but the one-shot nats-provision, which must have exited 0.
  waiting=$(awk '$3 != "healthy" && !($1 ~ /nats-provision/ && $2 == "exited" && $4 == 0)' <<<"$states")
  [ -z "$waiting" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    printf 'compose-smoke: not healthy after %ss:\n%s\n' "$health_timeout" "$waiting" >&2
    exit 1
  fi
  sleep 2
done
healthy_secs=$(($(date +%s) - up_start))
printf '%s\n' "$states"
phase "all ${#ids[@]} containers healthy ${healthy_secs}s after up"

phase "POST /orders on 127.0.0.1:$ORDER_HOST_PORT, then GET until confirmed"
base=http://127.0.0.1:$ORDER_HOST_PORT
order_id=$(python3 - "$base" <<'PY'
import json, sys, urllib.request
body = json.dumps({"customer_id": "smoke-1", "items": [{"product_id": "sku-001", "quantity": 1}]}).encode()
req = urllib.request.Request(sys.argv[1] + "/orders", data=body, method="POST",
                             headers={"content-type": "application/json", "Idempotency-Key": "compose-smoke-1"})
with urllib.request.urlopen(req, timeout=10) as r:
    assert r.status == 202, r.status
    answer = json.load(r)
    assert answer["status"] == "pending", answer
    print(answer["order_id"])
PY
)
echo "order $order_id accepted"
python3 - "$base/orders/$order_id" "$order_timeout" <<'PY'
import json, sys, time, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while True:
    with urllib.request.urlopen(url, timeout=10) as r:
        order = json.load(r)
    if order["status"] != "pending":
        break
    if time.monotonic() > deadline:
        sys.exit(f"compose-smoke: order still pending after {timeout:.0f}s: {order}")
    time.sleep(0.5)
print(json.dumps({k: order[k] for k in ("order_id", "status", "reason", "total_cents", "currency")}))
if order["status"] != "confirmed":
    sys.exit(f"compose-smoke: order ended {order['status']} ({order['reason']}), expected confirmed")
PY

if [ "$chaos" = 1 ]; then
  chaos_faults=${CHAOS_FAULTS:-11}
  chaos_duration=${CHAOS_DURATION:-220s}
  chaos_seed=${CHAOS_SEED:-1}
  chaos_report=${CHAOS_REPORT:-${CARGO_TARGET_DIR:-target}/compose-chaos-report.json}
  phase "container chaos: orderflow verify --backend containers, $chaos_faults faults over $chaos_duration (seed $chaos_seed)"
  # The suite reaches NATS on the three published client ports (TLS, as the admin identity),
  # PostgreSQL on its published port, the order API through the load balancer's port and the
  # other services at their addresses on the project network. async-nats' connector logs an
  # ERROR for every refused reconnect to a node the schedule has taken down: silenced.
  DATABASE_URL="postgres://orderflow:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_HOST_PORT/orderflow" \
  NATS_CREDS=deploy/nats/creds/admin.nk NATS_CA=deploy/nats/certs/ca.pem \
  RUST_LOG=${RUST_LOG:-info,async_nats::connector=off} \
    "$orderflow_bin" verify --backend containers --compose-project "$COMPOSE_PROJECT_NAME" \
      --faults "$chaos_faults" --duration "$chaos_duration" --max-hold "${CHAOS_MAX_HOLD:-8s}" \
      --rate "${CHAOS_RATE:-20}" --seed "$chaos_seed" --json-out "$chaos_report"
fi

phase "image sizes"
mapfile -t images < <("${compose[@]}" config | awk '$1 == "image:" {print $2}' | sort -u)
for image in "${images[@]}"; do
  if bytes=$(docker image inspect --format '{{.Size}}' "$image" 2>/dev/null); then
    printf '%-40s %7.1f MB\n' "$image" "$(awk -v b="$bytes" 'BEGIN {print b / 1000000}')"
  fi
done
ok=1
phase "passed: compose start (up → all healthy) ${healthy_secs}s"
