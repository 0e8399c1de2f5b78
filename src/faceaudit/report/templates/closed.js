/* faceaudit closed-system page: draws the DET charts the page embeds (script element "faceaudit-charts":
   element id -> Vega-Lite spec, built in Python by faceaudit.report.closed.det_chart_specs); no network.
   It computes and writes no number. It marks the page ready (body data-ready = "1", or "error"). */
(function () {
  "use strict";
  var state = { ready: false, errors: [] };
  window.addEventListener("error", function (e) { state.errors.push(String(e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) { state.errors.push(String(e.reason)); });
  var specs = JSON.parse(document.getElementById("faceaudit-charts").textContent);
  window.faceaudit = { specs: specs, state: state };
  var opts = { actions: false, renderer: "svg", tooltip: true, mode: "vega-lite" };
  var embeds = Object.keys(specs).map(function (id) {
    return window.vegaEmbed(document.getElementById(id), specs[id], opts)
      .then(function (r) { return r.view.runAsync(); });
  });
  Promise.all(embeds).then(function () {
    state.ready = true;
    document.body.setAttribute("data-ready", "1");
  }).catch(function (e) {
    state.errors.push(String(e));
    document.body.setAttribute("data-ready", "error");
  });
})();
