{{/*
Names and labels shared by every template. Resource names are capped at 63 characters
(DNS label) and the SparkApplication's at 52: the operator derives "<name>-driver" and
"<name>-ui-svc" from it, and those must still fit.
*/}}

{{- define "fruitlens.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fruitlens.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "fruitlens.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades, so only name and instance. */}}
{{- define "fruitlens.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fruitlens.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fruitlens.labels" -}}
helm.sh/chart: {{ include "fruitlens.chart" . }}
{{ include "fruitlens.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: batch-job
app.kubernetes.io/part-of: fruitlens
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fruitlens.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fruitlens.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "fruitlens.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Where the ConfigMap's job.yaml is mounted in the driver. */}}
{{- define "fruitlens.configDir" -}}/etc/fruitlens{{- end }}

{{/*
Pod-level security for driver and executors: the apache/spark image's user (UID/GID 185).
fsGroup makes the projected IRSA token (mode 0600, owned by root otherwise) readable by that
user (spark-operator issue #1256).
*/}}
{{- define "fruitlens.podSecurityContext" -}}
runAsUser: 185
runAsGroup: 185
runAsNonRoot: true
fsGroup: 185
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level security: nothing to escalate to, nothing to write outside the emptyDirs. */}}
{{- define "fruitlens.containerSecurityContext" -}}
runAsUser: 185
runAsGroup: 185
runAsNonRoot: true
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Writable paths under the read-only root filesystem, mounted in driver and executors:
  /tmp                   JVM hsperfdata, Python tempfile, TensorFlow/Keras (KERAS_HOME) and
                         matplotlib (MPLCONFIGDIR) caches; HOME points here too
  /var/data/spark-local  Spark local dir (shuffle files, spills, blocks); a volume whose name
                         starts with "spark-local-dir-" replaces the one Spark would add itself,
                         so it gets a size limit
  /opt/spark/work-dir    the image's WORKDIR, where Spark copies the files it ships to a pod
*/}}
{{- define "fruitlens.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: spark-local-dir-1
  mountPath: /var/data/spark-local
- name: work-dir
  mountPath: /opt/spark/work-dir
{{- end }}

{{/* Environment for the read-only root filesystem and the Python side of the job. */}}
{{- define "fruitlens.env" -}}
- name: HOME
  value: /tmp
- name: KERAS_HOME
  value: /tmp/keras
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
- name: XDG_CACHE_HOME
  value: /tmp/cache
# Nothing may be written next to the installed code.
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
# The STS call of IRSA needs a region the JVM can see at start; the webhook does not always
# inject one. The same value as the job's own region setting.
- name: AWS_REGION
  value: {{ .Values.config.region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.config.region | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}
