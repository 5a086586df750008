"""Redaction holds for every common secret form (issue 18, item 8).

A random secret, drawn from every character its form lets it hold (``@ : ; / = & %`` and the rest, where the form
allows them unescaped), is placed in that form between random noise, and the text goes through every output path
that redacts: ``redact()``, ``trace_line()``, Connect's error messages (``Reply.error_message``, what ``apply`` and the
poller print), ``apply``'s validation messages, the probe bodies, both log formats and the Kubernetes Event body; a
second test sends it through a Connect worker's answers into ``/status`` (JSON and HTML), the probes and ``check``.
No 4-character run of the secret may survive in any of them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import io
import json
import logging
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from connect_health import apply as apply_mod
from connect_health import cli, model
from connect_health.client import Reply
from connect_health.declared import Declared
from connect_health.events import KubeEvents, PodRef
from connect_health.redact import redact, trace_line
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from .fakeconnect import ROOT, Answer, FakeConnect

# Every printable ASCII mark but "*" (the mask's own character: a secret "a***" would look masked) and the space.
MARKS = "!\"#$%&'()+,-./:;<=>?@[\\]^_`{|}~"
ALNUM = string.ascii_letters + string.digits


def chars(exclude: str = "", extra: str = "") -> str:
    return "".join(c for c in ALNUM + MARKS + extra if c not in exclude)


def escaped(secret: str, quote: str = '"') -> str:
    """The secret inside a backslash-escaped quoted string (JAAS, Java and JSON-like strings)."""
    return secret.replace("\\", "\\\\").replace(quote, "\\" + quote)


@dataclass(frozen=True)
class Form:
    """``build(secret)`` is the text and the pieces of the secret as written in it."""

    alphabet: str
    build: Callable[[str], tuple[str, list[str]]]
    sizes: tuple[int, int] = (8, 32)
    first: str = ""  # characters the secret must not start with (they open another syntax of the form)


def plain(template: str) -> Callable[[str], tuple[str, list[str]]]:
    return lambda s: (template.format(s=s), [s])


def quoted(template: str, quote: str = '"') -> Callable[[str], tuple[str, list[str]]]:
    return lambda s: (template.format(s=escaped(s, quote)), [escaped(s, quote)])


def as_json(key: str, template: str = "{s}") -> Callable[[str], tuple[str, list[str]]]:
    """``template`` with the secret, as the value of ``key`` in a JSON object."""
    def build(s: str) -> tuple[str, list[str]]:
        return json.dumps({"name": "sink", key: template.format(s=s)}), [json.dumps(s)[1:-1]]
    return build


def basic(s: str) -> tuple[str, list[str]]:
    token = base64.b64encode(f"fred:{s}".encode()).decode()
    return f"GET /subjects answered 401 to Authorization: Basic {token}", [token]


def pem(label: str, join: str, cut: bool = False) -> Callable[[str], tuple[str, list[str]]]:
    """A private key: the secret's bytes base64-encoded in 64-character lines joined by ``join``; ``cut``: the text
    ends inside the block (a trace or log line cut short)."""
    def build(s: str) -> tuple[str, list[str]]:
        body = base64.b64encode(s.encode() * 4).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        text = f"ssl.keystore.key=-----BEGIN {label}-----{join}{join.join(lines)}{join}-----END {label}-----"
        if cut:
            text = text[:text.index("-----END") - 5]
        return text, lines
    return build


INFO = "jdbc:sqlserver://db:1433;databaseName=x;user=sa;password="
JAAS = "org.apache.kafka.common.security.{m} required username=\"app\" {k}=\"{{s}}\";"
FORMS: dict[str, Form] = {
    # SQL Server: ;key=value pairs, a value ends at ";" (spaces and all) unless braced, where "}" is written "}}"
    "sqlserver": Form(chars(";"), plain(INFO + "{s}"), first="{"),
    "sqlserver-then-more": Form(chars(";", " "), plain(INFO + "{s};encrypt=true"), first="{ "),
    "sqlserver-azure-user": Form(chars(";"), plain("jdbc:sqlserver://x.database.windows.net:1433;database=d;"
                                                   "user=admin@x;password={s};encrypt=true"), first="{"),
    "sqlserver-pwd": Form(chars(";"), plain("jdbc:sqlserver://db;user=sa;pwd={s}"), first="{"),
    "sqlserver-braced": Form(chars(extra=" "), lambda s: (f"{INFO}{{{s.replace('}', '}}')}}};encrypt=true",
                                                          [s.replace("}", "}}")])),
    "jtds": Form(chars(";"), plain("jdbc:jtds:sqlserver://db:1433/app;user=sa;password={s}"), first="{"),
    # Oracle: user/password@ (a password holding @ or spaces is double-quoted)
    "oracle-thin": Form(chars('@"'), plain("Listener refused jdbc:oracle:thin:scott/{s}@//db.internal:1521/ORCL")),
    "oracle-sid": Form(chars('@"'), plain("jdbc:oracle:thin:scott/{s}@db:1521:ORCL")),
    "oracle-quoted": Form(chars('"', " "), plain('jdbc:oracle:thin:scott/"{s}"@db:1521:ORCL')),
    # query strings: & and # end a value (a password holding them is percent-encoded)
    "mysql-query": Form(chars('&#"'), plain("jdbc:mysql://db:3306/app?user=app&password={s}&useSSL=true")),
    "postgres-query": Form(chars('&#"'), plain("jdbc:postgresql://db:5432/orders?password={s}")),
    "query-no-path": Form(chars('&#"'), plain("jdbc:mysql://db:3306?user=app&password={s}")),
    # user:password@host: / and ? end the authority (a password holding them is percent-encoded); a raw @ or # is common
    "mysql-userinfo": Form(chars("/?"), plain("Cannot connect to jdbc:mysql://app:{s}@db:3306/orders")),
    "postgres-userinfo": Form(chars("/?"), plain("jdbc:postgresql://app:{s}@db.internal:5432/orders")),
    "mongodb": Form(chars("/?"), plain("Timed out connecting to mongodb://root:{s}@mongo-0.mongo:27017/?authSource=a")),
    "mongodb-srv": Form(chars("/?"), plain("mongodb+srv://root:{s}@cluster0.example.net/db?retryWrites=true")),
    "mongodb-hosts": Form(chars("/?"), plain("mongodb://root:{s}@m0:27017,m1:27017,m2:27017/?replicaSet=rs0")),
    "amqp": Form(chars("/?"), plain("amqp://guest:{s}@rabbit:5672/vhost")),
    "amqps-no-path": Form(chars("/?"), plain("amqps://guest:{s}@rabbit.internal")),
    "https": Form(chars("/?"), plain("Connection refused: https://svc:{s}@registry.internal:8081/subjects")),
    # key=value and key: value whose key names a secret
    "pair": Form(chars('"'), plain("password={s}"), first="'{\\"),
    "dotted-pair": Form(chars('"'), plain("connection.password={s}"), first="'{\\"),
    "spaced-pair": Form(chars('"'), plain("ssl.truststore.password = {s}"), first="'{\\"),
    "colon-pair": Form(chars('"'), plain("connection.password: {s}"), first="'{\\"),
    "java-map": Form(chars('"'), plain("{{connection.user=app, connection.password={s}, tasks.max=1}}"),
                     first="'{\\"),
    "aws-secret": Form(chars('"'), plain("aws_secret_access_key={s}"), first="'{\\"),
    "aws-secret-env": Form(ALNUM + "/+", plain("AWS_SECRET_ACCESS_KEY={s}"), sizes=(40, 40)),
    "basic-auth-user-info": Form(chars('"'), plain("basic.auth.user.info=fred:{s}")),
    "double-quoted": Form(chars(extra=" "), quoted('password="{s}"')),
    "single-quoted": Form(chars(extra=" "), quoted("password='{s}'", "'")),
    "json": Form(chars(extra=" "), as_json("connection.password")),
    "json-aws": Form(chars(extra=" "), as_json("SecretAccessKey")),
    # sasl.jaas.config, bare, in a Java map and inside a JSON answer
    "jaas-plain": Form(chars(extra=" "), quoted("sasl.jaas.config=" + JAAS.format(m="plain.PlainLoginModule",
                                                                                 k="password"))),
    "jaas-scram-map": Form(chars(extra=" "), quoted("{{sasl.jaas.config=" + JAAS.format(
        m="scram.ScramLoginModule", k="password") + ", tasks.max=1}}")),
    "jaas-oauth": Form(chars(extra=" "), quoted("sasl.jaas.config=" + JAAS.format(
        m="oauthbearer.OAuthBearerLoginModule", k="clientSecret"))),
    "jaas-in-json": Form(chars(extra=" "), as_json("producer.override.sasl.jaas.config", JAAS.format(
        m="plain.PlainLoginModule", k="password").replace("{{s}}", "{s}"))),
    # AWS access key ids
    "aws-akia": Form(string.ascii_uppercase + string.digits, plain("aws.access.key.id=AKIA{s}"), sizes=(16, 16)),
    "aws-asia": Form(string.ascii_uppercase + string.digits,
                     plain("The AWS Access Key Id you provided (ASIA{s}) does not exist"), sizes=(16, 16)),
    # Authorization headers
    "bearer": Form(ALNUM + "-._~+/", plain("Authorization: Bearer {s}")),
    "bearer-padded": Form(ALNUM + "-._~+/", plain("401 bearer {s}== rejected")),
    "basic": Form(chars(extra=" "), basic),
    # PEM private keys, whole or cut
    "pem": Form(chars(extra=" "), pem("PRIVATE KEY", "\n")),
    "pem-rsa-one-line": Form(chars(extra=" "), pem("RSA PRIVATE KEY", " ")),
    "pem-encrypted-json-escaped": Form(chars(extra=" "), pem("ENCRYPTED PRIVATE KEY", "\\n")),
    "pem-ec-cut": Form(chars(extra=" "), pem("EC PRIVATE KEY", "\n", cut=True)),
    "pem-openssh-cut-one-line": Form(chars(extra=" "), pem("OPENSSH PRIVATE KEY", " ", cut=True)),
    # Kafka's ConfigException quotes the value
    "invalid-value": Form(chars('"'), plain("Invalid value {s} for configuration connection.password: bad")),
}

BLANK = "\x00"  # stands for the secret in the text without one


@dataclass(frozen=True)
class Case:
    text: str
    pieces: list[str]  # the secret as written in the text
    blank: str  # the same text with BLANK for the secret


NOISE = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="*\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
                max_size=30)


@st.composite
def planted(draw: st.DrawFn) -> Case:
    """The text, the pieces of the secret as written in it, and the same text without a secret."""
    name = draw(st.sampled_from(sorted(FORMS)))
    form = FORMS[name]
    low, high = form.sizes
    secret = draw(st.text(alphabet=form.alphabet, min_size=low, max_size=high))
    assume(secret == secret.strip() and secret[:1] not in form.first)
    text, pieces = form.build(secret)
    prefix, suffix = draw(NOISE), draw(NOISE)
    assume(not any(r in prefix or r in suffix for r in runs(pieces)))  # the noise holds no part of the secret
    return Case(f"{prefix} {text} {suffix}", pieces, f"{prefix} {form.build(BLANK)[0]} {suffix}")


def runs(pieces: list[str]) -> set[str]:
    return {p[i:i + 4] for p in pieces for i in range(len(p) - 3)}


def leaks(case: Case, outputs: list[str], boilerplate: list[str]) -> list[str]:
    """The 4-character runs of the secret that some output still holds; those the text holds outside the secret,
    or the outputs of the text without a secret hold (``boilerplate``: a timestamp's "0000"), are not the secret's."""
    foreign = "\x00".join([case.blank, *boilerplate])
    return sorted({r for r in runs(case.pieces) for out in outputs if r in out and r not in foreign})


class _Events(KubeEvents):
    """The Event body only: nothing is posted (``event`` builds the body ``__call__`` queues)."""

    def __init__(self) -> None:  # no thread, no session
        self.pod = PodRef("connect-0", "default")
        self.clock = lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def outputs_of(text: str) -> list[str]:
    """What every output path that redacts makes of ``text``."""
    out = [redact(text), trace_line(text + "\n\tat x.y(Z.java:1)", "redacted") or ""]
    out.append(Reply(500, {"error_code": 500, "message": text}).error_message())
    out += apply_mod.validation_errors("c", Declared("c", {"connector.class": "X"}), Reply(200, {
        "name": "X", "error_count": 1, "configs": [{"value": {"name": "connection.url", "errors": [text]}}]}))
    out.append(json.dumps(model.Verdict(False, (text,), (text,)).body()))
    record = logging.LogRecord("connect_health", logging.WARNING, __file__, 1, "poll failed: %s", (text,), None)
    record.created = 0.0  # a fixed timestamp: the boilerplate of every output is the same
    out.append(cli._JsonFormatter().format(record))
    out.append(cli._RedactingFormatter("%(levelname)s %(name)s: %(message)s").format(record))
    out.append(json.dumps(_Events().event("Warning", "LivenessFailing", text)))
    return out


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=planted())
def test_no_run_of_a_planted_secret_survives_any_output(case: Case) -> None:
    found = leaks(case, outputs_of(case.text), outputs_of(case.blank))
    assert not found, (case.text, found, redact(case.text))


def test_the_sql_server_url_of_the_issue() -> None:
    """Issue 18, item 8: the URL rule took "db:1433;...;password=Pr0d" for user info and left "@Secret99"."""
    text = "Login failed: jdbc:sqlserver://db:1433;databaseName=x;user=sa;password=Pr0d@Secret99"
    assert redact(text) == "Login failed: jdbc:sqlserver://db:1433;databaseName=x;user=sa;password=***"


@pytest.mark.parametrize("text", ["credent\u0130al=hunter22", "credent\u0131al=hunter22", "pa\u017f\u017fword=hunter22",
                                  "PASSWORD=hunter22", "\u0130nvalid value hunter22 for configuration a.password",
                                  "Authorization: BEARER hunter22", "jdbc:ORACLE:thin:scott/hunter22@db:1521:X"])
def test_keys_in_any_case_the_regex_engine_matches(text: str) -> None:
    """redact() skips a rule when the text holds none of its words; that look-up folds case exactly as widely as
    the patterns' IGNORECASE (which matches the dotted and dotless i and the long s with i and s)."""
    assert "hunter22" not in redact(text), redact(text)


@pytest.mark.parametrize("name", sorted(FORMS))
def test_each_form_is_masked_with_a_fixed_secret(name: str) -> None:
    """One plain case per form, so that a form whose strategy hypothesis rarely draws still fails loudly."""
    form = FORMS[name]
    size = max(form.sizes[0], min(24, form.sizes[1]))
    secret = "".join(form.alphabet[i * 7 % len(form.alphabet)] for i in range(3, 3 + size)).strip()  # every kind
    while secret[:1] in form.first:
        secret = secret[1:]
    text, pieces = form.build(secret)
    case = Case(text, pieces, form.build(BLANK)[0])
    found = leaks(case, outputs_of(text), outputs_of(case.blank))
    assert not found, (text, found, redact(text))


# --- the same secrets through a Connect worker's answers: /status JSON and HTML, the probes, check -----------------

@pytest.fixture(scope="module")
def worker() -> Iterator[FakeConnect]:
    server = FakeConnect().start()
    try:
        yield server
    finally:
        server.stop()


def failing(text: str) -> dict[str, object]:
    """A connector whose task FAILED with ``text`` as its trace, on the sidecar's own worker."""
    here = "10.0.0.7:8083"
    return {"jdbc-sink": {
        "status": {"name": "jdbc-sink", "type": "sink", "connector": {"state": "RUNNING", "worker_id": here},
                   "tasks": [{"id": 0, "state": "FAILED", "worker_id": here,
                              "trace": f"org.apache.kafka.connect.errors.ConnectException: {text}\n\tat x(Y.java:1)"}]},
        "info": {"name": "jdbc-sink", "type": "sink", "config": {"connector.class": "JdbcSink"}, "tasks": []}}}


def pages_of(worker: FakeConnect, text: str) -> list[str]:
    from connect_health.app import build
    from connect_health.config import ConnectSettings, ServeSettings

    from .conftest import health

    worker.route("GET", "/", Answer(200, ROOT))
    worker.route("GET", "/health", Answer(503, {"status": "starting", "message": text}))
    worker.connectors(Answer(200, failing(text)))
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(cli._RedactingFormatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    now = [1000.0]
    sidecar = build(ServeSettings(connect=ConnectSettings(url=worker.url, request_timeout=2),
                                  health=health(restart_attempts=0, grace=0.0)), clock=lambda: now[0])
    sidecar.app.config["TESTING"] = True
    pages: list[str] = []
    try:
        client = sidecar.app.test_client()
        sidecar.poller.poll_once()
        for path in ("/livez", "/readyz", "/startupz", "/status"):
            pages.append(client.get(path).get_data(as_text=True))
        worker.route("GET", "/health", Answer(200, {"status": "healthy", "message": "ok"}))
        now[0] += 600
        sidecar.poller.poll_once()
        worker.connectors(Answer(500, {"error_code": 500, "message": text}))
        now[0] += 1
        sidecar.poller.poll_once()
        now[0] += 600
        worker.connectors(Answer(200, failing(text)))
        sidecar.poller.poll_once()
        for path in ("/livez", "/readyz", "/startupz", "/status", "/metrics"):
            pages.append(client.get(path).get_data(as_text=True))
        pages.append(client.get("/status", headers={"Accept": "text/html"}).get_data(as_text=True))
    finally:
        sidecar.stop()
        root.removeHandler(handler)
    saved = root.handlers[:], root.level
    try:
        for output in ("table", "json"):
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                cli.main(["check", "--connect-url", worker.url, "--worker-id", "10.0.0.7:8083", "--output", output])
            pages += [stdout.getvalue(), stderr.getvalue()]
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    pages.append(logs.getvalue())
    return pages


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                 HealthCheck.function_scoped_fixture])
@given(case=planted())
def test_no_run_of_a_planted_secret_reaches_status_probes_or_check(worker: FakeConnect,
                                                                    case: Case) -> None:
    text = case.text
    pages = pages_of(worker, text)
    # the three carriers are shown: the task's trace, the 500's message, the starting worker's message ...
    assert any("| org.apache.kafka.connect.errors.ConnectException: " in p for p in pages)  # check's table
    assert any("GET /connectors answered 500: " in p for p in pages)
    assert any("worker starting: starting: " in p for p in pages)
    # Pages carry numbers that change between polls (ages, durations): runs of digits alone are left out.
    found = [r for r in leaks(case, pages, pages_of(worker, case.blank))
             if not re.fullmatch(r"[0-9.:+-]+", r)]
    assert not found, (text, found)  # ... without the secret


