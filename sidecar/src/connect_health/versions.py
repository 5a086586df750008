"""Which Apache Kafka release a Connect worker runs, read from its own answer to ``GET /`` (``{"version": ...}``).

Apache Kafka reports its own version (``3.6.2``, ``4.1.0``, ``3.6.0.redhat-00005``). Confluent Platform reports
its own release with a ``-ccs`` (community) or ``-ce`` (enterprise) suffix, which names another Kafka: CP 7.4 ships
Kafka 3.4, so reading ``7.4.0-ccs`` as Kafka 7.4 sends calls the worker does not have (``PUT .../stop`` needs 3.5).
The mapping, from Confluent's "Supported Versions and Interoperability" table and its changelogs (CP 7.3.14 ships
"netty 4.1.125 in 3.3", CP 8.0.4 "jetty 12.0.32 in 4.0"):

==========  ===========  =================================
CP          Kafka        rule
==========  ===========  =================================
5.0 - 5.5   2.0 - 2.5    (2, minor)
6.0 - 6.2   2.6 - 2.8    (2, minor + 6)
7.0 - 7.9   3.0 - 3.9    (3, minor)
8.x         4.x          (4, minor)
==========  ===========  =================================

A Confluent release outside the table reads as unknown (None): callers then try a call and fall back when the worker
answers that it lacks it, rather than guess.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"\s*v?(\d+)\.(\d+)")
_CONFLUENT = re.compile(r"-c(?:cs|e)(?![a-z0-9])", re.IGNORECASE)
# Confluent Platform major -> (Kafka major, what to add to the minor)
_CONFLUENT_TO_KAFKA = {5: (2, 0), 6: (2, 6), 7: (3, 0), 8: (4, 0)}
_LAST_MINOR = {5: 5, 6: 2, 7: 9}  # the last minor of each finished CP line


def kafka_version(version: str) -> tuple[int, int] | None:
    """(major, minor) of the Kafka release a worker's ``GET /`` version names; None when it names none."""
    match = _VERSION.match(version)
    if match is None:
        return None
    major, minor = int(match[1]), int(match[2])
    if not _CONFLUENT.search(version):
        return major, minor
    if major not in _CONFLUENT_TO_KAFKA or minor > _LAST_MINOR.get(major, minor):
        return None
    kafka_major, shift = _CONFLUENT_TO_KAFKA[major]
    return kafka_major, minor + shift


def describe(version: str) -> str:
    """``7.4.0-ccs`` -> ``Kafka 3.4 (the worker reports 7.4.0-ccs)``; ``3.6.2`` -> ``Kafka 3.6.2``."""
    kafka = kafka_version(version)
    if kafka is None:
        return f"an unknown Kafka (the worker reports {version!r})"
    if _CONFLUENT.search(version):
        return f"Kafka {kafka[0]}.{kafka[1]} (the worker reports {version})"
    return f"Kafka {version}"
