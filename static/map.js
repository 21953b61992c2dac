/* gridmap map page: the overlays of templates/index.html, drawn from the data API.
 *
 * The page holds only the base map (folium: tiles or a plain background, fitted to the units) and
 * <script id="map-config"> (built by gridmap/web/pages.py): the data URLs with the page's filters,
 * the styles, and every UI string, translated.  This file holds no UI text.
 *
 * Outlines: each level's units come once per version from GET /api/outlines/<level>?version=N
 *   (simplified, polyline-encoded; the browser revalidates them by ETag), their incident counts
 *   from GET /api/outlines/<level>/counts?<filters>.  Names, codes and staff are user data: they
 *   only reach the page through textContent, never innerHTML.
 * Heat: GET /api/heat?bbox=…&zoom=…&<filters> answers the incidents counted in cells of about
 *   1.5 screen pixels, drawn by Leaflet.heat with each cell's count as its weight: the plugin sums
 *   weights in bins of (radius + blur) / 2 pixels, so cells draw what the incidents would.  Asked
 *   again after every pan or zoom (debounced; a newer request aborts an older one).  When the
 *   filters match few enough incidents (config.heat.whole), one answer holds them all
 *   (scope=all), so the colours keep one scale however the map moves, as a heat map of the points
 *   themselves does, and a pan at the same zoom needs no new request.
 * Time: a control under the map plays the heat a month or an ISO week at a time (each frame the
 *   heat request with that period's from/to, coloured to its own busiest spot, its count shown).
 * Outside: incidents outside every unit in view, as red circles (up to a limit; a note says how
 *   many there are when there are more).
 * Stacked coordinates: GET /api/quality names coordinates holding a pile of incidents (a
 *   geocoder's placeholder); the heat and the hotspots leave them out unless the page's URL says
 *   stacked=1, and a note in the panel says so, with a link to the other choice.
 * Classes per unit, overlays the viewer turns on in the layer control: hotspots (GET /api/hotspots:
 *   each unit's Gi* class), emerging hot spots (GET /api/hotspots/emerging: each unit's trend over
 *   12 months) and the choropleth (GET /api/choropleth: a measure chosen in its legend — incidents,
 *   per km², per 1,000 households, closure rate — of a level chosen there, in quantile classes).
 *   Hexagon hot spots (GET /api/hotspots/hexagons: Gi* on H3 cells, for places without micro-grids)
 *   are drawn from the answer's own hexagons.  Each is asked for once turned on (the deepest level, the page's filters, no geometry) and
 *   drawn by filling the outlines already loaded, with a legend while it is shown, which links
 *   to the same map as a PNG or PDF page for the monthly report (GET /api/report-map).
 * Basemap: static/basemap.js adds the tiles once one has come (a note if they cannot be reached)
 *   and, for GCJ-02 tiles, shifts every position drawn here onto them.
 * window.gridmap_mapdata exposes the state for tests and the console.
 */