# --- linear time -------------------------------------------------------------------------------------------------

ADVERSARIAL = [
    "password=" * 3000, "a.password" * 3000, "jdbc:sqlserver://a;password=" * 1000, "?password=&" * 2500,
    "https://u:" + "@" * 20000, "mongodb://" + "a:" * 10000, "x://a:b" + "@a" * 10000, "bob:" + "p@" * 10000,
    "-----BEGIN PRIVATE KEY-----" * 1000, "-----BEGIN RSA PRIVATE KEY-----" + "A" * 30000,
    "A" * 30000 + "-----END", "AKIA" * 8000, "Bearer " * 4000, 'password="' + "\\" * 30000,
    "{connection.password={" * 2000, "jdbc:oracle:thin:a/" * 2000, "jdbc:oracle:thin:a/\"" + "@" * 30000,
    "Invalid value " * 3000, "password: " + ", " * 15000, "sasl.jaas.config=" * 2000, "password" * 4000,
    "pwd " * 8000, "token\"" * 6000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[f"{t[:24]!r}x{len(t)}" for t in ADVERSARIAL])
def test_redaction_stays_linear_on_adversarial_input(text: str) -> None:
    """About 30,000 characters each (7 times the 4,096 a trace is kept to): a pattern that backtracks
    quadratically spends ~10^9 steps here, an exponential one never ends, and the suite hangs visibly. No time is
    asserted (timings are noisy); the patterns are kept linear by construction (see redact.py)."""
    assert isinstance(redact(text), str)
    assert trace_line(text, "redacted") is not None
