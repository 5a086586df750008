#!/usr/bin/env python3
"""make release: push the sidecar image, then the chart pinned to the pushed image's digest, and sign both.

    python ci/release.py --registry HOST[:PORT]/ORG --version X.Y.Z (--image LOCAL_IMAGE | --pushed-digest DIGEST)
                         [--cosign-key cosign.key | keyless] [--plain-http auto|yes|no] [--output release.json]

1. ``buildah push`` LOCAL_IMAGE (built by ``make image VERSION=X.Y.Z``) to ``HOST[:PORT]/ORG/connect-health:X.Y.Z``
   and read the digest the registry stored (``--digestfile``);
2. copy charts/kafka-connect to a temporary directory (the source tree is never modified) and stamp the copy:
   ``healthcheck.image.{repository,tag,digest}`` in values.yaml (comments kept, so ``helm show values`` still
   documents them), Chart.yaml ``version`` (chart and image versions move together) and the connect-health entry of
   Artifact Hub's ``artifacthub.io/images``; ``appVersion`` stays the Kafka version of the Connect image, as the
   chart defines it;
3. ``helm package`` the copy and ``helm push`` it to ``oci://HOST[:PORT]/ORG/charts``;
4. ``cosign sign`` both by digest: with ``--cosign-key`` (password in COSIGN_PASSWORD; no transparency log upload,
   for registries off the internet) or keyless (the release workflow's OIDC identity, logged in Rekor);
5. print what it pushed, with digests (and write them as JSON to ``--output``).

Loopback registries (127.0.0.1, localhost) are spoken to over plain HTTP (``--plain-http auto``).
Bad arguments: one line and exit 2; a failing step: one line naming the step and its tool's last words, exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"
CHART = ROOT / "charts" / "kafka-connect"
IMAGE_NAME = "connect-health"
CHART_NAME = "kafka-connect"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
# host[:port]/path, the path lowercase as OCI repository names must be.
REGISTRY = re.compile(r"^(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d{1,5}))?"
                      r"(?P<path>(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)$")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
LOOPBACK = ("localhost", "127.0.0.1")


class ReleaseError(Exception):
    """A step failed; str() is the one line to print."""


def usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.print_usage(sys.stderr)
    print(f"release: {message}", file=sys.stderr)
    raise SystemExit(2)


def tool(name: str, *aliases: str) -> str:
    """.tools/bin/<name> (make tools), else name or one of its aliases on PATH (helm3 is `helm` elsewhere)."""
    path = BIN / name
    if path.exists():
        return str(path)
    for candidate in (name, *aliases):
        found = shutil.which(candidate)
        if found:
            return found
    raise ReleaseError(f"{name} not found: run `make tools` (and `bash ci/system-deps.sh` for buildah)")


def run(cmd: Sequence[str], what: str, env: Mapping[str, str] | None = None, timeout: float = 600) -> str:
    """Run cmd; its stdout+stderr, or ReleaseError naming the step with the tool's last lines."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise ReleaseError(f"{what}: no answer within {timeout:.0f} s") from None
    out = (r.stdout or "") + (r.stderr or "")
    if r.returncode != 0:
        last = " | ".join(line.strip() for line in out.strip().splitlines()[-3:]) or "no output"
        raise ReleaseError(f"{what} failed (exit {r.returncode}): {last}")
    return out


def container_env() -> dict[str, str]:
    """The container storage and podman settings of ci/image/env.sh (where `make image` put the image)."""
    out = run(["bash", str(ROOT / "ci" / "image" / "env.sh"), "--print"], "reading ci/image/env.sh")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def push_image(local: str, ref: str, plain_http: bool, workdir: Path) -> str:
    """buildah push local -> ref; the digest of the manifest the registry stored."""
    digestfile = workdir / "image.digest"
    cmd = [tool("buildah"), "push", "--quiet", "--format", "oci", "--digestfile", str(digestfile)]
    if plain_http:
        cmd.append("--tls-verify=false")
    run([*cmd, local, f"docker://{ref}"], f"pushing the image {local} to {ref}", env=container_env())
    digest = digestfile.read_text().strip()
    if not DIGEST.fullmatch(digest):
        raise ReleaseError(f"pushing the image: buildah wrote no sha256 digest ({digest!r})")
    return digest


