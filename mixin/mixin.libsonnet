// model-health-exporter's monitoring mixin: prometheusAlerts, prometheusRules and
// grafanaDashboards, configured by _config (config.libsonnet). Use it as any mixin:
//
//   local mhe = (import 'model-health-exporter/mixin/mixin.libsonnet') + {
//     _config+:: { prefix: 'acme_ml', exporterSelector: 'job="ml-exporter"' },
//   };
//   { 'alerts.yaml': std.manifestYamlDoc(mhe.prometheusAlerts) }
(import 'config.libsonnet')
+ (import 'alerts/quality.libsonnet')
+ (import 'alerts/live.libsonnet')
+ (import 'alerts/data.libsonnet')
+ (import 'alerts/health.libsonnet')
+ (import 'alerts/serving.libsonnet')
+ (import 'alerts/inputs.libsonnet')
+ (import 'rules/recording.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
