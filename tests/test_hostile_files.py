"""Hostile and broken uploads: every one is refused with an InvalidInput naming what was expected,
what arrived and where, before it can cost unbounded memory or time or reach a file on the server."""
from __future__ import annotations

import io
import json
import math
import sqlite3
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
import shapely.affinity
from shapely import Polygon, box

from gridmap import boundaries, feature_checks, formats
from gridmap.boundaries import read_layer
from gridmap.errors import InvalidInput
from gridmap.formats import read_source
from gridmap.levels import Level

from .conftest import feature_collection

ZIP_EXPECTED = "expected a zipped Shapefile as QGIS, ArcGIS or the operating system writes it"
SHP_HEADER = b"\x00\x00\x27\x0a" + bytes(96)         # a .shp/.shx header's file code; the rest does not matter here
MIB = 2**20


def refused(data: bytes, filename: str, **options: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read_source(data, filename=filename, **options)
    return caught.value


def refused_layer(data: bytes, filename: str = "x.geojson", **options: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read_layer(data, level=Level.GRID, filename=filename, **options)
    return caught.value


def zipped(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def forged(data: bytes, name: str, *, size: int | None = None, crc: int | None = None, flags: int | None = None,
           method: int | None = None) -> bytes:
    """``data`` with member ``name``'s header fields rewritten, in its local header and the central directory."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local = archive.getinfo(name).header_offset
    central = next(at for at in _all(data, b"PK\x01\x02")
                   if data[at + 46:at + 46 + struct.unpack_from("<H", data, at + 28)[0]] == name.encode())
    out = bytearray(data)
    for value, fmt, local_at, central_at in ((flags, "<H", 6, 8), (method, "<H", 8, 10), (crc, "<L", 14, 16),
                                             (size, "<L", 22, 24)):
        if value is not None:
            struct.pack_into(fmt, out, local + local_at, value)
            struct.pack_into(fmt, out, central + central_at, value)
    return bytes(out)


def _all(data: bytes, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


@pytest.fixture
def never_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a zip member for reading fails the test: the refusal must come first."""
    open_member = zipfile.ZipFile.open

    def unpack(self: zipfile.ZipFile, name: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if mode == "r":
            raise AssertionError("a zip member was opened")
        return open_member(self, name, mode, *args, **kwargs)      # writing the test's own zip
    monkeypatch.setattr(zipfile.ZipFile, "open", unpack)


@pytest.fixture
def bytes_unpacked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every chunk read from any zip member."""
    sizes: list[int] = []
    read = zipfile.ZipExtFile.read

    def counted(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        chunk = read(self, n)
        sizes.append(len(chunk))
        return chunk
    monkeypatch.setattr(zipfile.ZipExtFile, "read", counted)
    return sizes


class _Counted:
    """A decompressor that counts the bytes it inflates."""

    def __init__(self, inner: object, counts: list[int]) -> None:
        self._inner, self._counts = inner, counts

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._inner.decompress(data, max_length)
        self._counts.append(len(out))
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


@pytest.fixture
def bytes_inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every chunk any zip member's decompressor produced."""
    counts: list[int] = []
    make = zipfile._get_decompressor
    monkeypatch.setattr(zipfile, "_get_decompressor", lambda method: _Counted(make(method), counts))
    return counts


def real_shapefile(tmp_path: Path) -> dict[str, bytes]:
    """A real two-cell shapefile's parts, by member name."""
    frame = gpd.GeoDataFrame({"code": ["A", "B"]}, geometry=[box(116.39, 39.9, 116.4, 39.91),
                                                             box(116.4, 39.9, 116.41, 39.91)], crs=4326)
    pyogrio.write_dataframe(frame, tmp_path / "grid.shp")
    return {f"grid.{ext}": (tmp_path / f"grid.{ext}").read_bytes() for ext in ("shp", "shx", "dbf", "prj", "cpg")}


# --- zips -----------------------------------------------------------------------------------------

def test_zip_declaring_more_than_the_cap_is_refused_before_anything_is_unpacked(monkeypatch, never_unpacked):
    # 3 MiB of zeros packs into 3 KB: cheap to build, and the cap is lowered to 1 MiB to stand for 512 MiB
    monkeypatch.setattr(formats, "MAX_UNZIPPED_BYTES", MIB)
    monkeypatch.setattr(formats, "MAX_RATIO", 10**6)
    data = zipped({"grid.shp": SHP_HEADER, "grid.shx": SHP_HEADER, "grid.dbf": bytes(3 * MIB)})
    refusal = refused(data, "bomb.zip")
    assert str(refusal) == (f"bomb.zip was not unpacked: 1 problem(s) with the zip; {ZIP_EXPECTED}\n"
                            "  - its members declare 3.0 MB unpacked, more than the 1.0 MB accepted; a district's "
                            "boundaries take tens of MB")


def test_member_packed_too_tightly_is_refused_before_it_is_unpacked(monkeypatch, never_unpacked):
    monkeypatch.setattr(formats, "MAX_RATIO", 100)
    data = zipped({"grid.shp": SHP_HEADER, "grid.shx": SHP_HEADER, "grid.dbf": bytes(3 * MIB)})
    packed = zipfile.ZipFile(io.BytesIO(data)).getinfo("grid.dbf").compress_size
    assert packed < 3 * MIB // 100                     # the premise: zeros pack far better than 100:1
    assert str(refused(data, "bomb.zip")) == (
        f"bomb.zip was not unpacked: 1 problem(s) with the zip; {ZIP_EXPECTED}\n"
        f"  - member 'grid.dbf' declares 3.0 MB unpacked from {packed} bytes, a ratio over 100:1; boundary files "
        "do not pack that tightly")


def test_forged_small_size_stops_unpacking_at_the_declared_size(bytes_inflated):
    # the header says 1,000 bytes; the packed stream holds 3 MiB: unpacking stops at 1,000 and the CRC tells
    data = forged(zipped({"grid.shp": SHP_HEADER, "grid.shx": SHP_HEADER, "grid.dbf": bytes(3 * MIB)}),
                  "grid.dbf", size=1_000)
    assert str(refused(data, "forged.zip")) == (
        "forged.zip: the zip member 'grid.dbf' could not be unpacked: Bad CRC-32 for file 'grid.dbf'; the zip is "
        "damaged or forged")
    # .shp and .shx whole, and of the .dbf one call's worth: zipfile inflates at least MIN_READ_SIZE a call
    assert sum(bytes_inflated) == 100 + 100 + zipfile.ZipExtFile.MIN_READ_SIZE


def test_forged_size_and_crc_yield_exactly_what_is_declared(tmp_path, bytes_unpacked):
    # a real .dbf followed by 3 MiB of zeros, declared as just the .dbf (with its CRC): the rest is never read
    parts = real_shapefile(tmp_path)
    dbf = parts["grid.dbf"]
    data = forged(zipped({**parts, "grid.dbf": dbf + bytes(3 * MIB)}), "grid.dbf", size=len(dbf),
                  crc=zlib.crc32(dbf))
    source = read_source(data, filename="forged.zip")
    assert source.properties["code"].tolist() == ["A", "B"]
    assert sum(bytes_unpacked) == sum(len(content) for content in parts.values())


def test_zip_slip_and_links_are_refused_and_nothing_is_written(never_unpacked):
    link = zipfile.ZipInfo("grid.prj")
    link.create_system, link.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../grid.shp", SHP_HEADER)
        archive.writestr("/etc/grid.shx", SHP_HEADER)
        archive.writestr("C:\\Windows\\grid.dbf", b"")
        archive.writestr("ok/../../grid.cpg", b"UTF-8")
        archive.writestr(link, "/etc/passwd")
    assert str(refused(buffer.getvalue(), "slip.zip")) == (
        f"slip.zip was not unpacked: 5 problem(s) with the zip; {ZIP_EXPECTED}\n"
        "  - member '../../grid.shp' has an absolute path or a '..' in it; expected names inside the zip\n"
        "  - member '/etc/grid.shx' has an absolute path or a '..' in it; expected names inside the zip\n"
        "  - member 'C:\\\\Windows\\\\grid.dbf' has an absolute path or a '..' in it; expected names inside the zip\n"
        "  - member 'ok/../../grid.cpg' has an absolute path or a '..' in it; expected names inside the zip\n"
        "  - member 'grid.prj' is a symbolic link; expected plain files")      # and never_unpacked: nothing opened


def test_encrypted_member_and_unknown_packing_method_are_refused(never_unpacked):
    data = zipped({"grid.shp": SHP_HEADER, "grid.shx": SHP_HEADER, "grid.dbf": b"x"})
    data = forged(forged(data, "grid.dbf", flags=0x1), "grid.shx", method=99)
    assert str(refused(data, "locked.zip")) == (
        f"locked.zip was not unpacked: 2 problem(s) with the zip; {ZIP_EXPECTED}\n"
        "  - member 'grid.shx' is packed with method 99; expected one of stored, deflate, bzip2, lzma\n"
        "  - member 'grid.dbf' is encrypted; expected a zip without a password")


def test_too_many_members_are_refused_from_the_end_record_before_zipfile_reads_them(monkeypatch):
    data = zipped({f"part{i}.txt": b"" for i in range(5)})
    directory = sum(46 + len(f"part{i}.txt") for i in range(5))        # what the central directory takes
    monkeypatch.setattr(formats, "MAX_ZIP_MEMBERS", 3)
    monkeypatch.setattr(zipfile, "ZipFile", None)                      # never reached
    assert str(refused(data, "many.zip")) == (
        f"many.zip lists 5 files ({directory} bytes of contents list); a zipped Shapefile is expected to hold at most "
        "3. Split it into several zips")


def test_an_end_record_that_understates_the_members_is_caught_by_the_directory_size(monkeypatch):
    data = bytearray(zipped({f"{'long-name-' * 10}{i}.txt": b"" for i in range(40)}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)                       # "1 member", while 40 are listed
    size = struct.unpack_from("<L", data, end + 12)[0]
    assert size == 40 * 46 + 10 * 105 + 30 * 106                       # 46 bytes an entry, names of 105 and 106
    monkeypatch.setattr(formats, "MAX_ZIP_MEMBERS", 3)                 # 3 members: at most 3,072 bytes of directory
    assert str(refused(bytes(data), "many.zip")) == (
        f"many.zip lists 1 files ({size} bytes of contents list); a zipped Shapefile is expected to hold at most 3. "
        "Split it into several zips")


def test_members_beyond_what_the_end_record_says_are_counted_before_any_is_unpacked(monkeypatch, never_unpacked):
    data = bytearray(zipped({f"part{i}.txt": b"" for i in range(5)}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)                       # "1 member": its directory (280 bytes) fits
    monkeypatch.setattr(formats, "MAX_ZIP_MEMBERS", 3)
    assert str(refused(bytes(data), "many.zip")) == (
        "many.zip holds 5 files; a zipped Shapefile is expected to hold at most 3. Split it into several zips")


def test_a_part_that_is_not_a_shapefile_is_refused_before_gdal_opens_it(tmp_path):
    # a VRT in place of the .shp would make GDAL open the file it names on the server
    vrt = f"<OGRVRTDataSource><OGRVRTLayer name='x'><SrcDataSource>{tmp_path}/secret.geojson</SrcDataSource>" \
          "</OGRVRTLayer></OGRVRTDataSource>"
    data = zipped({"grid.shp": vrt.encode(), "grid.shx": SHP_HEADER, "grid.dbf": b""})
    assert str(refused(data, "vrt.zip")) == (
        "vrt.zip: grid.shp is not a shapefile part (a .shp file starts with the file code 9994); expected the files "
        "QGIS or ArcGIS writes")


def test_damaged_packed_data_is_refused_naming_the_member():
    data = bytearray(zipped({"grid.shp": SHP_HEADER, "grid.shx": SHP_HEADER, "grid.dbf": b"a" * 5000}))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("grid.dbf")
    start = info.header_offset + 30 + len("grid.dbf")
    data[start:start + 4] = b"\xff\xff\xff\xff"                          # an invalid deflate block
    text = str(refused(bytes(data), "broken.zip"))
    assert text.startswith("broken.zip: the zip member 'grid.dbf' could not be unpacked: Error -3 while "
                           "decompressing data: ")
    assert text.endswith("; the zip is damaged or forged")


def test_a_prj_that_is_not_utf8_text_is_left_out_with_a_warning(tmp_path):
    # pyogrio fails with an UnboundLocalError on a CRS whose WKT it cannot decode
    parts = real_shapefile(tmp_path)
    assert parts["grid.prj"].startswith(b'GEOGCS["GCS_WGS_1984"')
    parts["grid.prj"] = parts["grid.prj"].replace(b"GCS_WGS_1984", "西安".encode("gbk"))
    source = read_source(zipped(parts), filename="a.zip")
    assert (source.crs, source.properties["code"].tolist()) == (None, ["A", "B"])
    assert [str(w) for w in source.warnings] == [
        "the .prj in a.zip is not a coordinate reference system gridmap can read (expected at most 65536 bytes of "
        "UTF-8 text) and was left out; give the CRS with the crs option"]


def test_a_file_crs_that_is_not_horizontal_is_left_out_with_a_warning():
    vertical = {"type": "name", "properties": {"name": "EPSG:5773"}}       # heights: EGM96
    source = read_source(feature_collection([({"code": "A"}, box(116.39, 39.9, 116.4, 39.91))], crs=vertical),
                         filename="a.geojson")
    assert source.crs is None
    assert [str(w) for w in source.warnings] == [
        "the coordinate reference system in a.geojson cannot be used (Vertical CRS: EGM96 height); give it with the "
        "crs option"]
    layer = read_layer(feature_collection([({"code": "A"}, box(116.39, 39.9, 116.4, 39.91))], crs=vertical),
                       level=Level.GRID)
    assert layer.units.total_bounds.tolist() == [116.39, 39.9, 116.4, 39.91]      # read as lon/lat, not swapped


# --- encodings ------------------------------------------------------------------------------------

EXPECTED_ENCODINGS = "utf-8, gbk, gb18030, gb2312, big5, big5hkscs, iso8859-1, cp1252, shift_jis, euc_jp, euc_kr"


@pytest.mark.parametrize("encoding", ["no-such-codec", "rot13", "utf-16", "base64", "nul\x00"])
def test_unknown_or_unusable_encoding_is_refused_with_the_accepted_names(encoding):
    data = feature_collection([({"code": "A"}, box(0, 0, 1, 1))])
    assert str(refused(data, "a.geojson", encoding=encoding)) == (
        f"unknown text encoding {encoding!r} in the encoding option; expected one of {EXPECTED_ENCODINGS}")


@pytest.mark.parametrize("encoding", ["cp936", "GB18030", " gbk "])
def test_encoding_aliases_are_accepted(tmp_path, encoding):
    frame = gpd.GeoDataFrame({"code": ["A"], "name": ["东城"]}, geometry=[box(116, 39, 116.1, 39.1)], crs=4326)
    pyogrio.write_dataframe(frame, tmp_path / "grid.shp", encoding="GBK")
    parts = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix != ".cpg"}
    assert read_source(zipped(parts), filename="a.zip", encoding=encoding).properties["name"].tolist() == ["东城"]


# --- GeoJSON structure ----------------------------------------------------------------------------

def geojson(features: list[object]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def feature(code: str, geometry: object) -> dict[str, object]:
    return {"type": "Feature", "properties": {"code": code}, "geometry": geometry}


SQUARE = {"type": "Polygon", "coordinates": [[[116.39, 39.9], [116.4, 39.9], [116.4, 39.91], [116.39, 39.9]]]}
GEOJSON_EXPECTED = "expected a FeatureCollection of Feature objects"


def test_features_that_are_not_feature_objects_are_listed_by_index():
    # GDAL would skip feature 0 silently and every later index would name the wrong feature
    data = geojson([1, SQUARE, {"type": "Feature", "properties": [1, 2], "geometry": None}, feature("OK", SQUARE)])
    assert str(refused(data, "a.geojson")) == (
        f"a.geojson is not GeoJSON gridmap can read: 3 problem(s); {GEOJSON_EXPECTED}\n"
        "  - feature 0 is 1; expected a Feature object\n"
        '  - feature 1 has type "Polygon"; expected "Feature"\n'
        "  - feature 2: its properties are [1, 2]; expected an object or null")


@pytest.mark.parametrize("data, expected", [
    (b'{"type": "FeatureCollection", "features": {"a": 1}}',
     'the FeatureCollection\'s features member is {"a": 1}; expected an array of Feature objects'),
    (b'{"type": "FeatureCollection"}',
     "the FeatureCollection's features member is null; expected an array of Feature objects"),
    (b"[1, 2]", 'expected a GeoJSON object ({"type": "FeatureCollection", …}), got a JSON array'),
    (b'{"type": "gdal_streamed_alg", "command_line": "gdal vector pipeline ! read /etc/passwd ! write"}',
     'expected a GeoJSON FeatureCollection, Feature or geometry, got type "gdal_streamed_alg"'),
    (b'{"type": "Topology", "objects": {}}',
     'expected a GeoJSON FeatureCollection, Feature or geometry, got type "Topology"'),
])
def test_what_is_not_a_feature_collection_is_refused(data, expected):
    assert str(refused(data, "a.geojson")) == f"a.geojson: {expected}"


def test_deeply_nested_json_is_refused_naming_the_feature():
    deep = b"[" * 100_000 + b"]" * 100_000
    data = b'{"type": "FeatureCollection", "features": [' + json.dumps(feature("A", SQUARE)).encode() + \
        b', {"type": "Feature", "properties": {"x": ' + deep + b'}, "geometry": null}]}'
    assert str(refused(data, "deep.geojson")) == (
        "deep.geojson: feature 1 is nested too deeply (arrays and objects hundreds of levels deep); expected GeoJSON")


def test_a_number_too_large_is_named_by_feature():
    data = (b'{"type": "FeatureCollection", "features": [' + json.dumps(feature("A", SQUARE)).encode() +
            b', {"type": "Feature", "properties": {"code": "B"}, "geometry": {"type": "Polygon", "coordinates": '
            b'[[[0, 0], [1e999, 0], [1, 1], [0, 0]]]}}]}')
    refusal = refused(data, "big.geojson")
    assert str(refusal.summary).startswith("could not read big.geojson as GeoJSON: ")
    assert [str(d) for d in refusal.details] == [
        "big.geojson: feature 1 has the number 1e999, too large for a coordinate or a value"]


def test_coordinates_gdal_cannot_read_are_listed_by_feature():
    data = geojson([feature("OK", SQUARE),
                    feature("S", {"type": "Polygon", "coordinates": [[["0", "0"], [1, 0], [1, 1], ["0", "0"]]]}),
                    feature("T", {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"],
                                                                          [[[0, True], [1, 0], [1, 1], [0, 0]]]]})])
    refusal = refused(data, "a.geojson")
    assert str(refusal.summary).startswith("could not read a.geojson as GeoJSON: ")
    assert [str(d) for d in refusal.details] == [
        "feature 1: geometry: the Polygon's coordinates[0][0] are [\"0\", \"0\"]; expected positions of numbers, as "
        "in [116.39, 39.9]",
        "feature 2: geometry: the MultiPolygon's coordinates[1][0][0] are [0, true]; expected positions of numbers, "
        "as in [116.39, 39.9]"]


def test_geometries_gdal_reads_as_none_or_in_part_are_errors_naming_the_feature():
    two_squares = [SQUARE["coordinates"], "not a polygon"]         # GDAL would keep the first polygon, silently
    data = geojson([
        feature("OK", SQUARE),
        {"type": "Feature", "properties": {"code": "M"}},
        feature("S", "POLYGON ((0 0, 1 0, 1 1, 0 0))"),
        feature("P", {"type": "MultiPolygon", "coordinates": two_squares}),
        feature("N", {"type": "Polygon", "coordinates": [[[0, 0], [1, None], [1, 1], [0, 0]]]}),
        feature("U", {"type": "Polyhedron", "coordinates": []}),
        feature("G", {"type": "GeometryCollection", "geometries": [SQUARE]}),
        feature("I", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0.5, float("inf")], [0, 0]]]}),
    ])
    layer = read_layer(data, level=Level.GRID, filename="a.geojson")
    assert [(p.kind, p.feature, str(p.message)) for p in layer.problems if p.kind != "missing_name"] == [
        ("bad_geometry", 1, 'feature 1 (code "M"): the geometry cannot be read: the feature has no geometry member; '
                            "expected a geometry object or null"),
        ("bad_geometry", 2, 'feature 2 (code "S"): the geometry cannot be read: geometry is "POLYGON ((0 0, 1 0, 1 '
                            '1, 0 0))"; expected a geometry object such as {"type": "Polygon", "coordinates": […]}'),
        ("bad_geometry", 3, 'feature 3 (code "P"): the geometry cannot be read: geometry: the MultiPolygon\'s '
                            'coordinates[1] are "not a polygon"; expected positions of numbers, as in [116.39, 39.9]'),
        ("bad_geometry", 4, 'feature 4 (code "N"): the geometry cannot be read: geometry: the Polygon\'s '
                            "coordinates[0][1] are [1, null]; expected positions of numbers, as in [116.39, 39.9]"),
        ("bad_geometry", 5, 'feature 5 (code "U"): the geometry cannot be read: geometry has type "Polyhedron"; '
                            "expected Polygon or MultiPolygon"),
        ("not_polygon", 6, 'expected Polygon or MultiPolygon, got GeometryCollection in feature 6 (code "G")'),
        ("non_finite", 7, 'feature 7 (code "I") has coordinates that are not numbers (NaN or infinity)'),
    ]
    assert layer.codes == ["OK"]


def test_too_many_features_are_refused_before_gdal_reads_them(monkeypatch):
    monkeypatch.setattr(formats, "MAX_FEATURES", 2)
    monkeypatch.setattr(formats.pyogrio, "read_info", None)          # never reached
    data = geojson([feature(c, SQUARE) for c in "ABC"])
    assert str(refused(data, "a.geojson")) == (
        "a.geojson has more than 2 features; at most 2 can be read from one file. Check that it is the layer you "
        "meant, or split it into smaller files")


def test_too_many_features_in_a_shapefile_are_refused_from_its_header(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_FEATURES", 1)
    monkeypatch.setattr(formats.pyogrio.raw, "read", None)            # never reached
    assert str(refused(zipped(real_shapefile(tmp_path)), "a.zip")) == (
        "a.zip has 2 features; at most 1 can be read from one file. Check that it is the layer you meant, or split "
        "it into smaller files")


def test_too_many_columns_are_refused_before_a_row_is_read(monkeypatch):
    monkeypatch.setattr(formats, "MAX_FIELDS", 2)
    monkeypatch.setattr(formats.pyogrio.raw, "read", None)            # never reached
    data = feature_collection([({"code": "A", "name": "a", "staff": "s"}, box(0, 0, 1, 1))])
    assert str(refused(data, "a.geojson")) == (
        "a.geojson has 3 attribute columns for 1 features; at most 2 columns and 20000000 values in all are "
        "accepted. Delete the columns the boundaries do not need (QGIS: Layer Properties ▸ Fields)")


def test_too_many_cells_are_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_CELLS", 5)
    data = feature_collection([({"code": c, "name": c, "staff": c}, box(0, 0, 1, 1)) for c in "AB"])
    assert str(refused(data, "a.geojson")) == (
        "a.geojson has 3 attribute columns for 2 features; at most 500 columns and 5 values in all are accepted. "
        "Delete the columns the boundaries do not need (QGIS: Layer Properties ▸ Fields)")


def test_too_many_vertices_in_all_are_refused(monkeypatch):
    monkeypatch.setattr(formats, "MAX_TOTAL_VERTICES", 9)
    data = feature_collection([({"code": c}, box(0, 0, 1, 1)) for c in "AB"])       # 5 + 5 positions
    assert str(refused(data, "a.geojson")) == (
        "a.geojson has 10 vertices in all; at most 9 can be read from one file. Simplify the boundaries (QGIS: "
        "Vector ▸ Geometry Tools ▸ Simplify) or split the file")


# --- KML and GeoPackage ---------------------------------------------------------------------------

PLACEMARK = ("<Placemark><name>{name}</name><Polygon><outerBoundaryIs><LinearRing><coordinates>116.39,39.9 "
             "116.4,39.9 116.4,39.91 116.39,39.9</coordinates></LinearRing></outerBoundaryIs></Polygon></Placemark>")


@pytest.mark.parametrize("doctype", [
    '<!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',                               # billion laughs, abridged
    '<!DOCTYPE kml [<!ENTITY c SYSTEM "file:///etc/passwd">]>',                       # an external entity
])
def test_kml_with_a_document_type_is_refused(doctype):
    data = (f'<?xml version="1.0" encoding="UTF-8"?>{doctype}<kml xmlns="http://www.opengis.net/kml/2.2">'
            f"<Document>{PLACEMARK.format(name='&c;')}</Document></kml>").encode()
    assert str(refused(data, "a.kml")) == (
        "a.kml declares a document type (<!DOCTYPE kml …>); KML has none, and the entities one declares can make a "
        "small file expand to gigabytes")


def test_xml_that_is_not_kml_is_refused():
    assert str(refused(b'<?xml version="1.0"?><gpx><trk/></gpx>', "a.kml")) == (
        "a.kml: expected a KML document (<kml> …), got <gpx>")
    assert str(refused(b"<kml><Document>", "a.kml")) == (      # the root is checked here, the rest by GDAL
        "could not read a.kml as KML: ERROR parsing kml a.kml :no element found on line 1 at offset 15")
    assert str(refused(b"<kml", "a.kml")) == "could not read a.kml as KML: unclosed token: line 1, column 0"


@pytest.mark.parametrize("filename", ["grids.kml", "grids.gpkg"])
def test_gdal_vrt_naming_a_file_on_the_server_is_refused(tmp_path, filename):
    secret = tmp_path / "secret.geojson"
    secret.write_bytes(feature_collection([({"code": "SECRET"}, box(0, 0, 1, 1))]))
    vrt = (f"<OGRVRTDataSource><OGRVRTLayer name='secret'><SrcDataSource>{secret}</SrcDataSource></OGRVRTLayer>"
           "</OGRVRTDataSource>").encode()
    expected = {"grids.kml": "grids.kml holds OGRVRTDataSource, which belongs to GDAL's own formats, not to KML; "
                             "expected a KML document",
                "grids.gpkg": "could not read grids.gpkg as GeoPackage: file is not a database"}
    assert str(refused(vrt, filename)) == expected[filename]


def geopackage(tmp_path: Path, *statements: str) -> bytes:
    path = tmp_path / "a.gpkg"
    frame = gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(116.39, 39.9, 116.4, 39.91)], crs=4326)
    pyogrio.write_dataframe(frame, path, layer="grid", driver="GPKG")
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    return path.read_bytes()


