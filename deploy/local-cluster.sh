#!/usr/bin/env bash
# A whole cluster on one machine, on loopback ports: 3 etcd members and
# 2 gateways sharing them (README, "Running a cluster").
#
#   deploy/local-cluster.sh start [FOLDER]   # default folder: ./ec2-cluster
#   deploy/local-cluster.sh status [FOLDER]
#   deploy/local-cluster.sh stop [FOLDER]    # stops every process it started, by PID
#
# Needs Debian's etcd-server and etcd-client, and a gateway built with the
# etcd feature: cargo build --release --features etcd (protoc installed).
# Ports: etcd clients 23791-23793, peers 23801-23803; gateways 8773, 8774.
set -euo pipefail

action=${1:-start}
folder=$(realpath -m "${2:-ec2-cluster}")
here=$(cd "$(dirname "$0")/.." && pwd)
gateway=${EC2_GATEWAY_BINARY:-$here/target/release/ec2-gateway}
endpoints="http://127.0.0.1:23791,http://127.0.0.1:23792,http://127.0.0.1:23793"
peers="m1=http://127.0.0.1:23801,m2=http://127.0.0.1:23802,m3=http://127.0.0.1:23803"

start_member() {
  local n=$1
  mkdir -p "$folder/etcd"
  etcd --name "m$n" --data-dir "$folder/etcd/m$n" \
    --listen-client-urls "http://127.0.0.1:2379$n" --advertise-client-urls "http://127.0.0.1:2379$n" \
    --listen-peer-urls "http://127.0.0.1:2380$n" --initial-advertise-peer-urls "http://127.0.0.1:2380$n" \
    --initial-cluster "$peers" --initial-cluster-state new --initial-cluster-token ec2-gateway-local \
    --max-txn-ops 1024 --auto-compaction-mode periodic --auto-compaction-retention 10m \
    --logger zap --log-level warn \
    >>"$folder/etcd/m$n.log" 2>&1 &
  echo $! >"$folder/etcd/m$n.pid"
}

start_gateway() {
  local name=$1 port=$2
  mkdir -p "$folder/$name"
  cat >"$folder/$name.toml" <<EOF
listen = "127.0.0.1:$port"
operator_listen = "127.0.0.1:$((port + 1000))"
data_dir = "$folder/$name"
storage = "etcd"

[etcd]
endpoints = ["${endpoints//,/\", \"}"]
prefix = "ec2-gateway/"
# The members above run with --max-txn-ops 1024.
max_txn_ops = 1024
EOF
  "$gateway" serve --config "$folder/$name.toml" >>"$folder/$name.out" 2>>"$folder/$name.log" &
  echo $! >"$folder/$name.pid"
}

stop_pidfile() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case $action in
  start)
    command -v etcd >/dev/null || { echo "etcd is not installed: apt-get install etcd-server etcd-client" >&2; exit 1; }
    [ -x "$gateway" ] || { echo "no gateway at $gateway: cargo build --release --features etcd" >&2; exit 1; }
    mkdir -p "$folder"
    for n in 1 2 3; do start_member "$n"; done
    for _ in $(seq 100); do
      ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
      sleep 0.2
    done
    start_gateway gateway-a 8773
    # The first gateway creates the admin credential; the second finds it.
    for _ in $(seq 100); do grep -q "listening" "$folder/gateway-a.out" 2>/dev/null && break; sleep 0.1; done
    start_gateway gateway-b 8774
    for _ in $(seq 100); do grep -q "listening" "$folder/gateway-b.out" 2>/dev/null && break; sleep 0.1; done
    cat "$folder/gateway-a.out"
    echo "gateways: http://127.0.0.1:8773 and http://127.0.0.1:8774; etcd: $endpoints"
    echo "admin credential: $folder/gateway-a/admin-credentials (profile ec2-gateway)"
    ;;
  status)
    for file in "$folder"/etcd/*.pid "$folder"/*.pid; do
      [ -f "$file" ] || continue
      pid=$(cat "$file")
      if kill -0 "$pid" 2>/dev/null; then echo "$(basename "$file" .pid): running (pid $pid)"; else echo "$(basename "$file" .pid): stopped"; fi
    done
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status --write-out=table || true
    ;;
  stop)
    for file in "$folder"/*.pid "$folder"/etcd/*.pid; do stop_pidfile "$file"; done
    echo "stopped (data kept in $folder)"
    ;;
  *)
    echo "usage: $0 start|status|stop [FOLDER]" >&2
    exit 2
    ;;
esac
