{{/*
Helpers of the kafka-connect chart. Every name is namespaced with "kafka-connect." so that an umbrella chart
(or a library) defining its own helpers never collides with these.
*/}}

{{/* Chart name, overridable. */}}
{{- define "kafka-connect.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects, at most 63 characters (DNS label). The release name is used alone when it
already contains the chart name.
*/}}
{{- define "kafka-connect.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The full name with a suffix ("<fullname>-<suffix>"), kept to 63 characters: (dict "context" $ "suffix" ..). */}}
{{- define "kafka-connect.suffixedName" -}}
{{- printf "%s-%s" (include "kafka-connect.fullname" .context) .suffix | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Value of the helm.sh/chart label. */}}
{{- define "kafka-connect.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object (no component: callers add it). */}}
{{- define "kafka-connect.labels" -}}
helm.sh/chart: {{ include "kafka-connect.chart" . }}
{{ include "kafka-connect.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kafka-connect
{{- end }}

{{/* Selector labels: name and instance only, never version or user labels (they change, selectors cannot). */}}
{{- define "kafka-connect.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-connect.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector of the worker pods: name, instance and component. The component keeps the helm test pod and the
connectors Job (same name and instance) out of the Service, the PodDisruptionBudget and the ReplicaSet.
*/}}
{{- define "kafka-connect.workerSelectorLabels" -}}
{{ include "kafka-connect.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* Labels of the worker objects. */}}
{{- define "kafka-connect.workerLabels" -}}
{{ include "kafka-connect.labels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* Name of the workers' ServiceAccount. */}}
{{- define "kafka-connect.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kafka-connect.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Connect group id: groupId or the full name. */}}
{{- define "kafka-connect.groupId" -}}
{{- default (include "kafka-connect.fullname" .) .Values.groupId }}
{{- end }}

{{/* Name of the ConfigMap holding the worker properties. */}}
{{- define "kafka-connect.workerConfigName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "worker") }}
{{- end }}

{{/* Name of the ConfigMap holding the declared connectors (contract: <fullname>-connectors). */}}
{{- define "kafka-connect.connectorsConfigName" -}}
{{- printf "%s-connectors" (include "kafka-connect.fullname" .) }}
{{- end }}

{{/* Whether the connectors ConfigMap (and the apply Job) exist: connectors declared, or prune asked for. */}}
{{- define "kafka-connect.connectorsEnabled" -}}
{{- if or .Values.connectors .Values.connectorsApply.prune }}true{{ end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}; call with (dict "image" .. "defaultTag" ..). A digest pins the
image, so the reference is `repository@digest` (a tag beside it would be ignored by the runtime and could mislead);
`repository:tag` otherwise.
*/}}
{{- define "kafka-connect.imageRef" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (.image.tag | default .defaultTag | toString) }}
{{- end }}
{{- end }}

{{/* Connect image. */}}
{{- define "kafka-connect.image" -}}
{{- include "kafka-connect.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) }}
{{- end }}

{{/* URL of Connect's REST API inside the pod (the sidecar's --connect-url). */}}
{{- define "kafka-connect.localConnectUrl" -}}
{{- printf "http://127.0.0.1:%d" (int .Values.restPort) }}
{{- end }}

{{/* URL of Connect's REST API through the Service (the apply Job's --connect-url). */}}
{{- define "kafka-connect.serviceConnectUrl" -}}
{{- printf "http://%s:%d" (include "kafka-connect.fullname" .) (int .Values.restPort) }}
{{- end }}

{{/*
A scalar as a string. Helm reads numbers of values files as float64, so 10000000 would print as 1e+07: integral
floats are printed as integers.
*/}}
{{- define "kafka-connect.scalar" -}}
{{- if kindIs "float64" . }}
{{- if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
A Java properties line "key=value". Keys are checked by the schema; values escape backslashes and line breaks so
the worker reads back exactly what values hold (a regex like \d stays \d).
*/}}
{{- define "kafka-connect.property" -}}
{{- $value := include "kafka-connect.scalar" .value | replace "\\" "\\\\" | replace "\n" "\\n" | replace "\r" "\\r" }}
{{- if hasPrefix " " $value }}{{ $value = printf "\\%s" $value }}{{ end }}
{{- printf "%s=%s" .key $value }}
{{- end }}

{{/*
An httpGet probe: (dict "probe" <values block> "path" .. "port" ..). The values block carries only timings and
`enabled`; the handler comes from the chart.
*/}}
{{- define "kafka-connect.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- with omit .probe "enabled" }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Environment entries from a map {NAME: value | {valueFrom: ...}}; (dict "env" <map> "context" $). Scalar values go
through tpl.
*/}}
{{- define "kafka-connect.envFromMap" -}}
{{- range $name, $value := .env }}
- name: {{ $name }}
{{- if kindIs "map" $value }}
{{- toYaml $value | nindent 2 }}
{{- else }}
  value: {{ tpl (include "kafka-connect.scalar" $value) $.context | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Keys of workerConfig the chart owns, each with the value to use instead. */}}
{{- define "kafka-connect.reservedWorkerKeys" -}}
bootstrap.servers: bootstrapServers
group.id: groupId
listeners: restPort
rest.port: restPort
rest.advertised.host.name: "the pod IP (set by the chart)"
rest.advertised.port: restPort
rest.advertised.listener: restPort
plugin.path: "pluginPath / plugins"
config.providers: configProviders
key.converter: keyConverter
value.converter: valueConverter
config.storage.topic: internalTopics.config.name
offset.storage.topic: internalTopics.offset.name
status.storage.topic: internalTopics.status.name
config.storage.replication.factor: internalTopics.config.replicationFactor
offset.storage.replication.factor: internalTopics.offset.replicationFactor
status.storage.replication.factor: internalTopics.status.replicationFactor
offset.storage.partitions: internalTopics.offset.partitions
status.storage.partitions: internalTopics.status.partitions
{{- end }}

{{/* Fails on settings the schema cannot express; included by the templates that depend on them. */}}
{{- define "kafka-connect.validate" -}}
{{- $reserved := include "kafka-connect.reservedWorkerKeys" . | fromYaml }}
{{- range $key, $_ := .Values.workerConfig }}
{{- if hasKey $reserved $key }}
{{- fail (printf "workerConfig.%s is set by the chart: use %s" $key (get $reserved $key)) }}
{{- end }}
{{- if hasPrefix "config.providers." $key }}
{{- fail (printf "workerConfig.%s: declare config providers in configProviders" $key) }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- if and .Values.healthcheck.auth.username (not .Values.healthcheck.auth.existingSecret) }}
{{- fail "healthcheck.auth.existingSecret is required when healthcheck.auth.username is set" }}
{{- end }}
{{- if and .Values.healthcheck.auth.existingSecret (not .Values.healthcheck.auth.username) }}
{{- fail "healthcheck.auth.username is required when healthcheck.auth.existingSecret is set" }}
{{- end }}
{{- if not .Values.healthcheck.enabled }}
{{- range $feature := list "serviceMonitor" "prometheusRule" "grafanaDashboard" }}
{{- if (get $.Values.metrics $feature).enabled }}
{{- fail (printf "metrics.%s.enabled needs healthcheck.enabled: the metrics come from the sidecar" $feature) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $connector := .Values.connectors }}
{{- $configName := get $connector.config "name" }}
{{- if and $configName (ne (toString $configName) $name) }}
{{- fail (printf "connectors.%s.config.name is %q: omit it or make it equal to the connector's key" $name (toString $configName)) }}
{{- end }}
{{- end }}
{{- $mountPaths := dict }}
{{- range $name, $mount := .Values.secretMounts }}
{{- $path := include "kafka-connect.secretMountPath" (dict "name" $name "mount" $mount) }}
{{- if hasKey $mountPaths $path }}
{{- fail (printf "secretMounts.%s: mountPath %s is already used by secretMounts.%s" $name $path (get $mountPaths $path)) }}
{{- end }}
{{- $_ := set $mountPaths $path $name }}
{{- end }}
{{- end }}

{{/* Mount path of a secretMounts entry: (dict "name" .. "mount" ..). */}}
{{- define "kafka-connect.secretMountPath" -}}
{{- get .mount "mountPath" | default (printf "/mnt/secrets/%s" .name) }}
{{- end }}

{{/* The declared connectors with defaults filled in and config values as strings (what Connect's REST API holds). */}}
{{- define "kafka-connect.connectorsJson" -}}
{{- $out := dict }}
{{- range $name, $connector := .Values.connectors }}
{{- $config := dict }}
{{- range $key, $value := $connector.config }}
{{- $_ := set $config $key (include "kafka-connect.scalar" $value) }}
{{- end }}
{{- $entry := dict "config" $config "state" (get $connector "state" | default "running") "policy" (get $connector "policy" | default "critical") }}
{{- if hasKey $connector "restartAttempts" }}
{{- $_ := set $entry "restartAttempts" (int $connector.restartAttempts) }}
{{- end }}
{{- $_ := set $out $name $entry }}
{{- end }}
{{- toJson $out }}
{{- end }}
