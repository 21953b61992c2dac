/* gridmap review page: the map overlays and the long lists of templates/review.html.
 *
 * The page hands us <script id="review-data"> (built by gridmap/web/review.py) and every UI
 * string in it; this file holds no UI text.  Names, codes and messages are user data: they only
 * ever reach the page through textContent, never innerHTML.
 *
 * Outlines: a stored version's come from GET /api/layers/<level>?version=N (before and after),
 * a refused upload's are embedded, each ring encoded like Google's polyline format at 1e-6°
 * (gridmap.maps.review_shape).  Problems: each group of the report (a <details>) has its own
 * layer; the selected group (the one opened or clicked last) is drawn prominently, the others
 * dimmed, and with no group selected all are drawn plainly.  The page brings the shapes of the
 * rows it shows; opening a group loads the rest of its shapes (stored versions: from
 * …/problems; a refused upload embeds them), and "show more" adds its rows to the table.
 * window.gridmap_review exposes the state for tests and the console.
 */
(function () {
  "use strict";

  const STEP = 50;             // rows one "show more" adds
  const FETCH_LIMIT = 500;     // rows one request for a group's shapes asks for
  const ZOOM = 18;
  const STYLE = {
    before: {color: "#52606d", weight: 2, dashArray: "6 4", fill: false, pane: "review-before"},
    after: {color: "#0b6fa4", weight: 1.5, fillColor: "#2b8cbe", fillOpacity: 0.08, pane: "review-after"},
    cleaned: {color: "#6a3d9a", weight: 2.5, fillColor: "#b794d6", fillOpacity: 0.45, pane: "review-cleaned"},
    error: {color: "#b2182b", weight: 3, opacity: 1, fillColor: "#ef3b2c", fillOpacity: 0.6},
    warning: {color: "#b35806", weight: 2, opacity: 1, fillColor: "#fdb863", fillOpacity: 0.5},
    dimmed: {weight: 1, opacity: 0.3, fillOpacity: 0.08},
    focus: {weight: 6, opacity: 1, fillOpacity: 0.8},
  };
  const PANES = {"review-before": 410, "review-after": 420, "review-cleaned": 430, "review-problems": 440};

  const data = JSON.parse(document.getElementById("review-data").textContent);
  const S = data.labels;
  const map = window.gridmap_map;
  window.gridmapBasemap.add(map, data.basemap);     // before any shape: GCJ-02 tiles shift them
  const areaFormat = new Intl.NumberFormat("en-US", {maximumFractionDigits: 0});
  const sizeFormat = new Intl.NumberFormat("en-US", {minimumFractionDigits: 1, maximumFractionDigits: 1});

  const state = window.gridmap_review = {selected: null, focus: null, groups: {}, loaded: {}, failed: []};

  /* -- helpers ------------------------------------------------------------------------------ */

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
  }

  function element(tag, text, props) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return Object.assign(node, props || {});
  }

  async function getJSON(url) {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || String(response.status));
    return body;
  }

  function withQuery(path, params) {
    return path + "?" + new URLSearchParams(params).toString();
  }

  const shapeLatLngs = (shape) => window.gridmapShapes.shapeLatLngs(shape);

  function unitTip(name, code) {
    const tip = element("div");
    tip.append(element("b", S.name + ": "), element("span", name), element("br"),
               element("b", S.code + ": "), element("span", code));
    return tip;
  }

  function note(text) {
    let box = document.getElementById("map-note");
    if (!box) {
      box = element("p", null, {id: "map-note", className: "map-note"});
      box.setAttribute("role", "alert");
      document.querySelector(".mapbox").append(box);
    }
    box.textContent = text;
  }

  /* -- outlines ----------------------------------------------------------------------------- */

  for (const [pane, z] of Object.entries(PANES)) map.createPane(pane).style.zIndex = z;
  const layers = {before: L.featureGroup(), after: L.featureGroup(), cleaned: L.featureGroup(),
                  problems: L.featureGroup()};
  const control = L.control.layers(null, null, {collapsed: false}).addTo(map);
  if (data.before) control.addOverlay(layers.before.addTo(map), S.before);
  control.addOverlay(layers.after.addTo(map), S.after);
  if (data.cleaned.length) control.addOverlay(layers.cleaned.addTo(map), S.cleaned);
  control.addOverlay(layers.problems.addTo(map), S.problems);

  async function units(source) {
    if (source.units) {
      return source.units.map((u) => ({code: u.code, name: u.name, latlngs: u.shape && shapeLatLngs(u.shape)}));
    }
    const body = await getJSON(source.url);          // columns: code, name, shape (encoded polygons)
    return body.code.map((code, i) => ({code: String(code ?? ""), name: String(body.name[i] ?? ""),
                                        latlngs: body.shape[i] && shapeLatLngs(body.shape[i])}));
  }

  function draw(layer, list, style) {
    for (const unit of list) {
      if (!unit.latlngs) continue;
      const polygon = L.polygon(unit.latlngs, {...style});
      polygon.bindTooltip(unitTip(unit.name, unit.code), {sticky: true});
      polygon.unit = unit;
      layer.addLayer(polygon);
    }
    return layer.getLayers().length;
  }

  async function loadOutlines() {
    const jobs = [["after", data.after]].concat(data.before ? [["before", data.before]] : []);
    await Promise.all(jobs.map(async ([name, source]) => {
      try {
        const list = await units(source);
        state.loaded[name] = draw(layers[name], list, STYLE[name]);
        if (name === "after" && data.cleaned.length) {
          const cleaned = new Set(data.cleaned);
          state.loaded.cleaned = draw(layers.cleaned, list.filter((u) => cleaned.has(u.code)), STYLE.cleaned);
        }
      } catch (error) {
        state.failed.push(name);
        note(fill(S.failed, {reason: error.message}));
      }
    }));
    layers.problems.eachLayer((group) => group.bringToFront());
  }

  /* -- problem groups ----------------------------------------------------------------------- */

  function groupStyle(group) {
    const base = {...STYLE[group.severity], pane: "review-problems"};
    if (state.selected === null) return base;
    return state.selected === group.key ? {...base, weight: base.weight + 2} : {...base, ...STYLE.dimmed};
  }

  function addShape(group, row) {
    let shape;
    if (row.shape) shape = L.polygon(shapeLatLngs(row.shape), groupStyle(group));
    else if (row.location) {
      shape = L.circleMarker(window.gridmapBasemap.display(row.location[1], row.location[0]),
                             {...groupStyle(group), radius: 7});
    }
    else return;
    const text = row.message ?? group.details?.querySelector(`tr[data-index="${row.i}"] td`)?.textContent;
    if (text) shape.bindTooltip(element("span", text), {sticky: true});
    group.shapes[row.i] = shape;
    group.layer.addLayer(shape);
  }

  /** Style every group for the selection: the selected one prominent and on top, the others dimmed. */
  function select(key) {
    state.selected = key in state.groups ? key : null;
    state.focus = null;
    for (const group of Object.values(state.groups)) {
      const chosen = group.key === state.selected;
      group.layer.setStyle(groupStyle(group));
      group.layer.eachLayer((shape) => {
        const path = shape.getElement && shape.getElement();
        if (path) {
          path.classList.toggle("problem-selected", chosen);
          path.classList.toggle("problem-dimmed", state.selected !== null && !chosen);
        }
      });
      if (group.details) group.details.classList.toggle("selected", chosen);
    }
    if (state.selected !== null) state.groups[state.selected].layer.bringToFront();
  }

  function focus(group, index) {
    select(group.key);
    const shape = group.shapes[index];
    if (!shape) return;
    shape.setStyle(STYLE.focus);
    shape.bringToFront();
    state.focus = {group: group.key, index: index};
  }

  /** Every shape of a group on the map: the rows the page did not bring are fetched once. */
  function loadAll(group) {
    if (group.complete) return Promise.resolve();
    if (!group.loading) {
      group.loading = (async () => {
        let offset = group.inline;
        while (offset < group.total) {
          const body = await getJSON(withQuery(data.problemsUrl, {
            kind: group.kind, severity: group.severity, offset: offset, limit: FETCH_LIMIT}));
          if (!body.problems.length) break;
          for (const row of body.problems) {
            group.rest.push(row);
            addShape(group, row);
          }
          offset += body.problems.length;
        }
        group.complete = true;
        select(state.selected);
      })().catch((error) => {
        group.loading = null;
        throw error;
      });
    }
    return group.loading;
  }

  for (const [key, given] of Object.entries(data.groups)) {
    const details = document.querySelector(`#problems details[data-group="${key}"]`);
    const group = state.groups[key] = {
      key: key, kind: given.kind, severity: given.severity, total: given.total, details: details,
      layer: L.featureGroup(), shapes: {}, inline: given.shapes.length, shown: given.shapes.length,
      rest: given.rest || [], complete: given.rest !== null || given.shapes.length >= given.total,
      open: details ? details.open : false, loading: null,
    };
    given.shapes.forEach((row) => addShape(group, row));
    group.rest.forEach((row) => addShape(group, row));
    layers.problems.addLayer(group.layer);
    if (!details) continue;
    details.addEventListener("toggle", () => {
      if (details.open === group.open) return;      // the parser's own toggle of an open group
      group.open = details.open;
      if (details.open) {
        select(key);
        loadAll(group).catch((error) => note(fill(S.failed, {reason: error.message})));
      } else if (state.selected === key) {
        const others = Array.from(document.querySelectorAll("#problems details[open]"));
        select(others.length ? others[others.length - 1].dataset.group : null);
      }
    });
    details.addEventListener("click", (event) => {
      if (details.open && !event.target.closest("summary, a, button")) select(key);
    });
  }

  /* -- rows --------------------------------------------------------------------------------- */

  function locationCell(location) {
    const cell = element("td", null, {className: "loc"});
    if (location) {
      const link = element("a", `${location[0].toFixed(5)}, ${location[1].toFixed(5)}`,
                           {href: "#", className: "zoom", title: S.show});
      link.dataset.lon = location[0];
      link.dataset.lat = location[1];
      cell.append(link);
    }
    return cell;
  }

  function problemRow(group, row) {
    const tr = element("tr", null, {className: group.severity});
    tr.dataset.kind = group.kind;
    tr.dataset.index = row.i;
    const feature = (row.feature == null ? "" : `#${row.feature} `) + (row.code || "");
    tr.append(element("td", row.message), element("td", feature),
              element("td", row.size_m2 == null ? "" : sizeFormat.format(row.size_m2), {className: "num"}),
              locationCell(row.location));
    return tr;
  }

  function partRow(part, row) {
    const tr = element("tr");
    if (part === "moves") {
      tr.dataset.from = row.source || "";
      tr.dataset.to = row.target || "";
      tr.append(element("td", row.source || S.outside), element("td", row.target || S.outside),
                element("td", row.count, {className: "count num"}));
      return tr;
    }
    tr.dataset.change = part;
    const name = part === "renamed" ? `${row.old_name} → ${row.name}` : row.name;
    let area = row.area_m2 == null ? "" : areaFormat.format(row.area_m2);
    if (part === "reshaped") area = `${areaFormat.format(row.old_area_m2)} → ${area}`;
    tr.append(element("td", S[part]), element("td", row.code), element("td", name),
              element("td", area, {className: "num"}));
    return tr;
  }

  async function moreRows(key, shown) {
    if (key in state.groups) {
      const group = state.groups[key];
      await loadAll(group);
      return {rows: group.rest.slice(shown - group.inline, shown - group.inline + STEP).map((r) => problemRow(group, r)),
              total: group.total};
    }
    const part = data.parts[key];
    const rows = part.rest ? part.rest.slice(shown - (part.total - part.rest.length), shown
                                             - (part.total - part.rest.length) + STEP)
      : (await getJSON(withQuery(data.diffUrl, {part: key, offset: shown, limit: STEP}))).rows;
    return {rows: rows.map((r) => partRow(key, r)), total: part.total};
  }

  function showHidden(button) {
    const hidden = Array.from(button.closest("tbody").querySelectorAll("tr[hidden]"));
    hidden.slice(0, STEP).forEach((tr) => { tr.hidden = false; });
    return hidden.length - Math.min(STEP, hidden.length);
  }

  async function showMore(button) {
    const moreRow = button.closest("tr");
    const body = button.closest("tbody");
    const key = button.dataset.list;
    const label = button.textContent;
    button.disabled = true;
    button.textContent = S.loading;
    try {
      let left;
      if (key === "cleaned") {
        left = showHidden(button);
      } else {
        const shown = body.querySelectorAll("tr:not(.more-row):not(.unlisted)").length;
        const more = await moreRows(key, shown);
        more.rows.forEach((tr) => body.insertBefore(tr, moreRow));
        left = more.total - shown - more.rows.length;
        if (key in state.groups) select(state.selected);
      }
      button.textContent = fill(S.more, {n: left});
      if (left <= 0) moreRow.remove();
    } catch (error) {
      button.textContent = label;
      note(fill(S.failed, {reason: error.message}));
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const more = event.target.closest("button.more");
    if (more) {
      showMore(more);
      return;
    }
    const link = event.target.closest("a.zoom");
    if (!link) return;
    event.preventDefault();
    const details = link.closest("details[data-group]");
    if (details) focus(state.groups[details.dataset.group], Number(link.closest("tr").dataset.index));
    map.setView(window.gridmapBasemap.display(Number(link.dataset.lat), Number(link.dataset.lon)), ZOOM);
  });

  /* -- start -------------------------------------------------------------------------------- */

  const first = document.querySelector("#problems details[open]");
  select(first ? first.dataset.group : null);
  if (first) loadAll(state.groups[first.dataset.group]).catch((error) => note(fill(S.failed, {reason: error.message})));
  state.ready = loadOutlines();
})();
