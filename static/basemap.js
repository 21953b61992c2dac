/* The base map's tiles, for every page that draws one (map, review, editor, report form).
 *
 * gridmap runs on intranets: the tile server in GRIDMAP_TILES may be out of reach.  Before adding
 * the tile layer, one tile (the view's centre) is asked for; if it does not come, the page says
 * once that the basemap is unavailable and keeps its plain background — one failed request, not
 * twenty per view, and no viewed area sent on to a server that does not answer.  A tile that fails
 * later (the network gone) removes the layer the same way.
 *
 * GCJ-02 basemaps (Gaode/AMap-style tiles, GRIDMAP_TILES_CRS=GCJ02) sit some hundreds of metres off
 * WGS84 in China: gridmapBasemap.display(lat, lng) shifts a stored WGS84 position onto such a
 * basemap (the published GCJ-02 formula, as gridmap/chinacoords.py computes it), and
 * gridmapBasemap.stored(lat, lng) undoes it (three fixed-point rounds) for a position picked on it.
 */
"use strict";
window.gridmapBasemap = (() => {
  const A = 6378245.0;
  const EE = 0.00669342162296594323;

  function outOfChina(lat, lng) {
    return lng < 72.004 || lng > 137.8347 || lat < 0.8293 || lat > 55.8271;
  }

  function delta(lat, lng) {
    const x = lng - 105.0, y = lat - 35.0;
    let dLat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    dLat += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    dLat += (20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin(y / 3.0 * Math.PI)) * 2.0 / 3.0;
    dLat += (160.0 * Math.sin(y / 12.0 * Math.PI) + 320 * Math.sin(y * Math.PI / 30.0)) * 2.0 / 3.0;
    let dLng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    dLng += (20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0 / 3.0;
    dLng += (20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin(x / 3.0 * Math.PI)) * 2.0 / 3.0;
    dLng += (150.0 * Math.sin(x / 12.0 * Math.PI) + 300.0 * Math.sin(x / 30.0 * Math.PI)) * 2.0 / 3.0;
    const radLat = lat / 180.0 * Math.PI;
    let magic = Math.sin(radLat);
    magic = 1 - EE * magic * magic;
    const sqrtMagic = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((A * (1 - EE)) / (magic * sqrtMagic) * Math.PI);
    dLng = (dLng * 180.0) / (A / sqrtMagic * Math.cos(radLat) * Math.PI);
    return [dLat, dLng];
  }

  let shifted = false;          // the basemap is GCJ-02: draw positions shifted onto it

  /** A stored (WGS84) position as drawn on the basemap: [lat, lng]. */
  function display(lat, lng) {
    if (!shifted || outOfChina(lat, lng)) return [lat, lng];
    const [dLat, dLng] = delta(lat, lng);
    return [lat + dLat, lng + dLng];
  }

  /** A position picked on the basemap as stored (WGS84): the inverse of display. */
  function stored(lat, lng) {
    if (!shifted || outOfChina(lat, lng)) return [lat, lng];
    let wLat = lat, wLng = lng;
    for (let i = 0; i < 3; i++) {
      const [dLat, dLng] = delta(wLat, wLng);
      wLat = lat - dLat;
      wLng = lng - dLng;
    }
    return [wLat, wLng];
  }

  /** The note, once, at the map's lower left: the tiles cannot be reached. */
  function showUnavailable(map, text) {
    const box = L.control({position: "bottomleft"});
    box.onAdd = () => { const div = L.DomUtil.create("div", "basemap-note"); div.textContent = text; return div; };
    box.addTo(map);
  }

  /** Tile errors in a row after which the layer goes (one 404 above a provider's last zoom is not an outage). */
  const ERRORS_IN_A_ROW = 6;

  /** Add spec's tiles to map once one tile has come; else say once that they cannot be reached. */
  function add(map, spec) {
    shifted = Boolean(spec && spec.crs === "GCJ02");
    if (!spec || !spec.url) return;
    let failed = false;
    const fail = () => {
      if (failed) return;
      failed = true;
      window.gridmap_basemap_failed = true;
      showUnavailable(map, spec.unavailable);
    };
    const options = {attribution: spec.attribution || "", maxZoom: 19};
    if (spec.subdomains) options.subdomains = spec.subdomains;
    const layer = L.tileLayer(spec.url, options);
    map.whenReady(() => {                 // the probe: the tile under the view's centre, once it has one
      const zoom = Math.max(0, Math.min(Math.round(map.getZoom()), 19));
      const point = map.project(map.getCenter(), zoom).divideBy(256).floor();
      const probe = new Image();
      probe.onload = () => {
        let inARow = 0;
        layer.on("tileload", () => { inARow = 0; });
        layer.on("tileerror", () => {
          inARow += 1;
          if (inARow >= ERRORS_IN_A_ROW) { map.removeLayer(layer); fail(); }
        });
        layer.addTo(map);
        window.gridmap_basemap_loaded = true;
      };
      probe.onerror = fail;
      const subdomains = spec.subdomains || "abc";
      try {                              // a placeholder the template does not know (e.g. {-y}) throws
        probe.src = L.Util.template(spec.url, {s: subdomains[0], x: point.x, y: point.y, z: zoom, r: ""});
      } catch (error) {
        fail();
      }
    });
  }

  return {add, display, stored, get shifted() { return shifted; }};
})();