def test_geopackage_with_a_view_that_never_ends_is_refused_at_once(tmp_path):
    # listed as a layer, GDAL counts its rows, and a recursive view has no last row
    data = geopackage(tmp_path, "CREATE VIEW forever AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                "FROM n) SELECT n.i AS fid, grid.geom AS geom FROM n, grid",
                      "INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) VALUES ('forever', "
                      "'features', 'forever', 4326)",
                      "INSERT INTO gpkg_geometry_columns VALUES ('forever', 'geom', 'POLYGON', 4326, 0, 0)")
    assert str(refused(data, "a.gpkg", layer="forever")) == (
        "a.gpkg was not read: 1 part(s) of its schema are not accepted; expected a GeoPackage of plain tables, as "
        "QGIS or ArcGIS writes it\n"
        "  - forever is an SQL view; expected tables only")


def listed(table: str) -> str:
    return (f"INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('{table}', 'attributes', "
            f"'{table}')")


def test_geopackage_with_generated_columns_or_foreign_virtual_tables_is_refused(tmp_path):
    data = geopackage(tmp_path, "CREATE TABLE heavy (id INTEGER PRIMARY KEY, blob AS (zeroblob(1000000000)))",
                      "CREATE VIRTUAL TABLE words USING fts4(text)", listed("heavy"), listed("words"))
    assert str(refused(data, "a.gpkg", layer="grid")) == (
        "a.gpkg was not read: 2 part(s) of its schema are not accepted; expected a GeoPackage of plain tables, as "
        "QGIS or ArcGIS writes it\n"
        "  - heavy has generated columns; expected plain columns\n"
        "  - words is a virtual table (fts4); expected tables only")


