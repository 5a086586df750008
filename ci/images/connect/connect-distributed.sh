#!/bin/sh
# Stand-in for Kafka's bin/connect-distributed.sh (the scripts are not on Maven Central): the same environment
# variables (KAFKA_HEAP_OPTS, KAFKA_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS, LOG_DIR), the same main class.
set -eu
if [ $# -lt 1 ]; then
  echo "USAGE: $0 [-daemon] connect-distributed.properties" >&2
  exit 1
fi
[ "$1" = -daemon ] && shift
: "${KAFKA_HEAP_OPTS:=-Xms256M -Xmx2G}"
: "${KAFKA_JVM_PERFORMANCE_OPTS:=-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}"
: "${KAFKA_LOG4J_OPTS:=-Dlog4j2.configurationFile=/opt/kafka/config/connect-log4j2.xml}"
: "${LOG_DIR:=/opt/kafka/logs}"
export LOG_DIR
# shellcheck disable=SC2086 # the *_OPTS variables are word lists, as in Kafka's own scripts
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $KAFKA_LOG4J_OPTS ${KAFKA_OPTS:-} \
  -Dkafka.logs.dir="$LOG_DIR" -cp '/opt/kafka/libs/*' org.apache.kafka.connect.cli.ConnectDistributed "$@"
