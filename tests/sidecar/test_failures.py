"""failures.classify, table-driven: traces shaped like the ones Connect returns (first line, frames, "Caused by:")
for each class, from the exceptions and messages of Kafka, pgjdbc/PostgreSQL and Debezium."""

from __future__ import annotations

import pytest
from connect_health import failures


def trace(*chain: str, frames: int = 3) -> str:
    """A Java stack trace text: each exception of ``chain`` (outermost first) with a few frames."""
    out = []
    for i, exc in enumerate(chain):
        out.append(exc if i == 0 else f"Caused by: {exc}")
        out += [f"\tat org.example.Frame{i}.call{j}(Frame{i}.java:{10 + j})" for j in range(frames)]
        if i:
            out.append("\t... 12 more")
    return "\n".join(out) + "\n"


CASES = [
    # transient
    ("connect-refused", trace("org.apache.kafka.connect.errors.ConnectException: java.net.ConnectException: "
                              "Connection refused", "java.net.ConnectException: Connection refused"), "transient"),
    ("kafka-timeout", trace("org.apache.kafka.connect.errors.ConnectException: Failed to start",
                            "org.apache.kafka.common.errors.TimeoutException: Timed out waiting for a node "
                            "assignment. Call: listTopics"), "transient"),
    ("retriable-connect", trace("org.apache.kafka.connect.errors.RetriableException: try again"), "transient"),
    ("pg-refused", trace("org.apache.kafka.connect.errors.ConnectException: Error while connecting",
                         "org.postgresql.util.PSQLException: Connection to db:5432 refused. Check that the hostname "
                         "and port are correct and that the postmaster is accepting TCP/IP connections."), "transient"),
    ("mysql-link", trace("org.apache.kafka.common.config.ConfigException: Invalid value jdbc:mysql://db for "
                         "configuration connection.url: Communications link failure"), "transient"),
    # credentials
    ("pg-password", trace("org.apache.kafka.connect.errors.ConnectException: Error while connecting",
                          "org.postgresql.util.PSQLException: FATAL: password authentication failed for user "
                          "\"app\""), "credentials"),
    ("pg-hba", trace("io.debezium.DebeziumException: Couldn't connect",
                     "org.postgresql.util.PSQLException: FATAL: no pg_hba.conf entry for host \"10.0.0.1\""),
     "credentials"),
    ("sasl", trace("org.apache.kafka.connect.errors.ConnectException: producer failed",
                   "org.apache.kafka.common.errors.SaslAuthenticationException: Authentication failed during "
                   "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"), "credentials"),
    ("topic-acl", trace("org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access "
                        "topics: [orders]"), "credentials"),
    ("pg-replication-privilege", trace("org.postgresql.util.PSQLException: ERROR: must be superuser or replication "
                                       "role to start walsender"), "credentials"),
    # configuration
    ("tasks-max", trace("org.apache.kafka.connect.runtime.TooManyTasksException: The connector many has generated "
                        "3 tasks, which is greater than 1, the maximum number of tasks it is configured to create. "
                        "This behaviour should be considered a bug and is disallowed."), "configuration"),
    ("publication", trace("org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change "
                          "event producer. This connector will be stopped.",
                          "io.debezium.DebeziumException: Failed to start replication stream",
                          "org.postgresql.util.PSQLException: ERROR: publication \"dbz_publication\" does not exist\n"
                          "  Where: slot \"debezium\", output plugin \"pgoutput\", in the change callback"),
     "configuration"),
    ("debezium-publication", trace("org.apache.kafka.connect.errors.ConnectException: Publication autocreation is "
                                   "disabled, please create one and restart the connector."), "configuration"),
    ("config-exception", trace("org.apache.kafka.common.config.ConfigException: Missing required configuration "
                               "\"file\" which has no default value."), "configuration"),
    # data
    ("json-serialization", trace(
        "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler",
        "org.apache.kafka.connect.errors.DataException: Converting byte[] to Kafka Connect data failed due to "
        "serialization error: ",
        "org.apache.kafka.common.errors.SerializationException: com.fasterxml.jackson.core.JsonParseException: "
        "Unrecognized token 'hello': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or "
        "'false')",
        "com.fasterxml.jackson.core.JsonParseException: Unrecognized token 'hello'"), "data"),
    ("tolerance-cut", "org.apache.kafka.connect.errors.ConnectException: Tolerance exceeded in error handler\n"
                      + "\tat org.apache.kafka.connect.runtime.errors.RetryWithToleranceOperator.exec(R.java:1)\n" * 40,
     "data"),
    ("schemas-enable", trace("org.apache.kafka.connect.errors.DataException: JsonConverter with schemas.enable "
                             "requires \"schema\" and \"payload\" fields and may not contain additional fields."),
     "data"),
    # resource: anywhere in the chain, whatever wraps it
    ("oom", trace("org.apache.kafka.connect.errors.ConnectException: java.net.ConnectException: Connection refused",
                  "java.lang.OutOfMemoryError: Java heap space"), "resource"),
    ("oom-top", trace("java.lang.OutOfMemoryError: Java heap space"), "resource"),
    # unknown
    ("no-file", trace("org.apache.kafka.connect.errors.ConnectException: Couldn't find or create file '/x/out.txt' "
                      "for FileStreamSinkTask", "java.nio.file.NoSuchFileException: /x/out.txt"), "unknown"),
    ("npe", trace("java.lang.NullPointerException"), "unknown"),
    ("not-java", "something went wrong", "unknown"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_class_of_trace(text: str, expected: str) -> None:
    found = failures.classify(text)
    assert found.cls == expected, found
    assert found.cls in failures.CLASSES and found.hint


def test_no_trace_is_unknown() -> None:
    assert failures.classify(None).cls == "unknown"
    assert failures.classify("").cls == "unknown"


def test_chain_reads_causes_and_multiline_messages() -> None:
    text = trace("a.B: outer", "c.D: inner\n  Where: here")
    assert failures.chain(text) == [("a.B", "outer"), ("c.D", "inner\n  Where: here")]


def test_data_hint_names_the_record_and_the_dead_letter_queue() -> None:
    text = trace("org.apache.kafka.connect.errors.DataException: Converting byte[] to Kafka Connect data failed "
                 "due to serialization error: , where consumed record is {topic='orders', partition=2, offset=41, "
                 "timestamp=1, timestampType=CreateTime}")
    hint = failures.classify(text).hint
    assert "topic orders partition 2 offset 41" in hint
    assert "errors.tolerance=all" in hint and "errors.deadletterqueue.topic.name" in hint


def test_data_hint_without_a_position_says_nothing_of_one() -> None:
    hint = failures.classify(trace("org.apache.kafka.connect.errors.DataException: bad")).hint
    assert "topic" not in hint.split(":")[0] and "{where}" not in hint


def test_record_deserialization_position() -> None:
    assert failures.position("RecordDeserializationException: Error deserializing VALUE for partition "
                             "orders-3 at offset 7") == "topic orders partition 3 offset 7"


@pytest.mark.parametrize("classes,expected", [
    ([], None), (["data"], "data"), (["data", "transient"], "transient"), (["credentials", "unknown"], "unknown"),
    (["data", "resource", "transient"], "resource"), (["configuration", "credentials"], "configuration"),
])
def test_connector_class_prefers_what_a_restart_may_fix(classes: list[str], expected: str | None) -> None:
    assert failures.connector_class(classes) == expected
