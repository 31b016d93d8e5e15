{{- define "eso.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "eso.serviceAccountName" -}}
{{- default (include "eso.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "eso.labels" -}}
app.kubernetes.io/name: extension-server-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "eso.selector" -}}
app.kubernetes.io/name: extension-server-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "eso.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}
