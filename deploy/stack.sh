#!/usr/bin/env bash
# Local infrastructure for the service: a single-node Kafka broker (KRaft,
# broker+controller in one JVM, jars resolved by Maven from deploy/kafka/pom.xml)
# and a Redis server, both on loopback, both started by this script (no
# containers, no system services).
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
#
# Settings (environment):
#   MEDIA_STACK_KAFKA_PORT=19092  MEDIA_STACK_KAFKA_CONTROLLER_PORT=19093
#   MEDIA_STACK_REDIS_PORT=16379  MEDIA_STACK_WEB_PORT=8066 (only written to env)
#   MEDIA_STACK_TIMEOUT=90        seconds to wait for each server to answer
#   STACK_DIR                     where the state lives
set -euo pipefail

# --- locations and settings --------------------------------------------------

# Resolve everything from the script's own location so any cwd works.
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
STACK_DIR=${STACK_DIR:-$REPO_ROOT/.stack}
mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)   # absolute: it is baked into properties and pid checks

KAFKA_PORT=${MEDIA_STACK_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${MEDIA_STACK_KAFKA_CONTROLLER_PORT:-19093}
REDIS_PORT=${MEDIA_STACK_REDIS_PORT:-16379}
WEB_PORT=${MEDIA_STACK_WEB_PORT:-8066}
TIMEOUT=${MEDIA_STACK_TIMEOUT:-90}
HOST=127.0.0.1

POM=$SCRIPT_DIR/kafka/pom.xml
LOG4J_CONFIG=$SCRIPT_DIR/kafka/log4j2.properties
KAFKA_DIR=$STACK_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOG=$STACK_DIR/kafka.log
KAFKA_PID=$STACK_DIR/kafka.pid
KAFKA_HEAP=(-Xmx512m -Xms256m)
REDIS_DIR=$STACK_DIR/redis
REDIS_LOG=$STACK_DIR/redis.log
REDIS_PID=$STACK_DIR/redis.pid
ENV_FILE=$STACK_DIR/env

# --- small helpers -------------------------------------------------------------

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

for v in KAFKA_PORT KAFKA_CONTROLLER_PORT REDIS_PORT WEB_PORT TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number, got '${!v}'"
done

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
redis_pid() { live_pid "$REDIS_PID" "redis-server"; }

# Drop a pid file whose process is gone (or is not ours any more).
clear_stale() { # pidfile name pidfunc
  if [[ -f $1 ]] && ! "$3" >/dev/null; then
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

redis_answers() {
  [[ $(timeout 5 redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# Speak the Kafka protocol (deploy/kafka_probe.py): ApiVersions and Metadata must both
# succeed and list at least one broker. A fenced or still-starting broker lists none, so
# this is "clients can use it", not just "the port is open". Prints "brokers=N
# cluster_id=X" or the failure reason. Standard library only: the system's python3 runs
# it, before any virtualenv exists.
KAFKA_PROBE=$SCRIPT_DIR/kafka_probe.py
kafka_probe() { python3 "$KAFKA_PROBE" "$HOST:$KAFKA_PORT" --timeout 3; }
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
  cat >"$KAFKA_PROPS.tmp" <<EOF
# Generated by deploy/stack.sh; edits are overwritten on the next 'up'.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
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

# Format the storage once: a data dir with meta.properties already belongs to a cluster.
format_kafka_storage() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  # The tool logs one INFO line to stdout before the id: keep only the last line.
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "could not generate a Kafka cluster id (got '$cluster_id')"
  mkdir -p "$KAFKA_DATA"
  say "kafka: formatting $KAFKA_DATA (cluster id $cluster_id)"
  if ! kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_PROPS" >>"$KAFKA_LOG" 2>&1; then
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
  mkdir -p "$REDIS_DIR"
  rotate_log "$REDIS_LOG"
  say "redis: starting on $HOST:$REDIS_PORT, log $REDIS_LOG"
  # What the service requires and recommends (README, "Redis requirements"): never evict,
  # AOF fsynced every second, no RDB snapshots. The AOF in $REDIS_DIR is reloaded on the
  # next start, also after a SIGKILL. No --logfile: Redis logs to stdout, the log file.
  (cd "$REDIS_DIR" && exec setsid nohup redis-server --port "$REDIS_PORT" --bind "$HOST" \
      --daemonize no --dir "$REDIS_DIR" --maxmemory-policy noeviction \
      --appendonly yes --appendfsync everysec --save "" \
      >>"$REDIS_LOG" 2>&1 </dev/null 9>&-) &
  echo $! >"$REDIS_PID"
  wait_exec $! redis-server
}

# SIGTERM lets Kafka shut down cleanly (no log recovery on next start) and
# Redis flush its AOF; SIGKILL only if that takes over 30 s.
stop_one() { # name pidfile pidfunc
  local name=$1 pidfile=$2 pidfunc=$3 pid
  if ! pid=$("$pidfunc"); then
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

write_env() {
  cat >"$ENV_FILE.tmp" <<EOF
# Written by deploy/stack.sh up. Use: . $ENV_FILE
export MEDIA_KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
export MEDIA_REDIS_URL=redis://$HOST:$REDIS_PORT/0
export MEDIA_WEB_HOST=$HOST
export MEDIA_WEB_PORT=$WEB_PORT
EOF
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
  local server need_redis=0 need_kafka=0
  for server in "$@"; do
    case $server in
      redis) clear_stale "$REDIS_PID" redis redis_pid; redis_pid >/dev/null || need_redis=1 ;;
      kafka) clear_stale "$KAFKA_PID" kafka kafka_pid; kafka_pid >/dev/null || need_kafka=1 ;;
    esac
  done
  # All checks and provisioning before starting anything, so a port clash or a
  # failed download leaves nothing half-started.
  if (( need_redis )); then
    ensure_redis_installed
    require_free_port "$REDIS_PORT" "Redis" MEDIA_STACK_REDIS_PORT
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
      redis) if ! wait_until_ready redis redis_pid redis_answers "$REDIS_LOG"; then
               failed=1; stop_one redis "$REDIS_PID" redis_pid; fi ;;
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
    say "already running: kafka pid $(kafka_pid) on $HOST:$KAFKA_PORT, redis pid $(redis_pid) on $HOST:$REDIS_PORT"
    return 0
  fi
  port_open "$WEB_PORT" && say "warning: web port $WEB_PORT (MEDIA_STACK_WEB_PORT) is already in use"
  bring_up redis kafka
  write_env
  say "up: kafka $HOST:$KAFKA_PORT, redis $HOST:$REDIS_PORT; settings in $ENV_FILE"
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
cmd_kill() { # redis|kafka
  local server=$1 pidfile pidfunc port pid i
  case $server in
    redis) pidfile=$REDIS_PID; pidfunc=redis_pid; port=$REDIS_PORT ;;
    kafka) pidfile=$KAFKA_PID; pidfunc=kafka_pid; port=$KAFKA_PORT ;;
  esac
  lock_stack
  pid=$("$pidfunc") || die "$server is not running (nothing to kill; start it with: $0 start $server)"
  say "$server: SIGKILL pid $pid"
  kill -KILL "$pid" 2>/dev/null || true
  # Gone once the pid is not ours any more (a zombie has no command line) and the port is
  # closed: the kernel closes the sockets of a killed process as it exits.
  for (( i = 0; i < 200; i++ )); do
    if ! "$pidfunc" >/dev/null && ! port_open "$port"; then
      rm -f "$pidfile"
      say "$server: killed"
      return 0
    fi
    sleep 0.05
  done
  die "$server (pid $pid) was still there 10s after SIGKILL"
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
  stop_one redis "$REDIS_PID" redis_pid
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
  if pid=$(redis_pid); then
    if redis_answers; then
      say "redis: running  pid=$pid  port=$REDIS_PORT  answering=yes (PONG)"
    else
      say "redis: running  pid=$pid  port=$REDIS_PORT  answering=no; log $REDIS_LOG"; ok=1
    fi
  else
    [[ -f $REDIS_PID ]] && say "redis: stale pid file $REDIS_PID (pid $(<"$REDIS_PID") is gone or not ours)"
    say "redis: stopped  port=$REDIS_PORT$(port_open "$REDIS_PORT" && echo ' (but something else listens there)')"; ok=1
  fi
  return $ok
}

cmd_env() {
  [[ -f $ENV_FILE ]] || die "$ENV_FILE does not exist yet; run: deploy/stack.sh up"
  cat "$ENV_FILE"
}

usage() {
  cat >&2 <<EOF
usage: $0 up | down [--purge] | status | env | kill redis|kafka | start redis|kafka
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

case ${1:-} in
  up)     [[ $# -eq 1 ]] || usage; cmd_up ;;
  down)   [[ $# -le 2 ]] || usage; cmd_down "${2:-}" ;;
  status) [[ $# -eq 1 ]] || usage; cmd_status ;;
  env)    [[ $# -eq 1 ]] || usage; cmd_env ;;
  kill)   [[ $# -eq 2 ]] || usage; server_arg "$2"; cmd_kill "$2" ;;
  start)  [[ $# -eq 2 ]] || usage; server_arg "$2"; cmd_start "$2" ;;
  *)      usage ;;
esac
