#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller) for development, tests and
# `framewatch up`. No Docker: the broker's jars come from Maven Central into a cache folder
# outside the repository, and the broker runs on the machine's Java 17.
#
#   deploy/kafka/kafka.sh start | stop | status | bootstrap
#
# Settings (environment):
#   FRAMEWATCH_CACHE       cache root                    (default ~/.cache/framewatch)
#   FRAMEWATCH_KAFKA_PORT  client port on 127.0.0.1      (default 9092; controller uses port+1)
#   FRAMEWATCH_KAFKA_HOME  data, config and log folder   (default $FRAMEWATCH_CACHE/kafka-run-$PORT)
#   FRAMEWATCH_KAFKA_HEAP  JVM heap                      (default 512m)
#   FRAMEWATCH_MAVEN_OFFLINE=1  bootstrap from the local Maven repository only (no download)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/pom.xml")
CACHE=${FRAMEWATCH_CACHE:-$HOME/.cache/framewatch}
PORT=${FRAMEWATCH_KAFKA_PORT:-9092}
CONTROLLER_PORT=$((PORT + 1))
LIB="$CACHE/kafka-$KAFKA_VERSION/lib"
RUN=${FRAMEWATCH_KAFKA_HOME:-$CACHE/kafka-run-$PORT}
PIDFILE="$RUN/kafka.pid"
LOG="$RUN/logs/server.out"
HEAP=${FRAMEWATCH_KAFKA_HEAP:-512m}
START_TIMEOUT_S=${FRAMEWATCH_KAFKA_START_TIMEOUT_S:-90}

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid; pid=$(cat "$PIDFILE")
  kill -0 "$pid" 2>/dev/null && grep -q kafka.Kafka "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

bootstrap() {
  # Resolve the broker jars once; a complete download leaves a marker so a half-finished one is redone.
  if [ -f "$LIB/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "Maven (mvn) is needed to fetch Kafka $KAFKA_VERSION"; exit 1; }
  command -v java >/dev/null || { log "Java 17 is needed to run Kafka"; exit 1; }
  log "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central into $LIB"
  rm -rf "$LIB"; mkdir -p "$LIB"
  # FRAMEWATCH_MAVEN_OFFLINE=1: resolve from the local Maven repository only (tests: never download mid-run)
  mvn -q -B ${FRAMEWATCH_MAVEN_OFFLINE:+-o} -f "$HERE/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB" >&2
  touch "$LIB/.complete"
}

write_config() {
  mkdir -p "$RUN/data" "$RUN/logs"
  cat > "$RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=168
PROPS
  cat > "$RUN/log4j2.properties" <<PROPS
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $RUN/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
}

java_cmd() {
  java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
       -Dlog4j2.configurationFile="$RUN/log4j2.properties" -cp "$LIB/*" "$@"
}

format_storage() {
  [ -f "$RUN/data/meta.properties" ] && return 0
  local cluster_id; cluster_id=$(java_cmd kafka.tools.StorageTool random-uuid)
  log "formatting KRaft storage in $RUN/data (cluster $cluster_id)"
  java_cmd kafka.tools.StorageTool format --standalone -t "$cluster_id" \
       -c "$RUN/server.properties" >&2
}

start() {
  if pid=$(running_pid); then
    log "already running (pid $pid) on 127.0.0.1:$PORT; log: $RUN/logs/server.log"
    return 0
  fi
  if port_open "$PORT"; then
    log "port $PORT is taken by another process; set FRAMEWATCH_KAFKA_PORT"; exit 1
  fi
  bootstrap
  write_config
  format_storage
  : > "$RUN/logs/server.log"
  nohup setsid bash -c "$(declare -f java_cmd); HEAP=$HEAP RUN=$RUN LIB=$LIB; \
      exec java -Xms128m -Xmx$HEAP -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile=$RUN/log4j2.properties -cp '$LIB/*' kafka.Kafka $RUN/server.properties" \
      > "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  local waited=0
  until port_open "$PORT" && grep -q "Kafka Server started" "$RUN/logs/server.log" 2>/dev/null; do
    # kill -0, not running_pid: /proc/PID/cmdline can read empty while nohup/setsid/bash exec java.
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      log "broker exited during start-up; last lines of $LOG and $RUN/logs/server.log:"
      tail -n 20 "$LOG" "$RUN/logs/server.log" >&2 || true
      exit 1
    fi
    if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
      log "broker did not answer within ${START_TIMEOUT_S}s; see $RUN/logs/server.log"; exit 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  log "started Kafka $KAFKA_VERSION (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT in ${waited}s; log: $RUN/logs/server.log"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$PIDFILE"; return 0; fi
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped (pid $pid)"; return 0; }
    sleep 0.5
  done
  log "broker did not stop in 30s; killing pid $pid"; kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

status() {
  if pid=$(running_pid) && port_open "$PORT"; then
    echo "running (pid $pid) on 127.0.0.1:$PORT; log: $RUN/logs/server.log"
  elif pid=$(running_pid); then
    echo "starting (pid $pid), port $PORT not answering yet; log: $RUN/logs/server.log"; return 1
  else
    echo "stopped"; return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  bootstrap) bootstrap ;;
  *) echo "usage: $0 start|stop|status|bootstrap" >&2; exit 2 ;;
esac
