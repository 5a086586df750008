"""The ``connect-health`` command: the one place that imports http.client before anything else does (issue 22).

http.client imports ssl at once, for its HTTPSConnection: 4.3 MB of RSS (libssl, libcrypto) that a sidecar calling
Connect over plain HTTP never uses. Imported here with ssl held back, http.client has no HTTPSConnection;
transport.py imports ssl when a call first needs TLS (an https Connect URL, the Kubernetes API for Events or the
Lease) and uses its own _TLSConnection. Only the command does this, never an import of the package: a program that
imports connect_health beside urllib.request (whose HTTPSHandler needs HTTPSConnection) is left as it was.
"""

import sys


def http_client_without_ssl() -> None:
    """Import http.client with ssl held back; nothing changes when either is imported already."""
    if "http.client" in sys.modules or "ssl" in sys.modules:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]  # http.client's `import ssl` raises ImportError
    try:
        import http.client  # noqa: F401
    finally:
        del sys.modules["ssl"]


def main(argv: list[str] | None = None) -> int:
    http_client_without_ssl()
    from .cli import main as cli_main

    return cli_main(argv)
