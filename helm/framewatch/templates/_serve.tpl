{{/*
The API's tokens: a bootstrap admin token (FRAMEWATCH_SERVE_ADMIN_TOKEN) and a tokens file
(FRAMEWATCH_SERVE_TOKENS_FILE), both from a Secret: serve.auth.existingSecret, or the one the chart
makes when serve.auth.adminToken or serve.auth.tokensFile is given. The env names are
framewatch/settings.py's (FRAMEWATCH_SERVE_*).
*/}}

{{/* Folder the tokens file is mounted at (read-only). */}}
{{- define "framewatch.serveTokensDir" -}}
/etc/framewatch-serve
{{- end }}

{{/* Whether the chart makes the API's Secret (a token was given as a value). */}}
{{- define "framewatch.serveSecretCreated" -}}
{{- $auth := .Values.serve.auth }}
{{- if and (not $auth.existingSecret) (or $auth.adminToken $auth.tokensFile) }}true{{ end }}
{{- end }}

{{/* Name of the Secret with the API's tokens; fails when there is none (the API refuses to start without a token). */}}
{{- define "framewatch.serveSecret" -}}
{{- $auth := .Values.serve.auth }}
{{- if not (or $auth.adminTokenKey $auth.tokensFileKey) }}
{{- fail "serve.auth.adminTokenKey and serve.auth.tokensFileKey are both empty: the API would have no token to accept" }}
{{- end }}
{{- if $auth.existingSecret }}
{{- if or $auth.adminToken $auth.tokensFile }}
{{- fail "serve.auth.existingSecret is set together with serve.auth.adminToken/tokensFile: the tokens come from one Secret (put them in existingSecret)" }}
{{- end }}
{{- $auth.existingSecret }}
{{- else if include "framewatch.serveSecretCreated" . }}
{{- printf "%s-serve" (include "framewatch.fullname" .) }}
{{- else }}
{{- fail "serve needs an API token: set serve.auth.existingSecret (keys serve.auth.adminTokenKey and/or serve.auth.tokensFileKey), or serve.auth.adminToken / serve.auth.tokensFile for a Secret the chart makes" }}
{{- end }}
{{- end }}

{{/* The API's own env (an EnvVar list): listen on every address, the subscriptions file, the tokens. */}}
{{- define "framewatch.serveEnv" -}}
{{- $auth := .Values.serve.auth }}
{{- $secret := include "framewatch.serveSecret" . }}
- name: FRAMEWATCH_SERVE_HOST
  value: "0.0.0.0"
- name: FRAMEWATCH_SERVE_PORT
  value: {{ .Values.serve.port | quote }}
- name: FRAMEWATCH_SERVE_SUBSCRIPTIONS_FILE
  value: /etc/framewatch/subscriptions.yaml
{{- /* optional: a Secret may hold the tokens file only; the API itself refuses to start with no token at all */}}
{{- if $auth.adminTokenKey }}
- name: FRAMEWATCH_SERVE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $auth.adminTokenKey }}
      optional: true
{{- end }}
{{- if $auth.tokensFileKey }}
- name: FRAMEWATCH_SERVE_TOKENS_FILE
  value: {{ printf "%s/tokens.json" (include "framewatch.serveTokensDir" .) | quote }}
{{- end }}
{{- end }}

{{/* The tokens file volume (a list, empty without tokensFileKey). */}}
{{- define "framewatch.serveVolumes" -}}
{{- $auth := .Values.serve.auth }}
{{- if $auth.tokensFileKey }}
- name: serve-tokens
  secret:
    secretName: {{ include "framewatch.serveSecret" . }}
    defaultMode: 0440
    optional: true
    items:
      - key: {{ $auth.tokensFileKey }}
        path: tokens.json
{{- end }}
{{- end }}

{{/* The tokens file mount (a list, empty without tokensFileKey). */}}
{{- define "framewatch.serveMounts" -}}
{{- if .Values.serve.auth.tokensFileKey }}
- name: serve-tokens
  mountPath: {{ include "framewatch.serveTokensDir" . }}
  readOnly: true
{{- end }}
{{- end }}