def test_geopackage_contents_that_gdal_does_not_read_are_left_alone(tmp_path):
    # the same objects, listed nowhere, and a compatibility view some tools add: GDAL never queries them
    data = geopackage(tmp_path, "CREATE TABLE heavy (id INTEGER PRIMARY KEY, blob AS (zeroblob(1000000000)))",
                      "CREATE VIRTUAL TABLE words USING fts4(text)",
                      "CREATE VIEW st_spatial_ref_sys AS SELECT * FROM gpkg_spatial_ref_sys")
    assert read_source(data, filename="a.gpkg").properties["code"].tolist() == ["A"]


def test_gpkg_contents_made_a_never_ending_view_is_refused(tmp_path):
    # GDAL reads gpkg_contents to list the layers: this one has no last row, and GDAL waited for it for ever
    data = geopackage(tmp_path, "ALTER TABLE gpkg_contents RENAME TO old_contents",
                      "CREATE VIEW gpkg_contents AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
                      "SELECT old_contents.* FROM old_contents, n")
    assert str(refused(data, "a.gpkg")) == (
        "a.gpkg was not read: 1 part(s) of its schema are not accepted; expected a GeoPackage of plain tables, as "
        "QGIS or ArcGIS writes it\n"
        "  - gpkg_contents is an SQL view; expected tables only")


