{{/*
The JMX exporter agent's configuration: files/jmx-exporter.yaml with metrics.jmxExporter.extraRules placed before
the chart's rules (the first matching rule wins).
*/}}
{{- define "kafka-connect.jmxExporterConfig" -}}
{{- $config := .Files.Get "files/jmx-exporter.yaml" | fromYaml }}
{{- $_ := set $config "rules" (concat .Values.metrics.jmxExporter.extraRules $config.rules) }}
{{- toYaml $config }}
{{- end }}

{{/* Whether an init container brings the agent jar (metrics.jmxExporter.image.repository set). */}}
{{- define "kafka-connect.jmxExporterInit" -}}
{{- if and .Values.metrics.jmxExporter.enabled .Values.metrics.jmxExporter.image.repository }}true{{ end }}
{{- end }}
