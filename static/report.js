/* The report form (templates/report.html): a tap on the map, or the phone's position, puts the
 * point; the unit outlines of the deepest level (GET /api/outlines/<level>) help find the place.
 * UI strings come from <script id="report-config">; this file holds none. */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("report-config").textContent);
  const S = config.labels;
  const map = window.gridmap_report = L.map("report-map", {zoomControl: true});
  const basemap = window.gridmapBasemap;
  basemap.add(map, config.basemap);     // before any shape: GCJ-02 tiles shift them
  if (config.bounds) {
    const [w, s, e, n] = config.bounds;
    map.fitBounds([[s, w], [n, e]]);
  } else {
    map.setView([35, 105], 4);
  }
  const lon = document.getElementById("lon");
  const lat = document.getElementById("lat");
  const where = document.getElementById("report-where");
  let marker = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (all, key) => (key in values ? String(values[key]) : all));
  }

  /** Put the point at a stored (WGS84) position; it is drawn where the basemap has it. */
  function place(wgsLat, wgsLng) {
    lat.value = wgsLat.toFixed(6);
    lon.value = wgsLng.toFixed(6);
    const shown = L.latLng(...basemap.display(wgsLat, wgsLng));
    if (marker) marker.setLatLng(shown); else marker = L.marker(shown).addTo(map);
    where.textContent = fill(S.placed, {lat: lat.value, lon: lon.value});
  }

  if (lon.value && lat.value) place(Number(lat.value), Number(lon.value));
  map.on("click", (e) => place(...basemap.stored(e.latlng.lat, e.latlng.lng)));   // a tap on the basemap
  document.getElementById("locate").addEventListener("click", () => {
    if (!navigator.geolocation) { where.textContent = S.noLocation; return; }
    where.textContent = S.locating;
    navigator.geolocation.getCurrentPosition((p) => {
      place(p.coords.latitude, p.coords.longitude);           // the Geolocation API gives WGS84
      map.setView(basemap.display(p.coords.latitude, p.coords.longitude), Math.max(map.getZoom(), 17));
    }, () => { where.textContent = S.noLocation; }, {enableHighAccuracy: true, timeout: 10000});
  });

  if (config.outlines) {
    fetch(config.outlines, {headers: {Accept: "application/json"}}).then((r) => r.json()).then((body) => {
      const group = L.featureGroup();
      for (const shape of body.shape) {
        if (shape) {
          group.addLayer(L.polygon(window.gridmapShapes.shapeLatLngs(shape, body.precision),
                                   {color: "#0b4f6c", weight: 1, fillOpacity: 0.05, interactive: false}));
        }
      }
      group.addTo(map);
      window.gridmap_report_outlines = group.getLayers().length;
    }).catch(() => { window.gridmap_report_outlines = 0; });
  }
})();
