{{/*
The worker's log configuration, from `logging` values: stdout only unless `logging.file.enabled`, the root level,
Connect's REST request log (logger org.apache.kafka.connect.runtime.rest.RestServer, one INFO line per request) at
`logging.requestLogLevel`, per-logger levels. log4j2 properties for Kafka >= 4.0, log4j 1 properties (reload4j)
for Kafka 3.x: `kafka-connect.logFormat` picks. The worker reads it through KAFKA_LOG4J_OPTS.
*/}}

{{/* The logger levels, request log first, as a map {logger: level} (logging.loggers wins). */}}
{{- define "kafka-connect.logLevels" -}}
{{- $levels := dict "org.apache.kafka.connect.runtime.rest.RestServer" .Values.logging.requestLogLevel }}
{{- range $logger, $level := .Values.logging.loggers }}
{{- $_ := set $levels $logger $level }}
{{- end }}
{{- toYaml $levels }}
{{- end }}

{{/* KAFKA_LOG4J_OPTS: where the worker finds the rendered configuration. */}}
{{- define "kafka-connect.log4jOpts" -}}
{{- $file := printf "/etc/kafka-connect/%s" (include "kafka-connect.logConfigFile" .) }}
{{- if eq (include "kafka-connect.logFormat" .) "log4j" }}
{{- printf "-Dlog4j.configuration=file:%s" $file }}
{{- else }}
{{- printf "-Dlog4j2.configurationFile=%s" $file }}
{{- end }}
{{- end }}

{{- define "kafka-connect.logConfig" -}}
{{- $log := .Values.logging }}
{{- $levels := include "kafka-connect.logLevels" . | fromYaml }}
{{- $file := printf "%s/connect.log" (trimSuffix "/" .Values.logDir) }}
{{- if eq (include "kafka-connect.logFormat" .) "log4j" }}
# log4j 1 (reload4j, Kafka 3.x), rendered by the kafka-connect chart from `logging`.
log4j.rootLogger={{ $log.level }}, stdout{{ if $log.file.enabled }}, file{{ end }}
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Target=System.out
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
{{ include "kafka-connect.property" (dict "key" "log4j.appender.stdout.layout.ConversionPattern" "value" $log.pattern) }}
{{- if $log.file.enabled }}
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={{ $file }}
log4j.appender.file.MaxFileSize={{ $log.file.maxSize }}
log4j.appender.file.MaxBackupIndex={{ $log.file.maxFiles }}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
{{ include "kafka-connect.property" (dict "key" "log4j.appender.file.layout.ConversionPattern" "value" $log.pattern) }}
{{- end }}
{{- range $logger := keys $levels | sortAlpha }}
log4j.logger.{{ $logger }}={{ get $levels $logger }}
{{- end }}
{{- else }}
# log4j2 (Kafka >= 4.0), rendered by the kafka-connect chart from `logging`.
status=warn
name=kafka-connect
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.target=SYSTEM_OUT
appender.stdout.layout.type=PatternLayout
{{ include "kafka-connect.property" (dict "key" "appender.stdout.layout.pattern" "value" $log.pattern) }}
{{- if $log.file.enabled }}
appender.file.type=RollingFile
appender.file.name=FILE
appender.file.fileName={{ $file }}
appender.file.filePattern={{ $file }}.%i
appender.file.layout.type=PatternLayout
{{ include "kafka-connect.property" (dict "key" "appender.file.layout.pattern" "value" $log.pattern) }}
appender.file.policies.type=Policies
appender.file.policies.size.type=SizeBasedTriggeringPolicy
appender.file.policies.size.size={{ $log.file.maxSize }}
appender.file.strategy.type=DefaultRolloverStrategy
appender.file.strategy.max={{ $log.file.maxFiles }}
{{- end }}
rootLogger.level={{ $log.level }}
rootLogger.appenderRef.stdout.ref=STDOUT
{{- if $log.file.enabled }}
rootLogger.appenderRef.file.ref=FILE
{{- end }}
{{- range $i, $logger := keys $levels | sortAlpha }}
logger.l{{ $i }}.name={{ $logger }}
logger.l{{ $i }}.level={{ get $levels $logger }}
{{- end }}
{{- end }}
{{- end }}