(function () {
  "use strict";

  const DEBOUNCE_MS = 150;
  const PAD_PX = 64;                 // beyond the view: the blobs of a heat point reach 35 px
  const PAD_SHARE = 0.25;            // and a short pan shows heat before the new answer comes
  const CANVAS_FROM = 2000;          // units in a level from which it is drawn on a canvas, not SVG
  const MAX_LAT = 85.05;             // Web Mercator's edge

  const config = JSON.parse(document.getElementById("map-config").textContent);
  const S = config.labels;
  const map = window.gridmap_map;
  const basemap = window.gridmapBasemap;
  const display = basemap.display;           // a stored (WGS84) position as drawn: shifted on GCJ-02 tiles
  basemap.add(map, config.basemap);     // before any shape: GCJ-02 tiles shift them
  const state = window.gridmap_mapdata = {
    levels: {}, overlays: {}, heatRequests: 0, heatAnswers: 0, heatDraws: 0, drawnAnswers: 0, heat: null, errors: [],
  };

  /* -- helpers ------------------------------------------------------------------------------ */

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
  }

  function element(tag, text) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** Text for places Leaflet writes as HTML (the layer control's names). */
  function escapeHTML(text) {
    const box = document.createElement("div");
    box.textContent = String(text);
    return box.innerHTML;
  }

  async function getJSON(url, options) {
    const response = await fetch(url, {headers: {Accept: "application/json"}, ...(options || {})});
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || String(response.status));
    return body;
  }

  function withParams(url, params) {
    const [path, query] = url.split("?");
    const search = new URLSearchParams(query || "");
    for (const [key, value] of Object.entries(params)) search.set(key, value);
    return path + "?" + search.toString();
  }

  function note(text) {
    const box = document.getElementById("map-note");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function failed(error) {
    state.errors.push(String(error && error.message || error));
    note(fill(S.failed, {error: error && error.message || error}));
  }

  /* -- layers and the control --------------------------------------------------------------- */

  map.createPane("gridmap-heat").style.zIndex = 450;
  map.getPane("gridmap-heat").style.pointerEvents = "none";
  map.createPane("gridmap-outside").style.zIndex = 460;

  /** Leaflet.heat, counting its draws, scaled to the busiest bin of what it holds. */
  const GridHeat = L.HeatLayer.extend({
    _redraw: function () {
      L.HeatLayer.prototype._redraw.call(this);
      if (this._map) {
        state.heatDraws++;
        state.drawnAnswers = state.heatAnswers;
      }
    },
  });
  const heat = new GridHeat([], {...config.heat.style, pane: "gridmap-heat"});
  const outside = L.featureGroup();
  const control = L.control.layers(null, null, {collapsed: false});
  config.levels.forEach((level, depth) => {      // largest level first: each smaller one above it
    map.createPane("gridmap-" + level.level).style.zIndex = 401 + depth;
    const group = L.featureGroup();
    const entry = state.levels[level.level] = {group, units: null, counts: null, drawn: 0};
    control.addOverlay(group.addTo(map), escapeHTML(level.title));
    entry.loaded = loadLevel(level, group);
  });
  control.addOverlay(heat.addTo(map), escapeHTML(S.heat));
  control.addOverlay(outside.addTo(map), escapeHTML(S.outside));
  if (config.hotspots) addHotspots(config.hotspots);
  if (config.emerging) addEmerging(config.emerging);
  if (config.hexagons) addHexagons(config.hexagons);
  if (config.choropleth) addChoropleth(config.choropleth);
  control.addTo(map);
  const timeline = makeTimeline(config.timeline);

  /* -- outlines ----------------------------------------------------------------------------- */

  async function loadLevel(level, group) {
    const entry = state.levels[level.level];
    const counts = getJSON(level.counts).then((body) => { entry.counts = body.counts; })
      .catch(failed);
    try {
      const body = await getJSON(level.outlines);
      entry.units = body;
      drawLevel(level, group, body);
    } catch (error) {
      failed(error);
    }
    await counts;
  }

  function drawLevel(level, group, body) {
    const style = {...level.style, pane: "gridmap-" + level.level};
    const highlight = style.highlight;
    delete style.highlight;
    if (body.code.length >= CANVAS_FROM) style.renderer = L.canvas({padding: 0.5, pane: style.pane});
    for (let i = 0; i < body.code.length; i++) {
      const shape = body.shape[i];
      if (!shape) continue;
      const polygon = L.polygon(window.gridmapShapes.shapeLatLngs(shape, body.precision), style);
      polygon.unitIndex = i;
      group.addLayer(polygon);
    }
    group.bindTooltip((layer) => tooltip(level, layer.unitIndex), {sticky: true});
    group.on("mouseover", (e) => e.layer.setStyle(highlight));
    group.on("mouseout", (e) => e.layer.setStyle(style));
    state.levels[level.level].drawn = group.getLayers().length;
  }

  function tooltip(level, index) {
    const entry = state.levels[level.level];
    const code = entry.units.code[index];
    const count = entry.counts ? (entry.counts[code] || 0) : S.loading;
    const table = element("table");
    table.className = "unit-tip";
    for (const [label, value] of [[S.name, entry.units.name[index]], [S.code, code],
                                  [S.staff, entry.units.staff[index]], [S.incidents, count]]) {
      const row = table.insertRow();
      row.append(element("th", label), element("td", value));
    }
    return table;
  }

  /* -- overlays of classes per unit: hotspots, emerging hot spots, the choropleth ------------ */

  /**
   * An overlay that fills a level's outlines (already loaded) with a colour per unit, from a
   * statistics answer (GET /api/hotspots, /api/hotspots/emerging, /api/choropleth, geometry=0),
   * asked for when the viewer first turns it on, with a legend while it is shown.
   * spec: {key, title, url() -> the URL to ask now, colorOf(properties, body) -> a colour or null,
   * tipOf(properties, body) -> text, legend(box, body) -> fills the legend, legendClass}.
   */
  function addClassOverlay(spec) {
    const pane = "gridmap-" + spec.key;
    map.createPane(pane).style.zIndex = 455;      // above the heat, below the outside points
    const group = L.featureGroup();
    const legend = L.control({position: "bottomright"});
    const entry = state.overlays[spec.key] = {body: null, drawn: undefined, shown: false, asked: null};
    legend.onAdd = () => {
      const box = element("div");
      box.className = "class-legend " + (spec.legendClass || "");
      box.append(element("strong", spec.title));
      spec.legend(box, entry.body);
      if (entry.body && config.report && spec.report) box.append(reportLinks(spec.report()));
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    const refresh = () => { if (entry.shown) { legend.remove(); legend.addTo(map); } };
    async function load() {
      const asked = entry.asked = spec.url();
      entry.loading = true;
      refresh();
      try {
        const body = await getJSON(asked);
        if (entry.asked !== asked) return;          // a newer choice was asked for meanwhile
        if (spec.ownShapes) {
          entry.body = body;
          drawShapes(body);
        } else {
          const level = state.levels[body.level];
          await level.loaded;
          entry.body = body;
          draw(body, level);
        }
      } catch (error) {
        failed(error);
      } finally {
        if (entry.asked === asked) entry.loading = false;
        refresh();
      }
    }
    function draw(body, level) {
      group.clearLayers();
      const found = {};
      for (const feature of body.features) found[feature.properties.code] = feature.properties;
      const renderer = level.units.code.length >= CANVAS_FROM ? L.canvas({padding: 0.5, pane}) : undefined;
      for (let i = 0; i < level.units.code.length; i++) {
        const properties = found[level.units.code[i]];
        const shape = level.units.shape[i];
        const color = properties && shape ? spec.colorOf(properties, body) : null;
        if (!color) continue;
        const polygon = L.polygon(window.gridmapShapes.shapeLatLngs(shape, level.units.precision), {
          pane, renderer, stroke: false, fillColor: color, fillOpacity: 0.6,
        });
        polygon.properties = properties;
        group.addLayer(polygon);
      }
      entry.drawn = group.getLayers().length;
      entry.drawnAnswers = (entry.drawnAnswers || 0) + 1;
    }
    function drawShapes(body) {        // the answer's own polygons (hexagons), lon/lat
      group.clearLayers();
      const renderer = body.features.length >= CANVAS_FROM ? L.canvas({padding: 0.5, pane}) : undefined;
      for (const feature of body.features) {
        const color = spec.colorOf(feature.properties, body);
        if (!color || !feature.geometry) continue;
        const rings = feature.geometry.coordinates.map((ring) => ring.map(([lon, lat]) => display(lat, lon)));
        const polygon = L.polygon(rings, {pane, renderer, stroke: false, fillColor: color, fillOpacity: 0.6});
        polygon.properties = feature.properties;
        group.addLayer(polygon);
      }
      entry.drawn = group.getLayers().length;
      entry.drawnAnswers = (entry.drawnAnswers || 0) + 1;
    }
    group.bindTooltip((layer) => element("span", spec.tipOf(layer.properties, entry.body)));
    control.addOverlay(group, escapeHTML(spec.title));
    map.on("overlayadd", (e) => {
      if (e.layer !== group) return;
      entry.shown = true;
      legend.addTo(map);
      if (!entry.body && !entry.loading) load();
    });
    map.on("overlayremove", (e) => {
      if (e.layer !== group) return;
      entry.shown = false;
      legend.remove();
    });
    return {reload: load};
  }

  /** Links to the overlay as a PNG or a PDF page for the monthly report (GET /api/report-map). */
  function reportLinks(params) {
    const row = element("div");
    row.className = "report-links";
    row.append(element("span", config.report.label + " "));
    for (const format of ["png", "pdf"]) {
      const link = element("a", format.toUpperCase());
      link.href = withParams(config.report.url, {...params, format});
      link.className = "report-" + format;
      row.append(link, element("span", " "));
    }
    return row;
  }

  function legendRow(box, color, label) {
    const row = element("div");
    const swatch = element("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    row.append(swatch, element("span", label));
    box.append(row);
  }

  function addHotspots(hot) {
    addClassOverlay({
      key: "hotspots", title: hot.title, legendClass: "hotspot-legend",
      url: () => hot.url, report: () => ({overlay: "hotspots", level: hot.level}),
      colorOf: (p) => hot.colors[p.class] || null,
      tipOf: (p) => p.name + " " + p.code + ": " + p.label,
      legend: (box, body) => {
        for (const [spot, label] of hot.legend) legendRow(box, hot.colors[spot], label);
        if (body) {
          box.append(element("div", fill(hot.corrected, {units: body.features.length})));
          if (body.stacked.incidents) box.append(element("div", fill(hot.leftOut, body.stacked)));
        }
      },
    });
  }

  function addHexagons(hex) {
    addClassOverlay({
      key: "hexagons", title: hex.title, legendClass: "hexagon-legend", ownShapes: true,
      url: () => hex.url, report: null,
      colorOf: (p) => hex.colors[p.class] || null,
      tipOf: (p) => p.cell + ": " + p.count + " · " + p.label,
      legend: (box, body) => {
        for (const [spot, label] of hex.legend) legendRow(box, hex.colors[spot], label);
        if (body) box.append(element("div", fill(hex.cells, {cells: body.cells, km2: hex.km2})));
      },
    });
  }

  function addEmerging(emerging) {
    addClassOverlay({
      key: "emerging", title: emerging.title, legendClass: "emerging-legend",
      url: () => emerging.url, report: () => ({overlay: "emerging", level: emerging.level}),
      colorOf: (p) => emerging.colors[p.trend] || null,
      tipOf: (p) => p.name + " " + p.code + ": " + p.label,
      legend: (box, body) => {
        for (const [trend, label] of emerging.legend) legendRow(box, emerging.colors[trend], label);
        if (body && body.periods.length) {
          box.append(element("div", fill(emerging.periods, {first: body.periods[0],
                                                            last: body.periods[body.periods.length - 1]})));
        }
      },
    });
  }

  /** A choropleth class's colour: classes spread over the palette (fewer classes than colours
   *  when the values allow no more keep the palette's ends). */
  function classColor(palette, index, classes) {
    if (index < 0) return null;
    const at = classes > 1 ? Math.round(index * (palette.length - 1) / (classes - 1)) : palette.length - 1;
    return palette[at];
  }

  function formatValue(measure, value) {
    if (measure === "closed") return Math.round(100 * value) + "%";
    if (measure === "count") return String(Math.round(value));
    return value.toFixed(value >= 100 ? 0 : 1);
  }

  function addChoropleth(ch) {
    const chosen = {measure: ch.measures[0][0], level: ch.level};
    function select(label, options, key, onChange) {
      const wrap = element("label", label + " ");
      const box = element("select");
      box.name = key;
      for (const [value, text] of options) {
        const option = element("option", text);
        option.value = value;
        option.selected = value === chosen[key];
        box.append(option);
      }
      box.addEventListener("change", () => { chosen[key] = box.value; onChange(); });
      wrap.append(box);
      return wrap;
    }
    const overlay = addClassOverlay({
      key: "choropleth", title: ch.title, legendClass: "choropleth-legend",
      url: () => withParams(ch.url, {measure: chosen.measure, level: chosen.level}),
      report: () => ({overlay: "choropleth", measure: chosen.measure, level: chosen.level}),
      colorOf: (p, body) => (p.class < 0 ? ch.noValueColor : classColor(ch.palette, p.class, body.classes.length)),
      tipOf: (p, body) => p.name + " " + p.code + ": " +
        (p.value === null ? ch.noValue : formatValue(body.options.measure, p.value)),
      legend: (box, body) => {
        box.append(select(ch.measureLabel, ch.measures, "measure", () => overlay.reload()));
        if (ch.levels.length > 1) box.append(select(ch.levelLabel, ch.levels, "level", () => overlay.reload()));
        if (!body || body.options.measure !== chosen.measure || body.level !== chosen.level) {
          box.append(element("div", S.loading));
          return;
        }
        for (const c of body.classes) {
          legendRow(box, classColor(ch.palette, c.class, body.classes.length),
                    formatValue(body.options.measure, c.from) + " – " + formatValue(body.options.measure, c.to));
        }
        if (body.features.some((f) => f.properties.class < 0)) legendRow(box, ch.noValueColor, ch.noValue);
      },
    });
  }

  /* -- heat and the incidents outside every unit -------------------------------------------- */

  let timer = null;
  let pending = null;

  function viewBox() {
    const size = map.getSize();
    const pad = Math.max(PAD_PX, Math.round(PAD_SHARE * Math.max(size.x, size.y)));
    const pixels = map.getPixelBounds();
    const sw = map.unproject([pixels.min.x - pad, pixels.max.y + pad]);
    const ne = map.unproject([pixels.max.x + pad, pixels.min.y - pad]);
    const clamp = (v, limit) => Math.max(-limit, Math.min(limit, v));
    return [clamp(sw.lng, 180), clamp(sw.lat, MAX_LAT), clamp(ne.lng, 180), clamp(ne.lat, MAX_LAT)]
      .map((v) => v.toFixed(6)).join(",");
  }

  function holdsEverything(zoom) {
    const last = state.heat;
    return last && last.scope === "all" && last.zoom === zoom && last.frame === timeline.frameKey() &&
      last.outside.total <= last.outside.points.length;
  }

  function requestHeat() {
    clearTimeout(timer);
    timer = setTimeout(loadHeat, DEBOUNCE_MS);
  }

  async function loadHeat() {
    const zoom = Math.floor(map.getZoom());
    if (holdsEverything(zoom)) return;
    if (pending) pending.abort();
    const controller = pending = new AbortController();
    const params = {bbox: viewBox(), zoom: String(zoom), ...timeline.period()};
    if (config.heat.whole) params.scope = "all";
    state.heatRequests++;
    try {
      const body = await getJSON(withParams(config.heat.url, params), {signal: controller.signal});
      if (controller !== pending) return;
      showHeat(body, timeline.frameKey());
      timeline.shown(body);
    } catch (error) {
      if (error.name !== "AbortError") failed(error);
    } finally {
      if (controller === pending) pending = null;
    }
  }

  let fitted = config.levels.length > 0;      // without units the page has no view: fit the incidents

  function showHeat(body, frame) {
    body.frame = frame;
    state.heat = body;
    state.heatAnswers++;
    if (!fitted && body.cells.length) {
      fitted = true;
      map.fitBounds(L.latLngBounds(body.cells.map((c) => [c[0], c[1]])), {maxZoom: config.maxZoom});
    }
    heat.setLatLngs(basemap.shifted ? body.cells.map(([lat, lon, n]) => [...display(lat, lon), n]) : body.cells);
    outside.clearLayers();
    const style = {...config.outsideStyle, pane: "gridmap-outside"};
    for (const [lat, lon] of body.outside.points) outside.addLayer(L.circleMarker(display(lat, lon), style));
    const shown = body.outside.points.length;
    note(body.outside.total > shown ? fill(S.outsideMore, {shown, total: body.outside.total}) : "");
  }

  /* -- the heat map through time: a month or a week at a time ------------------------------ */

  /**
   * A control under the map: "all time", "by month" or "by week"; by month or week, a slider over
   * the periods that hold matching incidents (GET /api/incidents/counts?by=month|day&<filters>)
   * and a play button.  Each frame is the heat of that period alone (from/to added to the heat
   * request), asked for like any view, coloured to its own busiest spot, with its count beside
   * the slider.
   */
  function makeTimeline(spec) {
    const frames = {by: "", list: [], index: 0, playing: null};
    const api = {
      period: () => (frames.by ? frames.list[frames.index].params : {}),
      frameKey: () => (frames.by ? frames.by + ":" + frames.list[frames.index].label : ""),
      shown: () => {},
    };
    if (!spec) return api;
    state.timeline = frames;
    const box = element("div");
    box.className = "timeline leaflet-bar";
    const mode = element("select");
    mode.name = "timeline-by";
    for (const [value, label] of spec.modes) {
      const option = element("option", label);
      option.value = value;
      mode.append(option);
    }
    const play = element("button", "▶");
    play.type = "button";
    play.className = "timeline-play";
    play.title = spec.play;
    const slider = element("input");
    slider.type = "range";
    slider.min = "0";
    slider.className = "timeline-slider";
    const label = element("span");
    label.className = "timeline-label";
    box.append(mode, play, slider, label);
    const control = L.control({position: "bottomleft"});
    control.onAdd = () => { L.DomEvent.disableClickPropagation(box); return box; };
    control.addTo(map);
    const show = (on) => { for (const node of [play, slider, label]) node.hidden = !on; };
    show(false);

    function stop() {
      clearTimeout(frames.playing);
      frames.playing = null;
      play.textContent = "▶";
    }
    function go(index) {
      frames.index = index;
      slider.value = String(index);
      label.textContent = frames.list[index].label + " · " + S.loading;
      state.heat = null;
      requestHeat();
    }
    api.shown = (body) => {
      if (!frames.by) return;
      label.textContent = frames.list[frames.index].label + " · " + fill(spec.count, {count: body.total});
      if (frames.playing !== null) {
        frames.playing = setTimeout(() => {
          if (frames.index + 1 < frames.list.length) go(frames.index + 1); else stop();
        }, spec.stepMs);
      }
    };
    const clip = (params) => ({from: spec.from && spec.from > params.from ? spec.from : params.from,
                               to: spec.to && spec.to < params.to ? spec.to : params.to});
    mode.addEventListener("change", async () => {
      stop();
      frames.by = "";
      if (!mode.value) {
        show(false);
        state.heat = null;
        requestHeat();
        return;
      }
      try {
        const counted = await getJSON(withParams(spec.counts, {by: mode.value === "month" ? "month" : "day"}));
        frames.list = (mode.value === "month" ? months(counted.counts) : weeks(counted.counts))
          .map((frame) => ({...frame, params: clip(frame.params)}));     // within the page's own from/to
      } catch (error) {
        failed(error);
        return;
      }
      if (!frames.list.length) return;
      frames.by = mode.value;
      slider.max = String(frames.list.length - 1);
      show(true);
      go(0);
    });
    slider.addEventListener("input", () => { stop(); go(Number(slider.value)); });
    play.addEventListener("click", () => {
      if (!frames.by) return;
      if (frames.playing !== null) { stop(); return; }
      play.textContent = "❚❚";
      frames.playing = 0;
      go(frames.index + 1 < frames.list.length ? frames.index + 1 : 0);
    });
    return api;
  }

  const pad = (n) => String(n).padStart(2, "0");
  const isoDate = (d) => d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());

  /** Each month holding incidents: its label and its first and last day (the filters' from/to). */
  function months(counts) {
    return counts.map(({key}) => {
      const [year, month] = key.split("-").map(Number);
      return {label: key, params: {from: key + "-01", to: isoDate(new Date(Date.UTC(year, month, 0)))}};
    });
  }

  /** Each ISO week (Monday to Sunday) holding incidents, from the counts per day. */
  function weeks(counts) {
    const starts = new Map();
    for (const {key} of counts) {
      const day = new Date(key + "T00:00:00Z");
      const monday = new Date(day.getTime() - ((day.getUTCDay() + 6) % 7) * 86400000);
      starts.set(isoDate(monday), monday);
    }
    return [...starts.values()].sort((a, b) => a - b).map((monday) => {
      const sunday = new Date(monday.getTime() + 6 * 86400000);
      return {label: isoDate(monday), params: {from: isoDate(monday), to: isoDate(sunday)}};
    });
  }

  /* -- stacked coordinates (a geocoder's placeholder) ---------------------------------------- */

  async function loadQuality(quality) {
    try {
      const body = await getJSON(quality.url);
      const points = body.stacked.points;
      state.stacked = points;
      state.ambiguous = body.ambiguous;
      showAmbiguous(quality, body.ambiguous);
      if (!points.length) return;
      const box = document.getElementById("quality-note");
      const first = points[0];
      box.append(element("span", fill(quality.text, {count: first.count, lon: first.lon, lat: first.lat}) + " "));
      if (points.length > 1) {
        const count = points.reduce((sum, p) => sum + p.count, 0);
        box.append(element("span", fill(quality.more, {coordinates: points.length, count}) + " "));
      }
      box.append(element("span", (quality.included ? quality.kept : quality.left) + " "));
      const link = element("a", quality.included ? quality.hide : quality.show);
      link.href = quality.toggle;
      box.append(link);
      box.hidden = false;
    } catch (error) {
      failed(error);
    }
  }

  /** Incidents whose coordinates, as precise as they were written, cannot tell which unit holds them. */
  function showAmbiguous(quality, ambiguous) {
    if (!ambiguous || !ambiguous.count) return;
    const box = document.getElementById("edge-note");
    const top = ambiguous.between[0];
    const codes = top.codes.map((code) => (code === null ? quality.outside : code)).join(" / ");
    const share = (100 * ambiguous.count / ambiguous.incidents).toFixed(1) + "%";
    box.textContent = fill(quality.ambiguous, {count: ambiguous.count, share, codes, n: top.count});
    box.hidden = false;
  }

  map.on("moveend", requestHeat);
  loadHeat();
  loadQuality(config.quality);
})();
