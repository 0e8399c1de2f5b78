/* faceaudit scenario panel: draws each scenario's expected false-positive identifications per group with
   their intervals (Vega-Lite) and, in the audit report, ties the panel to the threshold control.
   Every number drawn or written comes from the scenario documents (computed in Python by
   faceaudit.scenario); this script computes none of them. Labels are untrusted: text is written with
   textContent only, never innerHTML. */
(function () {
  "use strict";
  var OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

  function num(x) {
    if (typeof x === "number") return x;
    if (x === "inf") return Infinity;
    if (x === "-inf") return -Infinity;
    return NaN;
  }
  function fmtThreshold(x) {
    if (x === null || x === undefined || isNaN(x)) return "n/a";
    return String(parseFloat(Number(x).toPrecision(6)));
  }
  function pct(level) { return isFinite(level) ? Math.round(level * 100) + "%" : "the stated"; }

  /* Okabe-Ito colours; a group of a grouping the audit also shows keeps its DET-curve colour. */
  function palette(doc, scen) {
    var groups = (scen.by_group || []).map(function (g) { return String(g.group); });
    var column = scen.inputs && scen.inputs.mix ? scen.inputs.mix.column : null;
    var order = column && doc && doc.by_group && doc.by_group[column]
      ? doc.by_group[column].map(function (e) { return e.group; }) : null;
    var all = order && groups.every(function (g) { return order.indexOf(g) >= 0; });
    return groups.map(function (g, i) { return OKABE_ITO[(all ? order.indexOf(g) : i) % OKABE_ITO.length]; });
  }

  function rowsOf(scen) {
    return (scen.by_group || []).map(function (g, i) {
      var iv = g.interval || null;
      return { group: String(g.group), i: i, expected: num(g.false_matches), share: num(g.share),
               low: iv ? num(iv.low) : null, high: iv ? num(iv.high) : null };
    });
  }

  function spec(scen, rows, colors) {
    var column = scen.inputs && scen.inputs.mix ? String(scen.inputs.mix.column) : "group";
    var iv = scen.expected && scen.expected.interval;
    var level = scen.inputs && isFinite(scen.inputs.level) ? scen.inputs.level : (iv ? iv.level : NaN);
    var groups = rows.map(function (r) { return r.group; });
    var color = { field: "group", type: "nominal", scale: { domain: groups, range: colors }, legend: null };
    var title = "expected false-positive identifications";
    return {
      width: 460, height: { step: 32 },
      title: { text: "Expected false matches by " + column,
               subtitle: "dots: the model's expected count; bars: " + pct(level) + " interval" },
      data: { name: "table", values: rows },
      encoding: { y: { field: "group", type: "nominal", sort: null, title: column, axis: { labelLimit: 160 } } },
      layer: [
        { transform: [{ filter: "isValid(datum.low) && isValid(datum.high) && isFinite(datum.low) && isFinite(datum.high)" }],
          mark: { type: "rule", strokeWidth: 3 },
          encoding: { x: { field: "low", type: "quantitative", title: title, scale: { zero: true } }, x2: { field: "high" }, color: color } },
        { transform: [{ filter: "isValid(datum.expected) && isFinite(datum.expected)" }],
          mark: { type: "point", filled: true, size: 110, stroke: "#000", strokeWidth: 0.8, opacity: 1 },
          encoding: { x: { field: "expected", type: "quantitative", title: title }, color: color,
                      tooltip: [{ field: "group", title: column }, { field: "expected", title: "expected", format: ",.1f" },
                                { field: "low", format: ",.1f" }, { field: "high", format: ",.1f" },
                                { field: "share", title: "share of searches", format: ".3g" }] } }
      ],
      config: { font: "system-ui, sans-serif", view: { stroke: null } }
    };
  }

  function contains(sorted, t) {
    var lo = 0, hi = sorted.length;
    while (lo < hi) { var mid = (lo + hi) >>> 1; if (sorted[mid] < t) lo = mid + 1; else hi = mid; }
    return lo < sorted.length && sorted[lo] === t;
  }

  /* Draw every scenario's chart with o.embed(key, elementId, spec); in the audit report (o.setThreshold
     given) return the hook the threshold control calls on every update. */
  function mount(o) {
    var scenarios = o.scenarios || [];
    scenarios.forEach(function (scen, k) {
      var rows = rowsOf(scen);
      if (rows.length) o.embed("scenario-" + k, "scenario-chart-" + k, spec(scen, rows, palette(o.doc, scen)));
    });
    if (typeof o.setThreshold !== "function") return null;
    var panels = [];
    scenarios.forEach(function (scen, k) {
      var el = document.getElementById("scenario-" + k);
      if (!el) return;
      var t = num(scen.inputs.threshold);
      var reachable = !!(o.positions && contains(o.positions, t));
      var button = el.querySelector("button.scenario-threshold");
      if (button && reachable) {
        button.disabled = false;
        button.hidden = false;
        button.addEventListener("click", function () { o.setThreshold(t); });
      }
      panels.push({ el: el, t: t, reachable: reachable, state: el.querySelector(".scenario-state") });
    });
    return function hook(doc, res) {
      panels.forEach(function (p) {
        var here = res && res.threshold === p.t;
        p.el.classList.toggle("at-threshold", !!here);
        p.el.setAttribute("data-control", here ? "at" : "away");
        if (!p.state) return;
        p.state.textContent = here
          ? "The threshold control above is at this scenario's threshold, " + fmtThreshold(p.t) + ": the per-group " +
            "false match and non-match rates measured in this audit at it are in the tables above. This scenario's " +
            "figures come from its tail model, computed when the scenario was run."
          : "The threshold control above is at " + fmtThreshold(res ? res.threshold : null) + "; this scenario was " +
            "computed at " + fmtThreshold(p.t) + (p.reachable ? " (the button moves the control there)"
              : " (a threshold the control cannot stop at: below the exactly embedded scores, between the exact grid points)") +
            ". Its figures come from its tail model and do not follow the control.";
      });
    };
  }

  /* The scenario page on its own: no threshold control. */
  function boot() {
    var state = { ready: false, errors: [] };
    window.addEventListener("error", function (e) { state.errors.push(String(e.message || e)); });
    window.addEventListener("unhandledrejection", function (e) { state.errors.push(String(e.reason)); });
    var doc = JSON.parse(document.getElementById("faceaudit-data").textContent);
    window.faceaudit = { doc: doc, state: state };
    var embeds = [], opts = { actions: false, renderer: "svg", tooltip: true, mode: "vega-lite" };
    mount({ doc: null, scenarios: [doc], embed: function (key, id, s) {
      var el = document.getElementById(id);
      if (el) embeds.push(window.vegaEmbed(el, s, opts).then(function (r) { return r.view.runAsync(); }));
    } });
    Promise.all(embeds).then(function () {
      state.ready = true;
      document.body.setAttribute("data-ready", "1");
    }).catch(function (e) {
      state.errors.push(String(e));
      document.body.setAttribute("data-ready", "error");
    });
  }

  window.faceauditScenario = { mount: mount };
  if (document.body && document.body.getAttribute("data-page") === "scenario") boot();
})();
