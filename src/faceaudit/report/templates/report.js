/* faceaudit report page: recomputes every per-group number at the chosen threshold from the compact
   distributions embedded in the audit document, and draws the charts with Vega-Lite.
   Labels are untrusted: this script writes text with textContent only, never innerHTML. */
(function () {
  "use strict";
  var state = { ready: false, errors: [], threshold: null, index: null };
  window.addEventListener("error", function (e) { state.errors.push(String(e.message || e)); });
  window.addEventListener("unhandledrejection", function (e) { state.errors.push(String(e.reason)); });

  var doc = JSON.parse(document.getElementById("faceaudit-data").textContent);
  var D = doc.distributions || null;
  var LEVEL = doc.settings.level;
  var OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  var DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3]];
  var views = {};
  var api = { doc: doc, state: state, scenarioHook: null };
  window.faceaudit = api;

  // ------------------------------------------------------------------ numbers and intervals
  function num(x) { return typeof x === "string" ? (x === "inf" ? Infinity : x === "-inf" ? -Infinity : Number(x)) : x; }

  function fmtNum(x, digits) {
    digits = digits || 3;
    if (x === null || x === undefined || isNaN(x)) return "n/a";
    if (x === 0) return "0";
    if (!isFinite(x)) return String(x);
    if (Math.abs(x) < 1e-3) {
      var e = x.toExponential(digits - 1).split("e");
      var exp = Number(e[1]);
      return e[0] + "e" + (exp < 0 ? "-" : "+") + String(Math.abs(exp)).padStart(2, "0");
    }
    return String(parseFloat(x.toPrecision(digits)));
  }
  var LOG_AXIS = { labelExpr: "abs(round(log(datum.value) / LN10) - log(datum.value) / LN10) < 1e-6 ? format(datum.value, '.0e') : ''" };
  function logAxis(title) { return { labelExpr: LOG_AXIS.labelExpr, title: title }; }
  function fmtInt(n) { return Number(n).toLocaleString("en-US"); }

  // log-gamma (Lanczos, g = 7) and the regularised incomplete beta (continued fraction, Lentz)
  var LANCZOS = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7];
  function lgamma(x) {
    if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lgamma(1 - x);
    x -= 1;
    var a = LANCZOS[0], t = x + 7.5;
    for (var i = 1; i < 9; i++) a += LANCZOS[i] / (x + i);
    return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
  }
  function betacf(a, b, x) {
    var TINY = 1e-300, qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (Math.abs(d) < TINY) d = TINY;
    d = 1 / d;
    var h = d;
    for (var m = 1; m <= 100000; m++) {
      var m2 = 2 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
      d = 1 + aa * d; if (Math.abs(d) < TINY) d = TINY;
      c = 1 + aa / c; if (Math.abs(c) < TINY) c = TINY;
      d = 1 / d; h *= d * c;
      aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
      d = 1 + aa * d; if (Math.abs(d) < TINY) d = TINY;
      c = 1 + aa / c; if (Math.abs(c) < TINY) c = TINY;
      d = 1 / d;
      var del = d * c;
      h *= del;
      if (Math.abs(del - 1) < 1e-13) break;
    }
    return h;
  }
  function ibeta(x, a, b) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    var bt = Math.exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * Math.log(x) + b * Math.log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
    return 1 - bt * betacf(b, a, 1 - x) / b;
  }
  function betaInv(p, a, b) {
    var lo = 0, hi = 1;
    for (var i = 0; i < 64; i++) {
      var mid = 0.5 * (lo + hi);
      if (ibeta(mid, a, b) < p) lo = mid; else hi = mid;
    }
    return 0.5 * (lo + hi);
  }
  /* Clopper-Pearson, as faceaudit.stats.intervals.clopper_pearson */
  function clopperPearson(k, n, level) {
    var alpha = 1 - level;
    return { low: k === 0 ? 0 : betaInv(alpha / 2, k, n - k + 1),
             high: k === n ? 1 : betaInv(1 - alpha / 2, k + 1, n - k) };
  }
  api.clopperPearson = clopperPearson;

  function rateText(k, n) {
    if (!n) return "n/a (no comparisons)";
    var ci = clopperPearson(k, n, LEVEL);
    var interval = Math.round(LEVEL * 100) + "% CI " + fmtNum(ci.low) + "–" + fmtNum(ci.high);
    if (k === 0) {
      return "0 of " + fmtInt(n) + " (at most " + fmtNum(Math.min(1, 3 / n), 2) + " by the rule of three; " + interval + ")";
    }
    return fmtNum(k / n) + " (" + fmtInt(k) + " of " + fmtInt(n) + "; " + interval + ")";
  }

  // ------------------------------------------------------------------ compact distributions
  function decode(block) {
    var bin = atob(block.base64), n = bin.length, bytes = new Uint8Array(n);
    for (var i = 0; i < n; i++) bytes[i] = bin.charCodeAt(i);
    var view = new DataView(bytes.buffer), out = new Float64Array(block.count);
    if (block.dtype === "float32") for (var j = 0; j < block.count; j++) out[j] = view.getFloat32(4 * j, true);
    else for (var q = 0; q < block.count; q++) out[q] = view.getFloat64(8 * q, true);
    return out;
  }
  function expand(t) {
    var out = new Array(t.length), i;
    for (i = 0; i < t.length; i++) out[i] = i < t.start ? t.head : (i - t.start < t.values.length ? t.values[i - t.start] : t.tail);
    return out;
  }
  function lowerBound(a, t) { var lo = 0, hi = a.length; while (lo < hi) { var mid = (lo + hi) >>> 1; if (a[mid] < t) lo = mid + 1; else hi = mid; } return lo; }

  var model = null;
  if (D) {
    model = { exactFrom: num(D.exact_from), grid: D.grid, G: D.n_groups, design: D.design,
              cells: D.cells.map(function (c) { return { total: c.total, scores: decode(c.scores), grid: expand(c.at_least_grid) }; }),
              mated: D.mated.map(function (m) { return { total: m.total, below: m.below_exact_from, scores: decode(m.scores), grid: expand(m.below_grid) }; }),
              subsets: {} };
    D.subsets.forEach(function (s) { model.subsets[s.grouping + "\u0000" + s.group] = s.finest_groups; });
    // threshold positions: the grid below exact_from; every distinct score (and reported threshold) above
    var parts = [D.grid.slice()];
    model.cells.forEach(function (c) { parts.push(c.scores); });
    model.mated.forEach(function (m) { parts.push(m.scores); });
    var reported = doc.overall.operating_points.map(function (p) { return p.threshold; });
    // a scenario's threshold too, where counts are exact at any threshold (the panel ties to it)
    (doc.scenarios || []).forEach(function (sc) { if (sc.inputs && typeof sc.inputs.threshold === "number") reported.push(sc.inputs.threshold); });
    if (isFinite(model.exactFrom)) reported.push(model.exactFrom);
    parts.push(reported.filter(function (t) { return t >= model.exactFrom; }));
    var total = 0; parts.forEach(function (p) { total += p.length; });
    var all = new Float64Array(total), off = 0;
    parts.forEach(function (p) { all.set(p, off); off += p.length; });
    all.sort();
    var uniq = [], last = NaN;
    for (var i = 0; i < all.length; i++) {
      var t = all[i];
      if (t !== last && (t >= model.exactFrom || gridIndex(t) >= 0)) uniq.push(t);
      last = t;
    }
    model.positions = uniq;
  }
  function gridIndex(t) { var k = lowerBound(model.grid, t); return k < model.grid.length && model.grid[k] === t ? k : -1; }

  var cellCache = {};
  function cellsFor(probe, ref) {
    var key = probe.join(",") + "|" + ref.join(","), out = cellCache[key];
    if (out) return out;
    var set = {};
    probe.forEach(function (a) { ref.forEach(function (b) {
      set[a * model.G + b] = true;
      if (model.design === "complete") set[b * model.G + a] = true;
    }); });
    out = Object.keys(set).map(Number).sort(function (x, y) { return x - y; });
    cellCache[key] = out;
    return out;
  }

  /* Exact counts at threshold t (t >= exact_from, or a grid point). */
  function countsAt(t, probe, ref) {
    var k = t >= model.exactFrom ? -1 : gridIndex(t);
    if (k === -1 && t < model.exactFrom) return null;
    var fm = 0, nm = 0;
    cellsFor(probe, ref || probe).forEach(function (c) {
      var cell = model.cells[c];
      nm += cell.total;
      fm += k < 0 ? cell.scores.length - lowerBound(cell.scores, t) : cell.grid[k];
    });
    var out = { fm: fm, nm: nm };
    if (!ref) {
      var fnm = 0, m = 0;
      probe.forEach(function (g) {
        var mm = model.mated[g];
        m += mm.total;
        fnm += k < 0 ? mm.below + lowerBound(mm.scores, t) : mm.grid[k];
      });
      out.fnm = fnm; out.m = m;
    }
    return out;
  }
  api.countsAt = countsAt;

  /* Every per-group number at threshold t, in the document's own order. */
  function computeAt(t) {
    var res = { threshold: t, overall: countsAt(t, range(model.G)), groups: {}, cross: {} };
    Object.keys(doc.by_group).forEach(function (grouping) {
      res.groups[grouping] = doc.by_group[grouping].map(function (e) {
        return countsAt(t, model.subsets[grouping + "\u0000" + e.group]);
      });
    });
    Object.keys(doc.cross_group_fmr).forEach(function (grouping) {
      var m = doc.cross_group_fmr[grouping][0];
      if (!m) return;
      res.cross[grouping] = m.probe_groups.map(function (pg) {
        return m.reference_groups.map(function (rg) {
          return countsAt(t, model.subsets[grouping + "\u0000" + pg], model.subsets[grouping + "\u0000" + rg]);
        });
      });
    });
    return res;
  }
  api.computeAt = computeAt;
  function range(n) { var a = []; for (var i = 0; i < n; i++) a.push(i); return a; }

  /* The same shape from the document at its first reported threshold (no distributions embedded). */
  function fromDocument() {
    var p = doc.overall.operating_points[0];
    var res = { threshold: p ? p.threshold : null, overall: p ? { fm: p.fmr.count, nm: p.fmr.total, fnm: p.fnmr.count, m: p.fnmr.total } : null,
                groups: {}, cross: {} };
    Object.keys(doc.by_group).forEach(function (grouping) {
      res.groups[grouping] = doc.by_group[grouping].map(function (e) {
        var g = (e.at_global_threshold || [])[0];
        return g ? { fm: g.fmr.count, nm: g.fmr.total, fnm: g.fnmr.count, m: g.fnmr.total } : null;
      });
    });
    Object.keys(doc.cross_group_fmr).forEach(function (grouping) {
      var m = doc.cross_group_fmr[grouping][0];
      if (m) res.cross[grouping] = m.fmr.map(function (row) { return row.map(function (c) { return { fm: c.count, nm: c.total }; }); });
    });
    return res;
  }

  // ------------------------------------------------------------------ page updates
  function setRate(td, k, n, initial) {
    if (!td || k === undefined || k === null) return;
    td.setAttribute("data-count", String(k));
    td.setAttribute("data-total", String(n));
    if (!initial) td.textContent = rateText(k, n);
  }
  function fillRow(row, c, initial) {
    if (!row || !c) return;
    setRate(row.querySelector('td[data-rate="fmr"]'), c.fm, c.nm, initial);
    setRate(row.querySelector('td[data-rate="fnmr"]'), c.fnm, c.m, initial);
  }

  function update(res, initial) {
    state.threshold = res.threshold;
    var out = document.getElementById("thr-value");
    out.textContent = res.threshold === null ? "n/a" : fmtNum(res.threshold, 6);
    out.setAttribute("data-threshold", res.threshold === null ? "" : String(res.threshold));
    fillRow(document.getElementById("row-overall"), res.overall, initial);
    // (the differentials, with their intervals, are the global thresholds' only: no live ratio here)
    Object.keys(doc.by_group).forEach(function (grouping, gi) {
      var counts = res.groups[grouping];
      counts.forEach(function (c, j) { fillRow(document.getElementById("row-" + gi + "-" + j), c, initial); });
      setData("rates-" + gi, ratesRows(grouping, counts));
      setData("det-" + gi, currentRows(grouping, counts), "current");
    });
    Object.keys(doc.cross_group_fmr).forEach(function (grouping, gi) {
      var matrix = res.cross[grouping];
      if (!matrix) return;
      matrix.forEach(function (row, ri) { row.forEach(function (c, ci) {
        setRate(document.getElementById("cell-" + gi + "-" + ri + "-" + ci), c.fm, c.nm, initial);
      }); });
      setData("heat-" + gi, heatRows(grouping, matrix));
    });
    if (typeof api.scenarioHook === "function") api.scenarioHook(doc, res);
  }

  function setData(viewKey, rows, name) {
    var v = views[viewKey];
    if (!v) { pending[viewKey + "|" + (name || "table")] = rows; return; }
    v.data(name || "table", rows).runAsync().catch(function (e) { state.errors.push(String(e)); });
  }
  var pending = {};

  // ------------------------------------------------------------------ charts
  function ratesRows(grouping, counts) {
    var rows = [];
    doc.by_group[grouping].forEach(function (e, j) {
      var c = counts[j];
      if (!c) return;
      [["FMR", c.fm, c.nm], ["FNMR", c.fnm, c.m]].forEach(function (r) {
        var k = r[1], n = r[2];
        if (!n) return;
        var ci = clopperPearson(k, n, LEVEL);
        rows.push({ group: e.group, measure: r[0], count: k, total: n,
                    shown: k > 0 ? k / n : Math.min(1, 3 / n), low: ci.low, high: ci.high,
                    kind: k > 0 ? "observed rate" : "zero count: rule-of-3 upper bound" });
      });
    });
    return rows;
  }

  function ratesSpec(rows, grouping) {
    function panel(measure) {
      return {
        width: 300, height: { step: 20 }, title: measure + " by " + grouping,
        transform: [{ filter: { field: "measure", equal: measure } },
                    { calculate: "datum.low > 0 ? datum.low : datum.shown / 10", as: "lowShown" }],
        encoding: { y: { field: "group", type: "nominal", sort: null, title: null } },
        layer: [
          { mark: { type: "rule", color: "#555" },
            encoding: { x: { field: "lowShown", type: "quantitative", scale: { type: "log" }, axis: logAxis(measure + " (log scale)") },
                        x2: { field: "high" } } },
          { mark: { type: "point", filled: true, size: 70, color: "#0072B2" },
            encoding: { x: { field: "shown", type: "quantitative" },
                        shape: { field: "kind", type: "nominal", scale: { domain: ["observed rate", "zero count: rule-of-3 upper bound"], range: ["circle", "triangle-left"] }, legend: { orient: "bottom", title: null } },
                        tooltip: [{ field: "group" }, { field: "count", title: "count", format: "," }, { field: "total", title: "of", format: "," },
                                  { field: "shown", title: "rate", format: ".3g" }, { field: "low", format: ".3g" }, { field: "high", format: ".3g" }] } }
        ]
      };
    }
    return { data: { name: "table", values: rows },
             hconcat: [panel("FMR"), panel("FNMR")], resolve: { scale: { x: "independent" } },
             config: { font: "system-ui, sans-serif", view: { stroke: null } } };
  }

  function detRows(grouping) {
    var rows = [];
    doc.by_group[grouping].forEach(function (e) {
      var d = e.det;
      if (!d) return;
      var n = d.threshold.length, step = Math.max(1, Math.ceil(n / 150));
      for (var i = 0; i < n; i++) {
        var fmr = d.false_matches[i] / d.nonmated, fnmr = d.false_non_matches[i] / d.mated;
        if (!(fmr > 0 && fnmr > 0)) continue;
        var row = { group: e.group, i: i, fmr: fmr, fnmr: fnmr };
        if (i % step === 0) {
          var ci = clopperPearson(d.false_non_matches[i], d.mated, LEVEL);
          row.low = ci.low; row.high = ci.high;
        }
        rows.push(row);
      }
    });
    return rows;
  }
  function currentRows(grouping, counts) {
    var rows = [];
    doc.by_group[grouping].forEach(function (e, j) {
      var c = counts[j];
      if (c && c.nm && c.m && c.fm > 0 && c.fnm > 0) rows.push({ group: e.group, fmr: c.fm / c.nm, fnmr: c.fnm / c.m });
    });
    return rows;
  }
  function detSpec(grouping, rows, current) {
    var groups = doc.by_group[grouping].map(function (e) { return e.group; });
    var colors = groups.map(function (_, i) { return OKABE_ITO[i % OKABE_ITO.length]; });
    var dashes = groups.map(function (_, i) { return DASHES[Math.floor(i / OKABE_ITO.length) % DASHES.length]; });
    var minF = Infinity, minN = Infinity;
    rows.forEach(function (r) { minF = Math.min(minF, r.fmr); minN = Math.min(minN, r.fnmr); });
    var color = { field: "group", type: "nominal", scale: { domain: groups, range: colors }, title: grouping };
    var x = { field: "fmr", type: "quantitative", scale: { type: "log", domain: [minF, 1] }, axis: logAxis("false match rate (FMR), log scale") };
    var y = { field: "fnmr", type: "quantitative", scale: { type: "log", domain: [minN, 1], clamp: true }, axis: logAxis("false non-match rate (FNMR), log scale") };
    return {
      width: 560, height: 380,
      title: "DET curves by " + grouping,
      data: { name: "table", values: rows },
      layer: [
        { transform: [{ filter: "isValid(datum.low)" }, { calculate: "max(datum.low, " + minN + ")", as: "lowC" }],
          mark: { type: "area", opacity: 0.15 }, encoding: { x: x, y: { field: "lowC", type: "quantitative", scale: y.scale }, y2: { field: "high" }, color: color } },
        { mark: { type: "line", strokeWidth: 1.6 },
          encoding: { x: x, y: y, color: color, order: { field: "i", type: "quantitative" },
                      strokeDash: { field: "group", type: "nominal", scale: { domain: groups, range: dashes }, title: grouping } } },
        { data: { name: "current", values: current }, mark: { type: "point", filled: true, size: 90, stroke: "#000", strokeWidth: 1 },
          encoding: { x: x, y: y, color: color,
                      tooltip: [{ field: "group" }, { field: "fmr", format: ".3g", title: "FMR" }, { field: "fnmr", format: ".3g", title: "FNMR" }] } }
      ],
      config: { font: "system-ui, sans-serif" }
    };
  }

  function heatRows(grouping, matrix) {
    return heatRowsFrom(doc.cross_group_fmr[grouping][0], matrix);
  }
  function heatRowsFrom(m, matrix) {
    var rows = [];
    matrix.forEach(function (row, ri) { row.forEach(function (c, ci) {
      var v = c.nm ? c.fm / c.nm : null;
      rows.push({ probe: m.probe_groups[ri], reference: m.reference_groups[ci], pi: ri, ri: ci, count: c.fm, total: c.nm,
                  log10: v > 0 ? Math.log10(v) : null, label: v === null ? "n/a" : (c.fm === 0 ? "0" : fmtNum(v, 2)),
                  sub: fmtInt(c.fm) + "/" + fmtInt(c.nm) });
    }); });
    return rows;
  }
  function heatSpec(grouping, rows) {
    return heatSpecFrom(doc.cross_group_fmr[grouping][0], "Cross-group FMR by " + grouping + " (colour: log10 FMR)", rows);
  }
  // a NIST-style card (doc.cards[i]): the same heat map, fixed at the card's threshold
  function cardRows(card) {
    return heatRowsFrom(card, card.fmr.map(function (row) { return row.map(function (c) { return { fm: c.count, nm: c.total }; }); }));
  }
  function cardSpec(card) {
    return heatSpecFrom(card, "FMR by " + card.grouping + ", " + card.pairing_name + " (colour: log10 FMR)", cardRows(card));
  }
  function heatSpecFrom(m, title, rows) {
    var n = m.probe_groups.length;
    var maxTotal = 1;
    m.fmr.forEach(function (row) { row.forEach(function (c) { maxTotal = Math.max(maxTotal, c.total); }); });
    var lo = Math.floor(Math.log10(1 / maxTotal)), step = Math.max(34, Math.min(70, Math.floor(720 / n)));
    var axisX = { field: "reference", type: "nominal", sort: { field: "ri", op: "min" }, title: "reference group", axis: { labelAngle: -40, labelLimit: 140 } };
    var axisY = { field: "probe", type: "nominal", sort: { field: "pi", op: "min" }, title: "probe group", axis: { labelLimit: 140 } };
    var mid = (lo + 0) / 2;
    return {
      data: { name: "table", values: rows },
      width: { step: step }, height: { step: Math.max(26, Math.floor(step * 0.7)) },
      title: title,
      encoding: { x: axisX, y: axisY },
      layer: [
        { mark: { type: "rect", stroke: "#fff" },
          encoding: { color: { condition: { test: "datum.log10 === null", value: "#e8e8e8" },
                               field: "log10", type: "quantitative", scale: { scheme: "viridis", reverse: true, domain: [lo, 0], clamp: true },
                               legend: { title: "log10 FMR" } },
                      tooltip: [{ field: "probe" }, { field: "reference" }, { field: "count", format: "," }, { field: "total", format: "," }, { field: "label", title: "FMR" }] } },
        { mark: { type: "text", fontSize: n > 10 ? 8 : 10, baseline: "bottom", dy: 1 },
          encoding: { text: { field: "label" }, color: { condition: { test: "datum.log10 !== null && datum.log10 > " + mid, value: "#fff" }, value: "#000" } } },
        { mark: { type: "text", fontSize: n > 10 ? 7 : 8, baseline: "top", dy: 2 },
          encoding: { text: { field: "sub" }, color: { condition: { test: "datum.log10 !== null && datum.log10 > " + mid, value: "#fff" }, value: "#333" } } }
      ],
      config: { font: "system-ui, sans-serif", axis: { grid: false } }
    };
  }

  // ------------------------------------------------------------------ wiring
  var initialRes = null;
  if (model && doc.overall.operating_points.length) initialRes = computeAt(doc.overall.operating_points[0].threshold);
  if (!initialRes || initialRes.overall === null) initialRes = model ? computeAt(model.positions[model.positions.length - 1]) : fromDocument();
  var embeds = [];
  var opts = { actions: false, renderer: "svg", tooltip: true, mode: "vega-lite" };
  function embed(key, id, spec) {
    var el = document.getElementById(id);
    if (!el) return;
    embeds.push(window.vegaEmbed(el, spec, opts).then(function (r) {
      views[key] = r.view;
      Object.keys(pending).forEach(function (k) {
        var parts = k.split("|");
        if (parts[0] === key) { var rows = pending[k]; delete pending[k]; r.view.data(parts[1], rows); }
      });
      return r.view.runAsync();
    }));
  }
  Object.keys(doc.by_group).forEach(function (grouping, gi) {
    var counts = initialRes.groups[grouping];
    embed("rates-" + gi, "rates-chart-" + gi, ratesSpec(ratesRows(grouping, counts), grouping));
    var rows = detRows(grouping);
    if (rows.length) embed("det-" + gi, "det-chart-" + gi, detSpec(grouping, rows, currentRows(grouping, counts)));
  });
  Object.keys(doc.cross_group_fmr).forEach(function (grouping, gi) {
    if (initialRes.cross[grouping]) embed("heat-" + gi, "heat-chart-" + gi, heatSpec(grouping, heatRows(grouping, initialRes.cross[grouping])));
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-card]"), function (el, k) {
    var card = (doc.cards || [])[Number(el.getAttribute("data-card"))];
    if (card) embed("card-" + k, el.id, cardSpec(card));
  });
  // the scenario panels (scenario.js): their charts, and the hook that ties them to the control
  if (window.faceauditScenario && doc.scenarios && doc.scenarios.length) {
    api.scenarioHook = window.faceauditScenario.mount({
      doc: doc, scenarios: doc.scenarios, embed: embed, positions: model ? model.positions : null,
      setThreshold: function (t) {
        if (!model) return false;
        var i = nearest(t);
        if (model.positions[i] !== t) return false;
        setIndex(i, "This scenario's threshold.");
        return true;
      }
    });
  }
  update(initialRes, true);

  var slider = document.getElementById("thr-range"), stateText = document.getElementById("thr-state");
  function nearest(t) {
    var k = lowerBound(model.positions, t);
    if (k >= model.positions.length) return model.positions.length - 1;
    if (k > 0 && (t - model.positions[k - 1]) < (model.positions[k] - t)) return k - 1;
    return k;
  }
  var frame = null;
  function setIndex(i, note) {
    i = Math.max(0, Math.min(model.positions.length - 1, i));
    slider.value = String(i);
    state.index = i;
    var t = model.positions[i];
    update(computeAt(t), false);
    var exact = t >= model.exactFrom ? "every count is exact at this threshold"
      : "a grid point: counts are exact here";
    stateText.textContent = (note ? note + " " : "") + "Threshold " + fmtNum(t, 8) + ": " + exact +
      ". Intervals are exact binomial (Clopper-Pearson); subject-bootstrap intervals exist only at the reported thresholds (see the summary and the JSON).";
  }
  api.setIndex = setIndex;
  if (model) {
    api.positions = model.positions;
    slider.max = String(model.positions.length - 1);
    var i0 = nearest(initialRes.threshold);
    slider.value = String(i0);
    state.index = i0;
    slider.disabled = false;
    slider.addEventListener("input", function () {
      if (frame !== null) cancelAnimationFrame(frame);
      frame = requestAnimationFrame(function () { frame = null; setIndex(Number(slider.value)); });
    });
    Array.prototype.forEach.call(document.querySelectorAll("button.preset"), function (b) {
      b.disabled = false;
      b.addEventListener("click", function () {
        var t = Number(b.getAttribute("data-threshold")), i = nearest(t);
        setIndex(i, model.positions[i] === t ? "Global threshold for " + b.textContent.replace("global threshold for ", "") + "." :
          "The reported threshold " + fmtNum(t, 8) + " lies between the exact grid points; moved to the nearest.");
      });
    });
  }
  Promise.all(embeds).then(function () {
    state.ready = true;
    document.body.setAttribute("data-ready", "1");
  }).catch(function (e) {
    state.errors.push(String(e));
    document.body.setAttribute("data-ready", "error");
  });
})();
