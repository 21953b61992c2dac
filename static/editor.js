/* gridmap boundary editor: redraw one level's units on a Leaflet map with Leaflet-Geoman.
 *
 * The page hands us its settings and every UI string in <script id="editor-config">; this file
 * holds no UI text.  Unit properties are user data: they only ever reach the page through
 * textContent or input values, never innerHTML.
 *
 * Shared borders stay shared: vertices of different units that lie within SAME_DEG of each other
 * are one corner.  Dragging a corner (Geoman's pm:markerdrag* events on the selected unit) moves
 * it in every unit that has it; adding a vertex on a shared edge (a mid-point) adds it to the
 * neighbour's edge too, and removing one removes it from a neighbour whose edge runs straight
 * through it.  Splitting sends the neighbours along, so the server adds the new border corners to
 * them as well.  Window.gridmapEditor exposes the state for tests and the console.
 *
 * Levels stay nested: the parent level (grids behind micro-grids) is held as editable data, drawn
 * dashed and not clickable.  A corner that lies on a parent's line (a parent corner, or a parent
 * edge within NEAR_M: real files are not exact) moves the parent's line with it; an edge-hit first
 * gets a parent corner at that point.  A corner added on an edge that runs along a parent edge
 * goes into the parent too, and removing it takes it out of a parent whose edge runs straight
 * through it.  Undo restores both levels; the save sends the parent only when a unit of it changed.
 *
 * Labels only where they fit: a unit shows its code permanently when its box on screen holds the
 * label with room to spare and it lies near the view; otherwise the code shows on hover.  The
 * choice is made again after every move or zoom (two projections per unit, a rebind only where
 * it flips), so a thousand units stay smooth and a zoomed-out map is not a pile of labels.
 *
 * A large level is edited an area at a time (config.scope): "all" loads a small level whole;
 * "area" shows the outlines of the level above (the areas) and loads the units of the areas the
 * planner opens (a click, the list, or ?unit= in the address); "view" (a large level with no
 * level above) loads the units in view once zoomed in far enough.  Each load brings the units
 * touching the opened ones, read-only (grey): a corner shared with one moves it too, and then it
 * is part of the edit; a click opens it.  Loads only add units, so every undo step gets them as
 * loaded.  The save sends only the units that differ from what was loaded (each with the code it
 * was loaded as, its "id") and the codes removed; the server completes the level.
 */
