# One entry point for people and CI. Everything fetched or built goes under .tools/ (ignored).
SHELL := /bin/bash
ROOT := $(abspath .)
TOOLS := $(ROOT)/.tools
VENV := $(TOOLS)/venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PATH := $(TOOLS)/bin:$(VENV)/bin:$(PATH)
include ci/versions.env
export

.PHONY: help venv tools kafka image release test test-unit test-chart test-integration lint demo demo-break demo-heal demo-stall demo-misconfig demo-stop bench faults docs docs-site clean

help:
	@echo "make demo   - run Kafka, a Connect worker and connect-health locally (127.0.0.1), no cluster needed"
	@echo "  then, from another terminal: make demo-break (the sink fails: restart ladder, then /livez 503),"
	@echo "  make demo-misconfig (a failure only a person fixes: its class and hint, one restart, no 503),"
	@echo "  make demo-heal (undoes either), make demo-stall (a stalled sink), make demo-stop"
	@echo "make test   - install what the tests need (cached in .tools/) and run every suite"
	@echo "make lint   - ruff + mypy strict (sidecar, launcher, bench, tests), helm lint, actionlint, shellcheck"
	@echo "make bench  - benchmarks (probe latency, RSS, REST calls per poll, helm template time)"
	@echo "make faults - faults on a real stack, connect-health beside kafka-connect-healthcheck 0.3.0 (bench/FAULTS.md)"
	@echo "make docs   - regenerate the chart README with helm-docs"
	@echo "make docs-site - build the docs site (MkDocs, strict) from docs/ into .tools/site"
	@echo "make image  - build the sidecar image with buildah on a local Debian base (IMAGE=..., VERSION=...)"
	@echo "make release REGISTRY=host[:port]/org VERSION=x.y.z - push image + chart (digest-pinned), sign both"
	@echo "make e2e    - the chart on a real single-node Kubernetes built from source: the kubelet on the probes (root)"
	@echo "make cluster-up / cluster-down - a single-node Kubernetes under .tools/cluster/ (root; ci/cluster.mk)"

# The venv is rebuilt when the pins change; the sidecar and the launcher (ci/launcher) are installed editable so
# tests, demo and bench see the working tree.
$(VENV)/.stamp: sidecar/pyproject.toml ci/launcher/pyproject.toml ci/requirements-test.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r ci/requirements-test.txt -e sidecar -e ci/launcher
	@touch $@
venv: $(VENV)/.stamp

tools:
	@bash ci/tools.sh

kafka: venv
	@$(PY) -m launcher fetch --kafka $(KAFKA_VERSION) --kafka $(KAFKA_LEGACY_VERSION) --debezium
	@$(PY) -m launcher.jmx_exporter

# The sidecar image: sidecar/Dockerfile built by buildah on a local Debian bookworm base whose python3 is 3.11
# (no public registry is reachable here; the Dockerfile's default base stays python:3.11-slim). See ci/image/.
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' sidecar/pyproject.toml)
IMAGE ?= localhost/connect-health:$(VERSION)
SIDECAR_BASE_PACKAGES := python3 python3-venv python-is-python3 ca-certificates
image:
	@bash ci/system-deps.sh
	@bash ci/image/build.sh --tag $(IMAGE) --dockerfile sidecar/Dockerfile --context sidecar \
	  --base connect-health-python --base-arg PYTHON_IMAGE $(addprefix --package ,$(SIDECAR_BASE_PACKAGES)) \
	  --build-arg VERSION=$(VERSION) --label org.opencontainers.image.version=$(VERSION)

# A release: the image pushed, the chart stamped with its digest and pushed to oci://$(REGISTRY)/charts, both signed
# with cosign (COSIGN_KEY=cosign.key, password in COSIGN_PASSWORD; empty: keyless). ci/release.py says more.
REGISTRY ?=
COSIGN_KEY ?=
release: venv
	@$(PY) ci/release.py --registry "$(REGISTRY)" --version "$(VERSION)"
	@$(MAKE) --no-print-directory tools image VERSION=$(VERSION) IMAGE=localhost/connect-health:$(VERSION)
	@$(PY) ci/release.py --registry "$(REGISTRY)" --version "$(VERSION)" --image localhost/connect-health:$(VERSION) \
	  --cosign-key "$(COSIGN_KEY)" $(if $(RELEASE_OUTPUT),--output "$(RELEASE_OUTPUT)")

