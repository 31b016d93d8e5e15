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

{{/*
True when the group expression given is reserved for Kubernetes: k8s.io, kubernetes.io and
their subdomains. Only a grant that names such a group exactly opens it; no wildcard does.
*/}}
{{- define "eso.reserved" -}}
({{ . }} == 'k8s.io' || {{ . }}.endsWith('.k8s.io') || {{ . }} == 'kubernetes.io' || {{ . }}.endsWith('.kubernetes.io'))
{{- end -}}

{{/*
The ClusterRoles the operator may bind, as a JSON list: system:auth-delegator, every
clusterRoles entry of the grants, and bindableClusterRoles.
*/}}
{{- define "eso.bindableClusterRoles" -}}
{{- $roles := list "system:auth-delegator" -}}
{{- if kindIs "slice" .Values.grants -}}
{{- range .Values.grants }}{{ range .clusterRoles }}{{ $roles = append $roles . }}{{ end }}{{ end -}}
{{- end -}}
{{- range .Values.bindableClusterRoles }}{{ $roles = append $roles . }}{{ end -}}
{{- $roles | uniq | toJson -}}
{{- end -}}

{{/* CEL: the grant covers the request's namespace, by name or by labels. An empty
     namespaceSelector ({}) matches every namespace, as in the operator. */}}
{{- define "eso.grantNamespaces" -}}
{{- $ns := list -}}
{{- with .namespaces -}}
{{- $quoted := list -}}
{{- range . }}{{ $quoted = append $quoted (printf "'%s'" .) }}{{ end -}}
{{- $ns = append $ns (printf "request.namespace in [%s]" (join ", " $quoted)) -}}
{{- end -}}
{{- if hasKey . "namespaceSelector" -}}
{{- $labels := list "true" -}}
{{- range $k, $v := (.namespaceSelector | default dict).matchLabels -}}
{{- $labels = append $labels (printf "(has(namespaceObject.metadata.labels) && '%s' in namespaceObject.metadata.labels && namespaceObject.metadata.labels['%s'] == '%s')" $k $k $v) -}}
{{- end -}}
{{- $ns = append $ns (printf "(%s)" (join " && " $labels)) -}}
{{- end -}}
{{- if $ns }}{{ join " || " $ns }}{{ else }}false{{ end -}}
{{- end -}}

{{/* CEL: some grant for the request's namespace sets the boolean .field. */}}
{{- define "eso.grantAllows" -}}
{{- $terms := list -}}
{{- range .grants -}}
{{- if get . $.field -}}
{{- $terms = append $terms (printf "(%s)" (include "eso.grantNamespaces" .)) -}}
{{- end -}}
{{- end -}}
{{- if $terms }}{{ join " || " $terms }}{{ else }}false{{ end -}}
{{- end -}}

{{/* CEL: some grant for the request's namespace lists the CEL value .value under its list
     .field (clusterRoles, serviceAccountNames). */}}
{{- define "eso.listGranted" -}}
{{- $terms := list -}}
{{- range .grants -}}
{{- $listed := get . $.field -}}
{{- if $listed -}}
{{- $ns := include "eso.grantNamespaces" . -}}
{{- $quoted := list -}}
{{- range $listed }}{{ $quoted = append $quoted (printf "'%s'" .) }}{{ end -}}
{{- $terms = append $terms (printf "((%s) && %s in [%s])" $ns $.value (join ", " $quoted)) -}}
{{- end -}}
{{- end -}}
{{- if $terms }}{{ join " || " $terms }}{{ else }}false{{ end -}}
{{- end -}}

{{/* CEL: some grant covers the request's namespace and the group expression .group (with
     .adopt, one that also allows adoption). */}}
{{- define "eso.grantCovers" -}}
{{- $terms := list -}}
{{- range .grants -}}
{{- if or (not $.adopt) .adoptExisting -}}
{{- $ns := include "eso.grantNamespaces" . -}}
{{- $groups := list -}}
{{- range .groups -}}
{{- if hasPrefix "*." . -}}
{{- $groups = append $groups (printf "(%s.endsWith('%s') && !%s)" $.group (trimPrefix "*" .) (include "eso.reserved" $.group)) -}}
{{- else -}}
{{- $groups = append $groups (printf "%s == '%s'" $.group .) -}}
{{- end -}}
{{- end -}}
{{- $terms = append $terms (printf "((%s) && (%s))" $ns (join " || " $groups)) -}}
{{- end -}}
{{- end -}}
{{- if $terms }}{{ join " || " $terms }}{{ else }}false{{ end -}}
{{- end -}}

{{/* CEL: the external host h is one the aggregator must never be pointed at without an exact
     grant: loopback, link-local, unspecified, localhost, the kubernetes Service by name (the
     operator also refuses its ClusterIP). */}}
{{- define "eso.restrictedHost" -}}
(isIP(h) && (ip(h).isLoopback() || ip(h).isLinkLocalUnicast() || h.startsWith('0.'))) || h == 'localhost' || h.endsWith('.localhost') || h in ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc'] || h.startsWith('kubernetes.default.svc.')
{{- end -}}

{{/* CEL: some grant for the request's namespace opens external host h on port p; with
     .exact, only by listing h itself. */}}
{{- define "eso.externalCovers" -}}
{{- $terms := list -}}
{{- range .grants -}}
{{- $grant := . -}}
{{- with .external -}}
{{- $hosts := list -}}
{{- range .hosts -}}
{{- if contains "/" . -}}
{{- if not $.exact }}{{ $hosts = append $hosts (printf "(isIP(h) && cidr('%s').containsIP(h))" .) }}{{ end -}}
{{- else if hasPrefix "*." . -}}
{{- if not $.exact }}{{ $hosts = append $hosts (printf "(h.endsWith('%s') && size(h) > %d)" (trimPrefix "*" .) (len (trimPrefix "*" .))) }}{{ end -}}
{{- else -}}
{{- $hosts = append $hosts (printf "h == '%s'" .) -}}
{{- end -}}
{{- end -}}
{{- $ports := "true" -}}
{{- with .ports -}}
{{- $quoted := list -}}
{{- range . }}{{ $quoted = append $quoted (printf "%v" .) }}{{ end -}}
{{- $ports = printf "p in [%s]" (join ", " $quoted) -}}
{{- end -}}
{{- if $hosts -}}
{{- $terms = append $terms (printf "((%s) && %s && (%s))" (include "eso.grantNamespaces" $grant) $ports (join " || " $hosts)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $terms }}{{ join " || " $terms }}{{ else }}false{{ end -}}
{{- end -}}

{{/* CEL: the highest groupPriorityMinimum the request's namespace may give the group
     expression .group: 1000 (a CRD's), or more where a grant covering it sets
     maxGroupPriorityMinimum. */}}
{{- define "eso.priorityCap" -}}
{{- $terms := list -}}
{{- if kindIs "slice" .grants -}}
{{- range .grants -}}
{{- if .maxGroupPriorityMinimum -}}
{{- $covers := include "eso.grantCovers" (dict "grants" (list .) "adopt" false "group" $.group) -}}
{{- $terms = append $terms (printf "((%s) ? %d : 1000)" $covers (int .maxGroupPriorityMinimum)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if $terms }}[1000, {{ join ", " $terms }}].max(){{ else }}1000{{ end -}}
{{- end -}}