def test_geopackage_spatial_index_is_accepted(tmp_path):
    # GDAL writes an R*Tree virtual table for every layer: that one is fine
    assert read_source(geopackage(tmp_path), filename="a.gpkg").properties["code"].tolist() == ["A"]


def test_too_many_layers_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_LAYERS", 1)
    path = tmp_path / "a.gpkg"
    for name in ("grid", "micro_grid"):
        pyogrio.write_dataframe(gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(0, 0, 1, 1)], crs=4326), path,
                                layer=name, driver="GPKG")
    assert str(refused(path.read_bytes(), "a.gpkg")) == "a.gpkg holds 2 layers; at most 1 are accepted in one file"


# --- what one feature may cost GEOS ---------------------------------------------------------------

TRIANGLE = Polygon([(0, 0), (0.004, 0.001), (0.001, 0.003)])         # 4 positions
PENTAGRAM = Polygon([(0.01 * x, 0.01 * y) for x, y in                 # {5/2}: its 5 edges cross 5 times
                     [(0, 1), (0.588, -0.809), (-0.951, 0.309), (0.951, 0.309), (-0.588, -0.809)]])
BOW_TIE = Polygon([(0, 0), (0.01, 0.01), (0.01, 0), (0, 0.01), (0, 0)])     # crosses itself once


