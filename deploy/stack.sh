#!/usr/bin/env bash
# Local infrastructure for the service: a single-node Kafka broker (KRaft,
# broker+controller in one JVM, jars resolved by Maven from deploy/kafka/pom.xml)
# and a Redis server, both on loopback, both started by this script (no
# containers, no system services).
#
# Variants, chosen by MEDIA_STACK_SECURITY (plain|tls) and MEDIA_STACK_REDIS
# (single|cluster); each may run beside the others, on its own ports and in its own directory:
#   plain (default)  PLAINTEXT Kafka, Redis without TLS or password; state in .stack/
#   tls              what production looks like: a local CA (openssl) signs every
#                    certificate; Kafka has one SASL_SSL listener (SCRAM-SHA-512, users
#                    created when the storage is formatted, client certificates required);
#                    Redis serves TLS only (client certificates required), its default
#                    user is off and the service's user has exactly the rule of
#                    deploy/redis/service.acl. State in .stack/tls/, secrets mode 0600.
#   cluster          Redis is a Redis Cluster of three primaries on consecutive ports
#                    (created with redis-cli --cluster create). State in .stack/cluster/.
#   tls-cluster      both: a TLS Redis Cluster with the ACL users. In .stack/tls-cluster/.
#
# Usage: deploy/stack.sh up | down [--purge] | status | env
#        deploy/stack.sh kill redis|kafka    SIGKILL one server (a crash: no clean shutdown)
#        deploy/stack.sh start redis|kafka   start one server again on its data, wait for it
#
# State lives in $STACK_DIR (default: <repo>/.stack):
#   kafka/libs/           broker jars (+ .pom.sha256: which pom they came from)
#   kafka/data/           KRaft metadata + topic data
#   kafka/server.properties   generated on every `up`
#   kafka.log kafka.pid   broker output / pid
#   redis/ redis.log redis.pid
#   env                   shell-sourceable settings for the service and tests
#   tls/                  the same for the tls variant, plus certs/ and secrets
#
# Settings (environment):
#   MEDIA_STACK_SECURITY=plain|tls  MEDIA_STACK_REDIS=single|cluster
#   MEDIA_STACK_KAFKA_PORT, MEDIA_STACK_KAFKA_CONTROLLER_PORT, MEDIA_STACK_REDIS_PORT (a
#   cluster's first node; the next two follow), MEDIA_STACK_WEB_PORT (only written to env):
#     plain 19092 19093 16379 8066   tls 19094 19095 16380 8067
#     cluster 19096 19097 16390 8068   tls-cluster 19098 19099 16393 8069
#   MEDIA_STACK_TIMEOUT=90        seconds to wait for each server to answer
#   STACK_DIR                     where the state lives
set -euo pipefail

# --- locations and settings --------------------------------------------------

# Resolve everything from the script's own location so any cwd works.
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SECURITY=${MEDIA_STACK_SECURITY:-plain}
REDIS_MODE=${MEDIA_STACK_REDIS:-single}
[[ $SECURITY == plain || $SECURITY == tls ]] || {
  printf '[stack] ERROR: MEDIA_STACK_SECURITY must be plain or tls, got %s\n' "$SECURITY" >&2; exit 1; }
[[ $REDIS_MODE == single || $REDIS_MODE == cluster ]] || {
  printf '[stack] ERROR: MEDIA_STACK_REDIS must be single or cluster, got %s\n' "$REDIS_MODE" >&2; exit 1; }
# The variant's name, its directory under .stack/ and its default ports (Kafka, controller,
# the first Redis, web): each variant may run beside the others.
VARIANT=$SECURITY
[[ $REDIS_MODE == cluster ]] && VARIANT=$([[ $SECURITY == tls ]] && echo tls-cluster || echo cluster)
case $VARIANT in
  plain)       default_ports=(19092 19093 16379 8066) ;;
  tls)         default_ports=(19094 19095 16380 8067) ;;
  cluster)     default_ports=(19096 19097 16390 8068) ;;
  tls-cluster) default_ports=(19098 19099 16393 8069) ;;
esac
BASE_DIR=${STACK_DIR:-$REPO_ROOT/.stack}
mkdir -p "$BASE_DIR"
BASE_DIR=$(cd "$BASE_DIR" && pwd)   # absolute: it is baked into properties and pid checks
if [[ $VARIANT == plain ]]; then STACK_DIR=$BASE_DIR; else STACK_DIR=$BASE_DIR/$VARIANT; fi
mkdir -p "$STACK_DIR"

KAFKA_PORT=${MEDIA_STACK_KAFKA_PORT:-${default_ports[0]}}
KAFKA_CONTROLLER_PORT=${MEDIA_STACK_KAFKA_CONTROLLER_PORT:-${default_ports[1]}}
REDIS_PORT=${MEDIA_STACK_REDIS_PORT:-${default_ports[2]}}
WEB_PORT=${MEDIA_STACK_WEB_PORT:-${default_ports[3]}}
TIMEOUT=${MEDIA_STACK_TIMEOUT:-90}
HOST=127.0.0.1

