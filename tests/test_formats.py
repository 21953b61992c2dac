"""Boundary file formats: GeoJSON, zipped Shapefile, GeoPackage and KML in; GeoJSON, GPKG and Shapefile out."""
from __future__ import annotations

import io
import json
import zipfile
from contextlib import closing
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS
from shapely import MultiPolygon, Polygon, box

from gridmap.errors import InvalidInput
from gridmap.formats import EXPORT_FORMATS, export_layer, read_source
from gridmap.layer import Layer
from gridmap.levels import Level

from .conftest import feature_collection

# Two 0.01° micro-grids side by side in Beijing's Dongcheng district.
WEST, EAST = box(116.39, 39.90, 116.40, 39.91), box(116.40, 39.90, 116.41, 39.91)
CODES, NAMES, STAFF = ["MG-01", "MG-02"], ["东城一号", "东城二号"], ["张三", "李四"]


def cells(crs: int | str = 4326, **columns: list) -> gpd.GeoDataFrame:
    """The two cells with code, name and staff (plus ``columns``), in ``crs``."""
    frame = gpd.GeoDataFrame({"code": CODES, "name": NAMES, "staff": STAFF, **columns},
                             geometry=[WEST, EAST], crs=4326)
    return frame.to_crs(crs)


def same(a: object, b: object, tolerance: float = 1e-9) -> bool:
    return bool(shapely.equals_exact(a, b, tolerance=tolerance))


def clockwise(geom: Polygon) -> Polygon:
    """How a shapefile stores a polygon: exterior ring clockwise (GDAL reverses on write, keeps on read)."""
    return shapely.orient_polygons(geom, exterior_cw=True)