def test_a_feature_with_too_many_vertices_is_an_error_before_any_geometry_work(monkeypatch):
    monkeypatch.setattr(feature_checks, "MAX_VERTICES_PER_FEATURE", 4)
    layer = read_layer(feature_collection([({"code": "T", "name": "t"}, TRIANGLE),
                                           ({"code": "B", "name": "b"}, box(0.01, 0, 0.02, 0.01))]), level=Level.GRID)
    assert [(p.kind, p.severity.value, str(p.message)) for p in layer.problems] == [
        ("too_complex", "error", 'feature 1 (code "B") has 5 vertices; at most 4 are accepted in one feature. '
                                 "Simplify it (QGIS: Vector ▸ Geometry Tools ▸ Simplify) or split it")]
    assert layer.codes == ["T"]


def test_a_feature_with_too_many_rings_is_an_error(monkeypatch):
    monkeypatch.setattr(feature_checks, "MAX_RINGS_PER_FEATURE", 2)
    holed = Polygon(box(0, 0, 0.01, 0.01).exterior.coords, [box(0.001, 0.001, 0.002, 0.002).exterior.coords,
                                                          box(0.005, 0.005, 0.006, 0.006).exterior.coords])
    details = refused_layer(feature_collection([({"code": "H", "name": "h"}, holed)])).details
    assert [str(p) for p in details] == [
        'feature 0 (code "H") has 3 rings (outer rings and holes); at most 2 are accepted in one feature. Remove the '
        "small holes and parts (QGIS: Vector ▸ Geometry Tools ▸ Delete Holes) or split it"]