def stamp_values(text: str, repository: str, tag: str, digest: str) -> str:
    """values.yaml with healthcheck.image.{repository,tag,digest} set, every other line (and comment) kept."""
    lines = text.splitlines(keepends=True)
    wanted = {"repository": repository, "tag": tag, "digest": digest}
    section: list[str] = []  # the path of keys down to the current line
    done: set[str] = set()
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z0-9_]+):(.*)$", line.rstrip("\n"))
        if not m or line.lstrip().startswith("#"):
            continue
        depth = len(m.group(1)) // 2
        section = [*section[:depth], m.group(2)]
        if section[:2] == ["healthcheck", "image"] and len(section) == 3 and section[2] in wanted:
            key = section[2]
            lines[i] = f"{m.group(1)}{key}: {json.dumps(wanted[key])}\n"
            done.add(key)
    missing = set(wanted) - done
    if missing:
        raise ReleaseError(f"stamping values.yaml: healthcheck.image.{sorted(missing)[0]} not found in the chart")
    out = "".join(lines)
    image = yaml.safe_load(out)["healthcheck"]["image"]
    if {k: image.get(k) for k in wanted} != wanted:
        raise ReleaseError(f"stamping values.yaml: read back {image}, wanted {wanted}")
    return out


def stamp_chart(src: Path, dest: Path, version: str, repository: str, digest: str) -> Path:
    """A copy of the chart at dest with the release stamped in (see the module docstring)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.tgz", "charts"))
    values = dest / "values.yaml"
    values.write_text(stamp_values(values.read_text(), repository, version, digest))
    chart_file = dest / "Chart.yaml"
    chart: dict[str, Any] = yaml.safe_load(chart_file.read_text())
    chart["version"] = version
    annotations: dict[str, str] = chart.setdefault("annotations", {}) or {}
    images = yaml.safe_load(annotations.get("artifacthub.io/images", "") or "[]") or []
    images = [i for i in images if i.get("name") != IMAGE_NAME]
    images.append({"name": IMAGE_NAME, "image": f"{repository}:{version}@{digest}"})
    annotations["artifacthub.io/images"] = yaml.safe_dump(images, sort_keys=False)
    chart["annotations"] = annotations
    chart_file.write_text("# Stamped by ci/release.py from charts/kafka-connect/Chart.yaml\n"
                          + yaml.safe_dump(chart, sort_keys=False, width=120))
    return dest


def push_chart(chart_dir: Path, repo: str, plain_http: bool, workdir: Path, version: str) -> str:
    """helm package + helm push to oci://repo; the digest of the chart's manifest."""
    helm = tool("helm3", "helm")
    out_dir = workdir / "package"
    run([helm, "package", str(chart_dir), "--destination", str(out_dir)], "helm package")
    package = out_dir / f"{CHART_NAME}-{version}.tgz"
    if not package.exists():
        raise ReleaseError(f"helm package wrote no {package.name}")
    cmd = [helm, "push", str(package), f"oci://{repo}"] + (["--plain-http"] if plain_http else [])
    out = run(cmd, f"helm push to oci://{repo}")
    m = re.search(r"Digest:\s*(sha256:[0-9a-f]{64})", out)
    if not m:
        raise ReleaseError(f"helm push printed no digest: {out.strip()[-200:]}")
    return m.group(1)


