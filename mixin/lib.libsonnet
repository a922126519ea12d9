// Helpers shared by the rule files: names, joins and the alert shape every shipped alert has.
{
  // Strings a rule text needs, as one object for `%`-formatting:
  //   ||| %(p)s_model_active == 1 ||| % lib.vars(c)
  vars(c):: {
    num:: $.num,
    p: c.prefix,
    sel: c.exporterSelector,
    on: 'on(%s, model, version)' % std.join(', ', c.instanceLabels),
    onModel: 'on(%s, model)' % std.join(', ', c.instanceLabels),
    by: 'by (%s, model, version)' % std.join(', ', c.instanceLabels),
    byModel: 'by (%s, model)' % std.join(', ', c.instanceLabels),
    instance: std.join(', ', c.instanceLabels),
    minSamples: $.num(c.minWindowSamples),
  } + std.mapWithKey(function(_, x) $.num(x), c.thresholds),

  // A number as PromQL and people write it: 0.1, not 0.10000000000000001.
  num(x):: '%g' % x,

  alert(c, name, expr, severity, component, family, summary, value, description, extraLabels={}):: {
    alert: name,
    expr: expr,
    'for': c['for'][name],
    labels: { severity: severity, component: component, alert_family: family } + extraLabels,
    annotations: {
      summary: summary,
      value: value,
      description: description,
      runbook_url: c.runbookURLBase + std.asciiLower(name),
    },
  },

  group(name, rules):: { name: name, rules: rules },
}