def test_overlapping_edge_extents_are_counted_per_axis():
    # intervals [0, 2], [1, 3], [5, 6] in one group and [0, 9] alone: only [0, 2] holds a later start
    found = feature_checks._overlaps(np.array([0.0, 1.0, 5.0, 0.0]), np.array([2.0, 3.0, 6.0, 9.0]),
                                     np.array([0, 0, 0, 1]))
    assert found.tolist() == [1, 0, 0, 0]


def test_overlap_counts_are_the_same_whatever_the_pass_size(monkeypatch):
    # a unit square's edges, x-extents sorted [i, i+1] [i, i] [i, i+1] [i+1, i+1]: 3 + 1 + 1 + 0 later starts
    # inside; y-extents [0, 1] [0, 1] [0, 0] [1, 1]: 3 + 2 + 0 + 0; the smaller total is 5 (4 pairs really meet)
    squares = np.array([box(i, 0, i + 1, 1) for i in range(10)] + [None, shapely.Point(0, 0)], dtype=object)
    vertices = shapely.get_num_coordinates(squares)
    assert feature_checks._overlap_counts(squares, vertices).tolist() == [5.0] * 10 + [0.0, 0.0]
    monkeypatch.setattr(feature_checks, "_VERTICES_PER_PASS", 7)     # one or two squares a pass
    assert feature_checks._overlap_counts(squares, vertices).tolist() == [5.0] * 10 + [0.0, 0.0]


