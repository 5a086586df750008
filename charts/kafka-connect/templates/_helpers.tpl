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

{{/*
The full name with a suffix ("<fullname>-<suffix>"), kept to 63 characters: (dict "context" $ "suffix" ..). A name
too long keeps its suffix and gets a short hash of the whole name ("<fullname cut>-<hash>-<suffix>"), so two
suffixes of one long release never cut down to one name (a 48-character release's worker and dashboard ConfigMaps).
*/}}
{{- define "kafka-connect.suffixedName" -}}
{{- $full := include "kafka-connect.fullname" .context }}
{{- $name := printf "%s-%s" $full .suffix }}
{{- if gt (len $name) 63 }}
{{- $keep := sub 63 (add (len .suffix) 8) | int }}
{{- $name = printf "%s-%s-%s" ($full | trunc $keep | trimSuffix "-") ($name | sha256sum | trunc 6) .suffix }}
{{- end }}
{{- $name }}
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
app.kubernetes.io/name: {{ include "kafka-connect.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
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

{{/*
Connect group id: groupId, required. The Connect cluster's identity (group.id and, by default, the internal topics)
never follows the release name, fullnameOverride or the namespace: a rename would silently start an empty Connect
cluster, and source connectors would lose their offsets. The refusal names the former default of this release
("<namespace>-<full name>"), which keeps an existing cluster (README, "Upgrading").
*/}}
{{- define "kafka-connect.groupId" -}}
{{- if not .Values.groupId }}
{{- $fullname := include "kafka-connect.fullname" . }}
{{- fail (printf "groupId is required: it is the Connect cluster's identity (group.id; the internal topics default to <groupId>-configs, -offsets, -status) and no longer follows the release name or namespace. A new release: a name unique on this Kafka. A release that already runs: keep its connectors and offsets with groupId: %s-%s (the former default; check group.id in ConfigMap %s)" .Release.Namespace $fullname (include "kafka-connect.workerConfigName" .)) }}
{{- end }}
{{- .Values.groupId }}
{{- end }}

{{/*
Kafka version of the Connect image ("" when unknown): kafkaVersion, else the tag of an apache/kafka image (the
chart's appVersion without a tag) when it reads as a version. Other images' tags are not Kafka versions.
*/}}
{{- define "kafka-connect.kafkaVersion" -}}
{{- $version := "" }}
{{- if .Values.kafkaVersion }}
{{- $version = toString .Values.kafkaVersion }}
{{- else if and (regexMatch "(^|/)apache/kafka(-native)?$" .Values.image.repository) (not .Values.image.digest) }}
{{- $version = .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}
{{- if regexMatch "^[0-9]+\\.[0-9]+(\\.[0-9]+)?([-+].*)?$" $version }}{{ $version }}{{ end }}
{{- end }}

{{/* Log configuration format: logging.format, else log4j for a known Kafka 3.x, log4j2 otherwise. */}}
{{- define "kafka-connect.logFormat" -}}
{{- $version := include "kafka-connect.kafkaVersion" . }}
{{- if .Values.logging.format }}{{ .Values.logging.format }}
{{- else if and $version (semverCompare "<4.0.0-0" $version) }}log4j
{{- else }}log4j2
{{- end }}
{{- end }}

{{/* File name of the rendered log configuration in the worker ConfigMap. */}}
{{- define "kafka-connect.logConfigFile" -}}
{{- if eq (include "kafka-connect.logFormat" .) "log4j" }}log4j.properties{{ else }}log4j2.properties{{ end }}
{{- end }}

{{/* Where the kafka.tls and kafka.sasl Secrets are mounted. */}}
{{- define "kafka-connect.kafkaTlsDir" -}}
/mnt/kafka/tls
{{- end }}
{{- define "kafka-connect.kafkaSaslDir" -}}
/mnt/kafka/sasl
{{- end }}

{{/*
The directory/file config providers' allowed.paths (empty: the providers are off): secretMounts (but those with
configProviders false, files the JVM reads itself) and the connectors' own Secrets; never kafka.tls / kafka.sasl
(the worker-config init container resolves those). Every connector config can read every path listed here (README,
"What a connector author can read").
*/}}
{{- define "kafka-connect.fileProviderPaths" -}}
{{- $paths := list }}
{{- range $name, $mount := .Values.secretMounts }}
{{- if or (not (hasKey $mount "configProviders")) $mount.configProviders }}
{{- $paths = append $paths (include "kafka-connect.secretMountPath" (dict "name" $name "mount" $mount)) }}
{{- end }}
{{- end }}
{{- range $name, $connector := .Values.connectors }}
{{- if get $connector "secretName" }}
{{- $paths = append $paths (include "kafka-connect.connectorSecretPath" $name) }}
{{- end }}
{{- end }}
{{- join "," $paths }}
{{- end }}

{{/*
The Kafka client security settings as a YAML map {property: value}, from kafka.tls, kafka.sasl and
kafka.clientConfig; the worker ConfigMap writes them at worker level and under producer., consumer. and admin.
Secrets are never copied: a value "@@kafka-secret:<tls|sasl>/<key>@@" is replaced by the worker-config init
container with that key of the Secret mounted at /mnt/kafka/<tls|sasl>, into a memory-backed file only the worker
reads. Not through a config provider: connector configs can call every provider the worker has, so the worker's
own Kafka password would be theirs to read.
*/}}
{{- define "kafka-connect.kafkaClientProperties" -}}
{{- $tls := .Values.kafka.tls }}
{{- $sasl := .Values.kafka.sasl }}
{{- $props := dict }}
{{- $tlsDir := include "kafka-connect.kafkaTlsDir" . }}
{{- if $sasl.mechanism }}
{{- $_ := set $props "security.protocol" (ternary "SASL_SSL" "SASL_PLAINTEXT" $tls.enabled) }}
{{- else if $tls.enabled }}
{{- $_ := set $props "security.protocol" "SSL" }}
{{- end }}
{{- if $tls.enabled }}
{{- $_ := set $props "ssl.endpoint.identification.algorithm" ($tls.endpointIdentificationAlgorithm | default "") }}
{{- if $tls.existingSecret }}
{{- /* PEM stores have no store password: Kafka refuses ssl.truststore.password / ssl.keystore.password with them. */}}
{{- with $tls.truststore }}
{{- if .key }}
{{- $_ := set $props "ssl.truststore.location" (printf "%s/%s" $tlsDir .key) }}
{{- $_ := set $props "ssl.truststore.type" .type }}
{{- if and .passwordKey (ne .type "PEM") }}
{{- $_ := set $props "ssl.truststore.password" (printf "@@kafka-secret:tls/%s@@" .passwordKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- with $tls.keystore }}
{{- if .key }}
{{- $_ := set $props "ssl.keystore.type" .type }}
{{- if eq .type "PEM" }}
{{- /* A cert-manager Secret: the chain (tls.crt) and the PKCS#8 key (tls.key) in two files, given inline. */}}
{{- $_ := set $props "ssl.keystore.certificate.chain" (printf "@@kafka-secret:tls/%s@@" .key) }}
{{- $_ := set $props "ssl.keystore.key" (printf "@@kafka-secret:tls/%s@@" (get . "privateKeyKey" | default "tls.key")) }}
{{- else }}
{{- $_ := set $props "ssl.keystore.location" (printf "%s/%s" $tlsDir .key) }}
{{- if .passwordKey }}
{{- $_ := set $props "ssl.keystore.password" (printf "@@kafka-secret:tls/%s@@" .passwordKey) }}
{{- end }}
{{- end }}
{{- if .keyPasswordKey }}
{{- $_ := set $props "ssl.key.password" (printf "@@kafka-secret:tls/%s@@" .keyPasswordKey) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- with $sasl.mechanism }}
{{- $_ := set $props "sasl.mechanism" . }}
{{- if eq . "OAUTHBEARER" }}
{{- $o := $sasl.oauthbearer }}
{{- $_ := set $props "sasl.oauthbearer.token.endpoint.url" $o.tokenEndpointUrl }}
{{- $_ := set $props "sasl.login.callback.handler.class" "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler" }}
{{- $scope := "" }}
{{- with $o.scope }}{{ $scope = printf " scope=\"%s\"" . }}{{ end }}
{{- $_ := set $props "sasl.jaas.config" (printf "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"@@kafka-secret:sasl/%s@@\" clientSecret=\"@@kafka-secret:sasl/%s@@\"%s;" $o.clientIdKey $o.clientSecretKey $scope) }}
{{- else }}
{{- $module := ternary "org.apache.kafka.common.security.plain.PlainLoginModule" "org.apache.kafka.common.security.scram.ScramLoginModule" (eq . "PLAIN") }}
{{- $_ := set $props "sasl.jaas.config" (printf "%s required username=\"@@kafka-secret:sasl/%s@@\" password=\"@@kafka-secret:sasl/%s@@\";" $module $sasl.usernameKey $sasl.passwordKey) }}
{{- end }}
{{- end }}
{{- range $key, $value := .Values.kafka.clientConfig }}
{{- if regexMatch "^(producer|consumer|admin)\\." $key }}
{{- fail (printf "kafka.clientConfig.%s: write client properties without a prefix; the chart renders each for the worker and under producer., consumer. and admin." $key) }}
{{- end }}
{{- if hasKey $props $key }}
{{- fail (printf "kafka.clientConfig.%s is set by the chart from kafka.tls / kafka.sasl: change it there" $key) }}
{{- end }}
{{- $_ := set $props $key (include "kafka-connect.scalar" $value) }}
{{- end }}
{{- toYaml $props }}
{{- end }}

{{/* JVM options of the worker (KAFKA_OPTS): jvmOpts, the OAuth token URL Kafka >= 4.0 must be allowed to call, the
JMX exporter agent. */}}
{{- define "kafka-connect.kafkaOpts" -}}
{{- $opts := list }}
{{- with .Values.jvmOpts }}{{ $opts = append $opts . }}{{ end }}
{{- if eq .Values.kafka.sasl.mechanism "OAUTHBEARER" }}
{{- $opts = append $opts (printf "-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=%s" .Values.kafka.sasl.oauthbearer.tokenEndpointUrl) }}
{{- end }}
{{- with .Values.metrics.jmxExporter }}
{{- if .enabled }}
{{- $opts = append $opts (printf "-javaagent:%s=%d:/etc/kafka-connect/jmx-exporter.yaml" .jarPath (int .port)) }}
{{- end }}
{{- end }}
{{- join " " $opts }}
{{- end }}

{{/* Name of the ConfigMap holding the worker properties. */}}
{{- define "kafka-connect.workerConfigName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "worker") }}
{{- end }}

{{/* Name of the ConfigMap holding the declared connectors (contract: <fullname>-connectors). */}}
{{- define "kafka-connect.connectorsConfigName" -}}
{{- printf "%s-connectors" (include "kafka-connect.fullname" .) }}
{{- end }}

{{/*
The declarations are split over ConfigMaps ("shards"), each well under the 1 MiB the API server allows a ConfigMap's
data: past ~766 Debezium-sized connectors one ConfigMap is refused. Shard i (from 0) is the ConfigMap
`kafka-connect.connectorsShardName` with the key `kafka-connect.connectorsShardKey`.

Sizes are estimated on the values as given: pretty JSON x 6/5 (quotes around numbers, the ConfigMap's indentation)
plus 64 bytes a connector (the defaults filled in), against a budget of 768 KiB a shard. The number of shards comes
from the total alone (cheap, and needed by the pod templates): twice the total over the budget, rounded up, which
is never fewer than the shards filled in name order need (each two neighbours hold more than one budget). Shards left
over are rendered holding `{}`.
*/}}
{{- define "kafka-connect.connectorsShardBudget" -}}786432{{- end }}

{{/*
Pretty JSON that a YAML block scalar can hold: JSON leaves U+007F-U+009F, U+FFFE and U+FFFF unescaped, which YAML
refuses ("control characters are not allowed"); they are written as \u escapes, which read back the same.
*/}}
{{- define "kafka-connect.yamlSafeJson" -}}
{{- $text := toPrettyJson . }}
{{- range $code := concat (untilStep 127 160 1) (list 65534 65535) }}
{{- $text = replace (printf "%c" $code) (printf "\\u%04x" $code) $text }}
{{- end }}
{{- $text }}
{{- end }}

{{/* How many connectors ConfigMaps there are: 1 unless the declarations come near one shard's budget. */}}
{{- define "kafka-connect.connectorsShardCount" -}}
{{- $budget := include "kafka-connect.connectorsShardBudget" . | int }}
{{- $total := add (div (mul (len (toPrettyJson .Values.connectors)) 6) 5) (mul 70 (len .Values.connectors)) }}
{{- max 1 (div (add (mul 2 $total) (sub $budget 1)) $budget) }}
{{- end }}

{{/* The connector names of each shard, in name order, as a JSON list of `connectorsShardCount` name lists. */}}
{{- define "kafka-connect.connectorShards" -}}
{{- $budget := include "kafka-connect.connectorsShardBudget" . | int }}
{{- $count := include "kafka-connect.connectorsShardCount" . | int }}
{{- $shards := list }}
{{- $current := list }}
{{- $size := 0 }}
{{- range $name := keys .Values.connectors | sortAlpha }}
{{- $bytes := 0 }}
{{- if gt $count 1 }}
{{- $bytes = add (div (mul (len (toPrettyJson (dict $name (get $.Values.connectors $name)))) 6) 5) 64 }}
{{- end }}
{{- if and $current (gt (add $size $bytes) $budget) }}
{{- $shards = append $shards $current }}
{{- $current = list }}
{{- $size = 0 }}
{{- end }}
{{- $current = append $current $name }}
{{- $size = add $size $bytes }}
{{- end }}
{{- $shards = append $shards $current }}
{{- range until (sub $count (len $shards) | int) }}{{ $shards = append $shards list }}{{ end }}
{{- toJson $shards }}
{{- end }}

{{/* Name of the connectors ConfigMap of shard i: (dict "context" $ "index" i); the first keeps the contract's name. */}}
{{- define "kafka-connect.connectorsShardName" -}}
{{- if eq (int .index) 0 }}{{ include "kafka-connect.connectorsConfigName" .context }}
{{- else }}{{ printf "%s-%d" (include "kafka-connect.connectorsConfigName" .context) (add1 .index) }}{{ end }}
{{- end }}

{{/* Key of shard i in its ConfigMap (and file name in the mounted directory): connectors.json, connectors-2.json, ... */}}
{{- define "kafka-connect.connectorsShardKey" -}}
{{- if eq (int .) 0 }}connectors.json{{ else }}{{ printf "connectors-%d.json" (add1 .) }}{{ end }}
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

{{/*
Name of the Service the apply Job calls (contract: <fullname>-apply): the workers' selector and REST port, with
publishNotReadyAddresses, so the Job reaches workers that a failing critical connector made unready.
*/}}
{{- define "kafka-connect.applyServiceName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "apply") }}
{{- end }}

{{/* URL of Connect's REST API through the apply Service (the apply Job's --connect-url). */}}
{{- define "kafka-connect.applyConnectUrl" -}}
{{- printf "http://%s:%d" (include "kafka-connect.applyServiceName" .) (int .Values.restPort) }}
{{- end }}

{{/* Whether the apply hook Job (and its Service) are rendered. */}}
{{- define "kafka-connect.applyEnabled" -}}
{{- if and (include "kafka-connect.connectorsEnabled" .) .Values.connectorsApply.enabled }}true{{ end }}
{{- end }}

{{/* Whether the sidecars correct drift (connectorsReconcile.enabled, with the sidecar and declarations to apply). */}}
{{- define "kafka-connect.reconcileEnabled" -}}
{{- if and .Values.connectorsReconcile.enabled .Values.healthcheck.enabled (include "kafka-connect.connectorsEnabled" .) }}true{{ end }}
{{- end }}

{{/* Whether some declared connector carries an offsets action. */}}
{{- define "kafka-connect.offsetsDeclared" -}}
{{- range $name, $connector := .Values.connectors }}{{ if hasKey $connector "offsets" }}true{{ end }}{{ end }}
{{- end }}

{{/*
Name of the ConfigMap recording the offsets requests already done (contract: <fullname>-connector-requests), and
whether it exists: the apply Job runs and some connector declares offsets (the sidecars' drift correction never runs
an offsets action, so it needs neither the ConfigMap nor rights on it).
*/}}
{{- define "kafka-connect.requestsConfigName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "connector-requests") }}
{{- end }}
{{- define "kafka-connect.requestsEnabled" -}}
{{- if and (include "kafka-connect.applyEnabled" .) (include "kafka-connect.offsetsDeclared" .) }}true{{ end }}
{{- end }}

{{/* Name of the Lease the reconciling sidecars elect their one writer with (contract: <fullname>-reconcile). */}}
{{- define "kafka-connect.reconcileLeaseName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "reconcile") }}
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
connector.client.config.override.policy: "connectorClientOverrides (the chart renders the narrowest policy)"
connector.client.config.override.allowlist: "connectorClientOverrides (the chart renders the narrowest policy)"
{{- end }}

{{/* Fails on settings the schema cannot express; included by the templates that depend on them. */}}
{{- define "kafka-connect.validate" -}}
{{- $reserved := include "kafka-connect.reservedWorkerKeys" . | fromYaml }}
{{- $client := include "kafka-connect.kafkaClientProperties" . | fromYaml }}
{{- range $key, $_ := .Values.workerConfig }}
{{- if hasKey $reserved $key }}
{{- fail (printf "workerConfig.%s is set by the chart: use %s" $key (get $reserved $key)) }}
{{- end }}
{{- if regexMatch "^(security\\.protocol|ssl\\.|sasl\\.)" $key }}
{{- fail (printf "workerConfig.%s would reach the worker but not the connectors' clients: use kafka.tls, kafka.sasl or kafka.clientConfig (rendered with the producer., consumer. and admin. prefixes too)" $key) }}
{{- end }}
{{- $unprefixed := regexReplaceAll "^(producer|consumer|admin)\\." $key "" }}
{{- if and (ne $unprefixed $key) (hasKey $client $unprefixed) }}
{{- fail (printf "workerConfig.%s is set by the chart from kafka.tls / kafka.sasl / kafka.clientConfig: change it there" $key) }}
{{- end }}
{{- if hasPrefix "config.providers." $key }}
{{- fail (printf "workerConfig.%s: declare config providers in configProviders" $key) }}
{{- end }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (not (kindIs "invalid" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- $as := .Values.autoscaling }}
{{- /* With the HPA the fewest workers is autoscaling.minReplicas, where the PDB must still allow an eviction. */}}
{{- $replicasFrom := ternary "autoscaling.minReplicas" "replicaCount" (not (not $as.enabled)) }}
{{- if and $pdb.enabled (gt (int (ternary $as.minReplicas .Values.replicaCount (not (not $as.enabled)))) 0) }}
{{- $replicas := int (ternary $as.minReplicas .Values.replicaCount (not (not $as.enabled))) }}
{{- if not (kindIs "invalid" $pdb.minAvailable) }}
{{- $min := 0 }}
{{- if kindIs "string" $pdb.minAvailable }}
{{- $pct := int (trimSuffix "%" $pdb.minAvailable) }}
{{- $min = div (add (mul $pct $replicas) 99) 100 }}
{{- else }}
{{- $min = int $pdb.minAvailable }}
{{- end }}
{{- if ge $min $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable %v with %s %d never allows an eviction (node drains block): keep it below %s, or set maxUnavailable" $pdb.minAvailable $replicasFrom $replicas $replicasFrom) }}
{{- end }}
{{- else if not (kindIs "invalid" $pdb.maxUnavailable) }}
{{- if eq (int (trimSuffix "%" (toString $pdb.maxUnavailable))) 0 }}
{{- fail (printf "podDisruptionBudget.maxUnavailable %v never allows an eviction (node drains block): set it to at least 1" $pdb.maxUnavailable) }}
{{- end }}
{{- end }}
{{- end }}
{{- if $as.enabled }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas %v is above autoscaling.maxReplicas %v" $as.minReplicas $as.maxReplicas) }}
{{- end }}
{{- if and (kindIs "invalid" $as.targetCPUUtilizationPercentage) (kindIs "invalid" $as.targetMemoryUtilizationPercentage) }}
{{- fail "autoscaling.enabled needs a target: set autoscaling.targetCPUUtilizationPercentage or autoscaling.targetMemoryUtilizationPercentage" }}
{{- end }}
{{- end }}
{{- $kafkaVersion := include "kafka-connect.kafkaVersion" . }}
{{- range $name, $connector := .Values.connectors }}
{{- with get $connector "offsets" }}
{{- $where := printf "connectors.%s.offsets" $name }}
{{- if and (eq .action "set") (empty (get . "offsets")) }}
{{- fail (printf "%s: action set needs offsets, a list of {partition: {...}, offset: {...}} (KIP-875's body); use action reset to start over" $where) }}
{{- end }}
{{- if and (eq .action "reset") (hasKey . "offsets") }}
{{- fail (printf "%s: action reset takes no offsets (it resets them all); use action set to give them" $where) }}
{{- end }}
{{- if not $.Values.connectorsApply.enabled }}
{{- fail (printf "%s: offsets actions are applied by the apply Job (the sidecars' drift correction restores configs and states only), and connectorsApply.enabled is false: turn the Job on for the action, or remove it" $where) }}
{{- end }}
{{- if and $kafkaVersion (semverCompare "<3.6.0-0" $kafkaVersion) }}
{{- fail (printf "%s: Kafka %s has no offsets API (KIP-875, Kafka >= 3.6); remove it or use a newer image (kafkaVersion says which Kafka the image holds)" $where $kafkaVersion) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.connectorsReconcile.enabled (not .Values.healthcheck.enabled) }}
{{- fail "connectorsReconcile.enabled needs healthcheck.enabled: the sidecars correct the drift" }}
{{- end }}
{{- if and .Values.connectorsReconcile.enabled (not (include "kafka-connect.connectorsEnabled" .)) }}
{{- fail "connectorsReconcile.enabled with no connectors declared (and no connectorsApply.prune): nothing to reconcile; declare connectors or turn it off" }}
{{- end }}
{{- if and (or (include "kafka-connect.requestsEnabled" .) (include "kafka-connect.reconcileEnabled" .)) (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "declared offsets (the apply Job) need a Role on the connector-requests ConfigMap, connectorsReconcile one on the reconcile Lease; with serviceAccount.create false they would be bound to the namespace's default ServiceAccount (every pod using it could write them): set serviceAccount.name to the workers' ServiceAccount, or serviceAccount.create: true" }}
{{- end }}
{{- if and $kafkaVersion (semverCompare "<3.5.0-0" $kafkaVersion) }}
{{- fail (printf "Kafka %s is older than 3.5: the chart sets rest.advertised.host.name=${env:POD_IP}, which needs KIP-887's EnvVarConfigProvider (Kafka >= 3.5, Confluent Platform >= 7.5); use a newer image (kafkaVersion says which Kafka the image holds)" $kafkaVersion) }}
{{- end }}
{{- $sasl := .Values.kafka.sasl }}
{{- if and $sasl.mechanism (not $sasl.existingSecret) }}
{{- fail (printf "kafka.sasl.existingSecret is required with kafka.sasl.mechanism %s (the Secret holding the credentials)" $sasl.mechanism) }}
{{- end }}
{{- if and (eq $sasl.mechanism "OAUTHBEARER") (not $sasl.oauthbearer.tokenEndpointUrl) }}
{{- fail "kafka.sasl.oauthbearer.tokenEndpointUrl is required with kafka.sasl.mechanism OAUTHBEARER" }}
{{- end }}
{{- $tls := .Values.kafka.tls }}
{{- if and $tls.enabled (not $tls.existingSecret) $tls.keystore.key }}
{{- fail "kafka.tls.existingSecret is required with kafka.tls.keystore.key (the Secret holding the client certificate)" }}
{{- end }}
{{- $apply := .Values.connectorsApply }}
{{- if and (include "kafka-connect.connectorsEnabled" .) $apply.enabled }}
{{- $wait := required "connectorsApply.wait is null: set the seconds the apply Job waits for the workers (default 180)" $apply.wait }}
{{- if ge (float64 $wait) (float64 $apply.activeDeadlineSeconds) }}
{{- fail (printf "connectorsApply.wait (%v s) must stay below connectorsApply.activeDeadlineSeconds (%v s), or the Job is killed while it waits" $wait $apply.activeDeadlineSeconds) }}
{{- end }}
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

{{/* Where connectors.<name>.secretName is mounted, and its volume's name (a DNS label whatever the connector's name). */}}
{{- define "kafka-connect.connectorSecretPath" -}}
{{- printf "/mnt/connectors/%s" . }}
{{- end }}
{{- define "kafka-connect.connectorSecretVolume" -}}
{{- printf "connector-secret-%s" (sha256sum . | trunc 12) }}
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
{{- with include "kafka-connect.sinkConsumerGroup" (dict "name" $name "connector" $connector "context" $) }}
{{- $_ := set $config "consumer.override.group.id" . }}
{{- end }}
{{- $entry := dict "config" $config "state" (get $connector "state" | default "running") "policy" (get $connector "policy" | default "critical") }}
{{- if hasKey $connector "restartAttempts" }}
{{- $_ := set $entry "restartAttempts" (int $connector.restartAttempts) }}
{{- end }}
{{- with get $connector "offsets" }}
{{- $_ := set $entry "offsets" . }}
{{- end }}
{{- $_ := set $out $name $entry }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
The consumer group the chart gives a declared sink ("" for none: a source, or Connect's own connect-<name>):
(dict "name" .. "connector" .. "context" $). A sink is a config with topics or topics.regex. Its group is
consumerGroup, else a consumer.override.group.id of its config (kept as written), else by sinkConsumerGroups:
cluster gives "<groupId>-<name>", connect keeps Connect's "connect-<name>". Unset with such a sink, the render is
refused: a sink's group is its position, and sinks created before the value existed run as connect-<name>.
*/}}
{{- define "kafka-connect.sinkConsumerGroup" -}}
{{- $config := .connector.config | default dict }}
{{- $own := get .connector "consumerGroup" | default "" }}
{{- $inConfig := get $config "consumer.override.group.id" | default "" | toString }}
{{- if and $own $inConfig (ne $own $inConfig) }}
{{- fail (printf "connectors.%s.consumerGroup (%s) and its config's consumer.override.group.id (%s) differ: keep one" .name $own $inConfig) }}
{{- end }}
{{- if or (hasKey $config "topics") (hasKey $config "topics.regex") }}
{{- $mode := .context.Values.sinkConsumerGroups }}
{{- if $own }}{{ $own }}
{{- else if $inConfig }}{{ $inConfig }}
{{- else if eq $mode "cluster" }}{{ printf "%s-%s" (include "kafka-connect.groupId" .context) .name }}
{{- else if ne $mode "connect" }}
{{- fail (printf "connectors.%s is a sink and its consumer group is not chosen: set sinkConsumerGroups: cluster (its group becomes %s-%s, never shared with another Connect cluster) or connect (Connect's connect-%s, what sinks created before this value run as), or connectors.%s.consumerGroup; a running sink's group is its position, a new group starts over from auto.offset.reset" .name (include "kafka-connect.groupId" .context) .name .name .name) }}
{{- end }}
{{- else if $own }}
{{- fail (printf "connectors.%s.consumerGroup is set but the connector is not a sink (no topics or topics.regex in its config)" .name) }}
{{- end }}
{{- end }}

{{/*
The narrowest connector.client.config.override.policy admitting every client override the declared connectors carry
(the sinks' group.id included) and connectorClientOverrides, as YAML {property: value} for the worker properties.
None when there is none; ["*"] is All. Kafka >= 4.2: Allowlist (KIP-1188) with connector.client.config.override.allowlist.
Before 4.2 (or a Kafka version the chart does not know): Principal when only the principal settings, else All,
the only policies that let a connector set other client properties.
*/}}
{{- define "kafka-connect.overridePolicy" -}}
{{- $names := dict }}
{{- $cluster := eq .Values.sinkConsumerGroups "cluster" }}
{{- range $name, $connector := .Values.connectors }}
{{- $config := $connector.config | default dict }}
{{- if and (or (hasKey $config "topics") (hasKey $config "topics.regex")) (or $cluster (get $connector "consumerGroup")) }}
{{- $_ := set $names "group.id" true }}
{{- end }}
{{- range $key, $_ := $config }}
{{- /* prefixes, not regexes: a regex is compiled per call, per key of every connector */}}
{{- if contains ".override." $key }}
{{- range $prefix := list "producer.override." "consumer.override." "admin.override." }}
{{- if and (hasPrefix $prefix $key) (ne $prefix $key) }}
{{- $_ := set $names (trimPrefix $prefix $key) true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.connectorClientOverrides }}{{ $_ := set $names . true }}{{ end }}
{{- $version := include "kafka-connect.kafkaVersion" . }}
{{- $props := dict }}
{{- if hasKey $names "*" }}
{{- $_ := set $props "connector.client.config.override.policy" "All" }}
{{- else if not $names }}
{{- $_ := set $props "connector.client.config.override.policy" "None" }}
{{- else if and $version (semverCompare ">=4.2.0-0" $version) }}
{{- $_ := set $props "connector.client.config.override.policy" "Allowlist" }}
{{- $_ := set $props "connector.client.config.override.allowlist" (keys $names | sortAlpha | join ",") }}
{{- else if not (omit $names "sasl.jaas.config" "sasl.mechanism" "security.protocol") }}
{{- $_ := set $props "connector.client.config.override.policy" "Principal" }}
{{- else }}
{{- $_ := set $props "connector.client.config.override.policy" "All" }}
{{- end }}
{{- toYaml $props }}
{{- end }}

{{/* Whether the worker's properties reference the worker's own Kafka Secrets (the worker-config init container runs). */}}
{{- define "kafka-connect.workerSecretsInit" -}}
{{- if contains "@@kafka-secret:" (include "kafka-connect.kafkaClientProperties" .) }}true{{ end }}
{{- end }}

{{/*
The worker-config init container's script (bash: the Connect images run Kafka's bash scripts): copies the worker
ConfigMap's files to the memory-backed emptyDir the worker reads, replacing each "@@kafka-secret:<dir>/<key>@@" with
that Secret key's content escaped for a Java properties file (read as ISO-8859-1: non-ASCII is refused rather than
mangled). A key missing from the Secret fails the pod with a line naming it. Paths come from the environment so the
integration test runs the same script.
*/}}
{{- define "kafka-connect.workerConfigScript" -}}
set -eu
src=${WORKER_CONFIG_TEMPLATE:-/etc/kafka-connect-template}
dst=${WORKER_CONFIG:-/etc/kafka-connect}
secrets=${KAFKA_SECRETS:-/mnt/kafka}
for f in "$src"/*; do
  case $f in */connect-distributed.properties) ;; *) cp "$f" "$dst/" ;; esac
done
props=$(cat "$src/connect-distributed.properties"; printf x); props=${props%x}
for f in "$secrets"/*/*; do
  [ -f "$f" ] || continue
  marker="@@kafka-secret:${f#"$secrets"/}@@"
  case $props in *"$marker"*) ;; *) continue ;; esac
  if LC_ALL=C grep -q '[^[:print:][:space:]]' "$f"; then
    echo "worker-config: ${f} holds non-ASCII characters, which a Java properties file cannot carry as they are" >&2
    exit 1
  fi
  v=$(cat "$f"; printf x); v=${v%x}
  v=${v//\\/\\\\}; v=${v//$'\n'/\\n}; v=${v//$'\r'/\\r}; v=${v//$'\t'/\\t}; v=${v// /\\ }
  props=${props//"$marker"/"$v"}
done
case $props in
  *@@kafka-secret:*)
    missing=${props#*@@kafka-secret:}; missing=${missing%%@@*}
    echo "worker-config: ${secrets}/${missing} does not exist: add key ${missing#*/} to the kafka.${missing%%/*} Secret (kafka.${missing%%/*}.existingSecret)" >&2
    exit 1 ;;
esac
rm -f "$dst/connect-distributed.properties"
umask 077
printf '%s' "$props" > "$dst/connect-distributed.properties"
{{- end }}

{{- /* The runbook page of an alert: (list $ "AlertName") -> <runbookBaseUrl>/runbooks/<AlertName>/; the page is
docs/runbooks/<AlertName>.md (tests check that every alert has one). */}}
{{- define "kafka-connect.runbookUrl" -}}
{{- $root := index . 0 -}}
{{- printf "%s/runbooks/%s/" (trimSuffix "/" $root.Values.metrics.prometheusRule.runbookBaseUrl) (index . 1) -}}
{{- end }}
