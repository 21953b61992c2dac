/* Shapes as gridmap sends them (gridmap/maps.py review_shape / encoded_shapes): a list of polygons,
   each a list of rings encoded like Google's polyline format — lat, lon pairs at 1/precision
   degrees (1e-6 unless told), each a delta from the one before. Shared by the map and review pages. */
"use strict";
window.gridmapShapes = (() => {
  /** One encoded ring as [[lat, lon], …]. */
  function decodeRing(text, precision = 1e6) {
    const points = [];
    const shift = window.gridmapBasemap && window.gridmapBasemap.shifted ? window.gridmapBasemap.display : null;
    let index = 0, lat = 0, lon = 0;
    while (index < text.length) {
      const steps = [0, 0];
      for (let axis = 0; axis < 2; axis++) {
        let result = 0, shift = 0, byte;
        do {
          byte = text.charCodeAt(index++) - 63;
          result |= (byte & 0x1f) << shift;
          shift += 5;
        } while (byte >= 0x20);
        steps[axis] = (result & 1) ? ~(result >> 1) : (result >> 1);
      }
      lat += steps[0];
      lon += steps[1];
      // shifted onto a GCJ-02 basemap when the page has one (static/basemap.js)
      points.push(shift ? shift(lat / precision, lon / precision) : [lat / precision, lon / precision]);
    }
    return points;
  }

  /** A shape (polygons of encoded rings) as Leaflet lat/lng arrays. */
  function shapeLatLngs(shape, precision = 1e6) {
    return shape.map((polygon) => polygon.map((ring) => decodeRing(ring, precision)));
  }

  return {decodeRing, shapeLatLngs};
})();
