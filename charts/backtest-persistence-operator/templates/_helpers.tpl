{{/* Name of the chart, overridable. */}}
{{- define "btp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "btp.fullname" -}}
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

{{/* Labels of every object. */}}
{{- define "btp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "btp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the manager's pods. */}}
{{- define "btp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "btp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the manager's ServiceAccount. */}}
{{- define "btp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "btp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Manager image: repository, then the digest or the tag (default: appVersion). */}}
{{- define "btp.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the gateway Service. */}}
{{- define "btp.gatewayServiceName" -}}
{{- printf "%s-gateway" (include "btp.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Secret holding the gateway's tls.crt and tls.key. */}}
{{- define "btp.gatewayTLSSecretName" -}}
{{- if and .Values.gateway.tls.existingSecret (not .Values.gateway.tls.certManager.enabled) }}
{{- .Values.gateway.tls.existingSecret }}
{{- else }}
{{- printf "%s-gateway-tls" (include "btp.fullname" .) }}
{{- end }}
{{- end }}

{{/* Non-empty when the manager mounts the gateway's certificate from a Secret. */}}
{{- define "btp.gatewayTLSMounted" -}}
{{- if not (or .Values.gateway.tls.insecure (and .Values.gateway.tls.selfSigned (not .Values.gateway.tls.certManager.enabled) (not .Values.gateway.tls.existingSecret))) }}true{{ end }}
{{- end }}

{{/*
The CA of the gateway's certificate, as a SecretKeySelector in YAML, when the chart knows it:
the ca.crt cert-manager writes beside the issued certificate, or metrics.serviceMonitor.caSecret.
Empty otherwise.
*/}}
{{- define "btp.gatewayCA" -}}
{{- if include "btp.gatewayTLSMounted" . }}
{{- if .Values.gateway.tls.certManager.enabled }}
name: {{ include "btp.gatewayTLSSecretName" . }}
key: ca.crt
{{- else if and .Values.gateway.tls.existingSecret .Values.metrics.serviceMonitor.caSecret.name }}
name: {{ .Values.metrics.serviceMonitor.caSecret.name }}
key: {{ .Values.metrics.serviceMonitor.caSecret.key }}
{{- end }}
{{- end }}
{{- end }}

{{/* URL the gateway advertises in status.endpoint. */}}
{{- define "btp.gatewayURL" -}}
{{- if .Values.gateway.advertiseURL }}
{{- .Values.gateway.advertiseURL }}
{{- else }}
{{- $scheme := ternary "http" "https" .Values.gateway.tls.insecure }}
{{- $host := printf "%s.%s.svc" (include "btp.gatewayServiceName" .) .Release.Namespace }}
{{- if or (and (eq $scheme "https") (eq (int .Values.gateway.service.port) 443)) (and (eq $scheme "http") (eq (int .Values.gateway.service.port) 80)) }}
{{- printf "%s://%s" $scheme $host }}
{{- else }}
{{- printf "%s://%s:%d" $scheme $host (int .Values.gateway.service.port) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The generated manager rules (files/rbac/manager-role.yaml, copied from config/rbac/role.yaml
by hack/sync-chart-crds.sh), split by scope: "cluster" returns the rules on cluster-scoped
APIs (token and access reviews), which only a ClusterRole can grant; "namespaced" the rest.
Call with (dict "root" $ "scope" "cluster"|"namespaced"|"all"); returns YAML {rules: [...]}.
*/}}
{{- define "btp.managerRules" -}}
{{- $role := .root.Files.Get "files/rbac/manager-role.yaml" | fromYaml }}
{{- if not $role.rules }}
{{- fail "the chart has no generated manager rules (files/rbac/manager-role.yaml): run make manifests" }}
{{- end }}
{{- $clusterGroups := list "authentication.k8s.io" "authorization.k8s.io" "apiextensions.k8s.io" }}
{{- $rules := list }}
{{- range $role.rules }}
{{- $cluster := false }}
{{- if .nonResourceURLs }}{{ $cluster = true }}{{ end }}
{{- range (default list .apiGroups) }}
{{- if has . $clusterGroups }}{{ $cluster = true }}{{ end }}
{{- end }}
{{- if or (eq $.scope "all") (and (eq $.scope "cluster") $cluster) (and (eq $.scope "namespaced") (not $cluster)) }}
{{- $rules = append $rules . }}
{{- end }}
{{- end }}
{{- toYaml (dict "rules" $rules) }}
{{- end }}