POM=$SCRIPT_DIR/kafka/pom.xml
LOG4J_CONFIG=$SCRIPT_DIR/kafka/log4j2.properties
KAFKA_DIR=$STACK_DIR/kafka
# The jars are the same for both variants: one copy, in the plain stack's directory.
KAFKA_LIBS=$BASE_DIR/kafka/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOG=$STACK_DIR/kafka.log
KAFKA_PID=$STACK_DIR/kafka.pid
KAFKA_HEAP=(-Xmx512m -Xms256m)
REDIS_DIR=$STACK_DIR/redis
ENV_FILE=$STACK_DIR/env
# tls variant only
CERTS=$STACK_DIR/certs
SECRETS=$STACK_DIR/secrets
SERVICE_ACL=$SCRIPT_DIR/redis/service.acl
REDIS_ACL_FILE=$STACK_DIR/redis-users.acl
KAFKA_USER=media
REDIS_USER=media

# --- small helpers -------------------------------------------------------------

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

for v in KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT WEB_PORT TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

# Redis nodes: one server, or the three primaries of a cluster on consecutive ports (each
# with its own directory, log and pid file; the cluster bus on port + 10000).
if [[ $REDIS_MODE == cluster ]]; then
  REDIS_PORTS=("$REDIS_PORT" $((REDIS_PORT + 1)) $((REDIS_PORT + 2)))
else
  REDIS_PORTS=("$REDIS_PORT")
fi
node_suffix() { [[ $REDIS_MODE == cluster ]] && echo "-$1"; true; }
node_pidfile() { echo "$STACK_DIR/redis$(node_suffix "$1").pid"; }
node_log() { echo "$STACK_DIR/redis$(node_suffix "$1").log"; }
node_dir() { if [[ $REDIS_MODE == cluster ]]; then echo "$REDIS_DIR/$1"; else echo "$REDIS_DIR"; fi; }

# Run as root directly, otherwise through sudo (only used for apt-get).
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

# Print the pid from a pid file if that process is alive AND is ours (its
# command line matches), so a stale file or a recycled pid is never trusted.
live_pid() { # pidfile pattern
  local pidfile=$1 pattern=$2 pid
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
  echo "$pid"
}
kafka_pid() { live_pid "$KAFKA_PID" "$KAFKA_PROPS"; }
# redis-server rewrites its process title to "redis-server 127.0.0.1:PORT".
node_pid() { live_pid "$(node_pidfile "$1")" "redis-server"; }
# The first node's pid when every node runs; fails when any is down.
redis_pid() {
  local port first=""
  for port in "${REDIS_PORTS[@]}"; do
    pid=$(node_pid "$port") || return 1
    first=${first:-$pid}
  done
  echo "$first"
}

