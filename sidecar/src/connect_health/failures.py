"""Failure classes: what a FAILED unit's trace says about whether a restart can fix it. Pure: trace in, class out.

Connect's ``trace`` is the Java stack trace text of the exception that failed the unit (``ExceptionUtils``: a first
line ``<class>: <message>``, ``\\tat`` frames, then ``Caused by: <class>: <message>`` for each cause). The chain is
read from its root cause up to the outermost exception, and the first entry any rule matches decides (the root cause
is the most specific: a ``ConnectException`` wrapping a ``PSQLException`` is about the password); an
``OutOfMemoryError`` anywhere in the chain decides first. Nothing matched: ``unknown``.

- transient, unknown: today's ladder, then a pod restart (critical). A dependency slow or away, or a failure not
  recognised: never less than before.
- resource (``OutOfMemoryError``): one REST restart, then a pod restart (critical). A JVM that threw it is suspect:
  any of its threads may have died mid-work, and a task restarted in the same heap rarely frees what filled it; a
  fresh JVM does (``--pod-restarts`` still bounds the crash loop).
- credentials, configuration, data: at most one REST restart, never a pod restart. Only a person fixes a password,
  a config or a record: the readiness warning ``needs-action`` says what to do.

The patterns come from the sources that throw them (read from the jars this project pins: Kafka 4.3.1's
kafka-clients, connect-runtime and connect-json; pgjdbc 42.7.11; Debezium 3.6.1's PostgreSQL connector), cited per rule.
PostgreSQL's own messages (``FATAL: password authentication failed``) come from the server: with a server locale
other than English they are translated, and the class falls back to the exception class or ``unknown``.
Connect cuts nothing but the sidecar keeps the first ``snapshot.MAX_TRACE_CHARS`` characters of a trace: a cause
past them is not seen, which is why outer wrappers that say enough on their own (``Tolerance exceeded in error
handler``) have their own rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLASSES = ("transient", "credentials", "configuration", "data", "resource", "unknown")
NEEDS_ACTION = frozenset({"credentials", "configuration", "data"})  # at most one restart, never a pod restart
ONE_REST_RESTART = NEEDS_ACTION | {"resource"}  # the REST ladder stops after one attempt
# A connector's class when its failed units differ: the first here that any of them has. Classes a restart may fix
# come first, so a connector with one transient task still gets today's ladder for it.
PRECEDENCE = ("resource", "unknown", "transient", "configuration", "credentials", "data")


@dataclass(frozen=True)
class Failure:
    cls: str
    hint: str
    rule: str = ""  # what matched (for tests and the docs)


@dataclass(frozen=True)
class Rule:
    cls: str
    name: str
    exceptions: tuple[str, ...] = ()  # simple or fully qualified class names; empty: any
    message: str | None = None  # a regex searched in the entry's message
    hint: str = ""

    def matches(self, exc: str, msg: str) -> bool:
        if self.exceptions and not any(exc == e or exc.endswith("." + e) for e in self.exceptions):
            return False
        return self.message is None or re.search(self.message, msg, re.IGNORECASE) is not None


_FIX_CREDENTIALS = ("credentials refused: fix the connector's user/password (its Secret or config provider) or "
                    "the grants/ACLs it needs, then restart the connector; restarting before that cannot help")
_FIX_CONFIG = "fix the connector's configuration, then restart the connector; restarting before that cannot help"
_DATA = ("a record could not be converted or processed{where}: fix or skip it; to keep going past bad records set "
         "errors.tolerance=all with errors.deadletterqueue.topic.name=<topic> (sink connectors) and "
         "errors.log.enable=true, then restart the task")

# Kafka's org.apache.kafka.common.errors.RetriableException and its subclasses (clients/src/main/java/org/apache/
# kafka/common/errors/: TimeoutException, NotEnoughReplicasException, CoordinatorLoadInProgressException, ... extend
# RetriableException; NetworkException, LeaderNotAvailableException, NotLeaderOrFollowerException,
# UnknownTopicOrPartitionException, KafkaStorageException extend InvalidMetadataException, itself retriable), and
# Connect's org.apache.kafka.connect.errors.RetriableException (connect/api).
_RETRIABLE = (
    "RetriableException", "TimeoutException", "InvalidMetadataException", "NetworkException", "DisconnectException",
    "LeaderNotAvailableException", "NotLeaderOrFollowerException", "UnknownTopicOrPartitionException",
    "KafkaStorageException", "NotEnoughReplicasException", "NotEnoughReplicasAfterAppendException",
    "CoordinatorNotAvailableException", "CoordinatorLoadInProgressException", "NotCoordinatorException",
    "NotControllerException", "ConcurrentTransactionsException", "ThrottlingQuotaExceededException",
    "UnstableOffsetCommitException", "OffsetNotAvailableException", "FetchSessionIdNotFoundException",
    "AuthorizerNotReadyException", "RetriableCommitFailedException",
    # the JDK's: a refused or timed out socket, a reset connection (java.net, java.util.concurrent)
    "java.net.ConnectException", "java.net.SocketTimeoutException", "java.net.NoRouteToHostException",
    "java.net.SocketException", "java.util.concurrent.TimeoutException",
    # Debezium's io.debezium.DebeziumException subclass for errors it retries itself (debezium-core)
    "io.debezium.connector.common.RetriableException",
)

RESOURCE = Rule(
    "resource", "OutOfMemoryError", ("java.lang.OutOfMemoryError", "OutOfMemoryError"),
    hint="the worker's JVM ran out of memory: raise the container's memory limit and heap (KAFKA_HEAP_OPTS), or "
         "lower the connector's batch sizes; after one task restart the pod is restarted for a clean JVM")

RULES: tuple[Rule, ...] = (
    # --- credentials --------------------------------------------------------------------------------------
    # Kafka: org.apache.kafka.common.errors.AuthenticationException and its subclasses SaslAuthenticationException,
    # SslAuthenticationException, UnsupportedSaslMechanismException, IllegalSaslStateException; AuthorizationException
    # and TopicAuthorizationException, GroupAuthorizationException, ClusterAuthorizationException,
    # TransactionalIdAuthorizationException, DelegationTokenAuthorizationException (clients, common/errors).
    Rule("credentials", "Kafka authentication",
         ("AuthenticationException", "SaslAuthenticationException", "SslAuthenticationException",
          "UnsupportedSaslMechanismException", "IllegalSaslStateException"), hint=_FIX_CREDENTIALS),
    Rule("credentials", "Kafka authorization",
         ("AuthorizationException", "TopicAuthorizationException", "GroupAuthorizationException",
          "ClusterAuthorizationException", "TransactionalIdAuthorizationException",
          "DelegationTokenAuthorizationException"), hint=_FIX_CREDENTIALS),
    # PostgreSQL (server, src/backend/libpq/auth.c): SQLSTATE 28P01 invalid_password "password authentication failed
    # for user", 28000 invalid_authorization_specification "no pg_hba.conf entry", "role ... does not exist";
    # 42501 insufficient_privilege "permission denied", "must be superuser or replication role". pgjdbc
    # (org.postgresql.util.PSQLState INVALID_PASSWORD, INVALID_AUTHORIZATION_SPECIFICATION; core/v3/
    # AuthenticationPluginManager, ConnectionFactoryImpl): "The server requested ... authentication, but no password
    # was provided". MySQL Connector/J: "Access denied for user". A message quoting the SQLSTATE counts as well.
    Rule("credentials", "database authentication", (),
         r"password authentication failed|no pg_hba\.conf entry|role \S+ does not exist|access denied for user|"
         r"but no password was provided|\b28P01\b|\bSQLState: 28000\b|Login failed for user|ORA-01017",
         hint=_FIX_CREDENTIALS),
    Rule("credentials", "database authorization", (),
         r"permission denied for|must be superuser|must have replication privilege|must be superuser or replication "
         r"role|insufficient privilege|\b42501\b",
         hint="the connector's database user lacks a privilege it needs (REPLICATION for Debezium, SELECT or "
              "ownership of the tables): grant it, then restart the connector"),
    # --- transient ----------------------------------------------------------------------------------------
    # A refused connection, a timeout, a reset socket: "Connection refused" (java.net.ConnectException), pgjdbc's
    # "Connection to {0} refused. Check that the hostname and port are correct" (PSQLState 08001) and "An I/O error
    # occurred while sending to the backend" (08006), "This connection has been closed." (08003); MySQL Connector/J's
    # "Communications link failure"; Kafka's "Timed out waiting for a node assignment", "Topic ... not present in
    # metadata after ... ms" (clients: KafkaAdminClient, KafkaProducer).
    Rule("transient", "network", (),
         r"connection refused|connection to \S+ refused|connection reset|broken pipe|communications link failure|"
         r"an I/O error occurred while sending to the backend|this connection has been closed|"
         r"timed out waiting for|not present in metadata after|no route to host|the database system is starting up|"
         r"the database system is shutting down|terminating connection due to administrator command|"
         r"replication slot \S+ is active for PID|\b08001\b|\b08006\b",
         hint="a dependency (a broker, the database) was unreachable or slow: the restart ladder retries"),
    Rule("transient", "retriable", _RETRIABLE,
         hint="a retriable error (Kafka's RetriableException family, a timeout): the restart ladder retries"),
    # --- configuration ------------------------------------------------------------------------------------
    # KIP-1004 (Kafka 3.8+): connect-runtime TooManyTasksException "The connector %s has generated %d tasks, which
    # is greater than %d, the maximum number of tasks it is configured to create." (DistributedHerder then logs
    # "Connector {} generated too many tasks; will not retry configuring connector").
    Rule("configuration", "tasks.max (KIP-1004)", (),
         r"has generated \d+ tasks, which is greater than \d+|TooManyTasksException",
         hint="the connector generated more tasks than tasks.max (KIP-1004, Kafka 3.8+): raise tasks.max to what it "
              "needs (or fix the connector's taskConfigs); a restart regenerates the same tasks"),
    # PostgreSQL: 'publication "x" does not exist' (src/backend/catalog/pg_publication.c, SQLSTATE 42704), seen by
    # Debezium when publication.autocreate.mode=disabled and nobody created it (PostgresConnectorConfig: "If the
    # publication isn't found to exist upon startup, the connector will throw an exception and stop").
    # Debezium 3.x (PostgresReplicationConnection.initPublication) checks first and fails the task itself: "Publication
    # autocreation is disabled, please create one and restart the connector."
    Rule("configuration", "missing publication", (),
         r"publication \S+ does not exist|Publication autocreation is disabled",
         hint="the publication does not exist: create it (CREATE PUBLICATION <name> FOR TABLE ...) or set "
              "publication.autocreate.mode=filtered|all_tables (with a user allowed to), then restart the connector"),
    Rule("configuration", "missing replication slot or database", (),
         r"replication slot \S+ does not exist|database \S+ does not exist|relation \S+ does not exist|"
         r"logical decoding requires wal_level >= logical|wal_level",
         hint=_FIX_CONFIG),
    # Kafka: org.apache.kafka.common.config.ConfigException (clients, common/config); Connect's plugin lookup
    # (connect-runtime isolation.Plugins): "Failed to find any class that implements Connector".
    Rule("configuration", "ConfigException", ("ConfigException",), hint=_FIX_CONFIG),
    Rule("configuration", "plugin not found", ("ClassNotFoundException",),
         hint="a class the config names is not installed on this worker: check the plugin path and the class "
                   "name, then restart the connector"),
    Rule("configuration", "plugin not found", (), r"Failed to find any class that implements",
         hint="a class the config names is not installed on this worker: check the plugin path and the class "
              "name, then restart the connector"),
    # --- data ---------------------------------------------------------------------------------------------
    # connect-json JsonConverter: "Converting byte[] to Kafka Connect data failed due to serialization error: " and
    # "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional
    # fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter
    # configuration."; connect-api org.apache.kafka.connect.errors.DataException; clients' SerializationException
    # and RecordDeserializationException; connect-runtime RetryWithToleranceOperator's "Tolerance exceeded in error
    # handler" (it only wraps record-processing stages: converters, transformations, header converters).
    Rule("data", "JsonConverter schemas.enable", (), r"JsonConverter with schemas\.enable requires",
         hint=_DATA + " (or set value.converter.schemas.enable=false if the topic holds plain JSON)"),
    Rule("data", "conversion", ("DataException", "SerializationException", "RecordDeserializationException"),
         hint=_DATA),
    Rule("data", "tolerance exceeded", (), r"Tolerance exceeded in error handler", hint=_DATA),
)

_HEADER = re.compile(r"^(?:\s*(?:Caused by|Suppressed):\s+)?([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)(?::\s?(.*))?$")
_FRAME = re.compile(r"^\s+(?:at |\.\.\. \d+ (?:more|common frames omitted))")
# Where a record is named: connect-runtime LogReporter.Sink "{topic='t', partition=0, offset=5, ...}", the clients'
# ConsumerRecord.toString "ConsumerRecord(topic = t, partition = 0, leaderEpoch = .., offset = 5, ...", and
# RecordDeserializationException "Error deserializing key/value for partition t-0 at offset 5".
_POSITION = (
    re.compile(r"topic\s*=\s*'?(?P<topic>[\w.\-]+)'?,\s*partition\s*=\s*(?P<partition>\d+),.*?\boffset\s*=\s*"
               r"(?P<offset>\d+)"),
    re.compile(r"for partition (?P<topic>[\w.\-]+)-(?P<partition>\d+) at offset (?P<offset>\d+)"),
)


def chain(trace: str) -> list[tuple[str, str]]:
    """The exceptions of a Java stack trace text, outermost first: (class name, message with its later lines)."""
    out: list[tuple[str, str]] = []
    in_frames = False
    for line in trace.splitlines():
        if not line.strip():
            continue
        if _FRAME.match(line):
            in_frames = True
            continue
        is_cause = line.lstrip().startswith(("Caused by:", "Suppressed:"))
        m = _HEADER.match(line.strip()) if (is_cause or not out) else None
        if m:
            out.append((m.group(1), m.group(2) or ""))
            in_frames = False
        elif out and not in_frames:  # a message of several lines
            cls, msg = out[-1]
            out[-1] = (cls, f"{msg}\n{line}")
    return out


def position(trace: str) -> str | None:
    """The failing record's topic/partition/offset, when the trace names one."""
    for pattern in _POSITION:
        m = pattern.search(trace)
        if m:
            return f"topic {m['topic']} partition {m['partition']} offset {m['offset']}"
    return None


def classify(trace: str | None) -> Failure:
    """The class of a FAILED unit from its trace; ``unknown`` without one or when no rule matches."""
    if not trace:
        return Failure("unknown", "no trace to classify: see the worker's log", "no trace")
    entries = chain(trace) or [("", trace)]
    if any(RESOURCE.matches(exc, msg) for exc, msg in entries) or "java.lang.OutOfMemoryError" in trace:
        return Failure("resource", RESOURCE.hint, RESOURCE.name)
    for exc, msg in reversed(entries):
        for rule in RULES:
            if rule.matches(exc, msg):
                hint = rule.hint
                if rule.cls == "data":
                    where = position(trace)
                    hint = hint.replace("{where}", f" ({where})" if where else "")
                return Failure(rule.cls, hint, rule.name)
    return Failure("unknown", "not a failure the sidecar recognises: the restart ladder applies; see the trace",
                   "no rule")


def connector_class(classes: list[str]) -> str | None:
    """The class deciding a connector's restarts, from its failed units' classes (None: no failed unit)."""
    for cls in PRECEDENCE:
        if cls in classes:
            return cls
    return None
