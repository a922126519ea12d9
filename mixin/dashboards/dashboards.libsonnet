(import 'model-health-model.libsonnet') + (import 'model-health-overview.libsonnet')
