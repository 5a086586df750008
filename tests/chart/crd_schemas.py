"""JSON schemas of the two prometheus-operator kinds the chart renders, and of the GitOps kinds of examples/gitops/
(GITOPS_SCHEMAS, from crds/*.json, described at their definition), for strict validation in the tests.

kubernetes-validate only knows built-in kinds. These are transcribed from prometheus-operator's CRDs
(example/prometheus-operator-crd/monitoring.coreos.com_{prometheusrules,servicemonitors}.yaml, operator 0.8x),
descriptions dropped, and made strict like kubernetes-validate's `-strict` schemas (unknown fields are errors).
PrometheusRule is complete; ServiceMonitor lists every field of `spec` and of an endpoint, with full schemas for the
parts the chart renders (selector, namespaceSelector, port, path, interval, scrapeTimeout, relabelings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string"},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_RELABEL_ACTIONS = [
    "replace",
    "Replace",
    "keep",
    "Keep",
    "drop",
    "Drop",
    "hashmod",
    "HashMod",
    "labelmap",
    "LabelMap",
    "labeldrop",
    "LabelDrop",
    "labelkeep",
    "LabelKeep",
    "lowercase",
    "Lowercase",
    "uppercase",
    "Uppercase",
    "keepequal",
    "KeepEqual",
    "dropequal",
    "DropEqual",
]
_RELABEL_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"type": "string", "enum": _RELABEL_ACTIONS},
        "modulus": {"type": "integer"},
        "regex": {"type": "string"},
        "replacement": {"type": "string"},
        "separator": {"type": "string"},
        "sourceLabels": {"type": "array", "items": {"type": "string", "pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"}},
        "targetLabel": {"type": "string"},
    },
}
_ANY_OBJECT = {"type": "object"}

SERVICE_MONITOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _OBJECT_META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "attachMetadata": _ANY_OBJECT,
                "bodySizeLimit": {"type": "string"},
                "convertClassicHistogramsToNHCB": {"type": "boolean"},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "authorization": _ANY_OBJECT,
                            "basicAuth": _ANY_OBJECT,
                            "bearerTokenFile": {"type": "string"},
                            "bearerTokenSecret": _ANY_OBJECT,
                            "enableHttp2": {"type": "boolean"},
                            "filterRunning": {"type": "boolean"},
                            "followRedirects": {"type": "boolean"},
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "interval": _DURATION,
                            "metricRelabelings": {"type": "array", "items": _RELABEL_CONFIG},
                            "noProxy": {"type": "string"},
                            "oauth2": _ANY_OBJECT,
                            "params": {"type": "object"},
                            "path": {"type": "string"},
                            "port": {"type": "string"},
                            "proxyConnectHeader": _ANY_OBJECT,
                            "proxyFromEnvironment": {"type": "boolean"},
                            "proxyUrl": {"type": "string"},
                            "relabelings": {"type": "array", "items": _RELABEL_CONFIG},
                            "scheme": {"type": "string"},
                            "scrapeTimeout": _DURATION,
                            "targetPort": {"type": ["integer", "string"]},
                            "tlsConfig": _ANY_OBJECT,
                            "trackTimestampsStaleness": {"type": "boolean"},
                        },
                    },
                },
                "fallbackScrapeProtocol": {"type": "string"},
                "jobLabel": {"type": "string"},
                "keepDroppedTargets": {"type": "integer"},
                "labelLimit": {"type": "integer"},
                "labelNameLengthLimit": {"type": "integer"},
                "labelValueLengthLimit": {"type": "integer"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "nativeHistogramBucketLimit": {"type": "integer"},
                "nativeHistogramMinBucketFactor": {"type": ["integer", "string"]},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer"},
                "scrapeClass": {"type": "string"},
                "scrapeClassicHistograms": {"type": "boolean"},
                "scrapeProtocols": {"type": "array", "items": {"type": "string"}},
                "selector": _LABEL_SELECTOR,
                "selectorMechanism": {"type": "string"},
                "serviceDiscoveryRole": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "targetLimit": {"type": "integer"},
            },
        },
    },
}

PROMETHEUS_RULE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _OBJECT_META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "interval": _DURATION,
                            "labels": _STRING_MAP,
                            "limit": {"type": "integer"},
                            "name": {"type": "string", "minLength": 1},
                            "partial_response_strategy": {"type": "string", "pattern": r"(?i)^(abort|warn)?$"},
                            "query_offset": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "annotations": _STRING_MAP,
                                        "expr": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                                        "for": _DURATION,
                                        "keep_firing_for": dict(_DURATION, minLength=1),
                                        "labels": _STRING_MAP,
                                        "record": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}

# The GitOps kinds of examples/gitops/ (Argo CD Application, Flux HelmRelease, OCIRepository, HelmRepository): the
# `spec` schemas of their CRDs' storage versions, vendored in crds/*.json, each naming its source file and commit in
# `$comment`. Reduced, not transcribed: descriptions dropped, the properties the examples use kept whole, every other
# property reduced to its type; objects made strict (unknown fields are errors: a typo such as `valuesObjects` or
# `remediaton` fails). Validated with metadata like the chart's objects', plus `finalizers`.
CRD_DIR = Path(__file__).parent / "crds"
_META_PROPERTIES = cast(dict[str, Any], _OBJECT_META["properties"])
_GITOPS_META = {**_OBJECT_META, "properties": {**_META_PROPERTIES,
                                               "finalizers": {"type": "array", "items": {"type": "string"}}}}


def _gitops_schema(path: Path) -> tuple[tuple[str, str], dict[str, Any]]:
    doc = json.loads(path.read_text())
    schema = {
        "$comment": doc["$comment"],
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": doc["apiVersion"]},
            "kind": {"const": doc["kind"]},
            "metadata": _GITOPS_META,
            "spec": doc["spec"],
        },
    }
    return (doc["apiVersion"], doc["kind"]), schema


GITOPS_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = dict(
    _gitops_schema(p) for p in sorted(CRD_DIR.glob("*.json")))