# Drop a pid file whose process is gone (or is not ours any more).
clear_stale() { # pidfile name pidfunc [its argument]
  if [[ -f $1 ]] && ! "$3" "${@:4}" >/dev/null; then
    say "$2: removing stale pid file $1 (pid $(<"$1") is gone or not ours)"
    rm -f "$1"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:port.
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

require_free_port() { # port what env-var
  if port_open "$1"; then
    local who=""
    command -v ss >/dev/null && who=$(ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\).*/ (held by \1)/p' | head -1)
    die "port $1 for $2 is already in use by another process$who; stop it or choose another port with $3=<port>"
  fi
}

# Last lines of a log file, for failure messages.
show_log() { # file
  echo "----- last 30 lines of $1 -----" >&2
  tail -n 30 "$1" >&2 2>/dev/null || echo "(no log file)" >&2
  echo "-----" >&2
}

# Start the previous run's log aside so readiness checks only read this run's lines.
rotate_log() { [[ -f $1 ]] && mv -f "$1" "$1.prev"; true; }

# --- readiness probes ----------------------------------------------------------

# redis-cli with the variant's connection options, on the port in $RCLI_PORT (the first
# node by default), for at most $RCLI_SECONDS (5). The password goes through the
# environment (REDISCLI_AUTH), never the command line, where `ps` would show it. The tls
# variants log in as the stack's admin.
rcli() {
  local port=${RCLI_PORT:-$REDIS_PORT} auth=() options=()
  if [[ $SECURITY == tls ]]; then
    auth=("REDISCLI_AUTH=$REDIS_ADMIN_PASSWORD")
    options=(--user admin --tls --cacert "$CERTS/ca.crt" --cert "$CERTS/client.crt"
             --key "$CERTS/client.key")
  fi
  timeout "${RCLI_SECONDS:-5}" env "${auth[@]}" redis-cli -h "$HOST" -p "$port" "${options[@]}" "$@"
}

node_answers() { [[ $(RCLI_PORT=$1 rcli ping 2>/dev/null) == PONG ]]; }

# Every node answers; a cluster also has all its slots served (`cluster_state:ok`). The
# first time the nodes answer, their cluster is created (three primaries, no replicas).
redis_answers() {
  local port
  for port in "${REDIS_PORTS[@]}"; do node_answers "$port" || return 1; done
  [[ $REDIS_MODE == cluster ]] || return 0
  local info
  info=$(rcli cluster info 2>/dev/null) || return 1
  if [[ $info == *"cluster_known_nodes:1"* && $info == *"cluster_slots_assigned:0"* ]]; then
    create_cluster || return 1
    return 1
  fi
  [[ $info == *"cluster_state:ok"* ]]
}

create_cluster() {
  local nodes=() port
  for port in "${REDIS_PORTS[@]}"; do nodes+=("$HOST:$port"); done
  say "redis: creating the cluster of ${nodes[*]}"
  RCLI_SECONDS=60 rcli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
    >>"$(node_log "$REDIS_PORT")" 2>&1
}

# Speak the Kafka protocol (deploy/kafka_probe.py): ApiVersions and Metadata must both
# succeed and list at least one broker. A fenced or still-starting broker lists none, so
# this is "clients can use it", not just "the port is open". Prints "brokers=N
# cluster_id=X" or the failure reason. Standard library only: the system's python3 runs
# it, before any virtualenv exists.
KAFKA_PROBE=$SCRIPT_DIR/kafka_probe.py
# The tls variant logs in as the service would: the probe reads the MEDIA_KAFKA_* settings.
kafka_probe() {
  if [[ $SECURITY == tls ]]; then
    env "${KAFKA_CLIENT_ENV[@]}" python3 "$KAFKA_PROBE" "$HOST:$KAFKA_PORT" --timeout 3
  else
    python3 "$KAFKA_PROBE" "$HOST:$KAFKA_PORT" --timeout 3
  fi
}
kafka_answers() { kafka_probe >/dev/null 2>&1; }
# For `up`: the broker also logged that startup completed (4.1.1 logs
# "[KafkaRaftServer nodeId=1] Kafka Server started"); the log is rotated per start.
kafka_started() { grep -q "Kafka Server started" "$KAFKA_LOG" 2>/dev/null && kafka_answers; }

# Wait until check succeeds; give up early if the process died, or at TIMEOUT.
wait_until_ready() { # name pidfunc check logfile
  local name=$1 pidfunc=$2 check=$3 log=$4 start=$SECONDS
  until "$check"; do
    if ! "$pidfunc" >/dev/null; then
      echo "[stack] ERROR: $name exited during startup; see $log" >&2
      show_log "$log"; return 1
    fi
    if (( SECONDS - start >= TIMEOUT )); then
      echo "[stack] ERROR: $name did not answer within ${TIMEOUT}s (MEDIA_STACK_TIMEOUT); see $log" >&2
      show_log "$log"; return 1
    fi
    sleep 0.5
  done
  say "$name is ready ($(( SECONDS - start ))s)"
}

# --- provisioning -------------------------------------------------------------

check_java() {
  command -v java >/dev/null || die "java not found on PATH (Kafka 4.x needs Java 17+)"
  local major
  major=$(java -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
  [[ ${major:-0} -ge 17 ]] || die "Kafka 4.x needs Java 17+, found: $(java -version 2>&1 | head -1)"
}

# Jars come from Maven (~/.m2 cache). Only call mvn when the libs are missing or
# the pom changed since they were copied, so a warm `up` never touches Maven.
provision_kafka_libs() {
  local sum
  sum=$(sha256sum "$POM" | cut -d' ' -f1)
  if [[ -d $KAFKA_LIBS && -f $KAFKA_LIBS/.pom.sha256 && $(<"$KAFKA_LIBS/.pom.sha256") == "$sum" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found on PATH (needed once to fetch the Kafka jars; apt-get install maven)"
  say "kafka: resolving broker jars with Maven (first run downloads them into ~/.m2) ..."
  local tmp=$KAFKA_DIR/libs.tmp t0=$SECONDS
  rm -rf "$tmp"; mkdir -p "$tmp"
  # Copy into a temp dir and swap, so an interrupted download never looks complete.
  # Maven's output goes to a file (it is only interesting when it fails).
  if ! mvn -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$STACK_DIR/mvn.log" 2>&1; then
    rm -rf "$tmp"; echo "[stack] ERROR: Maven could not resolve the Kafka jars" >&2
    show_log "$STACK_DIR/mvn.log"; exit 1
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "Maven ran but no kafka_2.13 jar was copied"; }
  echo "$sum" >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"; mv "$tmp" "$KAFKA_LIBS"
  local jars=("$KAFKA_LIBS"/*.jar)
  say "kafka: ${#jars[@]} jars in $KAFKA_LIBS ($(( SECONDS - t0 ))s)"
}

# The JVM command for the broker and its tools; log4j2 gets the slf4j output
# through the log4j-slf4j-impl binding that the pom adds.
KAFKA_JAVA=(java "${KAFKA_HEAP[@]}" -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$LOG4J_CONFIG" -cp "$KAFKA_LIBS/*")
kafka_java() { "${KAFKA_JAVA[@]}" "$@"; }

# Single-node KRaft: this JVM is broker and controller; a static voter set
# (controller.quorum.voters) so `format` needs no --standalone.
# Regenerated on each `up` so port changes apply.
write_kafka_props() {
  mkdir -p "$KAFKA_DIR"
  (umask 077; : >"$KAFKA_PROPS.tmp")  # the tls variant holds the broker's own password
  cat >"$KAFKA_PROPS.tmp" <<EOF
# Generated by deploy/stack.sh; edits are overwritten on the next 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
$(kafka_listener_props)
log.dirs=$KAFKA_DATA
# One broker: every internal topic must live with a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers join groups at once instead of waiting 3 s for more members.
group.initial.rebalance.delay.ms=0
# The service creates its own topics; a typo must fail, not create a topic.
auto.create.topics.enable=false
num.partitions=8
EOF
  mv -f "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

kafka_listener_props() {
  if [[ $SECURITY != tls ]]; then
    cat <<EOF
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
    return
  fi
  # One SASL_SSL listener for clients and the broker itself; the controller keeps its own
  # plaintext listener on loopback. SASL_SSL applies ssl.client.auth only with the
  # listener prefix, hence listener.name.sasl_ssl.ssl.client.auth.
  cat <<EOF
listeners=SASL_SSL://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$HOST:$KAFKA_PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
listener.name.sasl_ssl.ssl.client.auth=required
ssl.keystore.type=PEM
ssl.keystore.location=$CERTS/kafka-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS/ca.crt
EOF
}

# Format the storage once: a data dir with meta.properties already belongs to a cluster.
format_kafka_storage() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  # The tool logs one INFO line to stdout before the id: keep only the last line.
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a Kafka cluster id (got '$cluster_id')"
  mkdir -p "$KAFKA_DATA"
  say "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  # The tls variant's SCRAM users exist from the start: the broker's own and the service's.
  local scram=()
  if [[ $SECURITY == tls ]]; then
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=\"$KAFKA_ADMIN_PASSWORD\"]"
           --add-scram "SCRAM-SHA-512=[name=$KAFKA_USER,password=\"$KAFKA_PASSWORD\"]")
  fi
  if ! kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" "${scram[@]}" >>"$KAFKA_LOG" 2>&1; then
    echo "[stack] ERROR: formatting Kafka storage failed" >&2; show_log "$KAFKA_LOG"; exit 1
  fi
}

ensure_redis_installed() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  say "redis: redis-server not found, installing the Debian package ..."
  # The package may also start the distribution's own service on 6379; we do not use it.
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
  command -v redis-server >/dev/null || die "redis-server still not on PATH after apt-get install"
}

# --- the tls variant: secrets, certificates, ACL ---------------------------------

# Passwords are generated once and kept in $SECRETS (mode 0600): the Kafka storage is
# formatted with them. Each holds '@', ':' and '/', the characters that break naive URL
# handling and log masking, so every test on this stack proves they are handled.
SECRET_NAMES=(KAFKA_ADMIN_PASSWORD KAFKA_PASSWORD REDIS_PASSWORD REDIS_ADMIN_PASSWORD CLIENT_KEY_PASSWORD)
ensure_secrets() {
  [[ $SECURITY == tls ]] || return 0
  command -v openssl >/dev/null || die "openssl is needed for the tls stack (apt-get install openssl)"
  local name
  (umask 077; touch "$SECRETS")
  for name in "${SECRET_NAMES[@]}"; do
    grep -q "^$name=" "$SECRETS" && continue
    printf "%s='p@ss:w/%s'\n" "$name" "$(openssl rand -hex 12)" >>"$SECRETS"
    say "tls: generated $name in $SECRETS"
  done
  load_secrets
}

# The passwords and the Kafka client settings, when the secrets exist (status, kill).
load_secrets() {
  [[ $SECURITY == tls && -s $SECRETS ]] || return 0
  # shellcheck source=/dev/null
  . "$SECRETS"
  KAFKA_CLIENT_ENV=(
    MEDIA_KAFKA_SECURITY_PROTOCOL=SASL_SSL MEDIA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
    "MEDIA_KAFKA_SASL_USERNAME=$KAFKA_USER" "MEDIA_KAFKA_SASL_PASSWORD=$KAFKA_PASSWORD"
    "MEDIA_KAFKA_SSL_CAFILE=$CERTS/ca.crt" "MEDIA_KAFKA_SSL_CERTFILE=$CERTS/client.crt"
    "MEDIA_KAFKA_SSL_KEYFILE=$CERTS/client.enc.key" "MEDIA_KAFKA_SSL_KEY_PASSWORD=$CLIENT_KEY_PASSWORD"
  )
}
KAFKA_CLIENT_ENV=()

# One certificate signed by the local CA: name, then subjectAltName entries.
issue_cert() { # name san
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$CERTS/$1.key" -out "$CERTS/$1.csr" -subj "/CN=$1 (media-intelligence local stack)" 2>/dev/null
  printf 'subjectAltName=%s\n' "$2" >"$CERTS/$1.ext"
  openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" \
    -CAcreateserial -days 365 -sha256 -extfile "$CERTS/$1.ext" -out "$CERTS/$1.crt" 2>/dev/null
  rm -f "$CERTS/$1.csr" "$CERTS/$1.ext"
}

# A local CA and, signed by it, the Kafka and Redis server certificates (for 127.0.0.1
# and localhost) and one client certificate. Made again when missing or when the CA
# expires within a day. The client key also exists encrypted (client.enc.key), which the
# service is given with MEDIA_*_SSL_KEY_PASSWORD; the plain one is for redis-cli.
ensure_certs() {
  if [[ -f $CERTS/client.enc.key ]] && openssl x509 -checkend 86400 -noout -in "$CERTS/ca.crt" >/dev/null 2>&1; then
    return 0
  fi
  say "tls: creating a local CA and certificates in $CERTS"
  rm -rf "$CERTS"; mkdir -p "$CERTS"; chmod 700 "$CERTS"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 730 -sha256 \
    -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt" -subj "/CN=media-intelligence local stack CA" 2>/dev/null \
    || die "openssl could not create the local CA"
  local name
  for name in kafka redis client; do
    issue_cert "$name" "IP:127.0.0.1,DNS:localhost" || die "openssl could not issue the $name certificate"
  done
  CLIENT_KEY_PASSWORD=$CLIENT_KEY_PASSWORD openssl pkcs8 -topk8 -v2 aes-256-cbc \
    -in "$CERTS/client.key" -out "$CERTS/client.enc.key" -passout env:CLIENT_KEY_PASSWORD 2>/dev/null || die "openssl could not encrypt the client key"
  # Kafka reads its key and chain from one PEM file (ssl.keystore.type=PEM).
  cat "$CERTS/kafka.key" "$CERTS/kafka.crt" "$CERTS/ca.crt" >"$CERTS/kafka-keystore.pem"
  chmod 600 "$CERTS"/*.key "$CERTS/kafka-keystore.pem"
}

sha256_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# The ACL rule of deploy/redis/service.acl on one line: comments dropped, lines joined.
service_acl_rule() {
  sed -e 's/#.*//' "$SERVICE_ACL" | tr -s ' \n' '  ' | sed -e 's/^ *//' -e 's/ *$//'
}

# Redis's users: the default user off; the service's user with exactly the documented
# rule; an admin user for people and for the tests' own cleanup (SCAN, which the service
# never needs). Passwords are stored as SHA-256 (the '#' form), never in clear.
write_redis_acl() {
  local rule
  rule=$(service_acl_rule)
  [[ -n $rule ]] || die "$SERVICE_ACL holds no rule"
  (
    umask 077
    {
      printf 'user default off resetkeys resetchannels -@all\n'
      printf 'user %s %s #%s\n' "$REDIS_USER" "$rule" "$(sha256_of "$REDIS_PASSWORD")"
      printf 'user admin on ~* &* +@all #%s\n' "$(sha256_of "$REDIS_ADMIN_PASSWORD")"
    } >"$REDIS_ACL_FILE"
    chmod 600 "$REDIS_ACL_FILE"
  )
}

# --- start / stop -------------------------------------------------------------

# Processes get their own session (setsid) and ignore hangups (nohup), so they
# outlive this script and its terminal; $! is their pid because both exec.
# `9>&-` closes the lock fd in the server, or it would hold the stack lock forever.

# Until the background subshell has exec'd, $! runs a copy of this script, which the pid
# checks do not recognise: wait for the exec so that a check right after a start (as in
# `start kafka`) does not take the server for dead.
wait_exec() { # pid pattern
  local i
  for (( i = 0; i < 200; i++ )); do
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2" && return 0
    kill -0 "$1" 2>/dev/null || return 0  # gone already: wait_until_ready says so
    sleep 0.05
  done
}

start_kafka() {
  write_kafka_props
  rotate_log "$KAFKA_LOG"
  format_kafka_storage
  say "kafka: starting broker on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), log $KAFKA_LOG"
  (cd "$KAFKA_DIR" && exec setsid nohup "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_PROPS" \
      >>"$KAFKA_LOG" 2>&1 </dev/null 9>&-) &
  echo $! >"$KAFKA_PID"
  wait_exec $! "$KAFKA_PROPS"
}

start_redis() {
  local port
  [[ $SECURITY == tls ]] && write_redis_acl
  for port in "${REDIS_PORTS[@]}"; do start_redis_node "$port"; done
}

start_redis_node() { # port
  local port=$1 dir log
  dir=$(node_dir "$port"); log=$(node_log "$port")
  mkdir -p "$dir"
  rotate_log "$log"
  say "redis: starting on $HOST:$port, log $log"
  # What the service requires and recommends (README, "Redis requirements"): never evict,
  # AOF fsynced every second, no RDB snapshots. The AOF in its directory is reloaded on the
  # next start, also after a SIGKILL. No --logfile: Redis logs to stdout, the log file.
  local listen=(--port "$port")
  if [[ $SECURITY == tls ]]; then
    # TLS only (no plaintext port), client certificates required, users from the ACL file.
    listen=(--port 0 --tls-port "$port" --tls-cert-file "$CERTS/redis.crt"
            --tls-key-file "$CERTS/redis.key" --tls-ca-cert-file "$CERTS/ca.crt"
            --tls-auth-clients yes --aclfile "$REDIS_ACL_FILE")
  fi
  if [[ $REDIS_MODE == cluster ]]; then
    listen+=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000)
    [[ $SECURITY == tls ]] && listen+=(--tls-cluster yes)
  fi
  (cd "$dir" && exec setsid nohup redis-server "${listen[@]}" --bind "$HOST" \
      --daemonize no --dir "$dir" --maxmemory-policy noeviction \
      --appendonly yes --appendfsync everysec --save "" \
      >>"$log" 2>&1 </dev/null 9>&-) &
  echo $! >"$(node_pidfile "$port")"
  wait_exec $! redis-server
}

stop_redis() {
  local port
  for port in "${REDIS_PORTS[@]}"; do
    stop_one "redis $HOST:$port" "$(node_pidfile "$port")" node_pid "$port"
  done
}

# SIGTERM lets Kafka shut down cleanly (no log recovery on next start) and
# Redis flush its AOF; SIGKILL only if that takes over 30 s.
stop_one() { # name pidfile pidfunc [its argument]
  local name=$1 pidfile=$2 pidfunc=$3 pid
  if ! pid=$("$pidfunc" "${@:4}"); then
    [[ -f $pidfile ]] && say "$name: removing stale pid file (pid $(<"$pidfile") is gone or not ours)"
    rm -f "$pidfile"; say "$name: not running"; return 0
  fi
  say "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for (( i = 0; i < 60; i++ )); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name: still running after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
  say "$name: stopped"
}

# redis-py's cluster client takes no key password: a cluster gets the unencrypted key.
redis_client_key_env() {
  if [[ $REDIS_MODE == cluster ]]; then
    echo "export MEDIA_REDIS_SSL_KEYFILE=$CERTS/client.key"
  else
    echo "export MEDIA_REDIS_SSL_KEYFILE=$CERTS/client.enc.key"
    echo "export MEDIA_REDIS_SSL_KEY_PASSWORD='$CLIENT_KEY_PASSWORD'"
  fi
}

write_env() {
  (umask 077; : >"$ENV_FILE.tmp")  # the tls variant's holds passwords
  if [[ $SECURITY == tls ]]; then
    cat >"$ENV_FILE.tmp" <<EOF
# Written by deploy/stack.sh up (MEDIA_STACK_SECURITY=tls). Use: . $ENV_FILE
export MEDIA_KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export MEDIA_KAFKA_SECURITY_PROTOCOL=SASL_SSL
export MEDIA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export MEDIA_KAFKA_SASL_USERNAME=$KAFKA_USER
export MEDIA_KAFKA_SASL_PASSWORD='$KAFKA_PASSWORD'
export MEDIA_KAFKA_SSL_CAFILE=$CERTS/ca.crt
export MEDIA_KAFKA_SSL_CERTFILE=$CERTS/client.crt
export MEDIA_KAFKA_SSL_KEYFILE=$CERTS/client.enc.key
export MEDIA_KAFKA_SSL_KEY_PASSWORD='$CLIENT_KEY_PASSWORD'
export MEDIA_REDIS_URL=rediss://$HOST:$REDIS_PORT/0
export MEDIA_REDIS_CLUSTER=$([[ $REDIS_MODE == cluster ]] && echo true || echo false)
export MEDIA_REDIS_USERNAME=$REDIS_USER
export MEDIA_REDIS_PASSWORD='$REDIS_PASSWORD'
export MEDIA_REDIS_SSL_CAFILE=$CERTS/ca.crt
export MEDIA_REDIS_SSL_CERTFILE=$CERTS/client.crt
$(redis_client_key_env)
# Not a service setting: the stack's Redis admin (redis-cli --user admin), for people and tests.
export MEDIA_STACK_REDIS_ADMIN_PASSWORD='$REDIS_ADMIN_PASSWORD'
export MEDIA_WEB_HOST=$HOST
export MEDIA_WEB_PORT=$WEB_PORT
EOF
  else
    cat >"$ENV_FILE.tmp" <<EOF
# Written by deploy/stack.sh up. Use: . $ENV_FILE
export MEDIA_KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export MEDIA_REDIS_URL=redis://$HOST:$REDIS_PORT/0
export MEDIA_REDIS_CLUSTER=$([[ $REDIS_MODE == cluster ]] && echo true || echo false)
export MEDIA_WEB_HOST=$HOST
export MEDIA_WEB_PORT=$WEB_PORT
EOF
  fi
  mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# One `up`/`down` at a time: concurrent calls would race on pid files and ports.
lock_stack() {
  exec 9>"$STACK_DIR/.lock"
  flock -w 300 9 || die "another deploy/stack.sh is still running (lock $STACK_DIR/.lock)"
}

# --- commands -----------------------------------------------------------------

# Start the given servers (redis, kafka) unless they already run, and wait until they
# answer. A server whose process is alive is not started again, only waited for. If one
# does not answer in time, it is stopped and the script fails.
bring_up() { # server...
  local server port need_redis=0 need_kafka=0
  for server in "$@"; do
    case $server in
      redis) for port in "${REDIS_PORTS[@]}"; do
               clear_stale "$(node_pidfile "$port")" "redis $port" node_pid "$port"
             done
             redis_pid >/dev/null || need_redis=1 ;;
      kafka) clear_stale "$KAFKA_PID" kafka kafka_pid; kafka_pid >/dev/null || need_kafka=1 ;;
    esac
  done
  # All checks and provisioning before starting anything, so a port clash or a
  # failed download leaves nothing half-started.
  if [[ $SECURITY == tls ]] && (( need_redis || need_kafka )); then
    ensure_secrets
    ensure_certs
  fi
  if (( need_redis )); then
    ensure_redis_installed
    stop_redis >/dev/null  # a cluster with some nodes up starts again as a whole
    for port in "${REDIS_PORTS[@]}"; do
      require_free_port "$port" "Redis" MEDIA_STACK_REDIS_PORT
      [[ $REDIS_MODE == cluster ]] && require_free_port $((port + 10000)) "the Redis cluster bus" MEDIA_STACK_REDIS_PORT
    done
  fi
  if (( need_kafka )); then
    require_free_port "$KAFKA_PORT" "Kafka" MEDIA_STACK_KAFKA_PORT
    require_free_port "$KAFKA_CONTROLLER_PORT" "the Kafka controller" MEDIA_STACK_KAFKA_CONTROLLER_PORT
    check_java
    provision_kafka_libs
  fi
  # Both start in the background first, then we wait for each: startups overlap.
  if (( need_redis )); then start_redis; fi
  if (( need_kafka )); then start_kafka; fi
  local failed=0
  for server in "$@"; do
    case $server in
      redis) if ! wait_until_ready redis redis_pid redis_answers "$(node_log "$REDIS_PORT")"; then
               failed=1; stop_redis; fi ;;
      kafka) if ! wait_until_ready kafka kafka_pid kafka_started "$KAFKA_LOG"; then
               failed=1; stop_one kafka "$KAFKA_PID" kafka_pid; fi ;;
    esac
  done
  (( failed == 0 )) || die "$* did not come up (a server that failed to answer was stopped)"
}

