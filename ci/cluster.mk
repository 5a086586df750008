# The e2e cluster (issue 10), included by the Makefile: a single-node Kubernetes built from pinned sources, all of
# it under .tools/cluster/ (kubeconfig: .tools/cluster/kubeconfig), torn down completely by `make cluster-down`.
# Needs root (network namespaces, mounts, iptables). See docs/contributing/e2e-cluster.md.
CLUSTER := $(PY) -m launcher.cluster
E2E_IMAGES := $(addprefix --image-archive $(TOOLS)/images/,pause.tar connect.tar sidecar.tar)

.PHONY: cluster-tools e2e-images cluster-up cluster-down e2e

# Kubernetes + CoreDNS from the Go module proxy (first build: 30 min measured on 2 shared, busy cores; cached by Go
# afterwards: 1 s), and Debian's packages.
cluster-tools:
	@bash ci/system-deps.sh cluster
	@bash ci/cluster-tools.sh

# pause, Connect (apache/kafka layout, Kafka jars of `make kafka`) and the sidecar image as OCI archives, which
# `cluster-up` pushes to the node's own registry (.tools/bin/registry of `make tools`) for the kubelet to pull.
e2e-images: venv kafka image
	@bash ci/images/build-e2e.sh

cluster-up: venv tools cluster-tools e2e-images
	@$(CLUSTER) up $(E2E_IMAGES)

cluster-down: venv
	@$(CLUSTER) down
# The chart on the node, driven through the Kubernetes API. Uses a cluster of `make cluster-up` when one runs
# (and leaves it), otherwise starts its own and tears it down. The chart comes from `make release` to a local
# registry (E2E_CHART=source: the source chart with the images imported instead).
e2e: venv tools cluster-tools e2e-images
	E2E_CLUSTER=1 $(PY) -m pytest tests/e2e/cluster -s -v -p no:cacheprovider
