// What scripts/gen-mixin.py writes: repository path -> document. One rule file per group,
// as Prometheus users load them; the Kubernetes PrometheusRule holds every group.
local mixin = import 'mixin.libsonnet';
local groups = mixin.prometheusAlerts.groups + mixin.prometheusRules.groups;

{
  ['prometheus/rules/%s.rules.yml' % g.name]: { groups: [g] }
  for g in groups
} + {
  ['grafana/dashboards/%s' % name]: mixin.grafanaDashboards[name]
  for name in std.objectFields(mixin.grafanaDashboards)
} + {
  'deploy/kubernetes/prometheusrule.yaml': {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'model-health-exporter',
      labels: {
        'app.kubernetes.io/name': 'model-health-exporter',
        'app.kubernetes.io/component': 'alerting-rules',
      },
    },
    spec: { groups: std.sort(groups, function(g) g.name) },
  },
}
