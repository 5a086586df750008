{{/*
The connect-health sidecar, the product this chart exists for, as named templates. The worker Deployment injects
the container and its volumes; the connectors apply Job runs the same image with the same files (declared
connectors, REST password); the helm test pod runs the same image against the probe target. Every path, volume
and name those objects share is written here once.
*/}}

{{/*
Sidecar image: `repository@digest` when a digest is set, `repository:tag` otherwise (the tag defaults to the chart
version: chart and image are released together). The source chart names no image; `make release` stamps
repository, tag and digest into the packaged chart's values.yaml.
*/}}
{{- define "kafka-connect.sidecar.image" -}}
{{- $image := .Values.healthcheck.image }}
{{- if not $image.repository }}
{{- fail "healthcheck.image.repository is not set: the source chart names no connect-health image; install the released chart (helm install NAME oci://REGISTRY/charts/kafka-connect --version X) or build the image with `make image` and set healthcheck.image.repository and healthcheck.image.tag (or .digest)" }}
{{- end }}
{{- include "kafka-connect.imageRef" (dict "image" $image "defaultTag" .Chart.Version) }}
{{- end }}

{{/* Name of the connectors apply Job (used by the Job and by NOTES). */}}
{{- define "kafka-connect.applyJobName" -}}
{{- include "kafka-connect.suffixedName" (dict "context" . "suffix" "connectors-apply") }}
{{- end }}

{{/*
Where the Connect container's probes and the helm test pod look, as YAML {port, servicePort, liveness, readiness,
startup}: the sidecar's endpoints (the kubelet on healthcheck.probePort when set, clients through the Service on
healthcheck.port), or Connect's own fallbackProbePath on the REST port when the sidecar is disabled.
*/}}
{{- define "kafka-connect.sidecar.probeTarget" -}}
{{- if .Values.healthcheck.enabled }}
port: {{ .Values.healthcheck.probePort | default (include "kafka-connect.sidecar.port" .) }}
servicePort: {{ include "kafka-connect.sidecar.port" . }}
liveness: /livez
readiness: /readyz
startup: /startupz
{{- else }}
port: {{ .Values.restPort }}
servicePort: {{ .Values.restPort }}
liveness: {{ .Values.fallbackProbePath | quote }}
readiness: {{ .Values.fallbackProbePath | quote }}
startup: {{ .Values.fallbackProbePath | quote }}
{{- end }}
{{- end }}

{{/* The sidecar's port; null (helm drops the key, so the schema never sees it) is refused with one line. */}}
{{- define "kafka-connect.sidecar.port" -}}
{{- required "healthcheck.port is null: set the sidecar's port (default 8090)" .Values.healthcheck.port | int }}
{{- end }}

{{/* Where the declared connectors (the `<fullname>-connectors` ConfigMap) are mounted. */}}
{{- define "kafka-connect.sidecar.connectorsDir" -}}
/etc/connect-health
{{- end }}

{{/* The declared connectors file the sidecar (`--connectors-file`) and the apply Job read: the directory of
shards when the declarations need more than one ConfigMap. */}}
{{- define "kafka-connect.sidecar.connectorsFile" -}}
{{- if eq (include "kafka-connect.connectorsShardCount" .) "1" }}
{{- printf "%s/connectors.json" (include "kafka-connect.sidecar.connectorsDir" .) }}
{{- else }}
{{- include "kafka-connect.sidecar.connectorsDir" . }}
{{- end }}
{{- end }}

{{/* Where the REST password Secret (`healthcheck.auth.existingSecret`) is mounted. */}}
{{- define "kafka-connect.sidecar.authDir" -}}
/etc/connect-health-auth
{{- end }}

{{/* The REST password file (`--connect-password-file`). */}}
{{- define "kafka-connect.sidecar.passwordFile" -}}
{{- printf "%s/%s" (include "kafka-connect.sidecar.authDir" .) .Values.healthcheck.auth.passwordKey }}
{{- end }}

{{/*
Volume mounts of a container running the sidecar image: a writable /tmp, the declared connectors when there are
any (the whole directory, no subPath, so the kubelet refreshes the file after an upgrade), the REST password
when basic auth is on. The worker pod's sidecar and the apply Job mount the same.
*/}}
{{- define "kafka-connect.sidecar.volumeMounts" -}}
- name: health-tmp
  mountPath: /tmp
{{- if include "kafka-connect.connectorsEnabled" . }}
- name: connectors
  mountPath: {{ include "kafka-connect.sidecar.connectorsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.healthcheck.auth.username }}
- name: connect-auth
  mountPath: {{ include "kafka-connect.sidecar.authDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Whether the sidecar container calls the Kubernetes API: Events (rbac.events), the Lease and the requests ConfigMap
(connectorsReconcile). It then gets a token of its own (kafka-connect.apiTokenVolume); the pod mounts none,
automountServiceAccountToken stays off for Connect.
*/}}
{{- define "kafka-connect.sidecar.needsToken" -}}
{{- if or .Values.rbac.events (include "kafka-connect.reconcileEnabled" .) }}true{{ end }}
{{- end }}

{{/* The service-account token mounted into one container only (the sidecar, or the apply Job's container). */}}
{{- define "kafka-connect.apiTokenMount" -}}
- name: events-token
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
{{- end }}

{{/* The volume behind kafka-connect.apiTokenMount: a bound token, the cluster CA and the namespace. */}}
{{- define "kafka-connect.apiTokenVolume" -}}
- name: events-token
  projected:
    defaultMode: 292
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end }}