cmd_up() {
  lock_stack
  command -v python3 >/dev/null || die "python3 is needed for the Kafka readiness probe"
  if kafka_pid >/dev/null && redis_pid >/dev/null && kafka_answers && redis_answers; then
    write_env
    say "already running: kafka pid $(kafka_pid) on $HOST:$KAFKA_PORT, redis on $HOST:${REDIS_PORTS[*]}"
    return 0
  fi
  port_open "$WEB_PORT" && say "warning: web port $WEB_PORT (MEDIA_STACK_WEB_PORT) is already in use"
  bring_up redis kafka
  write_env
  say "up ($VARIANT): kafka $HOST:$KAFKA_PORT, redis $HOST:${REDIS_PORTS[*]}; settings in $ENV_FILE"
}

# One server again, on the data it left (Redis reloads its AOF, Kafka recovers its log).
cmd_start() { # redis|kafka
  local server=$1
  lock_stack
  if [[ $server == kafka ]]; then
    command -v python3 >/dev/null || die "python3 is needed for the Kafka readiness probe"
  fi
  bring_up "$server"
  write_env
}

# A crash, for fault tests: SIGKILL, no clean shutdown (Redis does not flush, Kafka does
# not close its logs). Returns once the process is gone and its port is closed.
cmd_kill() { # redis|kafka  (redis: every node of a cluster)
  local server=$1 port
  lock_stack
  case $server in
    kafka) kafka_pid >/dev/null || die "kafka is not running (nothing to kill; start it with: $0 start kafka)"
           kill_one kafka "$KAFKA_PID" "$KAFKA_PORT" kafka_pid ;;
    redis) redis_pid >/dev/null || die "redis is not running (nothing to kill; start it with: $0 start redis)"
           for port in "${REDIS_PORTS[@]}"; do
             kill_one "redis $port" "$(node_pidfile "$port")" "$port" node_pid "$port"
           done ;;
  esac
}

