"""Kubernetes manifests for sweeps: render KubeRay objects and validate manifests offline.

This package is the reference definition of sessrec's Kubernetes objects. ``cluster/base`` and
``jobs/`` hold its rendered output (a test re-renders them), and the Helm chart in
``helm/sessrec`` is tested to render the same RayCluster and RayJob specs for equivalent values.

Modules (each imports only modules above it in this list; within sessrec ``sessrec.cli`` imports
the package and ``sessrec.serving`` takes Serve's names from ``defaults``; the package imports
nothing of the CLI):

- ``defaults``: the constants: Ray version, images, resources, name limits, kinds, label rules,
  pod security contexts.
- ``rules``: rules shared by rendering, validation and the chart's values schema: object names,
  cron schedules (and the cron pattern), time zones, resource quantities, image references.
- ``render``: ``RenderOptions``, the shared pod and cluster specs, the checks of names, options
  and references, ``dump_yaml``, and the sweep and cluster object builders (RayJob, RayCronJob,
  RayCluster).
- ``cronjob``: the CronJob fallback of a schedule, for operators without the RayCronJob gate.
- ``rayservice``: ``sessrec serve`` as a RayService: the serve options' checks, Ray Serve's config.
- ``manifests``: the entry point, ``render``/``render_objects`` for every kind, and the checks of
  a sweep's spec against its kind (``sweep_objects``).
- ``policy``: pod policy findings: the restricted pod security rules and container resources.
- ``operator_rules``: the KubeRay operator's own rules, the API server's metadata rules, and the
  pods KubeRay makes that an object does not spell out.
- ``validate``: CRD loading and strict schemas, ``validate_files``/``validate_text``/
  ``validate_object``, schema-error messages.

The chart's values.schema.json copies of the sweep spec schema and of the cron and image patterns
are kept current by the development script ``scripts/sync_chart_schema.py``.
"""
