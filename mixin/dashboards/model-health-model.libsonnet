// The Model health: model dashboard. Queries are PromQL with the metric prefix as %(p)s (the
// mixin's _config.prefix), filtered by the dashboard's job and instance variables.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local v = lib.vars(c),
  local q(query) = query % v,
  local jobs = 'label_values(up{%s}, job)' % c.exporterSelector,

  grafanaDashboards+:: {
    'model-health-model.json': {
      uid: "mhe-model",
      title: "Model health: model",
      description: "One model: quality of its versions, drift, data quality, serving and health.",
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
          {
            name: "model",
            label: "Model",
            type: "query",
            datasource: {
              type: "prometheus",
              uid: "${datasource}",
            },
            definition: q("label_values(%(p)s_model_active{job=~\"$job\", instance=~\"$instance\"}, model)"),
            query: {
              query: q("label_values(%(p)s_model_active{job=~\"$job\", instance=~\"$instance\"}, model)"),
              refId: "model-query",
            },
            refresh: 2,
            sort: 1,
            hide: 0,
            regex: "",
            includeAll: false,
            multi: false,
            current: {},
            options: [],
          },
          {
            name: "version",
            label: "Version",
            type: "query",
            datasource: {
              type: "prometheus",
              uid: "${datasource}",
            },
            definition: q("label_values(%(p)s_model_active{job=~\"$job\", instance=~\"$instance\", model=\"$model\"}, version)"),
            query: {
              query: q("label_values(%(p)s_model_active{job=~\"$job\", instance=~\"$instance\", model=\"$model\"}, version)"),
              refId: "version-query",
            },
            refresh: 2,
            sort: 1,
            hide: 0,
            regex: "",
            includeAll: true,
            multi: true,
            current: {},
            options: [],
            allValue: ".*",
          },
        ],
      },
      annotations: {
        list: [],
      },
      links: [
        {
          title: "Overview",
          type: "link",
          url: "/d/mhe-overview/model-health-overview",
          includeVars: false,
          keepTime: true,
        },
      ],
      panels: [
        {
          id: 1,
          type: "row",
          title: "Quality",
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
          type: "timeseries",
          title: "Accuracy: evaluation vs live vs estimated",
          description: "Evaluation accuracy from metrics.json, live accuracy from feedback, estimated accuracy from confidences (no labels); dashed: the model's thresholds.",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 1,
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
              expr: q("%(p)s_model_accuracy{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "evaluation {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_live_accuracy{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "live {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("%(p)s_estimated_accuracy{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "estimated {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("%(p)s_model_quality_threshold{job=~\"$job\", instance=~\"$instance\", model=\"$model\", metric=\"accuracy\", severity=\"warning\"}"),
              legendFormat: "warning threshold",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "E",
              expr: q("%(p)s_model_quality_threshold{job=~\"$job\", instance=~\"$instance\", model=\"$model\", metric=\"accuracy\", severity=\"critical\"}"),
              legendFormat: "critical threshold",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
              max: 1,
            },
            overrides: [
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*warning threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "orange",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*critical threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "red",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
            ],
          },
          options: {},
        },
        {
          id: 3,
          type: "timeseries",
          title: "F1 / precision / recall (evaluation)",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 1,
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
              expr: q("%(p)s_model_f1_score{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "F1 {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_model_precision_weighted{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "precision {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("%(p)s_model_recall_weighted{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "recall {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("%(p)s_live_f1_score{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "live F1 {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "E",
              expr: q("%(p)s_model_quality_threshold{job=~\"$job\", instance=~\"$instance\", model=\"$model\", metric=\"f1_score\", severity=\"warning\"}"),
              legendFormat: "F1 warning threshold",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "F",
              expr: q("%(p)s_model_quality_threshold{job=~\"$job\", instance=~\"$instance\", model=\"$model\", metric=\"f1_score\", severity=\"critical\"}"),
              legendFormat: "F1 critical threshold",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
              max: 1,
            },
            overrides: [
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*warning threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "orange",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*critical threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "red",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
            ],
          },
          options: {},
        },
        {
          id: 4,
          type: "bargauge",
          title: "Top 5 versions by F1",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 9,
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
              expr: q("topk(5, %(p)s_model_f1_score{job=~\"$job\", instance=~\"$instance\", model=\"$model\"})"),
              legendFormat: "{{version}}",
              instant: true,
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
          options: {
            orientation: "horizontal",
            displayMode: "gradient",
            reduceOptions: {
              calcs: ["lastNotNull"],
            },
          },
        },
        {
          id: 5,
          type: "bargauge",
          title: "Training samples per version",
          description: "Red below 1000 samples, the default expected minimum.",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 8,
            y: 9,
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
              expr: q("%(p)s_training_samples{job=~\"$job\", instance=~\"$instance\", model=\"$model\"}"),
              legendFormat: "{{version}}",
              instant: true,
            },
          ],
          fieldConfig: {
            defaults: {
              thresholds: {
                mode: "absolute",
                steps: [
                  {
                    color: "red",
                    value: null,
                  },
                  {
                    color: "green",
                    value: 1000,
                  },
                ],
              },
            },
            overrides: [],
          },
          options: {
            orientation: "horizontal",
            displayMode: "basic",
            reduceOptions: {
              calcs: ["lastNotNull"],
            },
          },
        },
        {
          id: 6,
          type: "stat",
          title: "Active version and labelled samples",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 16,
            y: 9,
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
              expr: q("%(p)s_model_active{job=~\"$job\", instance=~\"$instance\", model=\"$model\"} == 1"),
              legendFormat: "active: {{version}}",
              instant: true,
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_window_samples{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "{{version}} {{kind}}",
              instant: true,
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [],
          },
          options: {},
        },
        {
          id: 7,
          type: "row",
          title: "Drift",
          collapsed: false,
          gridPos: {
            x: 0,
            y: 17,
            w: 24,
            h: 1,
          },
          panels: [],
        },
        {
          id: 8,
          type: "timeseries",
          title: "Data drift per feature (PSI)",
          description: "PSI: 0.1 warning, 0.2 drift.",
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
              expr: q("%(p)s_feature_psi{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "{{feature}} {{version}}",
            },
          ],
          fieldConfig: {
            defaults: {
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
                    value: 0.1,
                  },
                  {
                    color: "red",
                    value: 0.2,
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
          title: "Data drift per feature (KL divergence) and drift share",
          description: "KL above 0.3 alerts (ModelDataDrift).",
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
              expr: q("%(p)s_feature_kl_divergence{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "KL {{feature}} {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_data_drift_share{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "drifted share {{version}}",
            },
          ],
          fieldConfig: {
            defaults: {
              min: 0,
              thresholds: {
                mode: "absolute",
                steps: [
                  {
                    color: "green",
                    value: null,
                  },
                  {
                    color: "red",
                    value: 0.3,
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
          id: 10,
          type: "timeseries",
          title: "Prediction drift",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 26,
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
              expr: q("%(p)s_prediction_psi{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "PSI {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_prediction_drift_p_value{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "p-value {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("%(p)s_prediction_mean_shift{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "mean shift {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("%(p)s_confidence_psi{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "confidence PSI {{version}}",
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [],
          },
          options: {},
        },
        {
          id: 11,
          type: "timeseries",
          title: "Data quality: missing, unseen, out of range",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 26,
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
              expr: q("%(p)s_feature_missing_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "missing {{feature}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_feature_unseen_category_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "unseen {{feature}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("%(p)s_feature_out_of_range_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "out of range {{feature}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("%(p)s_invalid_record_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "invalid records {{version}}",
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
          id: 12,
          type: "row",
          title: "Serving",
          collapsed: false,
          gridPos: {
            x: 0,
            y: 34,
            w: 24,
            h: 1,
          },
          panels: [],
        },
        {
          id: 13,
          type: "timeseries",
          title: "Prediction volume",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 35,
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
              expr: q("model_version:%(p)s_predictions:rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "{{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("rate(%(p)s_feedback_total{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}[$__rate_interval])"),
              legendFormat: "feedback {{version}}",
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
          id: 14,
          type: "timeseries",
          title: "Error ratio",
          description: "5% warning, 10% critical.",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 8,
            y: 35,
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
              expr: q("model_version:%(p)s_prediction_errors:ratio_rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "5m {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("model_version:%(p)s_prediction_errors:ratio_rate1h{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "1h {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("sum by (error_type) (rate(%(p)s_prediction_errors_total{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}[$__rate_interval]))"),
              legendFormat: "{{error_type}} /s",
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
          id: 15,
          type: "timeseries",
          title: "Latency p50 / p95 / p99",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 16,
            y: 35,
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
              expr: q("model_version:%(p)s_prediction_latency_seconds:p50_rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "p50 {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("model_version:%(p)s_prediction_latency_seconds:p95_rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "p95 {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("model_version:%(p)s_prediction_latency_seconds:p99_rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "p99 {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "D",
              expr: q("model_version:%(p)s_prediction_latency_seconds:p95_rate5m{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"} offset 1d"),
              legendFormat: "p95 a day earlier {{version}}",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "s",
              min: 0,
            },
            overrides: [],
          },
          options: {},
        },
        {
          id: 16,
          type: "heatmap",
          title: "Confidence distribution",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 43,
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
              expr: q("sum by (le) (increase(%(p)s_prediction_confidence_bucket{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}[$__rate_interval]))"),
              legendFormat: "{{le}}",
              format: "heatmap",
            },
          ],
          fieldConfig: {
            defaults: {},
            overrides: [],
          },
          options: {
            calculate: false,
            yAxis: {
              unit: "percentunit",
            },
            cellGap: 1,
          },
        },
        {
          id: 17,
          type: "timeseries",
          title: "Confidence and low-confidence ratio",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 43,
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
              expr: q("%(p)s_confidence_mean{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "mean {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_confidence_median{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "median {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "C",
              expr: q("%(p)s_low_confidence_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "below 0.75 {{version}}",
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
          id: 18,
          type: "row",
          title: "Health and retraining",
          collapsed: false,
          gridPos: {
            x: 0,
            y: 51,
            w: 24,
            h: 1,
          },
          panels: [],
        },
        {
          id: 19,
          type: "timeseries",
          title: "Health score and checks",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 52,
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
              expr: q("%(p)s_model_health_score{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "score {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_model_health_check_score{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"} and on(model, version, check) (%(p)s_model_health_check_weight{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"} > 0)"),
              legendFormat: "{{check}} {{version}}",
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
          id: 20,
          type: "table",
          title: "Retraining recommendation and reasons",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 52,
            w: 6,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("%(p)s_model_retrain_reason{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"} == 1"),
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
              expr: q("%(p)s_model_retrain_recommended{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
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
        },
        {
          id: 21,
          type: "table",
          title: "Firing alerts",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 18,
            y: 52,
            w: 6,
            h: 8,
          },
          targets: [
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "A",
              expr: q("ALERTS{alertstate=\"firing\", model=\"$model\"}"),
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
                  alertstate: true,
                },
              },
            },
          ],
        },
        {
          id: 22,
          type: "timeseries",
          title: "Training data missing ratio per column",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 0,
            y: 60,
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
              expr: q("%(p)s_dataset_missing_ratio{job=~\"$job\", instance=~\"$instance\", model=\"$model\", version=~\"$version\"}"),
              legendFormat: "{{column}} {{version}}",
            },
            {
              datasource: {
                type: "prometheus",
                uid: "${datasource}",
              },
              refId: "B",
              expr: q("%(p)s_model_quality_threshold{job=~\"$job\", instance=~\"$instance\", model=\"$model\", metric=\"dataset_missing_ratio\", severity=\"warning\"}"),
              legendFormat: "warning threshold",
            },
          ],
          fieldConfig: {
            defaults: {
              unit: "percentunit",
              min: 0,
            },
            overrides: [
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*warning threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "orange",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
              {
                matcher: {
                  id: "byRegexp",
                  options: ".*critical threshold.*",
                },
                properties: [
                  {
                    id: "color",
                    value: {
                      mode: "fixed",
                      fixedColor: "red",
                    },
                  },
                  {
                    id: "custom.lineStyle",
                    value: {
                      fill: "dash",
                      dash: [10, 10],
                    },
                  },
                  {
                    id: "custom.fillOpacity",
                    value: 0,
                  },
                ],
              },
            ],
          },
          options: {},
        },
        {
          id: 23,
          type: "timeseries",
          title: "Quality trend across versions (per day)",
          description: "",
          datasource: {
            type: "prometheus",
            uid: "${datasource}",
          },
          gridPos: {
            x: 12,
            y: 60,
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
              expr: q("%(p)s_model_quality_trend_slope{job=~\"$job\", instance=~\"$instance\", model=\"$model\"}"),
              legendFormat: "{{metric}}",
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
