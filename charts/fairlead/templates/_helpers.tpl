{{/*
Names and labels shared by the templates.
*/}}

{{/* Prefix of object names: the release name, or "<release>-fairlead" when it lacks "fairlead". */}}
{{- define "fairlead.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The labels the workloads select on. The operator finds the dataplane Pods by
app.kubernetes.io/name=fairlead-dataplane, so these names are fixed. Call with
(dict "ctx" $ "component" "operator"|"dataplane"). */}}
{{- define "fairlead.selectorLabels" -}}
app.kubernetes.io/name: fairlead-{{ .component }}
{{- end -}}

{{/* Every object's labels (app.kubernetes.io/*); same argument as selectorLabels. */}}
{{- define "fairlead.labels" -}}
{{ include "fairlead.selectorLabels" . }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: fairlead
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* An image reference; call with (dict "ctx" $ "image" .Values.images.operator). */}}
{{- define "fairlead.image" -}}
{{ .image.repository }}:{{ .image.tag | default .ctx.Chart.AppVersion }}
{{- end -}}