kill_one() { # name pidfile port pidfunc [its argument]
  local name=$1 pidfile=$2 port=$3 pid i
  pid=$("${@:4}") || return 0
  say "$name: SIGKILL pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  # Gone once the pid is not ours any more (a zombie has no command line) and the port is
  # closed: the kernel closes the sockets of a killed process as it exits.
  for (( i = 0; i < 200; i++ )); do
    if ! "${@:4}" >/dev/null && ! port_open "$port"; then
      rm -f "$pidfile"
      say "$name: killed"
      return 0
    fi
    sleep 0.05
  done
  die "$name (pid $pid) was still there 10s after SIGKILL"
}

cmd_down() {
  local purge=0
  case ${1:-} in
    "") ;;
    --purge) purge=1 ;;
    *) die "unknown option for down: $1 (only --purge)" ;;
  esac
  lock_stack
  stop_one kafka "$KAFKA_PID" kafka_pid
  stop_redis
  if (( purge )); then
    # Data only: the jars stay so the next `up` needs no Maven.
    rm -rf "$KAFKA_DATA" "$REDIS_DIR"
    say "purged $KAFKA_DATA and $REDIS_DIR (kept $KAFKA_LIBS)"
  fi
}

cmd_status() {
  local ok=0 pid answer
  if pid=$(kafka_pid); then
    if answer=$(kafka_probe 2>&1); then
      say "kafka: running  pid=$pid  port=$KAFKA_PORT  answering=yes ($answer)"
    else
      say "kafka: running  pid=$pid  port=$KAFKA_PORT  answering=no ($answer); log $KAFKA_LOG"; ok=1
    fi
  else
    [[ -f $KAFKA_PID ]] && say "kafka: stale pid file $KAFKA_PID (pid $(<"$KAFKA_PID") is gone or not ours)"
    say "kafka: stopped  port=$KAFKA_PORT$(port_open "$KAFKA_PORT" && echo ' (but something else listens there)')"; ok=1
  fi
  local port pidfile what
  what=$([[ $REDIS_MODE == cluster ]] && echo "cluster_state:ok" || echo PONG)
  for port in "${REDIS_PORTS[@]}"; do
    pidfile=$(node_pidfile "$port")
    if pid=$(node_pid "$port"); then
      if node_answers "$port"; then
        say "redis: running  pid=$pid  port=$port  answering=yes (PONG)"
      else
        say "redis: running  pid=$pid  port=$port  answering=no; log $(node_log "$port")"; ok=1
      fi
    else
      [[ -f $pidfile ]] && say "redis: stale pid file $pidfile (pid $(<"$pidfile") is gone or not ours)"
      say "redis: stopped  port=$port$(port_open "$port" && echo ' (but something else listens there)')"; ok=1
    fi
  done
  if (( ok == 0 )) && ! redis_answers; then
    say "redis: not serving ($what expected)"; ok=1
  fi
  return $ok
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist yet; run: deploy/stack.sh up"
  cat "$ENV_FILE"
}

