"""Masking of secrets in text that leaves the sidecar (traces, reasons).

Connect traces carry exception messages, and those can quote JDBC URLs, ``password=...`` pairs or bearer tokens.
Only the first line of a trace is kept, and the patterns below are masked in it.
"""

from __future__ import annotations

import re

MASK = "***"
MAX_LINE = 300

# A key naming a secret contains one of these words (connection.password, ssl.key.passphrase, client_secret,
# basic.auth.user.info, sasl.jaas.config, ...).
_SECRET_WORD = (r"(?:password|passwd|pwd|secret|token|apikey|api[_.-]key|credential|passphrase|user[_.-]?info"
                r"|jaas)")

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Kafka's ConfigException: "Invalid value s3cr3t for configuration connection.password: ..."
    (re.compile(r"(?i)(?P<pre>\binvalid value )(?!\*\*\*)[^\n]{1,300}?(?= for configuration [\w.-]*" + _SECRET_WORD
                + ")"), r"\g<pre>" + MASK),
    # user:password@host in any URL (jdbc:postgresql://u:p@h, http://u:p@h), the password up to the last @ before
    # the host (bob:p@ss@host)
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^\s/]{1,200}?(?=@[^@\s/]*(?:[/\s?#;]|$))(?!@[^\s/]*@)"),
     r"\g<pre>" + MASK),
    # user/password@ in Oracle thin JDBC URLs (jdbc:oracle:thin:scott/tiger@//host:1521/svc)
    (re.compile(r"(?i)(?P<pre>\bjdbc:oracle:\w+:[^/\s@:;]+/)[^@\s]+(?=@)"), r"\g<pre>" + MASK),
    # key=value and key: value pairs whose key names a secret
    # (the key is one whole [\w.-]+ token that contains a keyword: linear time, no backtracking blow-up); the value
    # quoted (up to its closing quote, spaces and all), braced ({ab;cd}) or up to a separator
    (re.compile(r"(?i)(?P<key>(?<![\w.-])(?=[\w.-]*?" + _SECRET_WORD + r")[\w.-]+[\"']?\s*[=:]\s*)"
                r"(?:(?P<q>[\"'])(?:(?!(?P=q)).)*|\{[^}\n]{0,300}\}?|[^\s\"',;&)}\]]+)"),
     r"\g<key>\g<q>" + MASK),
    # user:password@host without a scheme (bob:p@ss@db.internal), the password up to the last @
    (re.compile(r"(?<![\w.%+/-])(?P<pre>[\w.%+-]{1,64}:)(?!//)[^\s/@:]{1,100}(?:@[^\s/@:]{1,100}){0,5}?"
                r"(?=@[\w-]+(?:\.[\w-]+)*(?::\d+)?(?:[/\s;,)\]]|$))"), r"\g<pre>" + MASK),
    # Authorization headers
    (re.compile(r"(?i)(?P<pre>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\g<pre>" + MASK),
)


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def trace_line(trace: str | None, mode: str) -> str | None:
    """The first line of a trace, redacted and bounded; None when traces are turned off or absent."""
    if not trace or mode == "none":
        return None
    first = trace.strip().splitlines()[0] if trace.strip() else ""
    line = redact(first)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
