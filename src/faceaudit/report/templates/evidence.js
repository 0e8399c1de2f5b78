/* faceaudit evidence charts: draws the Vega-Lite specs the page embeds (script element "faceaudit-charts":
   element id -> spec), on the evidence sheet and in the audit report's evidence panel; no network.
   The specs are built in Python from the evidence documents (faceaudit.report.evidence.chart_specs): this
   script computes and writes no number. On the sheet it marks the page ready (body data-ready); in the audit
   report, whose own script marks data-ready, it marks body data-evidence-ready and reports its errors to the
   report's state. */
(function () {
  "use strict";
  var sheet = document.body.getAttribute("data-page") === "evidence";
  var host = !sheet && window.faceaudit && window.faceaudit.state ? window.faceaudit : null;
  var state = host ? host.state : { ready: false, errors: [] };
  if (!host) {
    window.addEventListener("error", function (e) { state.errors.push(String(e.message || e)); });
    window.addEventListener("unhandledrejection", function (e) { state.errors.push(String(e.reason)); });
  }
  var specs = JSON.parse(document.getElementById("faceaudit-charts").textContent);
  if (host) host.evidenceSpecs = specs;
  else window.faceaudit = { specs: specs, state: state };
  var readyAttr = sheet ? "data-ready" : "data-evidence-ready";
  var opts = { actions: false, renderer: "svg", tooltip: true, mode: "vega-lite" };
  var embeds = [];
  Object.keys(specs).forEach(function (id) {
    var el = document.getElementById(id);
    if (el) embeds.push(window.vegaEmbed(el, specs[id], opts).then(function (r) { return r.view.runAsync(); }));
  });
  Promise.all(embeds).then(function () {
    if (sheet) state.ready = true;
    document.body.setAttribute(readyAttr, "1");
  }).catch(function (e) {
    state.errors.push(String(e));
    document.body.setAttribute(readyAttr, "error");
  });
})();