{{/* The volumes behind kafka-connect.sidecar.volumeMounts. */}}
{{- define "kafka-connect.sidecar.volumes" -}}
- name: health-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if include "kafka-connect.connectorsEnabled" . }}
{{- $count := include "kafka-connect.connectorsShardCount" . | int }}
- name: connectors
{{- if eq $count 1 }}
  configMap:
    name: {{ include "kafka-connect.connectorsConfigName" . }}
{{- else }}
  projected:
    sources:
      {{- range $i := until $count }}
      - configMap:
          name: {{ include "kafka-connect.connectorsShardName" (dict "context" $ "index" $i) }}
      {{- end }}
{{- end }}
{{- end }}
{{- with .Values.healthcheck.auth }}
{{- if .username }}
- name: connect-auth
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 288
    items:
      - key: {{ .passwordKey }}
        path: {{ .passwordKey }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Sidecar settings as environment twins, from (dict "CONNECT_HEALTH_X" value ...), in name order. A null value
(helm drops a key set to null before the schema sees it) or an empty one is left out, so the sidecar uses its own
default instead of refusing "<nil>".
*/}}
{{- define "kafka-connect.sidecar.settingsEnv" -}}
{{- range $name, $value := . }}
{{- if not (kindIs "invalid" $value) }}
{{- with include "kafka-connect.scalar" $value }}
- name: {{ $name }}
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Settings the sidecar and the apply Job share, as the CLI's environment twins: how to call Connect (timeout, basic
auth with the mounted password file), the log format, and the declared connectors file when there is one.
*/}}
{{- define "kafka-connect.sidecar.commonEnv" -}}
{{- $hc := .Values.healthcheck -}}
{{- include "kafka-connect.sidecar.settingsEnv" (dict
  "CONNECT_HEALTH_REQUEST_TIMEOUT" $hc.requestTimeout
  "CONNECT_HEALTH_LOG_FORMAT" $hc.logFormat) | trim }}
{{- if $hc.auth.username }}
- name: CONNECT_HEALTH_CONNECT_USER
  value: {{ $hc.auth.username | quote }}
- name: CONNECT_HEALTH_CONNECT_PASSWORD_FILE
  value: {{ include "kafka-connect.sidecar.passwordFile" . | quote }}
{{- end }}
{{- if include "kafka-connect.connectorsEnabled" . }}
- name: CONNECT_HEALTH_CONNECTORS_FILE
  value: {{ include "kafka-connect.sidecar.connectorsFile" . | quote }}
{{- end }}
{{- end }}

{{/*
Where the apply Job records the offsets requests it did: the ConfigMap's name and the namespace, from the downward API.
*/}}
{{- define "kafka-connect.sidecar.requestsEnv" -}}
- name: CONNECT_HEALTH_REQUESTS_CONFIGMAP
  value: {{ include "kafka-connect.requestsConfigName" . | quote }}
