// The Model health overview dashboard. Queries are PromQL with the metric prefix as %(p)s (the
// mixin's _config.prefix), filtered by the dashboard's job and instance variables.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  local q(query) = query % v,
  local jobs = 'label_values(up{%s}, job)' % c.exporterSelector,

  grafanaDashboards+:: {
    'model-health-overview.json': {
      uid: "mhe-overview",
      title: "Model health overview",
      description: "Every model monitored by model-health-exporter: health, firing alerts, accuracy, volume, drift.",
      tags: c.dashboardTags,
      editable: true,
      graphTooltip: 1,
      timezone: "",
      schemaVersion: 38,
      version: 1,
      time: {
        from: "now-6h",
        to: "now",
      },
      refresh: c.dashboardRefresh,
      templating: {
        list: [
          {
            name: "datasource",
            label: "Data source",
            type: "datasource",
            query: c.datasource,
            current: {},
            hide: 0,
            refresh: 1,
            regex: "",
            includeAll: false,
            multi: false,
            options: [],
          },
          {
            name: "job",
            label: "Job",
            type: "query",
            datasource: {
              type: "prometheus",
              uid: "${datasource}",
            },
            definition: jobs,
            query: {
              query: jobs,
              refId: "job-query",
            },
            refresh: 2,
            sort: 1,
            hide: 0,
            regex: "",
            includeAll: true,
            multi: true,
            current: {},
            options: [],
            allValue: ".+",
          },
          {
            name: "instance",
            label: "Instance",
            type: "query",
            datasource: {
              type: "prometheus",
              uid: "${datasource}",
            },
            definition: q("label_values(up{job=~\"$job\"}, instance)"),
            query: {
              query: q("label_values(up{job=~\"$job\"}, instance)"),
              refId: "instance-query",
            },
            refresh: 2,
            sort: 1,
            hide: 0,
            regex: "",
            includeAll: true,
            multi: true,
            current: {},
            options: [],
            allValue: ".+",
          },
        ],
      },
      annotations: {
        list: [],
      },
      links: [
        {
          title: "Model dashboard",
          type: "link",
          url: "/d/mhe-model/model-health-model",
          includeVars: true,
          keepTime: true,
        },
      ],
      panels: [
        {
          id: 1,
          type: "row",
          title: "All models",
          collapsed: false,
          gridPos: {
            x: 0,
            y: 0,
            w: 24,
            h: 1,
          },
          panels: [],
        },
        {
          id: 2,
          type: "table",
          title: "Models (active version)",
          description: "One row per model: health score, evaluation accuracy and drift share of the serving version, firing alerts and prediction rate.",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 1,
            w: 24,
            h: 9,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("model:%(p)s_model_health_score:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("model:%(p)s_model_accuracy:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("count by (model) (ALERTS{alertstate=\"firing\", alertname=~\"Model.*\"})"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("sum by (model) (model_version:%(p)s_predictions:rate5m{job=~\"$job\", instance=~\"$instance\"})"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "E",
              expr: q("model:%(p)s_data_drift_share:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [
              {
                matcher: {
                  id: "byName",
                  options: "model",
                },
                properties: [
                  {
                    id: "links",
                    value: [
                      {
                        title: "Model dashboard",
                        url: "/d/mhe-model/model-health-model?var-model=${__value.raw}&${datasource:queryparam}",
                      },
                    ],
                  },
                ],
              },
            ],
          },
          options: {},
          transformations: [
            {
              id: "joinByField",
              options: {
                byField: "model",
                mode: "outer",
              },
            },
            {
              id: "organize",
              options: {
                excludeByName: {
                  Time: true,
                  "Time 1": true,
                  "Time 2": true,
                  "Time 3": true,
                  "Time 4": true,
                  "Time 5": true,
                  job: true,
                  "job 1": true,
                  "job 2": true,
                  "job 3": true,
                  "job 4": true,
                  instance: true,
                  "instance 1": true,
                  "instance 2": true,
                  "instance 3": true,
                  "instance 4": true,
                  __name__: true,
                },
                renameByName: {
                  "Value #A": "Health score",
                  "Value #B": "Accuracy",
                  "Value #C": "Firing alerts",
                  "Value #D": "Predictions/s",
                  "Value #E": "Drift share",
                },
              },
            },
          ],
        },
        {
          id: 3,
          type: "bargauge",
          title: "Health score (active version)",
          description: "Levels: excellent >= 90, good >= 70, fair >= 50, poor < 50.",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 10,
            w: 12,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("model:%(p)s_model_health_score:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "{{model}}",
              instant: true,
            },
          ],
          fieldConfig: {
            defaults: {
              min: 0,
              max: 100,
              thresholds: {
                mode: "absolute",
                steps: [
                  {
                    color: "red",
                    value: null,
                  },
                  {
                    color: "orange",
                    value: 50,
                  },
                  {
                    color: "yellow",
                    value: 70,
                  },
                  {
                    color: "green",
                    value: 90,
                  },
                ],
              },
            },
            overrides: [],
          },
          options: {
            orientation: "horizontal",
            displayMode: "gradient",
            reduceOptions: {
              calcs: ["lastNotNull"],
            },
          },
        },
        {
          id: 4,
          type: "table",
          title: "Health level",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 10,
            w: 12,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("%(p)s_model_health_level{job=~\"$job\", instance=~\"$instance\"} == 1 and %(on)s (%(p)s_model_active{job=~\"$job\", instance=~\"$instance\"} == 1)"),
              legendFormat: "",
              instant: true,
              format: "table",
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [],
          },
          options: {},
          transformations: [
            {
              id: "organize",
              options: {
                excludeByName: {
                  Time: true,
                  Value: true,
                  __name__: true,
                  job: true,
                  instance: true,
                },
              },
            },
          ],
        },
        {
          id: 5,
          type: "timeseries",
          title: "Firing alerts by model and severity",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 18,
            w: 12,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("count by (model, severity) (ALERTS{alertstate=\"firing\", alertname=~\"Model.*\"})"),
              legendFormat: "{{model}} {{severity}}",
            },
          ],
          fieldConfig: {
            defaults: {
              min: 0,
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 6,
          type: "timeseries",
          title: "Accuracy of the active version",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 18,
            w: 12,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("model:%(p)s_model_accuracy:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "{{model}}",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
              max: 1,
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 7,
          type: "timeseries",
          title: "Prediction volume",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 26,
            w: 8,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("sum by (model) (model_version:%(p)s_predictions:rate5m{job=~\"$job\", instance=~\"$instance\"})"),
              legendFormat: "{{model}}",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "reqps",
              min: 0,
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 8,
          type: "timeseries",
          title: "Error ratio (5m, worst version)",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 8,
            y: 26,
            w: 8,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("max by (model) (model_version:%(p)s_prediction_errors:ratio_rate5m{job=~\"$job\", instance=~\"$instance\"})"),
              legendFormat: "{{model}}",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
              thresholds: {
                mode: "absolute",
                steps: [
                  {
                    color: "green",
                    value: null,
                  },
                  {
                    color: "orange",
                    value: 0.05,
                  },
                  {
                    color: "red",
                    value: 0.1,
                  },
                ],
              },
              custom: {
                thresholdsStyle: {
                  mode: "line",
                },
              },
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 9,
          type: "timeseries",
          title: "Data drift share (active version)",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 16,
            y: 26,
            w: 8,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("model:%(p)s_data_drift_share:active{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "{{model}}",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
              max: 1,
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 10,
          type: "stat",
          title: "Exporter",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 34,
            w: 24,
            h: 4,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("up{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "{{instance}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_exporter_models{job=~\"$job\", instance=~\"$instance\"}"),
              legendFormat: "models",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("sum(increase(%(p)s_exporter_errors_total{job=~\"$job\", instance=~\"$instance\"}[1h]))"),
              legendFormat: "input errors (1h)",
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [],
          },
          options: {},
        },
      ],
    },
  },
}
