{{/*
Names, labels and the shared building blocks of the chart's KubeRay objects. The pod and job
specs mirror sessrec/k8s/render.py (`sessrec k8s render`); tests/test_k8s_chart.py renders both and
compares them, so change the two together. The name limits and patterns below repeat
sessrec/k8s/defaults.py, which test_the_chart_repeats_the_python_constants checks.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "sessrec.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else <release>-<name>, or the release name alone when
it already contains the chart name. Not truncated to fit KubeRay's limits: "sessrec.checks"
fails with a clear message instead, because a silently cut name could collide.
*/}}
{{- define "sessrec.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride }}
{{- else }}
{{- $name := include "sessrec.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sessrec.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that identify this release's pods; they never change over upgrades. */}}
{{- define "sessrec.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sessrec.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every top-level object. */}}
{{- define "sessrec.labels" -}}
helm.sh/chart: {{ include "sessrec.chart" . }}
{{ include "sessrec.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The sweep's name (spec `name`, default "sweep"), used in labels and sweep ids. */}}
{{- define "sessrec.sweepName" -}}
{{- (.Values.sweep | default dict).name | default "sweep" }}
{{- end }}

{{/* The image by tag, pinned to image.digest when one is given. */}}
{{- define "sessrec.image" -}}
{{- $reference := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- if .Values.image.digest }}{{ printf "%s@%s" $reference .Values.image.digest }}{{ else }}{{ $reference }}{{ end }}
{{- end }}

{{/* The RayCluster that `job.target: cluster` selects. */}}
{{- define "sessrec.targetCluster" -}}
{{- .Values.job.clusterName | default (include "sessrec.fullname" .) }}
{{- end }}

{{/* Pod security: the image's non-root `ray` user (uid 1000, gid 100) and the runtime's seccomp profile. */}}
{{- define "sessrec.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 100
fsGroup: 100
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "sessrec.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/* S3 settings from the chart's ConfigMap, credentials from s3.existingSecret, then the extra envFrom. */}}
{{- define "sessrec.envFrom" -}}
- configMapRef:
    name: {{ include "sessrec.fullname" . }}-s3
{{- with .Values.s3.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with .Values.envFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A Ray pod template. Arguments: root (the chart context), group (.Values.head or .Values.worker),
component (container name and label), apiAccess (keep the service account token: only the head
needs it, for the autoscaler sidecar).
*/}}
{{- define "sessrec.rayPod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "sessrec.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $root.Values.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if not .apiAccess }}
  automountServiceAccountToken: false
  {{- end }}
  securityContext:
    {{- include "sessrec.podSecurityContext" $root | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "sessrec.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      {{- with $root.Values.env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      envFrom:
        {{- include "sessrec.envFrom" $root | nindent 8 }}
      resources:
        {{- toYaml .group.resources | nindent 8 }}
      securityContext:
        {{- include "sessrec.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        # Ray's object store lives in /dev/shm, which is 64 MiB in a container by default.
        - name: dshm
          mountPath: /dev/shm
        {{- with $root.Values.volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ .group.shmSize | default $root.Values.worker.shmSize }}
    {{- with $root.Values.volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .group.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .group.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .group.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The RayCluster spec of the long-lived cluster and of every ephemeral one. */}}
{{- define "sessrec.rayClusterSpec" -}}
rayVersion: {{ .Values.rayVersion | quote }}
enableInTreeAutoscaling: true
autoscalerOptions:
  upscalingMode: {{ .Values.autoscaler.upscalingMode }}
  idleTimeoutSeconds: {{ .Values.autoscaler.idleTimeoutSeconds | int }}
  resources:
    {{- toYaml .Values.autoscaler.resources | nindent 4 }}
  securityContext:
    {{- include "sessrec.containerSecurityContext" . | nindent 4 }}
# KubeRay creates a Secret with a random token and injects RAY_AUTH_TOKEN into every Ray container.
authOptions:
  mode: token
headGroupSpec:
  {{- with .Values.head.serviceType }}
  serviceType: {{ . }}
  {{- end }}
  {{- with .Values.head.serviceAnnotations }}
  headService:
    metadata:
      annotations:
        {{- toYaml . | nindent 8 }}
  {{- end }}
  # No trials on the head: it runs GCS, the dashboard and the Tune driver.
  rayStartParams:
    {{- mustMergeOverwrite (dict "num-cpus" "0") (deepCopy (.Values.head.rayStartParams | default dict)) | toYaml | nindent 4 }}
  template:
    {{- include "sessrec.rayPod" (dict "root" . "group" .Values.head "component" "ray-head" "apiAccess" true) | nindent 4 }}
workerGroupSpecs:
  {{- include "sessrec.workerGroup" (dict "root" . "name" .Values.worker.groupName "group" .Values.worker) | nindent 2 }}
  {{- range $name, $group := .Values.additionalWorkerGroups }}
  {{- include "sessrec.workerGroup" (dict "root" $ "name" $name "group" $group) | nindent 2 }}
  {{- end }}
{{- end }}

{{/* One worker group. Arguments: root, name, group (.Values.worker or an additionalWorkerGroups entry). */}}
{{- define "sessrec.workerGroup" -}}
- groupName: {{ .name }}
  replicas: {{ .group.minReplicas | int }}
  minReplicas: {{ .group.minReplicas | int }}
  maxReplicas: {{ .group.maxReplicas | int }}
  rayStartParams:
    {{- with .group.rayStartParams }}
    {{- toYaml . | nindent 4 }}
    {{- else }} {}
    {{- end }}
  template:
    {{- include "sessrec.rayPod" (dict "root" .root "group" .group "component" "ray-worker" "apiAccess" false) | nindent 4 }}
{{- end }}

{{/*
One sweep as a RayJob spec. Arguments: root, sweepId ("" = generated at run time). The spec
ConfigMap is mounted into the submitter pod and uploaded as the job's working_dir, so the same
entrypoint works on an ephemeral cluster and on a shared one.
*/}}
{{- define "sessrec.rayJobSpec" -}}
{{- $root := .root -}}
{{- $fullname := include "sessrec.fullname" $root -}}
{{- /* A fixed id: a retry (backoffLimit) runs this again and continues the sweep the last attempt began. */}}
{{- $resume := ternary " --resume-existing" "" (ne .sweepId "") }}
{{- with $root.Values.promote.name }}
{{- /* Then `results promote` of the same sweep, as `entrypoint` in sessrec/k8s/render.py: one bash
script (KubeRay pastes the entrypoint into the submitter's shell line `ray job submit ... -- <entrypoint>`),
whose SWEEP_ID is the fixed id or <spec name>-<UTC time>-<4 hex>, made once on the head. */}}
{{- $stamp := "$(date -u +%Y%m%d-%H%M%S)-$(printf %04x $RANDOM)" }}
{{- /* The spec name's first 19 characters (sweep.records.SWEEP_ID_PREFIX_LENGTH): an id fits in 40. */}}
{{- $prefix := regexReplaceAll "-+$" (include "sessrec.sweepName" $root | trunc 19) "" }}
{{- $sweepId := $.sweepId | default (printf "%s-%s" $prefix $stamp) }}
{{- $script := printf "SWEEP_ID=%s && sessrec tune run sweep.yaml --address auto --sweep-id \"$SWEEP_ID\"%s && sessrec results promote \"$SWEEP_ID\" --name %s%s" $sweepId $resume . (ternary " --if-better" "" $root.Values.promote.ifBetter) }}
entrypoint: {{ printf "bash -c %s" (squote $script) | quote }}
{{- else }}
entrypoint: {{ printf "sessrec tune run sweep.yaml --address auto%s" (ternary (printf " --sweep-id %s%s" .sweepId $resume) "" (ne .sweepId "")) | quote }}
{{- end }}
# ConfigMap volumes hold `..data` and timestamped folders besides the keys; upload only the keys.
runtimeEnvYAML: |
  working_dir: /etc/sessrec
  excludes: ["..*"]
submissionMode: K8sJobMode
activeDeadlineSeconds: {{ $root.Values.job.activeDeadlineSeconds | int }}
# Set explicitly because KubeRay's default submitter pod has no security context. No command:
# KubeRay fills in `ray job submit ... -- <entrypoint>`, which uploads the mounted spec.
submitterPodTemplate:
  metadata:
    labels:
      {{- include "sessrec.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: rayjob-submitter
  spec:
    restartPolicy: Never
    automountServiceAccountToken: false
    securityContext:
      {{- include "sessrec.podSecurityContext" $root | nindent 6 }}
    {{- with $root.Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: submitter
        image: {{ include "sessrec.image" $root }}
        imagePullPolicy: {{ $root.Values.image.pullPolicy }}
        resources:
          {{- toYaml $root.Values.job.submitter.resources | nindent 10 }}
        securityContext:
          {{- include "sessrec.containerSecurityContext" $root | nindent 10 }}
        volumeMounts:
          - name: sweep
            mountPath: /etc/sessrec
            readOnly: true
    volumes:
      - name: sweep
        configMap:
          name: {{ $fullname }}-sweep
{{- if eq $root.Values.job.target "cluster" }}
# A shared cluster is never shut down by a job, and KubeRay refuses retries on it.
clusterSelector:
  ray.io/cluster: {{ include "sessrec.targetCluster" $root }}
{{- else }}
shutdownAfterJobFinishes: {{ $root.Values.job.shutdownAfterJobFinishes }}
ttlSecondsAfterFinished: {{ $root.Values.job.ttlSecondsAfterFinished | int }}
{{- /* null means 1: a value set with target "cluster" fails in checks, which needs to tell it apart. */}}
backoffLimit: {{ ternary 1 $root.Values.job.backoffLimit (kindIs "invalid" $root.Values.job.backoffLimit) | int }}
rayClusterSpec:
  {{- include "sessrec.rayClusterSpec" $root | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Ray Serve's config of the RayService (serveConfigV2), as serve_config in sessrec/k8s/rayservice.py:
the deployment of `sessrec serve` by import path, a fixed replica count or Serve's autoscaling
range, and what each replica reserves in Ray (memory in bytes).
*/}}
{{- define "sessrec.serveConfig" -}}
{{- $serve := .Values.serve -}}
http_options:
  host: 0.0.0.0
  port: 8000
applications:
  - name: sessrec
    route_prefix: /
    import_path: sessrec.serving:app_from_args
    args:
      model: {{ $serve.model | quote }}
    deployments:
      - name: sessrec-recommender
        {{- if kindIs "invalid" $serve.autoscaling.maxReplicas }}
        num_replicas: {{ $serve.replicas | int }}
        {{- else }}
        num_replicas: auto
        autoscaling_config:
          min_replicas: {{ $serve.autoscaling.minReplicas | int }}
          max_replicas: {{ $serve.autoscaling.maxReplicas | int }}
          target_ongoing_requests: {{ $serve.autoscaling.targetOngoingRequests }}
        {{- end }}
        ray_actor_options:
          num_cpus: {{ $serve.resources.cpus }}
          memory: {{ include "sessrec.quantityValue" $serve.resources.memory | float64 | ceil | int64 }}
{{- end }}

{{/* Fails when `name` (a `kind`) is longer than `limit` characters. Arguments: list kind name limit. */}}
{{- define "sessrec.checkNameLength" -}}
{{- $kind := index . 0 }}{{ $name := index . 1 }}{{ $limit := index . 2 }}
{{- if gt (len $name) $limit }}
{{- fail (printf "%s name %q is %d characters; KubeRay allows at most %d: set fullnameOverride or use a shorter release name" $kind $name (len $name) $limit) }}
{{- end }}
{{- end }}

{{/*
A resource quantity (values.schema.json allows digits with an optional fraction and suffix:
"500m", "1.5", "2Gi", 4) as a plain number of cores or bytes.
*/}}
{{- define "sessrec.quantityValue" -}}
{{- if kindIs "string" . }}
{{- $number := regexFind "^[0-9.]+" . }}
{{- $scale := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 }}
{{- mulf (float64 $number) (get $scale (trimPrefix $number .)) }}
{{- else }}
{{- /* A YAML number: Helm holds it as a float64, which prints as 2e+09 (not digits and a suffix). */}}
{{- float64 . }}
{{- end }}
{{- end }}

{{/*
Fails when a container asks for more than its limit: Kubernetes refuses such a pod, but only when
KubeRay or the Job controller creates it, long after `helm install` has succeeded. Arguments: the
values path (for the message) and its resources.
*/}}
{{- define "sessrec.checkRequestsWithinLimits" -}}
{{- $path := index . 0 }}{{ $resources := index . 1 }}
{{- range $name, $request := $resources.requests }}
{{- if hasKey $resources.limits $name }}
{{- $limit := get $resources.limits $name }}
{{- if gt (float64 (include "sessrec.quantityValue" $request)) (float64 (include "sessrec.quantityValue" $limit)) }}
{{- fail (printf "%s: requests.%s (%v) exceeds limits.%s (%v); Kubernetes would refuse the pod" $path $name $request $name $limit) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Rules that span several values, which values.schema.json cannot express. */}}
{{- define "sessrec.checks" -}}
{{- $fullname := include "sessrec.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- fail (printf "name %q must be a DNS-1035 label (lower-case letters, digits, '-', starting with a letter): set fullnameOverride" $fullname) }}
{{- end }}
{{- if not (or .Values.cluster.enabled .Values.oneOff.enabled .Values.schedule.enabled .Values.serve.enabled) }}
{{- fail "nothing to deploy: enable at least one of cluster, oneOff, schedule and serve" }}
{{- end }}
{{- if and .Values.sweep (hasKey (.Values.sweep.split | default dict) "false") }}
{{- fail "sweep.split.n: quote the key (\"n\"): Helm reads YAML 1.1, where a bare n is the boolean false" }}
{{- end }}
{{- if and .Values.sweep (not (or .Values.oneOff.enabled .Values.schedule.enabled)) }}
{{- fail "sweep: a spec is given but nothing runs it: set oneOff.enabled: true (one RayJob) or schedule.enabled: true" }}
{{- end }}
{{- if not (regexMatch (.Files.Get "files/cron-pattern.txt" | trim) .Values.schedule.cron) }}
{{- fail (printf "schedule.cron %q: not a schedule KubeRay and Kubernetes accept: 5 fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT; each *, ?, a value, a range a-b, a list and /step) or @hourly, @daily, @weekly, @monthly, @yearly, @every DURATION" .Values.schedule.cron) }}
{{- end }}
{{- if and .Values.promote.name (not (or .Values.oneOff.enabled .Values.schedule.enabled)) }}
{{- fail (printf "promote.name %q: only a sweep job promotes: set oneOff.enabled or schedule.enabled (and sweep), or clear it" .Values.promote.name) }}
{{- end }}
{{- if and (eq .Values.job.target "cluster") (not (kindIs "invalid" .Values.job.backoffLimit)) (gt (int .Values.job.backoffLimit) 0) }}
{{- fail (printf "job.backoffLimit (%v): retries are for job.target \"ephemeral\" only; KubeRay refuses them on a shared cluster: remove it" .Values.job.backoffLimit) }}
{{- end }}
{{- range $name, $group := .Values.additionalWorkerGroups }}
{{- if eq $name $.Values.worker.groupName }}
{{- fail (printf "additionalWorkerGroups.%s: worker.groupName is %q already; choose another group name" $name $name) }}
{{- end }}
{{- include "sessrec.checkRequestsWithinLimits" (list (printf "additionalWorkerGroups.%s.resources" $name) $group.resources) }}
{{- if gt (int $group.minReplicas) (int $group.maxReplicas) }}
{{- fail (printf "additionalWorkerGroups.%s.minReplicas (%d) must not exceed its maxReplicas (%d)" $name (int $group.minReplicas) (int $group.maxReplicas)) }}
{{- end }}
{{- end }}
{{- range $path, $resources := dict "head.resources" .Values.head.resources "worker.resources" .Values.worker.resources "autoscaler.resources" .Values.autoscaler.resources "job.submitter.resources" .Values.job.submitter.resources "schedule.kubectl.resources" .Values.schedule.kubectl.resources }}
{{- include "sessrec.checkRequestsWithinLimits" (list $path $resources) }}
{{- end }}
{{- if gt (int .Values.worker.minReplicas) (int .Values.worker.maxReplicas) }}
{{- fail (printf "worker.minReplicas (%d) must not exceed worker.maxReplicas (%d)" (int .Values.worker.minReplicas) (int .Values.worker.maxReplicas)) }}
{{- end }}
{{- if and (ne .Values.job.target "cluster") (gt (int .Values.job.ttlSecondsAfterFinished) 0) (not .Values.job.shutdownAfterJobFinishes) }}
{{- fail "job.ttlSecondsAfterFinished > 0 needs job.shutdownAfterJobFinishes: true (KubeRay refuses the RayJob otherwise); set it to 0 to keep clusters" }}
{{- end }}
{{- if regexMatch "^https?://[^/]*@" .Values.s3.endpointUrl }}
{{- /* The value is not repeated: it holds a password. */}}
{{- fail "s3.endpointUrl must not hold credentials (user:password@ would land in a ConfigMap): put them in the Secret named by s3.existingSecret" }}
{{- end }}
{{- if not (semverCompare ">=2.52.0" .Values.rayVersion) }}
{{- fail (printf "rayVersion %s: Ray token authentication needs Ray >= 2.52.0" .Values.rayVersion) }}
{{- end }}
{{- if and (eq .Values.job.target "cluster") (not .Values.job.clusterName) (not .Values.cluster.enabled) }}
{{- fail "job.target \"cluster\" needs job.clusterName or cluster.enabled: true" }}
{{- end }}
{{- /* values.schema.json requires the spec when a sweep runs. */}}
{{- if and .Values.sweep (or .Values.oneOff.enabled .Values.schedule.enabled) }}
{{- if not .Values.sweep.dataset }}
{{- fail "sweep.dataset: the spec names no dataset, and the job runs `sessrec tune run sweep.yaml` without --dataset" }}
{{- end }}
{{- /* Trials run on this chart's workers (ephemeral clusters or this release's own), whose Ray CPUs
KubeRay sets from their CPU limit, rounded up: a trial that needs more could never start. */}}
{{- if or (ne .Values.job.target "cluster") (not .Values.job.clusterName) }}
{{- $perTrial := float64 (dig "resources" "cpus_per_trial" 1 .Values.sweep) }}
{{- $workerCpus := ceil (float64 (include "sessrec.quantityValue" .Values.worker.resources.limits.cpu)) }}
{{- if gt $perTrial $workerCpus }}
{{- fail (printf "sweep.resources.cpus_per_trial (%v) is more than a worker's %v CPUs (worker.resources.limits.cpu): no trial could start" $perTrial $workerCpus) }}
{{- end }}
{{- include "sessrec.checkGridOrder" (list .Values.sweep (int $workerCpus) (int .Values.worker.maxReplicas)) }}
{{- end }}
{{- end }}
{{- if .Values.cluster.enabled }}
{{- include "sessrec.checkNameLength" (list "RayCluster" $fullname 53) }}
{{- end }}
{{- if .Values.oneOff.enabled }}
{{- include "sessrec.checkNameLength" (list "RayJob" $fullname 47) }}
{{- end }}
{{- if and .Values.schedule.enabled (eq .Values.schedule.mode "raycronjob") }}
{{- include "sessrec.checkNameLength" (list "RayCronJob" $fullname 36) }}
{{- end }}
{{- if .Values.serve.enabled }}
{{- include "sessrec.checkNameLength" (list "RayService" $fullname 47) }}
{{- if not .Values.serve.model }}
{{- fail "serve.model: serve.enabled needs the model to serve (a model name, sweep id or s3:// folder)" }}
{{- end }}
{{- with .Values.serve.autoscaling }}
{{- if and (not (kindIs "invalid" .maxReplicas)) (gt (int .minReplicas) (int .maxReplicas)) }}
{{- fail (printf "serve.autoscaling.minReplicas (%d) must not exceed serve.autoscaling.maxReplicas (%d)" (int .minReplicas) (int .maxReplicas)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.schedule.enabled (eq .Values.schedule.mode "cronjob") }}
{{- include "sessrec.checkNameLength" (list "CronJob" $fullname 52) }}
{{- /* Its RayJobs are named <fullname>-<5 random characters>. */}}
{{- include "sessrec.checkNameLength" (list "RayJob" (printf "%s-xxxxx" $fullname) 47) }}
{{- end }}
{{- end }}

{{/*
`sessrec tune run`'s warning for an ordered ASHA grid (SweepSpec.order_warning in sessrec/spec.py),
as a failure: ASHA over a grid walked in order, with more trials than run at once on this chart's
workers at their largest, judges the first trials against the grid's first corner only.
Arguments: list sweep workerCpus maxWorkers. The grid size follows sessrec's domains: a list has
its length, range [start, stop, step] ceil((stop - start) / step) points, linspace its count.
tests/test_k8s_chart.py compares the verdict and message with the Python rule.
*/}}
{{- define "sessrec.checkGridOrder" -}}
{{- $sweep := index . 0 }}{{ $workerCpus := index . 1 }}{{ $maxWorkers := index . 2 }}
{{- $search := $sweep.search | default dict }}
{{- $scheduler := $sweep.scheduler | default dict }}
{{- if and (eq ($scheduler.type | default "asha") "asha") (eq ($search.method | default "grid") "grid") (not $search.shuffle) }}
{{- $points := 1 }}
{{- range $name, $domain := ($sweep.space | default dict) }}
{{- if kindIs "slice" $domain }}
{{- $points = mul $points (len $domain) }}
{{- else if and (kindIs "map" $domain) (hasKey $domain "linspace") }}
{{- $points = mul $points (int (index $domain.linspace 2)) }}
{{- else if and (kindIs "map" $domain) (hasKey $domain "range") }}
{{- $args := $domain.range }}
{{- $step := ternary (index $args 2) 1 (eq (len $args) 3) }}
{{- $count := int (ceil (divf (subf (index $args 1) (index $args 0)) $step)) }}
{{- $points = mul $points (max $count 0) }}
{{- end }}
{{- end }}
{{- $trials := mul $points (int ($search.num_samples | default 1)) }}
{{- $perTrial := int (dig "resources" "cpus_per_trial" 1 $sweep) }}
{{- $parallel := max 1 (div (mul $maxWorkers $workerCpus) $perTrial) }}
{{- $cap := int (dig "resources" "max_concurrent_trials" 0 $sweep) }}
{{- if gt $cap 0 }}{{ $parallel = max 1 (min $parallel $cap) }}{{ end }}
{{- if gt $trials $parallel }}
{{- fail (printf "sweep.search.shuffle: ASHA will judge the first trials of this %d-point grid against its first corner only (%d run at once, in grid order); set search.shuffle: true to run it in a seeded random order" $trials $parallel) }}
{{- end }}
{{- end }}
{{- end }}
