{{/* The chart's name, or nameOverride. */}}
{{- define "modelway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name alone when it already holds the chart's name. */}}
{{- define "modelway.fullname" -}}
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

{{- define "modelway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "modelway.labels" -}}
helm.sh/chart: {{ include "modelway.chart" . }}
{{ include "modelway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelway.gatewaySelectorLabels" -}}
{{ include "modelway.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "modelway.redisSelectorLabels" -}}
{{ include "modelway.selectorLabels" . }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "modelway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the gateway's environment comes from. */}}
{{- define "modelway.secretName" -}}
{{- if .Values.secret.create }}
{{- include "modelway.fullname" . }}
{{- else }}
{{- required "secret.existingSecret is required when secret.create is false" .Values.secret.existingSecret }}
{{- end }}
{{- end }}

{{- define "modelway.redisName" -}}
{{- printf "%s-redis" (include "modelway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "true" when the gateways share state through Redis (in-chart or external), else empty. */}}
{{- define "modelway.sharedState" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.externalRedis.existingSecret }}true{{ end }}
{{- end }}

{{/* The most replicas that can run at once. */}}
{{- define "modelway.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ int .Values.autoscaling.maxReplicas }}{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{/* terminationGracePeriodSeconds, derived from the gateway's grace period. */}}
{{- define "modelway.terminationGracePeriodSeconds" -}}
{{- add (int (ceil .Values.gateway.shutdownGraceSeconds)) (int .Values.gateway.preStopSleepSeconds) (int .Values.gateway.terminationMarginSeconds) }}
{{- end }}

{{/* Refuses values that cannot work. */}}
{{- define "modelway.validate" -}}
{{- if and .Values.redis.enabled (or .Values.externalRedis.url .Values.externalRedis.existingSecret) }}
{{- fail "modelway: set redis.enabled=false to use externalRedis (both are set)" }}
{{- end }}
{{- if and .Values.externalRedis.url .Values.externalRedis.existingSecret }}
{{- fail "modelway: set externalRedis.url or externalRedis.existingSecret, not both" }}
{{- end }}
{{- if and (gt (int (include "modelway.maxReplicas" .)) 1) (not (include "modelway.sharedState" .)) }}
{{- fail "modelway: more than one gateway replica needs shared state: set redis.enabled=true (an in-chart Redis) or externalRedis.url (or externalRedis.existingSecret); or run one replica (replicaCount=1, autoscaling.enabled=false)" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "modelway: autoscaling.minReplicas is larger than autoscaling.maxReplicas" }}
{{- end }}
{{- if and .Values.externalRedis.url (not .Values.secret.create) }}
{{- fail "modelway: externalRedis.url is stored in the chart's Secret; with secret.create=false use externalRedis.existingSecret" }}
{{- end }}
{{- if not (has .Values.gateway.mode (list "reverse" "forward")) }}
{{- fail "modelway: gateway.mode must be reverse or forward" }}
{{- end }}
{{- end }}

{{/* The gateway configuration: values.config with the chart-owned settings. */}}
{{- define "modelway.config" -}}
{{- $config := fromYaml .Values.config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "modelway: config is not valid YAML: %s" (get $config "Error")) }}
{{- end }}
{{- $gateway := get $config "gateway" | default dict }}
{{- $_ := set $gateway "host" "0.0.0.0" }}
{{- $_ := set $gateway "port" (int .Values.gateway.port) }}
{{- $_ := set $gateway "mode" .Values.gateway.mode }}
{{- $_ := set $gateway "shutdown_grace_seconds" .Values.gateway.shutdownGraceSeconds }}
{{- $_ := set $gateway "ca_dir" .Values.gateway.caDir }}
{{- if .Values.metrics.port }}
{{- $_ := set $gateway "metrics_port" (int .Values.metrics.port) }}
{{- end }}
{{- $_ := set $config "gateway" $gateway }}
{{- if include "modelway.sharedState" . }}
{{- $_ := set $config "state" (dict "backend" "redis" "url" "${MODELWAY_REDIS_URL}") }}
{{- end }}
{{- toYaml $config }}
{{- end }}