(function () {
  "use strict";

  const SAME_DEG = 1e-9;
  const SNAP_PX = 12;
  const STYLE = {color: "#1f5f8b", weight: 1.5, fillColor: "#5fa8d3", fillOpacity: 0.18};
  const CHANGED = {color: "#b26a00", weight: 2, fillColor: "#ffb74d", fillOpacity: 0.28};
  const SELECTED = {color: "#d9480f", weight: 3, fillColor: "#ff922b", fillOpacity: 0.32};
  const PROBLEM = {color: "#c92a2a", weight: 3, dashArray: "6 4"};
  const PARENT = {color: "#243b53", weight: 3, opacity: 0.55, fill: false, dashArray: "10 6",
                  interactive: false, pmIgnore: true, snapIgnore: false};
  const PARENT_CHANGED = {...PARENT, color: "#b26a00", opacity: 0.8};
  // A unit around the opened ones: shown, its shared corners move, a click opens it.
  const AROUND = {color: "#7b8794", weight: 1, fillColor: "#cbd2d9", fillOpacity: 0.35, dashArray: "3 3"};
  // The outline of an area (a unit of the level above) not opened yet: a click opens it.
  const AREA = {color: "#52606d", weight: 1.5, fillColor: "#9fb3c8", fillOpacity: 0.12, pmIgnore: true,
                snapIgnore: true};
  const VIEW_DELAY_MS = 250;  // "view" scope: load the units in view once the map has rested
  const KEEP_OUT = ["area_m2", "level"];  // the server computes these
  const NEAR_M = 0.05;        // a corner this close to a parent's line lies on it
  const M_PER_DEG = 111195;   // metres in a degree of latitude (mean Earth radius)
  // Labels: CSS .unit-label is 600 11px, 15 px tall with 4 px side padding.  A label shows when the
  // unit's box on screen holds it with LABEL_ROOM_PX to spare on every side and the unit lies in the
  // view padded by a quarter on each side (a short pan finds its labels there).  Each label needs
  // about 60 × 23 px of its own box, so a screen holds a few hundred at most, however many units
  // the level has: opening them (Leaflet measures each tooltip) stays bounded by the screen.
  const LABEL = {permanent: true, direction: "center", className: "unit-label", opacity: 0.9};
  const HOVER = {sticky: true, direction: "top", offset: [0, -6], className: "unit-tip", opacity: 0.95};
  const LABEL_PAD_PX = 4, LABEL_HEIGHT_PX = 15, LABEL_ROOM_PX = 4, LABEL_VIEW_PAD = 0.25;

  const config = JSON.parse(document.getElementById("editor-config").textContent);
  const S = config.strings;
  const $ = (id) => document.getElementById(id);

  /* -- small helpers ------------------------------------------------------------------------ */

  // the session's CSRF token (base.html's meta tag), sent with every write
  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
  }

  function same(a, b) {
    return Math.abs(a.lat - b.lat) <= SAME_DEG && Math.abs(a.lng - b.lng) <= SAME_DEG;
  }

  /* Where ``p`` lies, in metres east and north of ``origin`` (flat at these distances). */
  function metresFrom(origin) {
    const east = M_PER_DEG * Math.cos(origin.lat * Math.PI / 180);
    return (p) => ({x: (p.lng - origin.lng) * east, y: (p.lat - origin.lat) * M_PER_DEG});
  }

  function near(a, b) {
    const d = metresFrom(a)(b);
    return Math.hypot(d.x, d.y) <= NEAR_M;
  }

  /* Metres from ``p`` to the segment a–b. */
  function segmentDistance(p, a, b) {
    const local = metresFrom(p);
    const A = local(a), B = local(b);
    const dx = B.x - A.x, dy = B.y - A.y;
    const length2 = dx * dx + dy * dy;
    const t = length2 ? Math.max(0, Math.min(1, -(A.x * dx + A.y * dy) / length2)) : 0;
    return Math.hypot(A.x + t * dx, A.y + t * dy);
  }

  function isRing(latlngs) {
    return latlngs.length === 0 || !Array.isArray(latlngs[0]);
  }

  /* Every ring of a polygon layer's latlngs, with its path ([ring] or [polygon, ring]). */
  function rings(latlngs, path = []) {
    if (isRing(latlngs)) return [{ring: latlngs, path}];
    return latlngs.flatMap((child, i) => rings(child, path.concat(i)));
  }

  function ringAt(latlngs, path) {
    return path.reduce((node, i) => node[i], latlngs);
  }

  /* Positions as drawn (shifted onto GCJ-02 tiles, static/basemap.js) and as stored (WGS84). */
  const basemap = window.gridmapBasemap;
  const storedCoords = (p) => { const [lat, lng] = basemap.stored(p.lat, p.lng); return [lng, lat]; };

  function ringToCoords(ring) {
    const coords = ring.map(storedCoords);
    if (coords.length) coords.push(coords[0].slice());
    return coords;
  }

  function layerGeometry(layer) {
    const latlngs = layer.getLatLngs();
    if (isRing(latlngs[0])) return {type: "Polygon", coordinates: latlngs.map(ringToCoords)};
    return {type: "MultiPolygon", coordinates: latlngs.map((poly) => poly.map(ringToCoords))};
  }

  function geometryLatLngs(geometry) {
    const depth = geometry.type === "Polygon" ? 1 : 2;
    return L.GeoJSON.coordsToLatLngs(geometry.coordinates, depth, (c) => L.latLng(...basemap.display(c[1], c[0])));
  }

  function lineGeometry(layer) {
    return {type: "LineString", coordinates: layer.getLatLngs().map(storedCoords)};
  }

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  /* -- state -------------------------------------------------------------------------------- */

  const state = {
    level: config.level, version: config.baseVersion, units: [], removed: [], selected: null,
    mode: "select", undo: [], dirty: false, busy: false, nextId: 1, problems: null, note: null,
    parent: null,  // {version, units: [{feature, layer, originKey, code}]}
    known: new Set(), knownParents: new Set(),  // the codes loaded so far, of the level and the one above
    areas: new Map(), opened: [],  // "area" scope: code → {feature, layer, opened}; what ?unit= opens
  };

  const map = L.map("editor-map", {zoomControl: true, doubleClickZoom: false, boxZoom: false});
  map.attributionControl.setPrefix(false);
  window.gridmapBasemap.add(map, config.basemap);     // before any shape: GCJ-02 tiles shift them
  map.pm.setLang("gridmap", {tooltips: {
    firstVertex: S.geomanFirstVertex, continueLine: S.geomanContinueLine,
    finishLine: S.geomanFinishLine, finishPoly: S.geomanFinishPoly,
  }}, "en");
  map.pm.setGlobalOptions({snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: true,
                           templineStyle: {color: "#d9480f"}, hintlineStyle: {color: "#d9480f", dashArray: "4 4"},
                           pathOptions: CHANGED});
  const areaLayer = L.layerGroup().addTo(map);
  const problemLayer = L.layerGroup().addTo(map);

  /* -- units -------------------------------------------------------------------------------- */

  function featureKey(unit) {
    return JSON.stringify([outgoingProperties(unit.properties), layerGeometry(unit.layer)]);
  }

  function outgoingProperties(properties) {
    const out = {};
    for (const [key, value] of Object.entries(properties)) if (!KEEP_OUT.includes(key)) out[key] = value;
    return out;
  }

  const NEW = {originKey: null, loadedKey: null};  // a unit drawn or cut here: nothing was loaded as it

  /* A unit on the map.  ``origin``: {originKey, loadedKey, origin, readonly} as loaded or kept in an
   * undo step; a unit loaded just now has none (its keys are worked out), a new one {originKey: null}. */
  function addUnit(properties, latlngs, origin = {}) {
    const layer = L.polygon(latlngs, {...STYLE});
    const label = document.createElement("span");
    const unit = {id: state.nextId++, properties: {...properties}, layer, originKey: origin.originKey,
                  loadedKey: origin.loadedKey, origin: origin.origin ?? null, readonly: !!origin.readonly,
                  label, labelled: null};
    layer.unit = unit;
    layer.on("click", (e) => onUnitClick(unit, e));
    layer.on("pm:markerdragstart", (e) => onDragStart(unit, e));
    layer.on("pm:markerdrag", (e) => onDrag(unit, e));
    layer.on("pm:markerdragend", (e) => onDragEnd(unit, e));
    layer.on("pm:vertexadded", (e) => onVertexAdded(unit, e));
    layer.on("pm:vertexremoved", (e) => onVertexRemoved(unit, e));
    layer.addTo(map);
    state.units.push(unit);
    if (unit.originKey === undefined) unit.originKey = featureKey(unit);
    if (unit.loadedKey === undefined) unit.loadedKey = unit.originKey;
    refreshUnit(unit);
    return unit;
  }

  function removeUnit(unit) {
    if (state.selected === unit) select(null);
    map.removeLayer(unit.layer);
    state.units = state.units.filter((u) => u !== unit);
    if (unit.origin !== null) state.removed.push(unit.origin);
  }

  function setGeometry(unit, latlngs) {
    const editing = unit.layer.pm.enabled();
    if (editing) unit.layer.pm.disable();
    unit.layer.setLatLngs(latlngs);
    if (editing) enableEditing(unit);
    refreshUnit(unit);
  }

  function refreshUnit(unit) {
    const code = text(unit.properties.code) || S.nocode;
    if (unit.label.textContent !== code || unit.labelWidth === undefined) {
      unit.label.textContent = code;
      unit.labelWidth = textWidth(code) + 2 * LABEL_PAD_PX;
    }
    if (!placeLabel(unit) && unit.labelled && !unit.layer.isEmpty()) {
      unit.layer.getTooltip().setLatLng(unit.layer.getCenter());
    }
    unit.changed = unit.originKey !== featureKey(unit);
    const problem = state.problems && state.problems.has(text(unit.properties.code));
    unit.layer.setStyle({...STYLE, dashArray: null, ...(unit.readonly ? AROUND : {}), ...(unit.changed ? CHANGED : {}),
                         ...(problem ? PROBLEM : {}), ...(state.selected === unit ? SELECTED : {})});
  }

  /* -- labels ------------------------------------------------------------------------------- */

  const measure = document.createElement("canvas").getContext("2d");

  function textWidth(value) {
    if (!measure.fontSet) {
      measure.font = `600 11px ${getComputedStyle(map.getContainer()).fontFamily}`;
      measure.fontSet = true;
    }
    return measure.measureText(value).width;
  }

  function labelFits(unit, view) {
    if (unit.layer.isEmpty()) return false;
    const bounds = unit.layer.getBounds();
    if (!view.intersects(bounds)) return false;
    const sw = map.latLngToLayerPoint(bounds.getSouthWest());
    const ne = map.latLngToLayerPoint(bounds.getNorthEast());
    return ne.x - sw.x >= unit.labelWidth + 2 * LABEL_ROOM_PX && sw.y - ne.y >= LABEL_HEIGHT_PX + 2 * LABEL_ROOM_PX;
  }

  /* A permanent label when the unit is selected or its label fits; else its code on hover.
   * True when the tooltip was bound again (a permanent one opens at the unit's centre). */
  function placeLabel(unit, view = map.getBounds().pad(LABEL_VIEW_PAD)) {
    const permanent = unit === state.selected || labelFits(unit, view);
    if (unit.labelled === permanent) return false;
    unit.labelled = permanent;
    unit.layer.unbindTooltip();
    unit.layer.bindTooltip(unit.label, permanent ? LABEL : HOVER);
    return true;
  }

  function placeLabels() {
    const view = map.getBounds().pad(LABEL_VIEW_PAD);
    for (const unit of state.units) placeLabel(unit, view);
  }

  // Leaflet fires moveend after every pan and every zoom.
  map.on("moveend", placeLabels);

  function unitLabel(unit) {
    const code = text(unit.properties.code) || S.nocode;
    const name = text(unit.properties.name);
    return name ? `${code} ${name}` : code;
  }

  /* Every unit loaded, as edited (the whole level when it was loaded whole). */
  function featureCollection() {
    return {type: "FeatureCollection", features: state.units.map((u) => ({
      type: "Feature", properties: outgoingProperties(u.properties), geometry: layerGeometry(u.layer)}))};
  }

  /* What the save sends: the units that differ from what was loaded, each with the code it was
   * loaded as ("id": the stored unit it replaces), and the new ones (no id). */
  function editedCollection() {
    const edited = state.units.filter((u) => u.origin === null || featureKey(u) !== u.loadedKey);
    return {type: "FeatureCollection", features: edited.map((u) => ({
      type: "Feature", ...(u.origin !== null ? {id: u.origin} : {}), properties: outgoingProperties(u.properties),
      geometry: layerGeometry(u.layer)}))};
  }

  /* -- the parent level ---------------------------------------------------------------------- */

  function parentUnits() {
    return state.parent ? state.parent.units : [];
  }

  /* Units of the level above, added to those loaded before (each once); every undo step gets them
   * as loaded. */
  function loadParent(collection) {
    if (!state.parent) state.parent = {version: collection.version, units: []};
    for (const feature of collection.features || []) {
      const code = text(feature.properties && feature.properties.code);
      if (!feature.geometry || state.knownParents.has(code)) continue;
      state.knownParents.add(code);
      const layer = L.polygon(geometryLatLngs(feature.geometry), {...PARENT}).addTo(map);
      const unit = {feature: {type: "Feature", properties: feature.properties, geometry: feature.geometry},
                    layer, code, originKey: JSON.stringify(layerGeometry(layer))};
      state.parent.units.push(unit);
      for (const shot of undoSteps()) shot.parent.push(feature.geometry);
    }
  }

  function setParentGeometry(unit, latlngs) {
    unit.layer.setLatLngs(latlngs);
    refreshParent(unit);
  }

  function refreshParent(unit) {
    unit.changed = unit.originKey !== JSON.stringify(layerGeometry(unit.layer));
    unit.layer.setStyle(unit.changed ? PARENT_CHANGED : PARENT);
  }

  function changedParents() {
    return parentUnits().filter((u) => u.changed);
  }

  /* The units of the level above that were loaded, as edited: properties as loaded, geometry now. */
  function parentCollection() {
    if (!state.parent) return null;
    return {type: "FeatureCollection", features: state.parent.units.map((u) =>
      ({...u.feature, geometry: layerGeometry(u.layer)}))};
  }

  /* What the save sends of the level above: the units that changed, by code. */
  function editedParents() {
    return {type: "FeatureCollection", features: changedParents().map((u) => ({
      type: "Feature", id: u.code, properties: outgoingProperties(u.feature.properties),
      geometry: layerGeometry(u.layer)}))};
  }

  /* Where each parent ring meets ``latlng``: {unit, path, index} for its corner there (the nearest
   * within NEAR_M), else {unit, path, edge} for an edge passing within NEAR_M (edge j runs from
   * corner j to corner j + 1).  At most one hit per ring. */
  function parentHits(latlng) {
    const hits = [];
    const local = metresFrom(latlng);
    for (const unit of parentUnits()) {
      for (const {ring, path} of rings(unit.layer.getLatLngs())) {
        let index = -1, best = NEAR_M;
        ring.forEach((p, i) => {
          const d = local(p), m = Math.hypot(d.x, d.y);
          if (m <= best) { index = i; best = m; }
        });
        if (index >= 0) { hits.push({unit, path, index}); continue; }
        let edge = -1;
        best = NEAR_M;
        ring.forEach((p, j) => {
          const m = segmentDistance(latlng, p, ring[(j + 1) % ring.length]);
          if (m <= best) { edge = j; best = m; }
        });
        if (edge >= 0) hits.push({unit, path, edge});
      }
    }
    return hits;
  }

  /* The parent corners at ``latlng``, after putting a corner exactly there into each parent edge
   * that passes through it. */
  function parentCornersAt(latlng) {
    const corners = [];
    for (const hit of parentHits(latlng)) {
      if (hit.edge === undefined) { corners.push(hit); continue; }
      ringAt(hit.unit.layer.getLatLngs(), hit.path).splice(hit.edge + 1, 0, L.latLng(latlng.lat, latlng.lng));
      hit.unit.layer.setLatLngs(hit.unit.layer.getLatLngs());
      corners.push({unit: hit.unit, path: hit.path, index: hit.edge + 1});
    }
    return corners;
  }

  /* A corner just added between prev and next goes into every parent edge that the edge prev–next
   * runs along (both ends and the new corner within NEAR_M of it). */
  function addToParents(latlng, prev, next) {
    for (const unit of parentUnits()) {
      let touched = false;
      for (const {ring} of rings(unit.layer.getLatLngs())) {
        const j = ring.findIndex((a, k) => {
          const b = ring[(k + 1) % ring.length];
          return [latlng, prev, next].every((p) => segmentDistance(p, a, b) <= NEAR_M);
        });
        if (j >= 0) { ring.splice(j + 1, 0, L.latLng(latlng.lat, latlng.lng)); touched = true; }
      }
      if (touched) setParentGeometry(unit, unit.layer.getLatLngs());
    }
  }

  /* A corner just removed (the unit's edge now runs prev–next) leaves every parent whose corner
   * there sits between the same two corners, as in the neighbours. */
  function removeFromParents(latlng, prev, next) {
    for (const hit of parentHits(latlng)) {
      if (hit.index === undefined) continue;
      const r = ringAt(hit.unit.layer.getLatLngs(), hit.path);
      if (r.length <= 3) continue;
      const a = r[(hit.index - 1 + r.length) % r.length], b = r[(hit.index + 1) % r.length];
      if ((near(a, prev) && near(b, next)) || (near(a, next) && near(b, prev))) {
        r.splice(hit.index, 1);
        setParentGeometry(hit.unit, hit.unit.layer.getLatLngs());
      }
    }
  }

  /* -- shared corners ----------------------------------------------------------------------- */

  /* Every (unit, ring path, index) other than ``except`` that has a corner at ``latlng``. */
  function cornersAt(latlng, except) {
    const found = [];
    for (const unit of state.units) {
      if (unit === except) continue;
      for (const {ring, path} of rings(unit.layer.getLatLngs())) {
        ring.forEach((p, i) => { if (same(p, latlng)) found.push({unit, path, index: i}); });
      }
    }
    return found;
  }

  function onDragStart(unit, e) {
    const start = L.latLng(ringAt(unit.layer.getLatLngs(), e.indexPath.slice(0, -1))[e.indexPath.at(-1)]);
    if (!state.addedJustNow) pushUndo();
    const sharers = cornersAt(start, unit);
    const parents = parentCornersAt(start);
    // Geoman builds its snap list at the first drag event: leave out the corners that move along,
    // or the dragged corner would snap back onto its own copy in the neighbour (or the parent).
    for (const s of sharers.concat(parents)) s.unit.layer.options.snapIgnore = true;
    state.drag = {unit, indexPath: e.indexPath, sharers, parents};
  }

  function onDrag(unit, e) {
    const drag = state.drag;
    if (!drag || drag.unit !== unit) return;
    const now = ringAt(unit.layer.getLatLngs(), e.indexPath.slice(0, -1))[e.indexPath.at(-1)];
    const touched = new Set();
    for (const s of drag.sharers.concat(drag.parents)) {
      ringAt(s.unit.layer.getLatLngs(), s.path)[s.index] = L.latLng(now.lat, now.lng);
      touched.add(s.unit);
    }
    for (const other of touched) other.layer.setLatLngs(other.layer.getLatLngs());
  }

  function onDragEnd(unit, e) {
    onDrag(unit, e);
    const drag = state.drag;
    state.drag = null;
    if (!drag) return;
    for (const s of drag.sharers) delete s.unit.layer.options.snapIgnore;
    for (const s of drag.parents) s.unit.layer.options.snapIgnore = PARENT.snapIgnore;
    new Set(drag.sharers.map((s) => s.unit)).forEach(refreshUnit);
    new Set(drag.parents.map((s) => s.unit)).forEach(refreshParent);
    refreshUnit(unit);
    changed();
  }

  function onVertexAdded(unit, e) {
    // Geoman has already put the vertex in: undo goes back to the ring without it.
    const shot = snapshot();
    const path = e.indexPath.slice(0, -1);
    ringAt(shot.units[state.units.indexOf(unit)].geometry.coordinates, path).splice(e.indexPath.at(-1), 1);
    pushUndo(shot);
    // Dragging a mid-point adds the vertex, then starts dragging it at once (same event turn):
    // one step to undo, not two.
    state.addedJustNow = true;
    setTimeout(() => { state.addedJustNow = false; }, 0);
    const ring = ringAt(unit.layer.getLatLngs(), path);
    const i = e.indexPath.at(-1);
    const prev = ring[(i - 1 + ring.length) % ring.length];
    const next = ring[(i + 1) % ring.length];
    for (const other of state.units) {
      if (other === unit) continue;
      let touched = false;
      for (const r of rings(other.layer.getLatLngs())) {
        for (let j = 0; j < r.ring.length; j++) {
          const a = r.ring[j], b = r.ring[(j + 1) % r.ring.length];
          if ((same(a, prev) && same(b, next)) || (same(a, next) && same(b, prev))) {
            r.ring.splice(j + 1, 0, L.latLng(e.latlng.lat, e.latlng.lng));
            touched = true;
            break;
          }
        }
      }
      if (touched) { other.layer.setLatLngs(other.layer.getLatLngs()); refreshUnit(other); }
    }
    addToParents(e.latlng, prev, next);
    refreshUnit(unit);
    changed();
  }

  function onVertexRemoved(unit, e) {
    const removed = e.marker.getLatLng();
    const path = e.indexPath.slice(0, -1);
    const i = e.indexPath.at(-1);
    // Geoman has already taken the vertex out: undo goes back to the ring with it.
    const shot = snapshot();
    const coords = ringAt(shot.units[state.units.indexOf(unit)].geometry.coordinates, path);
    const open = coords.slice(0, -1);
    open.splice(i, 0, storedCoords(removed));
    coords.splice(0, coords.length, ...open, open[0].slice());
    pushUndo(shot);
    const ring = ringAt(unit.layer.getLatLngs(), path);
    if (ring.length) {
      const prev = ring[(i - 1 + ring.length) % ring.length];
      const next = ring[i % ring.length];
      for (const s of cornersAt(removed, unit)) {
        const r = ringAt(s.unit.layer.getLatLngs(), s.path);
        if (r.length <= 3) continue;
        const a = r[(s.index - 1 + r.length) % r.length], b = r[(s.index + 1) % r.length];
        if ((same(a, prev) && same(b, next)) || (same(a, next) && same(b, prev))) {
          r.splice(s.index, 1);
          s.unit.layer.setLatLngs(s.unit.layer.getLatLngs());
          refreshUnit(s.unit);
        }
      }
      removeFromParents(removed, prev, next);
    }
    refreshUnit(unit);
    changed();
  }

  /* -- selection and modes ------------------------------------------------------------------ */

  function enableEditing(unit) {
    unit.layer.pm.enable({snappable: true, snapDistance: SNAP_PX, allowSelfIntersection: true,
                          draggable: false, removeVertexOn: "contextmenu"});
  }

  function select(unit) {
    const before = state.selected;
    if (before === unit) return;
    if (before && before.layer.pm.enabled()) before.layer.pm.disable();
    state.selected = unit;
    state.note = null;
    if (before) refreshUnit(before);
    if (unit) {
      enableEditing(unit);
      refreshUnit(unit);
      unit.layer.bringToFront();
    }
    showForm();
    renderList();
    updateTools();
  }

  async function onUnitClick(unit, e) {
    if (state.busy) return;
    if (state.mode === "merge") L.DomEvent.stop(e);
    if (state.mode !== "merge" && state.mode !== "select") return;
    if (unit.readonly && !(await openUnit(unit))) return;
    if (state.mode === "merge") mergeWith(unit);
    else select(unit);
  }

  function setMode(mode) {
    if (state.mode === "split" || state.mode === "draw") map.pm.disableDraw();
    state.mode = mode;
    state.note = null;
    if (mode === "split") {
      map.pm.enableDraw("Line", {snappable: true, snapDistance: SNAP_PX, finishOn: "dblclick"});
    } else if (mode === "draw") {
      if (state.selected) select(null);
      map.pm.enableDraw("Polygon", {snappable: true, snapDistance: SNAP_PX, finishOn: null});
    }
    document.getElementById("editor-map").dataset.mode = mode;
    updateTools();
  }

  function updateTools() {
    for (const button of document.querySelectorAll("#toolbar [data-mode]")) {
      button.setAttribute("aria-pressed", String(button.dataset.mode === state.mode));
    }
    const needsUnit = !state.selected || state.busy;
    $("tool-split").disabled = needsUnit;
    $("tool-merge").disabled = needsUnit;
    $("tool-delete").disabled = needsUnit || state.mode !== "select";
    $("tool-undo").disabled = !state.undo.length || state.busy || state.mode !== "select";
    $("tool-draw").disabled = state.busy;
    $("save").disabled = state.busy;
    const name = state.selected ? unitLabel(state.selected) : "";
    const hint = {select: state.selected ? fill(S.hintSelected, {unit: name}) : idleHint(),
                  split: fill(S.hintSplit, {unit: name}), merge: fill(S.hintMerge, {unit: name}),
                  draw: S.hintDraw}[state.mode];
    const hintBar = $("hint");
    hintBar.textContent = state.busy ? state.busyText || S.working : state.note || hint;
    hintBar.classList.toggle("note", !state.busy && !!state.note);
    hintBar.classList.toggle("warn", !state.busy && !!state.note && state.noteIsWarning);
  }

  /* What to do with nothing selected: open an area, zoom in, or pick a unit (the grey ones around
   * are not open yet). */
  function idleHint() {
    const open = state.units.some((u) => !u.readonly);
    if (config.scope === "area" && !open) return S.hintPickArea;
    if (config.scope === "view" && state.zoomIn && !open) return S.zoomIn;
    return config.scope === "all" ? S.hintSelect : `${S.hintSelect} ${S.hintAround}`;
  }

  /* -- split, merge, draw, delete ----------------------------------------------------------- */

  map.on("pm:create", (e) => {
    const layer = e.layer;
    map.removeLayer(layer);
    if (e.shape === "Line" && state.mode === "split") {
      splitSelected(lineGeometry(layer));
    } else if (e.shape === "Polygon" && state.mode === "draw") {
      pushUndo();
      setMode("select");
      const unit = addUnit({code: "", name: "", parent_code: null, staff: "", phone: ""},
                           layer.getLatLngs(), NEW);
      select(unit);
      note(S.drawDone);
      changed();
      $("f-code").focus();
    }
  });

  function nextCodes(code, count) {
    const taken = new Set(state.units.map((u) => text(u.properties.code)));
    const codes = [];
    for (let k = 1; codes.length < count; k++) {
      const candidate = `${code}-${k}`;
      if (!taken.has(candidate)) codes.push(candidate);
    }
    return codes;
  }

  async function splitSelected(line) {
    const unit = state.selected;
    setMode("select");
    if (!unit) return note(S.selectFirst);
    const bounds = unit.layer.getBounds().pad(0.01);
    const neighbours = state.units.filter((u) => u !== unit && bounds.intersects(u.layer.getBounds()));
    const answer = await post(config.splitUrl, {geometry: layerGeometry(unit.layer), line,
                                                neighbours: neighbours.map((u) => layerGeometry(u.layer))},
                              S.splitFailed);
    if (!answer) return;
    pushUndo();
    neighbours.forEach((n, i) => {
      const geometry = answer.neighbours[i];
      if (JSON.stringify(geometry) !== JSON.stringify(layerGeometry(n.layer))) {
        const untouched = !n.changed;
        setGeometry(n, geometryLatLngs(geometry));
        // Only corners on its border were added: same outline, so an untouched neighbour stays unchanged.
        if (untouched && n.originKey) { n.originKey = featureKey(n); refreshUnit(n); }
      }
    });
    const codes = nextCodes(text(unit.properties.code), answer.geometries.length);
    const label = unitLabel(unit);
    const properties = unit.properties;
    removeUnit(unit);
    const pieces = answer.geometries.map((g, i) =>
      addUnit({...properties, code: codes[i]}, geometryLatLngs(g), NEW));
    select(pieces[0]);
    note(fill(S.splitDone, {unit: label, count: pieces.length}));
    changed();
  }

  async function mergeWith(other) {
    const unit = state.selected;
    if (!unit) { setMode("select"); return note(S.selectFirst); }
    if (other === unit) return note(S.sameUnit);
    setMode("select");
    const answer = await post(config.mergeUrl,
                              {geometries: [layerGeometry(unit.layer), layerGeometry(other.layer)]},
                              S.mergeFailed);
    if (!answer) return;
    pushUndo();
    const label = unitLabel(other);
    removeUnit(other);
    setGeometry(unit, geometryLatLngs(answer.geometry));
    note(fill(S.mergeDone, {unit: unitLabel(unit), other: label}));
    changed();
  }

  function deleteSelected() {
    const unit = state.selected;
    if (!unit) return;
    pushUndo();
    const label = unitLabel(unit);
    removeUnit(unit);
    note(fill(S.deleted, {unit: label}));
    changed();
  }

  /* -- undo --------------------------------------------------------------------------------- */

  function entry(unit) {
    return {properties: {...unit.properties}, originKey: unit.originKey, loadedKey: unit.loadedKey,
            origin: unit.origin, readonly: unit.readonly, geometry: layerGeometry(unit.layer)};
  }

  function snapshot() {
    return {units: state.units.map(entry), removed: [...state.removed],
            parent: parentUnits().map((u) => layerGeometry(u.layer)),
            selected: state.selected ? state.units.indexOf(state.selected) : -1};
  }

  function pushUndo(shot = snapshot()) {
    state.undo.push(shot);
    if (state.undo.length > 100) state.undo.shift();
  }

  function restore(shot) {
    select(null);
    for (const unit of state.units) map.removeLayer(unit.layer);
    state.units = [];
    for (const u of shot.units) addUnit(u.properties, geometryLatLngs(u.geometry), u);
    state.removed = [...shot.removed];
    parentUnits().forEach((u, i) => setParentGeometry(u, geometryLatLngs(shot.parent[i])));
    if (shot.selected >= 0) select(state.units[shot.selected]);
  }

  function undo() {
    const shot = state.undo.pop();
    if (!shot) return;
    restore(shot);
    note(S.undone);
    changed();
  }

  /* -- the side panel ----------------------------------------------------------------------- */

  const form = $("unit-form");
  const FIELDS = ["code", "name", "staff", "phone"];
  let pendingUndo = null;

  function showForm() {
    const unit = state.selected;
    form.hidden = !unit;
    $("no-selection").hidden = !!unit;
    if (!unit) return;
    for (const field of FIELDS) form.elements[field].value = text(unit.properties[field]);
    $("f-parent").textContent = text(unit.properties.parent_code) || S.none;
  }

  form.addEventListener("focusin", () => { pendingUndo = snapshot(); });
  form.addEventListener("input", (e) => {
    const unit = state.selected;
    if (!unit || !FIELDS.includes(e.target.name)) return;
    if (pendingUndo) { state.undo.push(pendingUndo); pendingUndo = null; }
    unit.properties[e.target.name] = e.target.value.trim();
    refreshUnit(unit);
    renderList();
    changed();
  });
  form.addEventListener("submit", (e) => e.preventDefault());

  function renderList() {
    const list = $("units");
    list.replaceChildren();
    let selectedButton = null;
    // the units around the opened ones are listed once they are part of the edit
    const sorted = state.units.filter((u) => !u.readonly || u.changed)
      .sort((a, b) => text(a.properties.code).localeCompare(text(b.properties.code)));
    for (const unit of sorted) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "unit" + (unit === state.selected ? " selected" : "") + (unit.changed ? " changed" : "");
      button.dataset.code = text(unit.properties.code);
      const code = document.createElement("b");
      code.textContent = text(unit.properties.code) || S.nocode;
      const name = document.createElement("span");
      name.textContent = text(unit.properties.name) || S.unnamed;
      button.append(code, name);
      button.addEventListener("click", async () => {
        if (state.busy) return;
        if (unit.readonly && !(await openUnit(unit))) return;
        if (state.mode === "merge") return mergeWith(unit);
        if (state.mode !== "select") setMode("select");
        select(unit);
        if (!map.getBounds().contains(unit.layer.getBounds())) {
          map.fitBounds(unit.layer.getBounds(), {maxZoom: map.getZoom(), padding: [40, 40]});
        }
      });
      item.append(button);
      list.append(item);
      if (unit === state.selected) selectedButton = button;
    }
    if (selectedButton) selectedButton.scrollIntoView({block: "nearest"});
    $("unit-count").textContent = fill(S.count, {count: sorted.length});
  }

  function changed() {
    const edited = state.units.filter((u) => u.changed && u.originKey).length;
    const added = state.units.filter((u) => !u.originKey).length;
    const removed = state.removed.length;
    const parents = changedParents().length;
    state.dirty = edited + added + removed + parents > 0;
    const summary = $("summary");
    summary.textContent = !state.dirty ? S.noChanges
      : fill(parents ? S.changesWithParent : S.changes, {changed: edited, added, removed, parents});
    Object.assign(summary.dataset, {changed: edited, added, removed, parentChanged: parents});
    renderList();
    updateTools();
  }

  /* Say what just happened, in the hint bar, until the next selection or tool. */
  function note(message) {
    clearMessages();
    state.note = message;
    state.noteIsWarning = false;
    updateTools();
  }

  function clearMessages() {
    $("messages").hidden = true;
    $("message-title").textContent = "";
    $("message-details").replaceChildren();
    $("problems").replaceChildren();
  }

  function showError(title, details, problems) {
    clearMessages();
    $("messages").hidden = false;
    $("message-title").textContent = title;
    for (const line of details || []) {
      const li = document.createElement("li");
      li.textContent = line;
      $("message-details").append(li);
    }
    showProblems(problems || []);
  }

  /* The validation report's problems: listed in the panel and marked on the map. */
  function showProblems(problems) {
    problemLayer.clearLayers();
    state.problems = new Set();
    for (const problem of problems) {
      for (const code of [problem.code, ...(problem.codes || [])]) if (code) state.problems.add(String(code));
      const li = document.createElement("li");
      li.className = problem.severity === "warning" ? "warning" : "error";
      li.textContent = problem.message;
      if (Array.isArray(problem.location)) {
        const [lat, lng] = basemap.display(problem.location[1], problem.location[0]);
        const marker = L.circleMarker([lat, lng], {radius: 9, color: "#c92a2a", weight: 3, fillColor: "#ff6b6b",
                                                   fillOpacity: 0.6, pmIgnore: true, snapIgnore: true});
        const tip = document.createElement("span");
        tip.textContent = problem.message;
        marker.bindTooltip(tip);
        problemLayer.addLayer(marker);
        const go = document.createElement("button");
        go.type = "button";
        go.className = "link";
        go.textContent = S.problemAt;
        go.addEventListener("click", () => { map.setView([lat, lng], Math.max(map.getZoom(), 17)); marker.openTooltip(); });
        li.append(" ", go);
      }
      $("problems").append(li);
    }
    state.units.forEach(refreshUnit);
  }

  /* -- talking to the server ---------------------------------------------------------------- */

  async function post(url, body, failed) {
    state.busy = true;
    updateTools();
    try {
      const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
                                         body: JSON.stringify(body)});
      const answer = await response.json().catch(() => ({}));
      if (response.ok) return answer;
      showError(answer.error || failed, answer.details || [fill(S.httpError, {status: response.status})]);
      return null;
    } catch (error) {
      showError(S.offline, []);
      return null;
    } finally {
      state.busy = false;
      updateTools();
    }
  }

  /* What changed (the server completes the level from the version loaded); the level above, the
   * same way, when a unit of it changed; the planner's wish to redraw the parents as unions of
   * their children. */
  function saveBody() {
    const body = {units: editedCollection(), removed: [...state.removed], base_version: state.version,
                  mode: "draft", author: $("author").value.trim(), note: $("note").value.trim()};
    if (config.tolerance != null) body.tolerance_m2 = config.tolerance;
    if (changedParents().length) {
      body.parent = {units: editedParents(), removed: [], base_version: state.parent.version};
    }
    if ($("derive-parent") && $("derive-parent").checked) body.derive_parent = true;
    return body;
  }

  async function save(event) {
    event.preventDefault();
    if (state.busy) return;
    const missing = state.units.filter((u) => !text(u.properties.code)).length;
    if (missing) return showError(fill(S.missingCodes, {count: missing}), []);
    state.note = null;
    state.busy = true;
    state.busyText = S.saving;
    updateTools();
    try {
      const response = await fetch(config.saveUrl, {method: "POST", headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
                                                    body: JSON.stringify(saveBody())});
      const answer = await response.json().catch(() => ({}));
      if (response.ok && answer.url) {
        state.dirty = false;
        window.location.assign(answer.url);
        return;
      }
      const report = answer.report || {};
      const problems = [...(report.errors || []), ...(report.warnings || [])];
      const conflict = response.status === 409 || response.status === 412;
      // The report's problems repeat the details, with a place on the map: list them once.
      showError(answer.error || (conflict ? S.conflict : S.saveFailed),
                problems.length ? [] : answer.details || [fill(S.httpError, {status: response.status})], problems);
      state.note = conflict ? S.conflict : S.saveFailed;
      state.noteIsWarning = true;
    } catch (error) {
      showError(S.offline, []);
    } finally {
      state.busy = false;
      state.busyText = null;
      updateTools();
    }
  }

  /* The edited level as a file, so that no work is lost even when the server refuses it. */
  function download() {
    const blob = new Blob([JSON.stringify(featureCollection())], {type: "application/geo+json"});
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${state.level}-${state.version}-edited.geojson`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }

  /* -- loading ------------------------------------------------------------------------------ */

  async function getJson(url) {
    const response = await fetch(url, {headers: {Accept: "application/json"}});
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw Object.assign(new Error(answer.error || S.loadFailed), {details: answer.details, status: response.status});
    }
    return answer;
  }

  /* The units URL (at the version edited) with ``query``: {area: [codes]}, {code: [codes]}, {bbox}. */
  function unitsUrl(query) {
    const url = new URL(config.unitsUrl, window.location.href);
    for (const [key, values] of Object.entries(query)) {
      for (const value of [].concat(values)) url.searchParams.append(key, value);
    }
    return url.pathname + url.search;
  }

  /* The view on ``features`` (GeoJSON), before their layers go on the map: Leaflet places a layer
   * (and its label) only on a map that has a view. */
  function fitTo(features) {
    const bounds = L.latLngBounds([]);
    for (const f of features) if (f.geometry) bounds.extend(L.polygon(geometryLatLngs(f.geometry)).getBounds());
    if (bounds.isValid()) map.fitBounds(bounds, {padding: [20, 20]});
    else map.setView([35, 105], 4);
  }

  /* The undo steps, with the one a panel field is about to push. */
  function undoSteps() {
    return pendingUndo ? state.undo.concat(pendingUndo) : state.undo;
  }

  /* Add the units of an answer that were not loaded yet (those asked for editable, those around
   * them read-only) and the level above near them; a unit around before and asked for now is
   * opened.  Loading is not an edit: every undo step gets the new units as loaded.  Returns the
   * units opened. */
  function addLoaded(answer) {
    if (answer.parent) loadParent(answer.parent);
    const fresh = [], opened = [];
    for (const feature of answer.features) {
      const code = text(feature.properties.code);
      if (!feature.geometry) continue;
      if (state.known.has(code)) {
        if (feature.editable) opened.push(...promote(code));
        continue;
      }
      state.known.add(code);
      const unit = addUnit(feature.properties, geometryLatLngs(feature.geometry),
                           {origin: code, readonly: !feature.editable});
      fresh.push(entry(unit));
      if (feature.editable) opened.push(unit);
    }
    for (const shot of undoSteps()) shot.units.push(...fresh.map((e) => ({...e})));
    return opened;
  }

  /* The unit loaded as ``code`` (and its copies in the undo steps) is editable from now on. */
  function promote(code) {
    for (const shot of undoSteps()) for (const e of shot.units) if (e.origin === code) e.readonly = false;
    const unit = state.units.find((u) => u.origin === code);
    if (!unit || !unit.readonly) return unit ? [unit] : [];
    unit.readonly = false;
    refreshUnit(unit);
    return [unit];
  }

  /* Ask for more units (``query`` as for unitsUrl) and add them; null when that failed. */
  async function loadMore(query, what) {
    state.busy = true;
    state.busyText = fill(S.opening, {unit: what});
    updateTools();
    try {
      const opened = addLoaded(await getJson(unitsUrl(query)));
      remember([].concat(query.area || query.code || []));
      changed();
      return opened;
    } catch (error) {
      showError(error.message || S.loadFailed, error.details || []);
      return null;
    } finally {
      state.busy = false;
      state.busyText = null;
      updateTools();
    }
  }

  /* A unit around the opened ones, opened: editable, with the units around it loaded. */
  async function openUnit(unit) {
    if (unit.origin === null) return true;
    return (await loadMore({code: unit.origin}, unitLabel(unit))) !== null;
  }

  /* The address names what is open (?unit=…), so a reload opens it again. */
  function remember(codes) {
    const fresh = codes.filter((c) => !state.opened.includes(c));
    if (!fresh.length) return;
    state.opened.push(...fresh);
    const url = new URL(window.location.href);
    url.searchParams.delete("unit");
    for (const code of state.opened) url.searchParams.append("unit", code);
    window.history.replaceState(window.history.state, "", url);
  }

  /* -- areas: the units of the level above, to open one ---------------------------------------- */

  function areaLabel(feature) {
    const code = text(feature.properties.code), name = text(feature.properties.name);
    return name ? `${code} ${name}` : code;
  }

  function loadAreas(collection) {
    for (const feature of collection.features) {
      if (!feature.geometry) continue;
      const code = text(feature.properties.code);
      const layer = L.polygon(geometryLatLngs(feature.geometry), {...AREA});
      const tip = document.createElement("span");
      tip.textContent = areaLabel(feature);
      layer.bindTooltip(tip, HOVER);
      layer.on("click", (e) => {
        if (state.mode !== "select") return;
        L.DomEvent.stop(e);
        openArea(code);
      });
      areaLayer.addLayer(layer);
      state.areas.set(code, {feature, layer, opened: false});
    }
    $("area-section").hidden = false;
  }

  function markOpened(code) {
    const area = state.areas.get(code);
    if (!area || area.opened) return;
    area.opened = true;
    areaLayer.removeLayer(area.layer);
  }

  async function openArea(code) {
    const area = state.areas.get(code);
    if (!area || area.opened || state.busy) return;
    const opened = await loadMore({area: code}, areaLabel(area.feature));
    if (opened === null) return;
    markOpened(code);
    $("area-section").open = false;  // the room goes to the units now
    const bounds = L.latLngBounds([]);
    opened.forEach((u) => bounds.extend(u.layer.getBounds()));
    // the area fills the map, unless the map is already closer in and shows it whole
    if (bounds.isValid() && (!map.getBounds().contains(bounds) || map.getBoundsZoom(bounds) > map.getZoom())) {
      map.fitBounds(bounds, {padding: [20, 20]});
    }
    note(fill(S.areaOpened, {area: areaLabel(area.feature), count: opened.length}));
    renderAreas();
  }

  function renderAreas() {
    const list = $("areas");
    list.replaceChildren();
    const sorted = [...state.areas.entries()].sort(([a], [b]) => a.localeCompare(b));
    for (const [code, area] of sorted) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "unit" + (area.opened ? " opened" : "");
      button.dataset.area = code;
      button.disabled = area.opened;
      const b = document.createElement("b");
      b.textContent = code || S.nocode;
      const name = document.createElement("span");
      name.textContent = text(area.feature.properties.name) || S.unnamed;
      button.append(b, name);
      button.addEventListener("click", () => openArea(code));
      item.append(button);
      list.append(item);
    }
    const open = sorted.filter(([, area]) => area.opened).length;
    $("area-count").textContent = fill(S.areasOpen, {open, count: sorted.length});
  }

  /* -- "view" scope: the units in view, once zoomed in --------------------------------------- */

  let viewTimer = null;

  function loadView() {
    clearTimeout(viewTimer);
    viewTimer = setTimeout(async () => {
      if (state.busy || state.drag) return loadView();
      const b = map.getBounds();
      const [south, west] = basemap.stored(b.getSouth(), b.getWest());     // the view as stored
      const [north, east] = basemap.stored(b.getNorth(), b.getEast());
      const bbox = [west, south, east, north].map((v) => v.toFixed(7)).join(",");
      try {
        const answer = await getJson(unitsUrl({bbox}));
        state.zoomIn = !!answer.too_many;  // more units in view than a page should hold
        addLoaded(answer);
        changed();
      } catch (error) {
        showError(error.message || S.loadFailed, error.details || []);
      }
    }, VIEW_DELAY_MS);
  }

  /* -- opening the page ---------------------------------------------------------------------- */

  async function loadWhole() {
    const answer = await getJson(config.openUrl);
    fitTo(answer.features);
    addLoaded(answer);
  }

  /* The areas, and what the address opens (?unit=: areas or units). */
  async function loadAreasAndOpened() {
    const open = config.open || {area: [], code: []};
    const [areas, answer] = await Promise.all([getJson(config.areasUrl),
                                               config.openUrl ? getJson(config.openUrl) : null]);
    fitTo(answer ? answer.features.filter((f) => f.editable) : areas.features);
    loadAreas(areas);
    if (answer) {
      addLoaded(answer);
      open.area.forEach(markOpened);
      remember([...open.area, ...open.code]);
      $("area-section").open = false;
    }
    renderAreas();
    if (open.code.length === 1) select(state.units.find((u) => u.origin === open.code[0]) || null);
  }

  function loadInView() {
    const [west, south, east, north] = config.bounds;
    map.fitBounds([[south, west], [north, east]], {padding: [20, 20]});
    map.on("moveend", loadView);
    state.zoomIn = true;
    loadView();
  }

  async function load() {
    $("hint").textContent = S.loading;
    try {
      if (config.scope === "area") await loadAreasAndOpened();
      else if (config.scope === "view") loadInView();
      else await loadWhole();
      $("based-on").textContent = fill(config.version ? S.version : S.versionCurrent, {version: state.version});
      changed();
      state.loaded = true;
    } catch (error) {
      map.setView([35, 105], 4);
      showError(error.message || S.loadFailed, error.details || []);
    }
  }

  /* -- wiring ------------------------------------------------------------------------------- */

  for (const button of document.querySelectorAll("#toolbar [data-mode]")) {
    button.addEventListener("click", () => {
      const mode = button.dataset.mode;
      if ((mode === "split" || mode === "merge") && !state.selected) return note(S.selectFirst);
      setMode(state.mode === mode && mode !== "select" ? "select" : mode);
    });
  }
  $("tool-delete").addEventListener("click", deleteSelected);
  $("tool-undo").addEventListener("click", undo);
  $("save-form").addEventListener("submit", save);
  $("download").addEventListener("click", download);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.mode !== "select") setMode("select");
  });
  window.addEventListener("beforeunload", (e) => {
    if (state.dirty) { e.preventDefault(); e.returnValue = S.leave; }
  });

  window.gridmapEditor = {
    map, state, featureCollection, parentCollection, editedCollection, openArea,
    select: (code) => select(state.units.find((u) => u.properties.code === code) || null),
    unit: (code) => state.units.find((u) => u.properties.code === code) || null, setMode, undo,
  };
  load();
})();
