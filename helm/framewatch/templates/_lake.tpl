{{/*
Where the sink writes Parquet and the API reads it: an S3-compatible bucket (credentials from an
existing Secret) or a PersistentVolumeClaim mounted in both. The env names are
framewatch/settings.py's (FRAMEWATCH_SINK_*); the API takes the same ones to find the same lake.
*/}}

{{/* Folder the lake claim is mounted at. */}}
{{- define "framewatch.lakeDir" -}}
/var/lib/framewatch-lake
{{- end }}

{{/* Name of the lake's PersistentVolumeClaim: lake.persistence.existingClaim, else the chart's. */}}
{{- define "framewatch.lakeClaim" -}}
{{- default (printf "%s-lake" (include "framewatch.fullname" .)) .Values.lake.persistence.existingClaim }}
{{- end }}

{{/* Whether the sink or the API runs (both need the lake). */}}
{{- define "framewatch.lakeUsed" -}}
{{- if or .Values.sink.enabled .Values.serve.enabled }}true{{ end }}
{{- end }}

{{/* Refuse a lake the sink and the API could not share. */}}
{{- define "framewatch.lakeCheck" -}}
{{- $lake := .Values.lake }}
{{- if include "framewatch.lakeUsed" . }}
{{- if and $lake.s3.enabled $lake.persistence.enabled }}
{{- fail "lake.s3.enabled and lake.persistence.enabled are both set: the lake is either a bucket or a volume" }}
{{- end }}
{{- if not (or $lake.s3.enabled $lake.persistence.enabled) }}
{{- fail "sink/serve need a lake both can reach: set lake.s3.enabled (with lake.s3.bucket) or lake.persistence.enabled (a ReadWriteMany claim when the API runs on other nodes than the sink)" }}
{{- end }}
{{- if and $lake.s3.enabled (not $lake.s3.bucket) }}
{{- fail "lake.s3.enabled needs lake.s3.bucket (the sink writes s3://<bucket>/<prefix>)" }}
{{- end }}
{{- end }}
{{- end }}

{{/* FRAMEWATCH_SINK_URL: s3://bucket/prefix, or the mounted claim's folder. */}}
{{- define "framewatch.lakeUrl" -}}
{{- $s3 := .Values.lake.s3 }}
{{- if $s3.enabled }}
{{- printf "s3://%s/%s" $s3.bucket (trimAll "/" $s3.prefix) | trimSuffix "/" }}
{{- else }}
{{- include "framewatch.lakeDir" . }}
{{- end }}
{{- end }}

{{/* The lake's env of the sink and the API (an EnvVar list); S3 keys only through secretKeyRef. */}}
{{- define "framewatch.lakeEnv" -}}
{{- include "framewatch.lakeCheck" . }}
{{- $s3 := .Values.lake.s3 }}
- name: FRAMEWATCH_SINK_URL
  value: {{ include "framewatch.lakeUrl" . | quote }}
{{- if $s3.enabled }}
- name: FRAMEWATCH_SINK_S3_REGION
  value: {{ $s3.region | quote }}
{{- with $s3.endpoint }}
- name: FRAMEWATCH_SINK_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $s3.existingSecret }}
- name: FRAMEWATCH_SINK_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.accessKeyIdKey }}
- name: FRAMEWATCH_SINK_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- end }}

{{/* The lake volume (a list of one, empty for S3); call with (dict "root" $). */}}
{{- define "framewatch.lakeVolumes" -}}
{{- if .root.Values.lake.persistence.enabled }}
- name: lake
  persistentVolumeClaim:
    claimName: {{ include "framewatch.lakeClaim" .root }}
{{- end }}
{{- end }}

{{/* The lake mount; call with (dict "root" $ "readOnly" bool): the API only reads. */}}
{{- define "framewatch.lakeMounts" -}}
{{- if .root.Values.lake.persistence.enabled }}
- name: lake
  mountPath: {{ include "framewatch.lakeDir" .root }}
  readOnly: {{ .readOnly }}
{{- end }}
{{- end }}