def test_an_intricate_feature_is_an_error_and_the_file_has_a_budget(monkeypatch):
    # the triangle's 3 edges meet pairwise at its corners: x-extents [0, .004] [.001, .004] [0, .001] and
    # y-extents [0, .001] [.001, .003] [0, .003] each give 2 + 0 + 1 = 3 overlapping pairs; its one ring none
    monkeypatch.setattr(feature_checks, "_OVERLAPS_PER_VERTEX", 0)
    monkeypatch.setattr(feature_checks, "MAX_OVERLAPS_PER_FEATURE", 2)
    details = refused_layer(feature_collection([({"code": "T", "name": "t"}, TRIANGLE)])).details
    assert [str(p) for p in details] == [
        'feature 0 (code "T") is too intricate to check: 3 pairs of its edges overlap each other\'s extent, more '
        "than 2. Simplify it (QGIS: Vector ▸ Geometry Tools ▸ Simplify) or redraw it"]
    monkeypatch.setattr(feature_checks, "MAX_OVERLAPS_PER_FEATURE", 3)
    monkeypatch.setattr(feature_checks, "MAX_OVERLAPS", 5)
    shifted = shapely.affinity.translate(TRIANGLE, 0.01)
    layer = read_layer(feature_collection([({"code": "T", "name": "t"}, TRIANGLE), ({"code": "U", "name": "u"},
                                                                                    shifted)]), level=Level.GRID)
    assert [str(p.message) for p in layer.problems] == [
        'feature 1 (code "U") was not checked: with the features before it, the file has more than 5 pairs of edges '
        "overlapping each other's extent. Simplify the file (QGIS: Vector ▸ Geometry Tools ▸ Simplify) or split it"]
    assert layer.codes == ["T"]