usage() {
  cat >&2 <<EOF
usage: [MEDIA_STACK_SECURITY=plain|tls] [MEDIA_STACK_REDIS=single|cluster] $0 up | down [--purge] | status | env | kill redis|kafka | start redis|kafka
  up                  start Kafka and Redis (whichever is not running), wait until both answer
  down [--purge]      stop both cleanly; --purge also deletes their data (not the jars)
  status              whether each runs and answers (exit 1 if either does not)
  env                 print the settings file written by up
  kill redis|kafka    SIGKILL that server, as in a crash; returns once it is gone
  start redis|kafka   start that server again on its data; returns once it answers
EOF
  exit 2
}

server_arg() { # the argument of kill and start
  [[ ${1:-} == redis || ${1:-} == kafka ]] || usage
}

load_secrets

case ${1:-} in
  up)     [[ $# -eq 1 ]] || usage; cmd_up ;;
  down)   [[ $# -le 2 ]] || usage; cmd_down "${2:-}" ;;
  status) [[ $# -eq 1 ]] || usage; cmd_status ;;
  env)    [[ $# -eq 1 ]] || usage; cmd_env ;;
  kill)   [[ $# -eq 2 ]] || usage; server_arg "$2"; cmd_kill "$2" ;;
  start)  [[ $# -eq 2 ]] || usage; server_arg "$2"; cmd_start "$2" ;;
  *)      usage ;;
esac
