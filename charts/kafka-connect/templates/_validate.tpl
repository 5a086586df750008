{{/*
What the API server or the kubelet would refuse, or what would start a worker that cannot run, refused at render
with one line naming the value and what to do (issue 19). Checked on the worker pod as rendered (templates/
deployment.yaml, parsed back), so that every value reaching a name, a port, an env entry or a mount is seen the way
Kubernetes sees it: container, volume, port and env names unique, mount paths unique per container and each naming
a volume, a heap that fits the memory limit. Included once, from templates/checks.yaml (always rendered, renders nothing).
*/}}
{{- define "kafka-connect.validatePod" -}}
{{- $v := .Values }}
{{- /* --- env names the chart sets, offered as values ---------------------------------------------------------- */}}
{{- $connectEnv := dict "POD_IP" "nothing: the chart sets it to the pod IP (rest.advertised.host.name)" "KAFKA_HEAP_OPTS" "heapOpts" "KAFKA_OPTS" "jvmOpts (the chart adds the JMX agent and OAuth settings to it)" "LOG_DIR" "logDir" }}
{{- if $v.logging.enabled }}
{{- $_ := set $connectEnv "KAFKA_LOG4J_OPTS" "logging (or logging.enabled: false to bring your own log configuration)" }}
{{- end }}
{{- range $name, $_ := $v.extraEnv }}
{{- if hasKey $connectEnv $name }}
{{- fail (printf "extraEnv.%s is set by the chart (a second entry is rejected by server-side apply and keeps GitOps tools out of sync): use %s" $name (get $connectEnv $name)) }}
{{- end }}
{{- end }}
{{- if $v.healthcheck.enabled }}
{{- $table := $.Files.Get "files/sidecar-env.json" | fromJson }}
{{- range $name, $_ := $v.healthcheck.extraEnv }}
{{- if hasPrefix "CONNECT_HEALTH_" $name }}
{{- if not (hasKey $table $name) }}
{{- fail (printf "healthcheck.extraEnv.%s is not a connect-health setting (the sidecar would ignore it): see the sidecar's options page of the docs (docs/sidecar/options.md) for the environment twins" $name) }}
{{- end }}
{{- with get $table $name }}
{{- fail (printf "healthcheck.extraEnv.%s is set by the chart: use %s" $name .) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* --- the JMX agent ---------------------------------------------------------------------------------------- */}}
{{- $jmx := $v.metrics.jmxExporter }}
{{- if $jmx.enabled }}
{{- if and (not $jmx.image.repository) (regexMatch "(^|/)apache/kafka(-native)?$" $v.image.repository) }}
{{- fail (printf "metrics.jmxExporter.enabled: the %s image holds no JMX exporter agent at %s: set metrics.jmxExporter.image.repository (with tag or digest) to an image holding the agent jar, or use an image of your own that holds it" $v.image.repository $jmx.jarPath) }}
{{- end }}
{{- if and $jmx.image.repository (not $jmx.image.tag) (not $jmx.image.digest) }}
{{- fail (printf "metrics.jmxExporter.image.tag or .digest is required with metrics.jmxExporter.image.repository %s: without one the agent image is pulled as :latest and changes under you" $jmx.image.repository) }}
{{- end }}
{{- end }}
{{- /* --- the log configuration needs the Kafka version ----------------------------------------------------------- */}}
{{- if and $v.logging.enabled (not $v.logging.format) (not (include "kafka-connect.kafkaVersion" .)) }}
{{- fail (printf "kafkaVersion: the chart cannot tell which Kafka image %s holds (pinned by digest, or not an apache/kafka tag) to render its log configuration (log4j2 for Kafka >= 4.0, log4j 1 for 3.x, which ignores the other and logs nothing): set kafkaVersion (e.g. 3.9.1; Confluent Platform 7.9 is Kafka 3.9, 8.0 is 4.0), or logging.format, or logging.enabled: false" (include "kafka-connect.image" .)) }}
{{- end }}
{{- /* --- events RBAC needs the workers' own ServiceAccount -------------------------------------------------------- */}}
{{- if and $v.rbac.events $v.healthcheck.enabled (not $v.serviceAccount.create) (not $v.serviceAccount.name) }}
{{- fail "rbac.events with serviceAccount.create false would bind the events Role to the namespace's default ServiceAccount (every pod using it could post Events): set serviceAccount.name to the workers' ServiceAccount, or serviceAccount.create: true" }}
{{- end }}
{{- /* --- alerts need something scraping what they select --------------------------------------------------------- */}}
{{- if and $v.metrics.prometheusRule.enabled (not $v.metrics.serviceMonitor.enabled) }}
{{- fail (printf "metrics.prometheusRule: its alerts select job=%q, the label the chart's ServiceMonitor gives the scraped series; set metrics.serviceMonitor.enabled: true (without it no alert can fire)" (include "kafka-connect.fullname" .)) }}
{{- end }}
{{- /* --- the heap fits the memory limit --------------------------------------------------------------------------- */}}
{{- $limit := "" }}
{{- with $v.resources }}{{ with .limits }}{{ with .memory }}{{ $limit = toString . }}{{ end }}{{ end }}{{ end }}
{{- if $limit }}
{{- $limitBytes := include "kafka-connect.quantityBytes" $limit | float64 }}
{{- range $source := list "heapOpts" "jvmOpts" }}
{{- $xmx := regexFindAll "-Xmx[0-9]+[kKmMgGtT]?" (toString (get $v $source)) -1 | last }}
{{- if $xmx }}
{{- $number := regexFind "[0-9]+" $xmx | float64 }}
{{- $unit := regexFind "[kKmMgGtT]$" $xmx | lower }}
{{- $heap := mulf $number (get (dict "" 1 "k" 1024 "m" 1048576 "g" 1073741824 "t" 1099511627776) $unit) }}
{{- if and (gt $limitBytes 0.0) (gt $heap (mulf $limitBytes 0.75)) }}
{{- fail (printf "%s %s is above 75%% of resources.limits.memory %s: the JVM needs the rest for metaspace, threads and buffers, and the kernel kills the worker at the limit; lower -Xmx to at most %dm or raise the limit" $source $xmx $limit (int64 (divf (mulf $limitBytes 0.75) 1048576))) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /* --- the worker pod as Kubernetes sees it --------------------------------------------------------------------- */}}
{{- $deployment := include (print $.Template.BasePath "/deployment.yaml") . | fromYaml }}
{{- /* A value the Deployment carries unquoted that YAML reads as syntax would leave nothing to check (a nil pointer
deep in this template): the chart quotes every string it writes there, and this names the value if one slips by. */}}
{{- with $deployment.Error }}
{{- fail (printf "the worker Deployment does not parse as YAML (%s): a value written into it (a name, path or image) holds YAML syntax or a control character; fix that value" (. | replace "\n" " ")) }}
{{- end }}
{{- $pod := $deployment.spec.template.spec }}
{{- $all := concat ($pod.initContainers | default list) $pod.containers }}
{{- $names := dict }}
{{- range $c := $all }}
{{- if hasKey $names $c.name }}
{{- fail (printf "container name %s is used twice in the worker pod: rename it in extraContainers or plugins (the chart's own are connect, connect-health, jmx-exporter and plugin-<plugins[].name>)" $c.name) }}
{{- end }}
{{- $_ := set $names $c.name true }}
{{- end }}
{{- $volumes := dict }}
{{- range $vol := $pod.volumes }}
{{- if hasKey $volumes $vol.name }}
{{- fail (printf "volume name %s is used twice in the worker pod: rename it in extraVolumes (the chart's own are worker-config, tmp, logs, plugins, kafka-tls, kafka-sasl, jmx-exporter, health-tmp, events-token, connectors, connect-auth and secret-<secretMounts key>)" $vol.name) }}
{{- end }}
{{- $_ := set $volumes $vol.name true }}
{{- end }}
{{- /* An HPA's Utilization target needs a request of that resource in every container (the HPA cannot compute a
utilisation otherwise and does nothing). */}}
{{- $as := $v.autoscaling }}
{{- if $as.enabled }}
{{- range $resource, $value := dict "cpu" "targetCPUUtilizationPercentage" "memory" "targetMemoryUtilizationPercentage" }}
{{- if not (kindIs "invalid" (get $as $value)) }}
{{- range $c := $pod.containers }}
{{- $requests := dict }}
{{- with $c.resources }}{{ with .requests }}{{ $requests = . }}{{ end }}{{ end }}
{{- if not (hasKey $requests $resource) }}
{{- fail (printf "autoscaling.%s: container %s of the worker pod has no %s request, so the HPA cannot compute a utilisation: set resources.requests.%s (healthcheck.resources for connect-health, extraContainers for yours)" $value $c.name $resource $resource) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $ports := dict }}
{{- $portNames := dict }}
{{- range $c := $all }}
{{- $origin := printf "extraContainers.%s" $c.name }}
{{- $envOrigin := printf "extraContainers.%s.env" $c.name }}
{{- if eq $c.name "connect" }}{{ $envOrigin = "extraEnv" }}{{ end }}
{{- if eq $c.name "connect-health" }}{{ $envOrigin = "healthcheck.extraEnv" }}{{ end }}
{{- $paths := dict }}
{{- range $m := $c.volumeMounts | default list }}
{{- if not (hasKey $volumes $m.name) }}
{{- fail (printf "volumeMount %s of container %s names no volume of the worker pod: add the volume to extraVolumes" $m.name $c.name) }}
{{- end }}
{{- if hasKey $paths $m.mountPath }}
{{- fail (printf "mountPath %s is used twice in container %s (volumes %s and %s): move the one in extraVolumeMounts, secretMounts.*.mountPath or extraContainers" $m.mountPath $c.name (get $paths $m.mountPath) $m.name) }}
{{- end }}
{{- $_ := set $paths $m.mountPath $m.name }}
{{- end }}
{{- $env := dict }}
{{- range $e := $c.env | default list }}
{{- if hasKey $env $e.name }}
{{- fail (printf "env %s is set twice in container %s: remove it from %s (the chart sets it)" $e.name $c.name $envOrigin) }}
{{- end }}
{{- $_ := set $env $e.name true }}
{{- end }}
{{- range $p := $c.ports | default list }}
{{- $source := $origin }}
{{- if eq $c.name "connect" }}{{ $source = ternary "restPort" "metrics.jmxExporter.port" (eq (toString $p.name) "http") }}{{ end }}
{{- if eq $c.name "connect-health" }}{{ $source = "healthcheck.port" }}{{ end }}
{{- $key := printf "%v/%s" $p.containerPort ($p.protocol | default "TCP") }}
{{- if hasKey $ports $key }}
{{- fail (printf "port %v is used twice in the worker pod, by %s and %s: give each its own port" $p.containerPort (get $ports $key) $source) }}
{{- end }}
{{- $_ := set $ports $key $source }}
{{- with $p.name }}
{{- if hasKey $portNames . }}
{{- fail (printf "port name %s is used twice in the worker pod, by %s and %s: rename the one in %s (Services and probes find ports by name)" . (get $portNames .) $source $source) }}
{{- end }}
{{- $_ := set $portNames . $source }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Bytes of a Kubernetes memory quantity ("1Gi", "512M", "1e9", "1073741824"), as a number; 0 when unreadable. */}}
{{- define "kafka-connect.quantityBytes" -}}
{{- $q := toString . }}
{{- $unit := regexFind "(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)$" $q }}
{{- $number := trimSuffix $unit $q }}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?([eE][0-9]+)?$" $number }}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- mulf (float64 $number) (get $factors $unit) }}
{{- else }}0{{ end }}
{{- end }}
