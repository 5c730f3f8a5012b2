{{/* Names, labels and the shared pieces of every workload. */}}

{{- define "xdp47.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xdp47.fullname" -}}
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

{{- define "xdp47.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The component's resource name: <fullname>-<component>. Call with (dict "root" $ "component" "api"). */}}
{{- define "xdp47.componentName" -}}
{{- printf "%s-%s" (include "xdp47.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xdp47.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xdp47.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels. Call with (dict "root" $ "component" "api"). */}}
{{- define "xdp47.labels" -}}
helm.sh/chart: {{ include "xdp47.chart" .root }}
{{ include "xdp47.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: xdp47
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* image reference: repository:tag, the tag defaulting to appVersion. Call with (dict "root" $ "image" .Values.api.image). */}}
{{- define "xdp47.image" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if eq (toString $tag) "latest" }}
{{- fail "image tags must be pinned: \"latest\" is refused" }}
{{- end }}
{{- printf "%s:%s" .image.repository (toString $tag) }}
{{- end }}

{{- define "xdp47.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "xdp47.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret the chart renders (holds only values given inline). */}}
{{- define "xdp47.secretName" -}}
{{- printf "%s-secrets" (include "xdp47.fullname" .) }}
{{- end }}

{{/*
A secretKeyRef for one of postgresql / rabbitmq / agentToken. Call with
(dict "root" $ "block" .Values.postgresql "inline" .Values.postgresql.url "key" "db-url" "what" "postgresql.url").
*/}}
{{- define "xdp47.secretRef" -}}
{{- if .block.existingSecret -}}
secretKeyRef:
  name: {{ .block.existingSecret }}
  key: {{ .block.existingSecretKey }}
{{- else if .inline -}}
secretKeyRef:
  name: {{ include "xdp47.secretName" .root }}
  key: {{ .key }}
{{- else -}}
{{- fail (printf "set %s or %s.existingSecret" .what (splitList "." .what | first)) }}
{{- end }}
{{- end }}

{{- define "xdp47.dbUrlRef" -}}
{{- include "xdp47.secretRef" (dict "root" . "block" .Values.postgresql "inline" .Values.postgresql.url "key" "db-url" "what" "postgresql.url") }}
{{- end }}

{{- define "xdp47.amqpUrlRef" -}}
{{- include "xdp47.secretRef" (dict "root" . "block" .Values.rabbitmq "inline" .Values.rabbitmq.url "key" "amqp-url" "what" "rabbitmq.url") }}
{{- end }}

{{- define "xdp47.agentTokenRef" -}}
{{- include "xdp47.secretRef" (dict "root" . "block" .Values.agentToken "inline" .Values.agentToken.value "key" "agent-token" "what" "agentToken.value") }}
{{- end }}

{{/* True (non-empty) when the control plane needs XDP47_AGENT_TOKEN: the dev token is on. */}}
{{- define "xdp47.devTokenEnabled" -}}
{{- if eq (toString (index .Values.config "XDP47_DEV_TOKEN_ENABLED" | default "false")) "true" }}true{{ end }}
{{- end }}

{{/* Service base URLs inside the cluster. */}}
{{- define "xdp47.apiUrl" -}}
{{- printf "http://%s:%v" (include "xdp47.componentName" (dict "root" . "component" "api")) .Values.api.service.port }}
{{- end }}

{{- define "xdp47.ingestUrl" -}}
{{- printf "http://%s:%v" (include "xdp47.componentName" (dict "root" . "component" "ingest")) .Values.ingest.service.port }}
{{- end }}

{{/*
The artifact store's environment, for api (which writes and reads it) and ingest
(which signs download URLs of it). Call with (dict "root" $ "component" "api").
*/}}
{{- define "xdp47.artifactEnv" -}}
{{- $a := .root.Values.artifacts }}
{{- if eq $a.store "s3" }}
- name: XDP47_BLOB_STORE
  value: s3
- name: XDP47_S3_BUCKET
  value: {{ $a.s3.bucket | quote }}
- name: XDP47_S3_REGION
  value: {{ $a.s3.region | quote }}
{{- with $a.s3.endpoint }}
- name: XDP47_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $a.s3.prefix }}
- name: XDP47_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
- name: XDP47_S3_PRESIGN_TTL_S
  value: {{ $a.s3.presignTtlSeconds | quote }}
{{- with $a.s3.cdnUrl }}
- name: XDP47_ARTIFACT_CDN_URL
  value: {{ . | quote }}
{{- end }}
{{- with $a.s3.existingSecret }}
- name: XDP47_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $a.s3.accessKeyIdKey }}
- name: XDP47_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $a.s3.secretAccessKeyKey }}
{{- end }}
{{- else if eq .component "api" }}
- name: XDP47_BLOB_STORE
  value: fs
- name: XDP47_BLOB_DIR
  value: /var/lib/xdp47/blobs
{{- end }}
{{- if eq .component "api" }}
- name: XDP47_MAX_UPLOAD_BYTES
  value: {{ $a.maxUploadBytes | int64 | toString | quote }}
{{- end }}
{{- end }}

{{/* The ingress's body limit: the api's upload limit plus 1 MiB for the UI form's fields. */}}
{{- define "xdp47.ingressBodySize" -}}
{{- add (.Values.artifacts.maxUploadBytes | int64) 1048576 }}
{{- end }}

{{- /* The System page's feeds: every ingest and scheduler replica through the
headless Services (service.yaml), unless api.env sets them. */}}
{{- define "xdp47.systemMetricsEnv" -}}
{{- $env := .Values.api.env | default dict }}
{{- if not (hasKey $env "XDP47_INGEST_METRICS_URLS") }}
- name: XDP47_INGEST_METRICS_URLS
  value: {{ printf "http://%s-pods:8080/metrics" (include "xdp47.componentName" (dict "root" . "component" "ingest")) | quote }}
{{- end }}
{{- if not (hasKey $env "XDP47_SCHEDULER_METRICS_URLS") }}
- name: XDP47_SCHEDULER_METRICS_URLS
  value: {{ printf "http://%s-pods:9090/metrics" (include "xdp47.componentName" (dict "root" . "component" "scheduler")) | quote }}
{{- end }}
{{- end }}
