"""Masking of secrets in text that leaves the sidecar (traces, reasons, logs, Events, ``apply``'s output).

Connect traces carry exception messages, and those quote JDBC URLs, ``password=...`` pairs, JAAS configs, keys and
tokens. Only the first line of a trace is kept, and the forms below are masked in it; every other output path
(probe reasons, ``/status``, ``check``, ``apply``, both log formats, Events) goes through :func:`redact` too.

The forms, in the order they are masked (an earlier form must not eat part of a later one's secret):

1. PEM private keys: the whole block, from ``-----BEGIN ... PRIVATE KEY-----`` to its END line or, when the text
   was cut inside it, to the end; a cut text holding only the tail of a block loses the tail before the END line.
2. Kafka's ``Invalid value X for configuration <secret key>``.
3. ``user:password@host`` in URLs (``jdbc:mysql://``, ``mongodb+srv://``, ``amqp://``, ``https://`` ...): the
   password runs to the last ``@`` of the authority (a raw ``@`` or ``#`` in a password is common), never past
   ``/``, ``?`` or a space, which end the authority. SQL Server URLs have no user info: their ``;key=value``
   pairs are left to (5).
4. ``user/password@`` in Oracle URLs, the password double-quoted or up to the ``@``.
5. Pairs whose key names a secret (``password``, ``pwd``, ``secret``, ``token``, ``credential``, ``jaas`` ...):
   after ``;`` (SQL Server, ODBC-style strings) the value runs to the next ``;`` (spaces included) or is braced
   (``{...}``, ``}}`` an escaped brace); after ``?``/``&`` (a query string) to the next ``&``, ``#``, space or quote;
   elsewhere it is a quoted string (backslash escapes honoured: JAAS and JSON), braced, or runs to a space, a quote
   or ``", "`` (Java's map ``toString``).
6. ``user:password@host`` without a scheme.
7. AWS access key ids (``AKIA``/``ASIA`` + 16), ``Bearer``/``Basic`` credentials.

Linear time, by construction: every repetition is over one character class (or alternatives that start with
different characters), the only unbounded lookaheads are of fixed length, and a pattern that scans a token forward
starts only where that token starts (a lookbehind), so no position is scanned by more than a constant number of
attempts. ``tests/sidecar/test_redact_forms.py`` runs adversarial inputs 7 times longer than a kept trace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MASK = "***"
MAX_LINE = 300

# A key naming a secret contains one of these words (connection.password, ssl.key.passphrase, client_secret,
# basic.auth.user.info, sasl.jaas.config, aws_secret_access_key, ...).
_SECRET_WORD = (r"(?:password|passwd|pwd|secret|token|apikey|api[_.-]key|credential|passphrase|user[_.-]?info"
                r"|jaas)")
# A whole [\w.-]+ token containing such a word; callers anchor its start (lookbehind or a separator) so that the
# lazy scan of the lookahead runs once per token.
_KEY = r"(?=[\w.-]*?" + _SECRET_WORD + r")[\w.-]+"

_PEM = re.compile(r"(?P<begin>-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----)(?:(?!-----END )[\s\S])*"
                  r"(?P<end>-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)?")
# The tail of a block whose BEGIN line was cut off: the base64 run (spaces, newlines and literal \n included) before
# the END line, taken from where the run starts.
_PEM_TAIL = re.compile(r"(?<![A-Za-z0-9+/=\s\\])(?:[A-Za-z0-9+/=\s]|\\n)++(?=-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----)")

_VALUE_ANYWHERE = (
    r"\"(?:\\.|[^\"\\\n])*"  # double-quoted, escapes honoured (the closing quote is kept)
    r"|'(?:\\.|[^'\\\n])*"  # single-quoted
    r"|\\\"(?:(?!\\\")[^\n])*"  # \"...\" : a quoted string inside a JSON string
    r"|\{[^}\n]*\}?"  # braced
    r"|(?:[^\s\",]|,(?!\s))+"  # up to a space, a quote or ", "
)

_PAIRS = re.compile(
    # ;key=value (SQL Server, ODBC): to the next ";", braced values may hold ";" and "}}"
    r"(?P<semi>;\s*" + _KEY + r"\s*=\s*)(?P<semival>(?:\{(?:[^}\n]|\}\})*\}?)?[^;\n]*)"
    # ?key=value&... (a query string): to &, #, a space or a quote
    r"|(?P<query>[?&]" + _KEY + r"=)(?P<queryval>[^&#\s\"]*)"
    # key=value, key: value, "key": "value" anywhere else
    r"|(?P<pair>(?<![\w.-])" + _KEY + r"[\"']?\s*[=:]\s*)(?P<val>" + _VALUE_ANYWHERE + ")",
    re.IGNORECASE,
)


def _pair(match: re.Match[str]) -> str:
    if match["semi"] is not None:
        return match["semi"] + MASK
    if match["query"] is not None:
        return match["query"] + MASK
    value = match["val"]
    opening = "\\\"" if value.startswith("\\\"") else value[0] if value[0] in "\"'" else ""
    return match["pair"] + opening + MASK


# A text that holds none of a rule's needles (``folded``: looked for in the case-folded text) cannot match it, and
# is not scanned by it: most reasons and traces hold no secret form at all, and Python's case-insensitive
# alternations cost about a microsecond a character. Masking never creates a needle (a mask is "***").
_WORDS = ("password", "passwd", "pwd", "secret", "token", "apikey", "api_key", "api.key", "api-key", "credential",
          "passphrase", "userinfo", "user_info", "user.info", "user-info", "jaas")
# what follows a secret word in a pair's key: the rest of the key, then a closing quote, spaces, and = or :
_KEY_REST = re.compile(r"[^\s\"'=:]*")
_SEPARATOR = re.compile(r"[\"']?\s*[=:]")


def _has_pair(folded: str) -> bool:
    """Whether a secret word is followed by what ends a key (a necessary condition of ``_PAIRS``), in linear time:
    every occurrence of a word inside the same key ends where that key ends, so the search goes on from there."""
    for word in _WORDS:
        at = folded.find(word)
        while at >= 0:
            match = _KEY_REST.match(folded, at + len(word))
            end = match.end() if match else at + len(word)
            if _SEPARATOR.match(folded, end):
                return True
            at = folded.find(word, end)
    return False


_Replacement = str | Callable[[re.Match[str]], str]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    repl: _Replacement
    needles: tuple[str, ...] = ()  # the text must hold one of these ...
    folded: tuple[str, ...] = ()  # ... or the case-folded text one of these
    pairs: bool = False  # ... or a secret word followed by = or :

    def applies(self, text: str, folded: str) -> bool:
        return (any(n in text for n in self.needles) or any(n in folded for n in self.folded)
                or (self.pairs and _has_pair(folded)))


def _pem(match: re.Match[str]) -> str:
    return match["begin"] + MASK + (match["end"] or "")


_RULES: tuple[_Rule, ...] = (
    _Rule(_PEM, _pem, needles=("PRIVATE KEY-----",)),
    _Rule(_PEM_TAIL, MASK, needles=("-----END ",)),
    # Kafka's ConfigException: "Invalid value s3cr3t for configuration connection.password: ..."
    _Rule(re.compile(r"(?i)(?P<pre>\binvalid value )(?!\*\*\*)[^\n]{1,300}?(?= for configuration [\w.-]*"
                     + _SECRET_WORD + ")"), r"\g<pre>" + MASK, folded=("invalid value ",)),
    # user:password@host in a URL with a scheme (not SQL Server's: jdbc:sqlserver://db:1433;user=a@b;password=...)
    # The authority ends at / ? or a space (a raw # in a password is common); the password runs (greedy, then back)
    # to its last @ followed by a host.
    _Rule(re.compile(r"(?P<pre>(?<![a-zA-Z0-9+.-])(?!(?i:sqlserver)://)[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?:@]*:)"
                     r"[^\s/?]+(?=@[^\s/?#@]*(?:[\s/?#]|$))"), r"\g<pre>" + MASK, needles=("://",)),
    # user/password@ in Oracle URLs (jdbc:oracle:thin:scott/tiger@//host:1521/svc, scott/"p@ss word"@host); an
    # unquoted password is at most 128 characters (Oracle allows 30), which bounds the look for its @
    _Rule(re.compile(r"(?i)(?P<pre>\bjdbc:oracle:\w+:[^/\s@:;\"]+/)(?:\"[^\"\n]*\"?|[^@\s\"]{1,128}(?=@))"),
          r"\g<pre>" + MASK, folded=("jdbc:oracle:",)),
    _Rule(_PAIRS, _pair, pairs=True),
    # user:password@host without a scheme (bob:p@ss@db.internal), the password up to the last @
    _Rule(re.compile(r"(?<![\w.%+/-])(?P<pre>[\w.%+-]{1,64}:)(?!//)[^\s/@:]{1,100}(?:@[^\s/@:]{1,100}){0,5}?"
                     r"(?=@[\w-]+(?:\.[\w-]+)*(?::\d+)?(?:[/\s;,)\]]|$))"), r"\g<pre>" + MASK, needles=("@",)),
    # AWS access key ids (long-lived AKIA, temporary ASIA): the prefix tells which kind, the rest is masked
    _Rule(re.compile(r"(?<![A-Z0-9])(?P<pre>AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"), r"\g<pre>" + MASK,
          needles=("AKIA", "ASIA")),
    # Authorization headers
    _Rule(re.compile(r"(?i)(?P<pre>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"), r"\g<pre>" + MASK,
          folded=("bearer", "basic")),
)


# Case-folding as the regex engine's IGNORECASE matches: casefold() already maps ſ to s and the Kelvin sign to k;
# the engine also matches ı and İ (casefolded to i + U+0307) with i. Deleting U+0307 can only add needles.
_FOLD = str.maketrans({"\u0131": "i", "\u0307": None})


def redact(text: str) -> str:
    folded = text.casefold().translate(_FOLD)
    for rule in _RULES:
        if rule.applies(text, folded):
            text = rule.pattern.sub(rule.repl, text)
    return text


def trace_line(trace: str | None, mode: str) -> str | None:
    """The first line of a trace, redacted and bounded; None when traces are turned off or absent."""
    if not trace or mode == "none":
        return None
    first = trace.strip().splitlines()[0] if trace.strip() else ""
    line = redact(first)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"