test: venv tools kafka lint
	bash ci/system-deps.sh
	$(PY) -m pytest tests

test-unit: venv
	$(PY) -m pytest tests/sidecar

test-chart: venv tools
	$(PY) -m pytest tests/chart

test-integration: venv kafka
	$(PY) -m pytest tests/integration

# mypy strict: the two packages with their own settings, then bench and tests with the root pyproject's. Test
# folders without __init__.py each have a top-level `conftest` module, so each gets its own run.
# shellcheck at every severity (style included: quoting findings are the ones that bite in scripts run as root) on
# each shell script outside .tools/ and .git/, found by extension (.sh, .bash) or by an sh/bash/dash/ksh shebang, so
# a new script is checked without being listed here (xargs -t prints the list). .shellcheckrc has it follow sourced
# files; `system-deps.sh lint` installs it first (actionlint then also runs it on the workflows' run: steps).
MYPY := $(VENV)/bin/mypy
lint: venv tools
	@bash ci/system-deps.sh lint
	$(VENV)/bin/ruff check sidecar tests bench ci
	$(MYPY) --config-file sidecar/pyproject.toml sidecar/src
	$(MYPY) --config-file ci/launcher/pyproject.toml ci/launcher/src
	$(MYPY) bench tests/sidecar tests/chart tests/integration tests/release tests/observability tests/docs
	$(MYPY) tests/e2e --exclude tests/e2e/cluster/
	$(MYPY) tests/e2e/cluster
	helm3 lint --strict charts/kafka-connect -f charts/kafka-connect/ci/01-minimal-values.yaml
	actionlint .github/workflows/*.yaml
	@set -o pipefail; find . \( -path ./.tools -o -path ./.git \) -prune -o -type f \( -name '*.sh' -o -name '*.bash' \
	  -o -exec awk 'NR == 1 { sh = /^#!.*[\/ ](ba|da|k)?sh([ \t]|$$)/; exit } END { exit !sh }' {} \; \) -print0 \
	  | xargs -0t shellcheck --severity=style

docs: tools
	cd charts/kafka-connect && helm-docs --skip-version-footer

# The docs site: mkdocs.yml (strict: a broken link or anchor, or a page left out of the nav, fails) builds docs/ into
# .tools/site, offline. tests/docs builds it the same way in `make test`. NO_MKDOCS_2_WARNING silences Material's
# banner about its end of life (May 2027); the pins are in ci/requirements-test.txt.
docs-site: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
	@echo "docs site: .tools/site/index.html"

# The demo needs only the newest Kafka (and the JMX exporter agent, for demo-stall; without it the demo runs with
# stall detection off); `make kafka` also fetches the legacy version and Debezium for the tests.
demo: venv
	@$(PY) -m launcher fetch --kafka $(KAFKA_VERSION)
	@$(PY) -m launcher.jmx_exporter || echo "demo: no JMX exporter agent: stall detection (make demo-stall) is off"
	@$(PY) -m launcher.demo up

demo-break: venv
	@$(PY) -m launcher.demo break

demo-heal: venv
	@$(PY) -m launcher.demo heal

demo-stall: venv
	@$(PY) -m launcher.demo stall

demo-misconfig: venv
	@$(PY) -m launcher.demo misconfig

demo-stop: venv
	@$(PY) -m launcher.demo stop

# Measuring (bench/results/latest.json) and the report written from it (latest.md) are two steps; `bench/measure.py
# --quick` checks every part in about a minute without touching bench/results/ (bench/README.md).
# Faults on a real broker and worker (bench/faults.py, about 15 minutes with the restart storms; its fast subset is
# tests/integration/test_faults.py and test_restart_storm.py; `bench/faults.py --only CASE,...` runs some).
faults: venv kafka
	$(PY) bench/faults.py
	$(PY) bench/flood.py
	$(PY) bench/big_answer.py

bench: venv tools kafka
	$(PY) bench/measure.py
	$(PY) bench/scale.py
	$(PY) bench/report.py

# A running e2e cluster is torn down first: its processes, mounts, bridge and iptables chains would outlive the
# files that record them (the launcher is stdlib-only, so this works without the venv).
clean:
	@if [ -f $(TOOLS)/cluster/state.json ]; then PYTHONPATH=ci/launcher/src $(PYTHON) -m launcher.cluster down; fi
	rm -rf $(TOOLS)

include ci/cluster.mk