def test_a_polygon_crossing_itself_too_often_is_not_repaired(monkeypatch):
    monkeypatch.setattr(feature_checks, "MAX_REPAIR_CROSSINGS", 4)
    made_valid = []
    make_valid = shapely.make_valid
    monkeypatch.setattr(shapely, "make_valid", lambda g, **kw: made_valid.append(g) or make_valid(g, **kw))
    layer = read_layer(feature_collection([({"code": "P", "name": "p"}, PENTAGRAM),
                                           ({"code": "B", "name": "b"}, shapely.affinity.translate(BOW_TIE, 0.02))]),
                       level=Level.GRID)
    assert [(p.kind, p.feature, str(p.message).split(";")[0]) for p in layer.problems] == [
        # (0.0022460…, 0.00309): where the edge from (0, 0.01) to (0.00588, -0.00809) meets y = 0.00309
        ("not_repaired", 0, 'feature 0 (code "P"): invalid geometry (Self-intersection[0.00224603648424544 '
                            "0.00309]) crossing itself at least 5 times"),
        ("invalid_geometry", 1, 'feature 1 (code "B"): invalid geometry (Self-intersection[0.025 0.005])')]
    assert str(layer.problems[0].message).endswith("; at most 4 crossings are repaired automatically. Fix it in "
                                                   "QGIS (Vector ▸ Geometry Tools ▸ Fix Geometries) or redraw it")
    assert layer.codes == ["B"] and len(made_valid) == 1              # the pentagram never reached make_valid


def test_repairs_stop_at_the_files_budget(monkeypatch):
    # a bow-tie costs 5 vertices + 1 ring² + 1 crossing² = 7: the second would bring the file to 14
    monkeypatch.setattr(feature_checks, "MAX_REPAIR_WORK", 10)
    second = shapely.affinity.translate(BOW_TIE, 0.02)
    layer = read_layer(feature_collection([({"code": "A", "name": "a"}, BOW_TIE), ({"code": "B", "name": "b"},
                                                                                   second)]), level=Level.GRID)
    assert [(p.kind, p.feature) for p in layer.problems] == [("not_repaired", 1), ("invalid_geometry", 0)]
    assert str(layer.problems[0].message) == (
        'feature 1 (code "B"): invalid geometry (Self-intersection[0.025 0.005]) not repaired: the invalid features '
        "before it used up what one file may spend on repairs. Fix them in QGIS (Vector ▸ Geometry Tools ▸ Fix "
        "Geometries) and upload the file again")


def test_a_star_that_would_take_minutes_to_repair_is_refused_at_once(monkeypatch):
    # a 201-point star crosses itself 19,899 times (n·(k-1) with k = 100): make_valid took 100 s on it
    n, k = 201, 100
    corners = [(0.01 * math.cos(2 * math.pi * i * k / n), 0.01 * math.sin(2 * math.pi * i * k / n)) for i in range(n)]
    monkeypatch.setattr(shapely, "make_valid", None)                   # never reached
    details = refused_layer(feature_collection([({"code": "S", "name": "s"}, Polygon(corners))])).details
    assert "crossing itself at least 19899 times; at most 1000 crossings are repaired automatically" in str(details[0])


# --- coordinates and the last line of defence -----------------------------------------------------

def test_coordinates_beyond_longitude_and_latitude_are_an_error_naming_the_feature():
    data = feature_collection([({"code": "OK", "name": "ok"}, box(116.39, 39.9, 116.4, 39.91)),
                               ({"code": "X", "name": "x"}, box(500, 39.9, 501, 39.91)),
                               ({"code": "Y", "name": "y"}, box(116.39, -95, 116.4, -94))])
    layer = read_layer(data, level=Level.GRID)
    assert [(p.kind, p.feature, str(p.message)) for p in layer.problems] == [
        ("out_of_range", 1, 'feature 1 (code "X") lies at (500.0, 39.9) – (501.0, 39.91), beyond longitude -180…180 '
                            "or latitude -90…90; check its coordinates"),
        ("out_of_range", 2, 'feature 2 (code "Y") lies at (116.39, -95.0) – (116.4, -94.0), beyond longitude '
                            "-180…180 or latitude -90…90; check its coordinates")]
    assert layer.codes == ["OK"]


def test_a_file_entirely_beyond_lonlat_is_still_asked_for_its_crs():
    data = feature_collection([({"code": "A"}, box(499_950, 3_500_000, 500_050, 3_500_100))])
    assert "which cannot be longitude/latitude" in str(refused_layer(data))


@pytest.mark.parametrize("exhausted", [MemoryError, RecursionError, OverflowError])
def test_exhaustion_while_reading_or_checking_is_an_invalid_input(monkeypatch, exhausted):
    def fail(*_args: object, **_kwargs: object) -> None:
        raise exhausted()
    data = feature_collection([({"code": "A"}, box(0, 0, 1, 1))])
    monkeypatch.setattr(formats, "_read", fail)
    assert str(refused(data, "a.geojson")) == (
        "a.geojson is too large or too deeply nested to read; split it into smaller files")
    monkeypatch.undo()
    monkeypatch.setattr(boundaries, "check_features", fail)
    assert str(refused_layer(data, "a.geojson")) == (
        "a.geojson is too large or too intricate to check; simplify it or split it into smaller files")
