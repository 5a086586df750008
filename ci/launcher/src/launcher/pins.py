"""Where things are, and which versions: the repository, the .tools/ cache and the pins of ci/versions.env.

The cache is <repo>/.tools unless LAUNCHER_TOOLS names another directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def _find_root() -> Path:
    """The checkout this package lives in (installed editable), else the one around the working directory."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / "ci" / "versions.env").is_file():
                return d
    raise SystemExit("launcher: ci/versions.env not found above this package nor the working directory: run it "
                     "from a checkout of the project (make venv installs it from there)")


ROOT = _find_root()
CI = ROOT / "ci"
TOOLS = Path(os.environ.get("LAUNCHER_TOOLS") or str(ROOT / ".tools")).resolve()
LOG_CONFIG = CI / "log-config"
DEFAULT_WORKDIR = TOOLS / "stack"


def pins(path: Path = CI / "versions.env") -> dict[str, str]:
    """The KEY=VALUE pins of ci/versions.env."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


PINS = pins()
KAFKA_VERSION = PINS["KAFKA_VERSION"]
KAFKA_LEGACY_VERSION = PINS["KAFKA_LEGACY_VERSION"]
DEBEZIUM_VERSION = PINS["DEBEZIUM_VERSION"]


def vtuple(version: str) -> tuple[int, ...]:
    """'4.3.1' -> (4, 3, 1): versions compared as numbers."""
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def is_legacy_kafka(version: str) -> bool:
    """Kafka < 4: log4j 1 (reload4j) and Java 8+; 4.x uses log4j2 and needs Java 17."""
    return vtuple(version) < (4,)


def has_health_endpoint(version: str) -> bool:
    """GET /health exists on Connect workers since 3.9 (KIP-1017)."""
    return vtuple(version) >= (3, 9)


def rel(p: str | os.PathLike[str]) -> str:
    """p relative to the repository when it is inside it (for messages), else as it is."""
    path = Path(p)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
