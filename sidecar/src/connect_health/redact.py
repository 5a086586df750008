"""Masking of secrets in text that leaves the sidecar (traces, reasons).

Connect traces carry exception messages, and those can quote JDBC URLs, ``password=...`` pairs or bearer tokens.
Only the first line of a trace is kept, and the patterns below are masked in it.
"""

from __future__ import annotations

import re

MASK = "***"
MAX_LINE = 300

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # user:password@host in any URL (jdbc:postgresql://u:p@h, http://u:p@h)
    (re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"), r"\g<pre>" + MASK),
    # user/password@ in Oracle thin JDBC URLs (jdbc:oracle:thin:scott/tiger@//host:1521/svc)
    (re.compile(r"(?i)(?P<pre>\bjdbc:oracle:\w+:[^/\s@:;]+/)[^@\s]+(?=@)"), r"\g<pre>" + MASK),
    # key=value and key: value pairs whose key names a secret
    # (the key is one whole [\w.-]+ token that contains a keyword: linear time, no backtracking blow-up)
    (re.compile(r"(?i)(?P<key>(?<![\w.-])(?=[\w.-]*?(?:password|passwd|pwd|secret|token|apikey|api[_.-]key"
                r"|credential))[\w.-]+[\"']?\s*[=:]\s*)(?:(?P<q>[\"'])(?:(?!(?P=q)).)*|[^\s\"',;&)}\]]+)"),
     r"\g<key>\g<q>" + MASK),  # a quoted value is masked up to its closing quote, spaces and all
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