def sign(ref: str, key: str | None, plain_http: bool) -> None:
    """cosign sign ref (a digest reference): with a key pair, or keyless (OIDC, the release workflow)."""
    cmd = [tool("cosign"), "sign", "--yes"]
    if key:
        # A key pair is for registries off the internet: no Rekor entry (verify with --insecure-ignore-tlog).
        cmd += ["--key", key, "--tlog-upload=false"]
    if plain_http:
        cmd.append("--allow-http-registry")
    run([*cmd, ref], f"cosign sign {ref}", env={"COSIGN_PASSWORD": os.environ.get("COSIGN_PASSWORD", "")})


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="release.py", description="Push and sign the sidecar image and the chart.")
    p.add_argument("--registry", required=True, help="HOST[:PORT]/ORG the image and chart go to")
    p.add_argument("--version", required=True, help="the release's SemVer, for the image tag and the chart")
    p.add_argument("--image", help="the local image to push (make image VERSION=...); without it: check arguments")
    p.add_argument("--pushed-digest", default="",
                   help="the image is already at REGISTRY/connect-health:VERSION with this digest (the release "
                        "workflow pushes a multi-arch image with docker buildx): stamp, push and sign from there")
    p.add_argument("--cosign-key", default="", help="cosign private key file; empty: keyless (OIDC)")
    p.add_argument("--plain-http", choices=("auto", "yes", "no"), default="auto",
                   help="speak plain HTTP to the registry (auto: for loopback hosts)")
    p.add_argument("--output", help="write what was pushed, with digests, as JSON to this file")
    args = p.parse_args(argv)
    if not args.registry:
        usage_error(p, "REGISTRY is empty: make release REGISTRY=host[:port]/org VERSION=x.y.z")
    m = REGISTRY.match(args.registry)
    if not m:
        usage_error(p, f"REGISTRY {args.registry!r} is not host[:port]/org (lowercase org, e.g. ghcr.io/acme)")
    if not SEMVER.match(args.version or ""):
        usage_error(p, f"VERSION {args.version!r} is not a SemVer x.y.z (e.g. 0.2.0)")
    if args.pushed_digest and not DIGEST.fullmatch(args.pushed_digest):
        usage_error(p, f"--pushed-digest {args.pushed_digest!r} is not sha256:<64 hex digits>")
    if args.pushed_digest and args.image:
        usage_error(p, "give either --image (push it) or --pushed-digest (already pushed), not both")
    if args.cosign_key and not Path(args.cosign_key).is_file():
        usage_error(p, f"--cosign-key {args.cosign_key}: no such file")
    args.plain = args.plain_http == "yes" or (args.plain_http == "auto" and m.group("host") in LOOPBACK)
    return args


def release(args: argparse.Namespace) -> dict[str, Any]:
    registry = args.registry.rstrip("/")
    image_repo = f"{registry}/{IMAGE_NAME}"
    charts_repo = f"{registry}/charts"
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        work = Path(tmp)
        if args.pushed_digest:
            image_digest = args.pushed_digest
        else:
            image_digest = push_image(args.image, f"{image_repo}:{args.version}", args.plain, work)
        print(f"release: image {image_repo}:{args.version}@{image_digest}", flush=True)
        chart_dir = stamp_chart(CHART, work / CHART_NAME, args.version, image_repo, image_digest)
        chart_digest = push_chart(chart_dir, charts_repo, args.plain, work, args.version)
        print(f"release: chart oci://{charts_repo}/{CHART_NAME}:{args.version}@{chart_digest}", flush=True)
    signed = [f"{image_repo}@{image_digest}", f"{charts_repo}/{CHART_NAME}@{chart_digest}"]
    for ref in signed:
        sign(ref, args.cosign_key or None, args.plain)
    how = f"key {args.cosign_key}" if args.cosign_key else "keyless (OIDC)"
    print(f"release: signed both with cosign, {how}", flush=True)
    return {
        "version": args.version,
        "image": {"repository": image_repo, "tag": args.version, "digest": image_digest},
        "chart": {"reference": f"oci://{charts_repo}/{CHART_NAME}", "version": args.version, "digest": chart_digest},
        "signed": signed,
        "plainHttp": args.plain,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.image and not args.pushed_digest:
        return 0  # arguments checked (make release runs this before it builds the image)
    try:
        result = release(args)
    except ReleaseError as e:
        print(f"release: {e}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