def shapefile(folder: Path, frame: gpd.GeoDataFrame, name: str = "micro_grid", **options: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pyogrio.write_dataframe(frame, folder / f"{name}.shp", **options)
    return folder


def zipped(folder: Path, *, prefix: str = "", drop: tuple[str, ...] = ()) -> bytes:
    """Every file under ``folder`` in a zip, under ``prefix``, leaving out the suffixes in ``drop``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix not in drop:
                archive.write(path, arcname=prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def refusal(data: bytes, **options: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        read_source(data, **{"filename": "upload.bin", **options})
    return str(caught.value)


# --- GeoJSON --------------------------------------------------------------------------------------

def test_geojson_reads_properties_geometry_and_crs():
    source = read_source(feature_collection([({"code": c, "name": n, "staff": s}, g) for c, n, s, g in
                                             zip(CODES, NAMES, STAFF, [WEST, EAST])]), filename="grids.geojson")
    assert source.properties.to_dict("list") == {"code": CODES, "name": NAMES, "staff": STAFF}
    assert source.properties.index.tolist() == [0, 1]
    assert [same(g, e) for g, e in zip(source.geometry, [WEST, EAST])] == [True, True]
    assert source.crs == CRS.from_epsg(4326)
    assert (source.driver, source.layer, source.undecodable, source.warnings) == ("GeoJSON", None, {}, [])


def test_geojson_crs_member_is_returned():
    square = box(499_950, 3_500_000, 500_050, 3_500_100)
    legacy = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4547"}}
    source = read_source(feature_collection([({"code": "A"}, square)], crs=legacy), filename="a.json")
    assert source.crs.equals(CRS.from_epsg(4547))
    assert same(source.geometry[0], square)


def test_geojson_text_holding_a_nul_character_is_refused_saying_where():
    # GDAL would read "网格\u0000A" as "网格": a unit named short of what the planner's file says
    data = feature_collection([({"code": "A", "name": "网格\u0000A"}, WEST),
                               ({"code": "B", "name": "C:\\u0000", "staff": [{"name": "x\u0000"}]}, EAST)])
    assert refusal(data, filename="grids.geojson") == (
        "grids.geojson has 2 property value(s) holding a NUL character; expected text without one\n"
        "  - feature 0: the property \"name\" holds a NUL character (\\u0000), which would cut its text short; "
        "remove it from the file (it is invisible in most editors)\n"
        "  - feature 1: the property \"staff\" holds a NUL character (\\u0000), which would cut its text short; "
        "remove it from the file (it is invisible in most editors)")
    # a backslash followed by u0000 is text like any other
    source = read_source(feature_collection([({"code": "A", "name": "C:\\u0000"}, WEST)]), filename="a.geojson")
    assert source.properties["name"].tolist() == ["C:\\u0000"]


def test_one_unbuildable_ring_does_not_fail_the_file():
    features = [
        {"type": "Feature", "properties": {"code": "A"}, "geometry": shapely.geometry.mapping(WEST)},
        {"type": "Feature", "properties": {"code": "B"},       # three positions, not closed
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}},
        {"type": "Feature", "properties": {"code": "C"},       # closed but three positions: built, invalid
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}},
        {"type": "Feature", "properties": {"code": "D"}, "geometry": None},
    ]
    data = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    source = read_source(data, filename="bad.geojson")
    assert source.properties["code"].tolist() == ["A", "B", "C", "D"]
    assert same(source.geometry[0], WEST)
    assert source.geometry[1] is None and source.geometry[3] is None
    assert list(source.undecodable) == [1]
    assert "LinearRing" in source.undecodable[1] and "closed" in source.undecodable[1]
    assert shapely.get_coordinates(source.geometry[2]).tolist() == [[0, 0], [1, 0], [0, 0]]   # kept as in the file
    assert shapely.is_valid_reason(source.geometry[2]).startswith("Too few points")


def test_3d_polygon_keeps_its_z():
    ring = [(116.39, 39.90, 5.0), (116.40, 39.90, 5.0), (116.40, 39.91, 7.5), (116.39, 39.90, 5.0)]
    source = read_source(feature_collection([({"code": "A"}, Polygon(ring))]), filename="z.geojson")
    assert shapely.has_z(source.geometry[0])
    assert shapely.get_coordinates(source.geometry[0], include_z=True).tolist() == [list(p) for p in ring]


# --- Shapefile ------------------------------------------------------------------------------------

def test_zipped_shapefile_reads_attributes_crs_and_clockwise_rings(tmp_path: Path):
    source = read_source(zipped(shapefile(tmp_path / "shp", cells())), filename="grids.zip")
    assert source.properties.to_dict("list") == {"code": CODES, "name": NAMES, "staff": STAFF}
    assert [same(g, clockwise(e)) for g, e in zip(source.geometry, [WEST, EAST])] == [True, True]
    assert source.crs.equals(CRS.from_epsg(4326))
    assert (source.driver, source.layer, source.warnings) == ("ESRI Shapefile", "micro_grid", [])


def test_shapefile_in_a_sub_folder_of_the_zip(tmp_path: Path):
    data = zipped(shapefile(tmp_path / "shp", cells()), prefix="导出/边界/")
    source = read_source(data, filename="export.zip")
    assert source.properties["code"].tolist() == CODES
    assert source.layer == "micro_grid"


def test_two_shapefiles_need_a_layer_choice(tmp_path: Path):
    folder = shapefile(tmp_path / "shp", cells(), name="grid")
    shapefile(folder, cells().iloc[[1]], name="micro_grid")
    data = zipped(folder)
    assert refusal(data, filename="upload.zip") == (
        "upload.zip holds 2 layers: grid, micro_grid; choose one with the layer option")
    assert read_source(data, filename="upload.zip", layer="micro_grid").properties["code"].tolist() == ["MG-02"]
    assert read_source(data, filename="upload.zip", layer="grid").properties["code"].tolist() == CODES
    assert "upload.zip has no layer 'street'; it has: grid, micro_grid" in refusal(data, filename="upload.zip",
                                                                                   layer="street")


def test_zip_member_names_in_gbk_and_stems_with_dots(tmp_path: Path):
    # Zips made on Chinese Windows store names in GBK without the UTF-8 flag; "abcd" and "东城" are 4 bytes each.
    folder = shapefile(tmp_path / "shp", cells(), name="abcd")
    shapefile(folder, cells().iloc[[0]], name="grid.v2")
    data = zipped(folder).replace(b"abcd", "东城".encode("gbk"))
    assert refusal(data, filename="a.zip") == "a.zip holds 2 layers: 东城, grid.v2; choose one with the layer option"
    assert read_source(data, filename="a.zip", layer="东城").properties["code"].tolist() == CODES
    source = read_source(data, filename="a.zip", layer="grid.v2")
    assert (source.layer, source.properties["code"].tolist()) == ("grid.v2", ["MG-01"])


@pytest.mark.parametrize("encoding", ["GBK", "UTF-8"])
def test_cpg_is_honoured(tmp_path: Path, encoding: str):
    frame = cells().rename(columns={"name": "名称"})
    folder = shapefile(tmp_path / "shp", frame, encoding=encoding)
    assert (folder / "micro_grid.cpg").read_text() == encoding
    source = read_source(zipped(folder), filename="grids.zip")
    assert source.properties["名称"].tolist() == NAMES
    assert source.properties["staff"].tolist() == STAFF
    assert source.warnings == []


def test_shapefile_without_cpg_reads_with_the_encoding_given(tmp_path: Path):
    data = zipped(shapefile(tmp_path / "shp", cells(), encoding="GBK"), drop=(".cpg",))
    source = read_source(data, filename="grids.zip", encoding="GBK")
    assert source.properties["name"].tolist() == NAMES
    assert source.warnings == []


def test_shapefile_without_cpg_and_non_ascii_text_is_read_with_a_warning(tmp_path: Path):
    data = zipped(shapefile(tmp_path / "shp", cells(), encoding="GBK"), drop=(".cpg",))
    source = read_source(data, filename="grids.zip")
    assert source.properties["name"].tolist() != NAMES            # GBK bytes read as ISO-8859-1
    assert [str(w) for w in source.warnings] == [
        "grids.zip has no .cpg file saying how its text is encoded, so it was read as ISO-8859-1; if names look "
        "garbled, upload it again with its encoding in the encoding option, for example GBK"]


def test_ascii_shapefile_without_cpg_needs_no_warning(tmp_path: Path):
    frame = cells(name=["East One", "East Two"], staff=["Zhang", "Li"])
    source = read_source(zipped(shapefile(tmp_path / "shp", frame), drop=(".cpg",)), filename="grids.zip")
    assert source.properties["name"].tolist() == ["East One", "East Two"]
    assert source.warnings == []


def test_wrong_encoding_is_refused_with_a_hint(tmp_path: Path):
    data = zipped(shapefile(tmp_path / "shp", cells(), encoding="GBK"), drop=(".cpg",))
    assert refusal(data, filename="grids.zip", encoding="UTF-8") == (
        "the text in grids.zip is not valid utf-8; give the file's encoding with the encoding option, for example GBK")


@pytest.mark.parametrize("part", [".shx", ".dbf"])
def test_shapefile_missing_a_part_is_refused_by_name(tmp_path: Path, part: str):
    data = zipped(shapefile(tmp_path / "shp", cells()), drop=(part,))
    assert refusal(data, filename="grids.zip") == (
        f"grids.zip: the shapefile micro_grid has no {part} file; a shapefile needs .shp, .shx and .dbf side by "
        "side in the zip")


def test_zip_without_a_shapefile_lists_what_it_holds(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("boundaries")
    (tmp_path / "grids.geojson").write_text("{}")
    assert refusal(zipped(tmp_path), filename="grids.zip") == (
        "grids.zip holds no .shp file; expected a zipped Shapefile (.shp, .shx and .dbf, optionally .prj and "
        ".cpg). The zip holds: docs/readme.txt, grids.geojson")


def test_gauss_kruger_shapefile_keeps_its_crs(tmp_path: Path):
    frame = cells(4547)
    source = read_source(zipped(shapefile(tmp_path / "shp", frame)), filename="cgcs2000.zip")
    assert source.crs.to_epsg() == 4547
    assert [same(g, clockwise(e), 1e-6) for g, e in zip(source.geometry, frame.geometry)] == [True, True]


# --- GeoPackage -----------------------------------------------------------------------------------

def gpkg(path: Path, layers: dict[str, gpd.GeoDataFrame]) -> bytes:
    for name, frame in layers.items():
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")
    return path.read_bytes()


def test_geopackage_with_one_layer_needs_no_choice(tmp_path: Path):
    source = read_source(gpkg(tmp_path / "a.gpkg", {"微网格": cells(4547)}), filename="a.gpkg")
    assert source.properties.to_dict("list") == {"code": CODES, "name": NAMES, "staff": STAFF}
    assert [same(g, e, 1e-6) for g, e in zip(source.geometry, cells(4547).geometry)] == [True, True]
    assert source.crs.to_epsg() == 4547
    assert (source.driver, source.layer) == ("GPKG", "微网格")


def test_geopackage_with_two_layers_needs_a_choice(tmp_path: Path):
    data = gpkg(tmp_path / "a.gpkg", {"grid": cells(), "micro_grid": cells().iloc[[0]]})
    assert refusal(data, filename="a.gpkg") == (
        "a.gpkg holds 2 layers: grid, micro_grid; choose one with the layer option")
    source = read_source(data, filename="a.gpkg", layer="micro_grid")
    assert (source.layer, source.properties["code"].tolist()) == ("micro_grid", ["MG-01"])
    assert refusal(data, filename="a.gpkg", layer="grids") == "a.gpkg has no layer 'grids'; it has: grid, micro_grid"


def test_geopackage_attribute_table_needs_no_choice(tmp_path: Path):
    path = tmp_path / "a.gpkg"
    gpkg(path, {"grid": cells()})
    pyogrio.write_dataframe(pd.DataFrame({"note": ["说明"]}), path, layer="notes", driver="GPKG")
    assert read_source(path.read_bytes(), filename="a.gpkg").layer == "grid"
    notes = read_source(path.read_bytes(), filename="a.gpkg", layer="notes")
    assert (notes.properties["note"].tolist(), notes.geometry.tolist()) == (["说明"], [None])


def test_geopackage_text_holding_a_nul_character_is_refused_saying_where(tmp_path: Path):
    # GDAL would read 'MG\x0001' as 'MG': the chosen layer's text is checked, not the other layers'
    import sqlite3
    path = tmp_path / "a.gpkg"
    gpkg(path, {"grid": cells(), "notes": cells()})
    with closing(sqlite3.connect(path)) as db:
        for spatial in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):    # GeoPackage's triggers
            db.create_function(spatial, 1, lambda _: 0)
        db.execute("UPDATE notes SET name = 'x' || char(0) WHERE fid = 1")
        db.execute("UPDATE grid SET name = 'West' || char(0) || 'Side', code = 'MG' || char(0) || '01' WHERE fid = 1")
        db.commit()
    assert refusal(path.read_bytes(), filename="a.gpkg", layer="grid") == (
        "a.gpkg has 2 property value(s) holding a NUL character; expected text without one\n"
        "  - grid, fid 1: the property code holds a NUL character, which would cut its text short; remove it (it is "
        "invisible in most editors)\n"
        "  - grid, fid 1: the property name holds a NUL character, which would cut its text short; remove it (it is "
        "invisible in most editors)")
    with closing(sqlite3.connect(path)) as db:
        for spatial in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):
            db.create_function(spatial, 1, lambda _: 0)
        db.execute("UPDATE grid SET name = ?, code = ? WHERE fid = 1", (NAMES[0], CODES[0]))
        db.commit()
    assert read_source(path.read_bytes(), filename="a.gpkg", layer="grid").properties["code"].tolist() == CODES


# --- KML ------------------------------------------------------------------------------------------

def placemark(name: str, data: str, x: float, z: str = "") -> str:
    ring = " ".join(f"{px},{py}{z}" for px, py in [(x, 39.90), (x + 0.01, 39.90), (x + 0.01, 39.91), (x, 39.91),
                                                   (x, 39.90)])
    return (f"<Placemark><name>{name}</name><ExtendedData>{data}</ExtendedData><Polygon><outerBoundaryIs>"
            f"<LinearRing><coordinates>{ring}</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>")


def kml(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
            f"<Document><name>东城微网格</name>{body}</Document></kml>").encode()


def test_kml_reads_name_description_and_extended_data():
    schema = '<Schema name="grid" id="grid"><SimpleField name="code" type="string"/></Schema>'
    first = placemark("东城一号", '<SchemaData schemaUrl="#grid"><SimpleData name="code">MG-01</SimpleData>'
                      "</SchemaData>", 116.39).replace("</name>", "</name><description>老旧小区</description>")
    second = placemark("东城二号", '<SchemaData schemaUrl="#grid"><SimpleData name="code">MG-02</SimpleData>'
                       "</SchemaData>", 116.40, z=",12")
    source = read_source(kml(schema + first + second), filename="grids.kml")
    assert source.properties.to_dict("list") == {"Name": NAMES, "description": ["老旧小区", None], "code": CODES}
    assert (source.driver, source.layer, source.crs) == ("LIBKML", "东城微网格", CRS.from_epsg(4326))
    assert same(source.geometry[0], Polygon([(116.39, 39.90), (116.40, 39.90), (116.40, 39.91), (116.39, 39.91)]))
    assert shapely.get_coordinates(source.geometry[1], include_z=True)[:, 2].tolist() == [12.0] * 5


def test_kml_data_elements_become_properties():
    data = lambda key, value: f'<Data name="{key}"><value>{value}</value></Data>'
    body = placemark("一", data("code", "MG-01") + data("staff", "张三"), 116.39) + placemark(
        "二", data("code", "MG-02") + data("phone", "139****0002"), 116.40)
    source = read_source(kml(body), filename="grids.kml")
    assert source.properties.to_dict("list") == {"Name": ["一", "二"], "description": [None, None], "code": CODES,
                                                 "staff": ["张三", None], "phone": [None, "139****0002"]}


def test_kml_with_two_folders_needs_a_layer_choice():
    body = (f"<Folder><name>东城</name>{placemark('一', '', 116.39)}</Folder>"
            f"<Folder><name>西城</name>{placemark('二', '', 116.40)}</Folder>")
    assert refusal(kml(body), filename="a.kml") == "a.kml holds 2 layers: 东城, 西城; choose one with the layer option"
    assert read_source(kml(body), filename="a.kml", layer="西城").properties["Name"].tolist() == ["二"]


def test_kml_folder_holding_only_folders_is_not_a_choice():
    body = f"<Folder><name>东城区</name><Folder><name>网格1</name>{placemark('一', '', 116.39)}</Folder></Folder>"
    source = read_source(kml(body), filename="a.kml")
    assert (source.layer, source.properties["Name"].tolist()) == ("网格1", ["一"])


def test_kml_without_placemarks_is_refused():
    assert refusal(kml(""), filename="a.kml") == (
        "a.kml holds no layer to read; expected at least one layer of boundaries")


# --- detection and refusals -----------------------------------------------------------------------

def test_format_is_sniffed_when_the_extension_does_not_say(tmp_path: Path):
    geojson = feature_collection([({"code": "A"}, WEST)])
    shp = zipped(shapefile(tmp_path / "shp", cells()))
    package = gpkg(tmp_path / "a.gpkg", {"grid": cells()})
    uploads = [(geojson, "upload"), (shp, "grids.bin"), (package, "download"), (kml(placemark("一", "", 116.39)), "x")]
    found = [read_source(data, filename=name).driver for data, name in uploads]
    assert found == ["GeoJSON", "ESRI Shapefile", "GPKG", "LIBKML"]


ACCEPTED = ("GeoJSON (.geojson, .json), a zipped Shapefile (.zip holding .shp, .shx and .dbf), GeoPackage (.gpkg) "
            "or KML (.kml)")


@pytest.mark.parametrize("data", [b"", b"  \n"])
def test_empty_data_is_refused(data: bytes):
    assert refusal(data, filename="grids.geojson") == f"grids.geojson is empty; expected {ACCEPTED}"


def test_png_is_refused_naming_the_accepted_formats():
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)
    assert refusal(png, filename="map.png") == (
        rf"map.png is not a boundary file gridmap can read (it starts with b'\x89PNG\r\n\x1a\n'); expected {ACCEPTED}")


def test_unreadable_file_gives_gdal_reason_without_temporary_paths():
    text = refusal(b"not json at all", filename="grids.geojson")
    assert text.startswith("could not read grids.geojson as GeoJSON: ")
    assert "/tmp" not in text and "gridmap-" not in text and "vsimem" not in text


def test_broken_zip_is_refused():
    assert refusal(b"PK\x03\x04broken", filename="grids.zip").startswith("could not read grids.zip as a zip archive")


# --- export ---------------------------------------------------------------------------------------

EXPORT_PROPERTIES = [
    {"staff": "张三", "phone": "139****0001", "floors": 6, "checked": True, "tags": ["老旧小区", "加装电梯"],
     "联系电话号码": "010-1234", "code": "old-1"},
    {"staff": "李四", "phone": None, "floors": 12, "checked": False, "tags": None, "联系电话号码": None},
    {"staff": None, "phone": "139****0003", "floors": None, "checked": None},
]
EXPORT_GEOMETRY = [clockwise(WEST), EAST, MultiPolygon([box(116.41, 39.90, 116.42, 39.91),
                                                        box(116.43, 39.90, 116.44, 39.91)])]


@pytest.fixture
def layer() -> Layer:
    units = gpd.GeoDataFrame({
        "code": ["MG-01", "MG-02", "MG-03"], "name": ["东城一号", "东城二号", "东城三号"],
        "parent_code": ["G-1", "G-1", None], "area_m2": [1.5, 2.25, 3.0],
        "properties": EXPORT_PROPERTIES}, geometry=gpd.GeoSeries(EXPORT_GEOMETRY, crs=4326, index=[0, 2, 5]),
        index=[0, 2, 5])
    # the index is each unit's feature index in its source file: not 0..n-1 once a feature was left out
    return Layer(level=Level.MICRO_GRID, units=units, version=3)


def test_export_formats_are_named():
    assert sorted(EXPORT_FORMATS) == ["geojson", "gpkg", "shp"]


@pytest.mark.parametrize("fmt, filename, media_type, parent", [
    ("geojson", "micro_grid_v3.geojson", "application/geo+json", "parent_code"),
    ("gpkg", "micro_grid_v3.gpkg", "application/geopackage+sqlite3", "parent_code"),
    ("shp", "micro_grid_v3.zip", "application/zip", "parent"),
])
def test_export_round_trips(layer: Layer, fmt: str, filename: str, media_type: str, parent: str):
    export = export_layer(layer, fmt)
    assert (export.filename, export.media_type) == (filename, media_type)
    source = read_source(export.data, filename=export.filename)
    props = source.properties
    assert props["code"].tolist() == ["MG-01", "MG-02", "MG-03"]
    assert props["name"].tolist() == ["东城一号", "东城二号", "东城三号"]
    assert props[parent].tolist() == ["G-1", "G-1", None]
    assert props["area_m2"].tolist() == [1.5, 2.25, 3.0]
    assert props["staff"].tolist() == ["张三", "李四", None]
    assert props["phone"].tolist() == ["139****0001", None, "139****0003"]
    assert props["floors"].tolist()[:2] == [6, 12] and np.isnan(props["floors"].iloc[2])
    # GDAL's GeoJSON writer turns text that is a JSON array back into an array (AUTODETECT_JSON_STRINGS)
    tags = ["老旧小区", "加装电梯"] if fmt == "geojson" else '["老旧小区", "加装电梯"]'
    assert props["tags"].tolist() == [tags, None, None]
    assert props["code_1"].tolist() == ["old-1", None, None]          # a free "code" does not hide the unit code
    assert source.crs.equals(CRS.from_epsg(4326))
    assert [shapely.equals(g, e) for g, e in zip(source.geometry, EXPORT_GEOMETRY)] == [True, True, True]


def test_geojson_export_is_rfc7946(layer: Layer):
    data = json.loads(export_layer(layer, "geojson").data)
    assert "crs" not in data
    assert [f["properties"]["checked"] for f in data["features"]] == [True, False, None]
    exterior = data["features"][0]["geometry"]["coordinates"][0]
    assert shapely.is_ccw(shapely.LinearRing(exterior))            # the clockwise input was turned around
    assert same(Polygon(exterior), WEST)
    assert list(data["features"][0]["properties"])[:4] == ["code", "name", "parent_code", "area_m2"]


def test_geopackage_export_layer_name(layer: Layer, tmp_path: Path):
    path = tmp_path / "out.gpkg"
    path.write_bytes(export_layer(layer, "gpkg").data)
    assert pyogrio.list_layers(path)[:, 0].tolist() == ["micro_grid_v3"]


def test_shapefile_export_has_prj_cpg_and_short_unique_names(layer: Layer):
    export = export_layer(layer, "shp")
    with zipfile.ZipFile(io.BytesIO(export.data)) as archive:
        assert sorted(archive.namelist()) == [f"micro_grid_v3.{ext}" for ext in ("cpg", "dbf", "prj", "shp", "shx")]
        assert archive.read("micro_grid_v3.cpg").decode().strip() == "UTF-8"
        assert CRS.from_wkt(archive.read("micro_grid_v3.prj").decode()).to_epsg() == 4326
    columns = read_source(export.data, filename=export.filename).properties.columns.tolist()
    assert columns == ["code", "name", "parent", "area_m2", "staff", "phone", "floors", "checked", "tags", "联系电",
                       "code_1"]
    assert read_source(export.data, filename=export.filename).properties["联系电"].tolist() == ["010-1234", None, None]


def test_export_without_version_and_unknown_format(layer: Layer):
    unversioned = Layer(level=Level.GRID, units=layer.units)
    assert export_layer(unversioned, "GeoJSON").filename == "grid.geojson"
    with pytest.raises(InvalidInput) as caught:
        export_layer(layer, "kml")
    assert str(caught.value) == "unknown export format 'kml'; expected one of geojson, gpkg, shp"


def test_shapefile_export_keeps_names_and_text_within_dbf_limits(layer: Layer):
    long_text = "网" * 100                                       # 300 bytes in UTF-8; a DBF text field holds 254
    units = layer.units.assign(properties=[{"staff_phone_1": "a", "staff_phone_2": "b", "note": long_text}] * 3)
    export = export_layer(Layer(level=Level.MICRO_GRID, units=units, version=3), "shp")
    props = read_source(export.data, filename=export.filename).properties
    assert props.columns.tolist()[4:] == ["staff_phon", "staff_ph_1", "note"]
    assert props["note"].tolist() == ["网" * 84] * 3            # 252 bytes: never half a character


def test_what_reading_noted_reaches_the_layers_report(tmp_path: Path):
    from gridmap.boundaries import read_layer
    from gridmap.levels import Level
    data = zipped(shapefile(tmp_path / "shp", cells(), encoding="GBK"), drop=(".cpg",))
    layer = read_layer(data, level=Level.MICRO_GRID, filename="grids.zip", code_field="code")
    notes = [(p.kind, p.severity.value, str(p.message)) for p in layer.problems if p.kind == "file_note"]
    assert notes == [("file_note", "warning",
                      "grids.zip has no .cpg file saying how its text is encoded, so it was read as ISO-8859-1; "
                      "if names look garbled, upload it again with its encoding in the encoding option, "
                      "for example GBK")]


def test_a_lone_feature_with_a_features_member_is_read_as_its_one_feature():
    # schemathesis-style fuzzing (tests/test_fuzz_uploads.py) found a 500: the scan of the
    # ``features`` member counted its bad geometries against a file GDAL reads as one Feature
    from gridmap.boundaries import read_layer
    extra = [{"type": "Feature", "properties": None, "geometry": None},
             {"type": "Feature", "properties": None, "geometry": []}]
    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}
    lone = {"type": "Feature", "properties": {"code": "A"}, "geometry": square, "features": extra}
    layer = read_layer(json.dumps(lone).encode(), level=Level.GRID, filename="f.geojson")
    assert layer.units["code"].tolist() == ["A"] and layer.units.geometry.iloc[0].equals(box(0, 0, 1, 1))
    with pytest.raises(InvalidInput, match="no property looks like the unit code"):
        read_layer(json.dumps({**lone, "properties": None, "geometry": None}).encode(), level=Level.GRID,
                   filename="f.geojson")
