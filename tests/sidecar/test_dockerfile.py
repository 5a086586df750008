"""Key properties of sidecar/Dockerfile, read as text (no Docker engine runs on these machines)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[2] / "sidecar" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, args = buf.partition(" ")
        out.append((keyword.upper(), args.strip()))
        buf = ""
    return out


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions(text):
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for arg in stage.all("ENV"):
        for token in shlex.split(arg):
            key, sep, value = token.partition("=")
            if sep:
                env[key] = value
    return env


def labels_of(stage: Stage) -> dict[str, str]:
    labels: dict[str, str] = {}
    for arg in stage.all("LABEL"):
        for token in shlex.split(arg):
            key, _, value = token.partition("=")
            labels[key] = value
    return labels


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def test_multi_stage_and_the_final_stage_copies_from_the_build(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    names = {s.name for s in stages[:-1] if s.name}
    copies = [c for c in stages[-1].all("COPY") if c.startswith("--from=")]
    assert copies and all(c.split()[0].removeprefix("--from=") in names for c in copies)
    assert not stages[-1].all("RUN") or all("pip install" not in r for r in stages[-1].all("RUN"))


def test_base_images_are_pinned_slim_python(stages: list[Stage]) -> None:
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert "$" not in stage.base, stage.base  # every ARG resolved to a default
        assert image.endswith("python") and tag, stage.base
        assert tag != "latest" and "latest" not in tag
        assert re.match(r"^\d+\.\d+\.\d+-slim", tag) or "@sha256:" in stage.base, stage.base


def test_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage sets no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0
    assert not group or (group.isdigit() and int(group) != 0)


def test_oci_labels(stages: list[Stage]) -> None:
    labels = labels_of(stages[-1])
    for key in ("title", "description", "version", "licenses", "source"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.title"] == "connect-health"


def test_entrypoint_runs_connect_health_serve(stages: list[Stage]) -> None:
    final = stages[-1]
    entry = json.loads(final.all("ENTRYPOINT")[-1])  # exec form, so SIGTERM reaches the process
    cmd = json.loads(final.all("CMD")[-1]) if final.all("CMD") else []
    argv = [*entry, *cmd]
    assert Path(argv[0]).name == "connect-health" and "serve" in argv


def test_environment(stages: list[Stage]) -> None:
    env = env_of(stages[-1])
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert "/opt/connect-health/bin" in env.get("PATH", "")


def test_sidecar_port_is_exposed(stages: list[Stage]) -> None:
    assert "8090" in " ".join(stages[-1].all("EXPOSE"))


def test_the_parser_itself_catches_bad_dockerfiles() -> None:
    bad = "FROM python:latest\nUSER root\nENTRYPOINT connect-health\n"
    _, parsed = parse(bad)
    assert len(parsed) == 1 and parsed[0].base.endswith(":latest")
    assert parsed[0].all("USER") == ["root"] and not parsed[0].all("USER")[0].isdigit()
    args, parsed = parse("ARG IMG=python:3.11.9-slim\nFROM ${IMG} AS build\nFROM $IMG\n")
    assert args == {"IMG": "python:3.11.9-slim"} and [s.base for s in parsed] == ["python:3.11.9-slim"] * 2
    assert parsed[0].name == "build" and parsed[1].name is None