- name: CONNECT_HEALTH_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* The sidecar container of the worker pods (a list item), serving the probes the Connect container calls. */}}
{{- define "kafka-connect.sidecar.container" -}}
{{- $hc := .Values.healthcheck -}}
- name: connect-health
  image: {{ include "kafka-connect.sidecar.image" . | quote }}
  imagePullPolicy: {{ $hc.image.pullPolicy }}
  command: ["connect-health", "serve"]
  ports:
    - name: health
      containerPort: {{ include "kafka-connect.sidecar.port" . }}
      protocol: TCP
    {{- with $hc.probePort }}
    - name: probes
      containerPort: {{ . }}
      protocol: TCP
    {{- end }}
  env:
    # The sidecar's worker id defaults to $POD_IP:<port of the Connect URL>, Connect's advertised id.
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    - name: CONNECT_HEALTH_CONNECT_URL
      value: {{ include "kafka-connect.localConnectUrl" . | quote }}
    # The memory of restarts (pod restarts spent, ladder attempts, last restarts) on the pod's health-tmp emptyDir:
    # it outlives both containers' restarts (sharedFate kills the sidecar with Connect), not the pod.
    - name: CONNECT_HEALTH_STATE_FILE
      value: /tmp/connect-health-state.json
    {{- if .Values.metrics.jmxExporter.enabled }}
    # The worker's own metrics (the JMX exporter agent in the Connect container): stalled tasks (--stall-after).
    - name: CONNECT_HEALTH_WORKER_METRICS_URL
      value: {{ printf "http://127.0.0.1:%v/metrics" .Values.metrics.jmxExporter.port | quote }}
    {{- end }}
    {{- if .Values.rbac.events }}
    # rbac.events: Events on this pod (connect_health.events), named by the downward API.
    - name: CONNECT_HEALTH_KUBERNETES_EVENTS
      value: "true"
    {{- end }}
    {{- if include "kafka-connect.reconcileEnabled" . }}
    # connectorsReconcile: correct drift, one writer at a time (the holder of the Lease, named by POD_NAME).
    - name: CONNECT_HEALTH_RECONCILE
      value: "1"
    - name: CONNECT_HEALTH_RECONCILE_LEASE
      value: {{ include "kafka-connect.reconcileLeaseName" . | quote }}
    - name: CONNECT_HEALTH_RECONCILE_LEASE_DURATION
      value: {{ include "kafka-connect.scalar" .Values.connectorsReconcile.leaseDurationSeconds | quote }}
    {{- /* No CONNECT_HEALTH_REQUESTS_CONFIGMAP: `serve` has no such setting, drift correction never runs an offsets
    action (the apply Job alone does and records it); the Lease's namespace comes from POD_NAMESPACE below. */}}
    {{- end }}
    {{- if include "kafka-connect.sidecar.needsToken" . }}
    {{- range $name, $field := dict "POD_NAME" "metadata.name" "POD_NAMESPACE" "metadata.namespace" "POD_UID" "metadata.uid" }}
    - name: {{ $name }}
      valueFrom:
        fieldRef:
          fieldPath: {{ $field }}
    {{- end }}
    {{- end }}
    {{- include "kafka-connect.sidecar.settingsEnv" (dict
      "CONNECT_HEALTH_PORT" $hc.port
      "CONNECT_HEALTH_PROBE_PORT" $hc.probePort
      "CONNECT_HEALTH_HOST" $hc.host
      "CONNECT_HEALTH_SCOPE" $hc.scope
      "CONNECT_HEALTH_POLL_INTERVAL" $hc.pollInterval
      "CONNECT_HEALTH_GRACE" $hc.grace
      "CONNECT_HEALTH_RESTART_ATTEMPTS" $hc.restartAttempts
      "CONNECT_HEALTH_RESTART_BACKOFF" $hc.restartBackoff
      "CONNECT_HEALTH_RESTART_RESET" $hc.restartReset
      "CONNECT_HEALTH_UNRESPONSIVE_AFTER" $hc.unresponsiveAfter
      "CONNECT_HEALTH_HERDER_STUCK_AFTER" $hc.herderStuckAfter
      "CONNECT_HEALTH_TRACES" $hc.traces
      "CONNECT_HEALTH_BEST_EFFORT" $hc.bestEffort
      "CONNECT_HEALTH_FAILURE_THRESHOLD" $hc.failureThreshold
      "CONNECT_HEALTH_FLAP_WINDOW" $hc.flapWindow
      "CONNECT_HEALTH_POD_RESTARTS" $hc.podRestarts
      "CONNECT_HEALTH_POD_RESTART_WINDOW" $hc.podRestartWindow
      "CONNECT_HEALTH_STALL_AFTER" $hc.stallAfter) | trim | nindent 4 }}
    {{- include "kafka-connect.sidecar.commonEnv" . | nindent 4 }}
    {{- with $hc.extraEnv }}
    {{- include "kafka-connect.envFromMap" (dict "env" . "context" $) | trim | nindent 4 }}
    {{- end }}
  {{- if $hc.sharedFate }}
  {{- if .Values.livenessProbe.enabled }}
  # sharedFate: the sidecar dies with the worker's health, as Connect does.
  livenessProbe:
    {{- include "kafka-connect.httpProbe" (dict "probe" .Values.livenessProbe "port" (ternary "probes" "health" (not (empty $hc.probePort))) "path" "/livez") | nindent 4 }}
  {{- end }}
  {{- else if $hc.livenessProbe.enabled }}
  livenessProbe:
    {{- include "kafka-connect.httpProbe" (dict "probe" $hc.livenessProbe "port" (ternary "probes" "health" (not (empty $hc.probePort))) "path" "/ping") | nindent 4 }}
  {{- end }}
  {{- if $hc.startupProbe.enabled }}
  startupProbe:
    {{- include "kafka-connect.httpProbe" (dict "probe" $hc.startupProbe "port" (ternary "probes" "health" (not (empty $hc.probePort))) "path" "/ping") | nindent 4 }}
  {{- end }}
  {{- with $hc.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $hc.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    {{- include "kafka-connect.sidecar.volumeMounts" . | nindent 4 }}
    {{- if include "kafka-connect.sidecar.needsToken" . }}
    {{- include "kafka-connect.apiTokenMount" . | nindent 4 }}
    {{- end }}
{{- end }}
