"""What keeps the stack from running, as exceptions whose attributes say what happened.

str() of each is the line a person reads (what is wrong, what to do); callers that react differently read the
attributes (``PortInUse.port`` and ``.flag``, ``MissingTool.tool``, ...), never the text.
"""

from __future__ import annotations

from pathlib import Path


class StackError(Exception):
    """Anything that keeps the stack from running. str() is one line saying what to do (plus a log tail)."""


class PortInUse(StackError):
    """Something already listens on 127.0.0.1:port, which `what` needs; `flag` is the option that moves it."""

    def __init__(self, port: int, what: str, flag: str) -> None:
        self.port, self.what, self.flag = port, what, flag
        super().__init__(f"port {port} on 127.0.0.1 ({what}) is in use: stop whatever listens there "
                         f"(ss -ltnp 'sport = :{port}') or choose another port ({flag})")


class MissingTool(StackError):
    """A program the stack needs (java, mvn, PostgreSQL, connect-health) is not installed; `hint` says how."""

    def __init__(self, tool: str, hint: str) -> None:
        self.tool, self.hint = tool, hint
        super().__init__(f"{tool} not found: {hint}" if hint else f"{tool} not found")


class JavaTooOld(MissingTool):
    """Kafka `kafka_version` needs Java `needed`; the java on PATH is `found`."""

    def __init__(self, java: str, found: int, needed: int, kafka_version: str) -> None:
        self.tool, self.found, self.needed, self.kafka_version = java, found, needed, kafka_version
        self.hint = f"install openjdk-{needed}-jdk-headless and put it first on PATH"
        StackError.__init__(self, f"Kafka {kafka_version} needs Java {needed} or newer, found Java {found} at "
                                  f"{java}: {self.hint}")


class NotFetched(StackError):
    """`what` is not in the cache at `where`; `command` fetches it."""

    def __init__(self, what: str, where: Path, command: str) -> None:
        self.what, self.where, self.command = what, where, command
        super().__init__(f"{what} not found in {where}: run `make kafka` (or {command})")


class FetchFailed(StackError):
    """Maven could not deliver `what`; `reason` is its first error line, `log` the full log."""

    def __init__(self, what: str, reason: str, log: Path | None = None) -> None:
        self.what, self.reason, self.log = what, reason, log
        where = f" (full log: {log})" if log else ""
        super().__init__(f"fetching {what} failed: {reason}; check access to Maven Central and run `make kafka` "
                         f"again{where}")


class TimedOut(StackError):
    """wait_until gave up after `seconds` waiting for `what`."""

    def __init__(self, what: str, seconds: float, last_error: BaseException | None = None) -> None:
        self.what, self.seconds, self.last_error = what, seconds, last_error
        extra = f" (last error: {last_error})" if last_error else ""
        super().__init__(f"timed out after {seconds:.0f}s waiting for {what}{extra}")


class ServiceFailed(StackError):
    """Service `service` did not start, or exited: `reason`, then the last lines of its `log`."""

    def __init__(self, service: str, reason: str, log: Path, tail: str) -> None:
        self.service, self.reason, self.log, self.tail = service, reason, log, tail
        super().__init__(f"{service}: {reason}; last lines of {log}:\n{tail}")
