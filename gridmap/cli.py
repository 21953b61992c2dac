"""Command line: ``python -m gridmap …`` or ``flask --app app gridmap …`` (the same commands).

Uses click (which Flask also uses) but not Flask, so it runs without the web layer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from . import exports
from .accounts import Role, new_password
from .changes import LayerResult, SaveMode
from .config import Settings
from .distributed import ENGINES
from .distributed import reassign as reassign_incidents
from .errors import GridmapError
from .filters import parse_query
from .formats import EXPORT_FORMATS
from .incidents import FileOptions, line_count
from .levels import ORDER, Level
from .mapping import ImportMapping
from .options import layer_options
from .service import Gridmap, ReportResult
from .storage import open_store


def build_service(settings: Settings | None = None) -> Gridmap:
    settings = settings or Settings.from_env()
    return Gridmap(open_store(settings.database_url), timezone=settings.timezone,
                   service_area=settings.service_area, tolerance_m2=settings.tolerance_m2)


@click.group(name="gridmap")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """gridmap: micro-grid boundaries and incidents."""
    if not isinstance(ctx.obj, Gridmap):   # under `flask`, ctx.obj is Flask's ScriptInfo
        ctx.obj = build_service()
        # closed before the interpreter exits: a store left to the exit's clean-up aborted
        # ("double free") about once in twenty runs of a script that assigned points
        ctx.call_on_close(ctx.obj.store.close)


def _fail(error: GridmapError) -> None:
    lines = [error.summary.relabel(OPTIONS)] + [f"  - {d.relabel(OPTIONS)}" for d in error.details]
    click.echo("error: " + "\n".join(str(line) for line in lines), err=True)
    sys.exit(2)


@cli.command("init-db")
@click.pass_obj
def init_db(service: Gridmap) -> None:
    """Create the database tables (safe to run again)."""
    click.echo(f"database ready: {service.count_summary()}")


@cli.command("load-demo")
@click.option("--if-empty", is_flag=True, help="do nothing (and succeed) when the database has data")
@click.pass_obj
def load_demo(service: Gridmap, if_empty: bool) -> None:
    """Load the demo community (5 grids, 20 micro-grids, one year of incidents)."""
    if not service.store.is_empty():
        if if_empty:
            click.echo(f"database has data, demo not loaded: {service.count_summary()}")
            return
        click.echo("error: the database is not empty; the demo loads only into an empty one", err=True)
        sys.exit(2)
    counts = service.load_demo()
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))
    print_demo_accounts(service.access.demo_accounts())


def print_demo_accounts(made: list[tuple[str, Role, str]]) -> None:
    """The demo's accounts as :meth:`gridmap.access.Access.demo_accounts` made them (none: nothing)."""
    if made:
        click.echo("gridmap demo accounts (name, role, password; shown only now):")
        for name, role, password in made:
            click.echo(f"  {name:8} {role.value:8} {password}")


@cli.command("import-boundaries")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice([lv.value for lv in ORDER]))
@click.option("--crs", help="CRS of the file when it does not say, e.g. EPSG:4547")
@click.option("--code-field")
@click.option("--name-field")
@click.option("--parent-field")
@click.option("--layer", help="layer of a GeoPackage/KML, or shapefile in a zip")
@click.option("--encoding", help="text encoding of a shapefile without .cpg, e.g. GBK")
@click.option("--tolerance", help="gaps/overlaps below this many m² are not reported")
@click.option("--clean", is_flag=True, help="clean overlaps and gaps (GEOS CoverageCleaner) before checking")
@click.option("--gap-width", help="with --clean: fill gaps narrower than this many metres")
@click.option("--snap", help="with --clean: snap corners closer than this many metres")
@click.option("--derive-parent", is_flag=True, help="redraw the level above as the union of these units")
@click.option("--mode", type=click.Choice([m.value for m in SaveMode]), default=SaveMode.COMMIT.value,
              show_default=True, help="preview: only report; draft: store for review; commit: make current")
@click.option("--note", default="")
@click.pass_obj
def import_boundaries(service: Gridmap, file: Path, level: str, mode: str, **given: str | bool | None) -> None:
    """Check a boundary file and preview it, save it as a draft, or commit it as the new version."""
    fields = {FLAGS.get(name, name): value for name, value in given.items()}
    try:
        options = layer_options({**fields, "author": "cli"}, filename=file.name)
        result = service.save_layer(Level(level), file.read_bytes(), options, mode=SaveMode(mode))
    except GridmapError as error:
        for problem in error.report.problems if error.report is not None else []:
            click.echo(f"{problem.severity.value}: {problem.message.relabel(OPTIONS)}", err=True)
        _fail(error)
        return
    _echo_layer(result)
    if result.parent is not None:
        _echo_layer(result.parent)


#: The import options' keys (as the API and the pages know them) and this command's flags.
FLAGS = {"tolerance": "tolerance_m2", "gap_width": "gap_width_m", "snap": "snap_m"}
OPTIONS = {FLAGS.get(name, name): f"--{name.replace('_', '-')}" for name in (
    "crs", "code_field", "name_field", "parent_field", "layer", "encoding", "tolerance", "clean", "gap_width",
    "snap", "derive_parent", "partition_rows")}


def _echo_layer(result: LayerResult) -> None:
    version = f"version {result.version} ({result.status.value})" if result.version else "preview"
    click.echo(f"{result.level.value} {version}: {result.count} units, {result.area_m2:,.0f} m², "
               f"parents: {result.parent_source or 'none'}, {result.reassigned} incidents, "
               f"{result.unassigned} outside every unit, {result.diff.moved} would move unit")
    if result.report.cleaning is not None:
        changes = result.report.cleaning.changes
        click.echo(f"cleaned: {len(changes)} unit(s) changed, {sum(abs(c.change_m2) for c in changes):,.1f} m² "
                   f"in all" + "".join(f"\n  {c.code}: {c.before_m2:,.1f} → {c.after_m2:,.1f} m²" for c in changes))
    for problem in result.report.problems:
        click.echo(f"{problem.severity.value}: {problem.message.relabel(OPTIONS)}")


@cli.command("export-boundaries")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice([lv.value for lv in ORDER]))
@click.option("--version", type=int, help="default: the current version")
@click.option("--format", "fmt", type=click.Choice(list(EXPORT_FORMATS)), default="geojson", show_default=True)
@click.pass_obj
def export_boundaries(service: Gridmap, out: Path, level: str, version: int | None, fmt: str) -> None:
    """Write a level (any version) as GeoJSON, GeoPackage or zipped Shapefile."""
    try:
        export = service.export(Level(level), version, fmt)
    except GridmapError as error:
        _fail(error)
        return
    out.write_bytes(export.data)
    click.echo(f"wrote {out} ({len(export.data):,} bytes)")


@cli.command("create-user")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--token", "with_token", is_flag=True,
              help="also make a bearer token for scripts and kiosk screens (printed alone on the last line)")
@click.option("--password", envvar="GRIDMAP_NEW_PASSWORD",
              help="the password (or GRIDMAP_NEW_PASSWORD); default: a new random one, printed once")
@click.option("--staff-id", type=int, help="a worker's entry in the staff registry: the units they answer for")
@click.pass_obj
def create_user(service: Gridmap, name: str, role: str, with_token: bool, password: str | None,
                staff_id: int | None) -> None:
    """Make an account (roles: viewer, worker, planner, admin)."""
    chosen = password or new_password()
    try:
        account, token = service.access.create(name, Role(role), password=chosen, staff_id=staff_id,
                                               token_label="cli" if with_token else None)
    except GridmapError as error:
        _fail(error)
        return
    click.echo(f"account {account.name} ({account.role.value}) created")
    if password is None:
        click.echo(f"password: {chosen}")
    if token is not None:
        click.echo(token)


@cli.command("escalate-overdue")
@click.pass_obj
def escalate_overdue(service: Gridmap) -> None:
    """Move every open incident past its deadline up to the grid leader, and past two deadlines to
    the community (run it from cron, e.g. hourly)."""
    click.echo(f"escalation steps taken: {service.escalate_overdue()}")


@cli.command("import-incidents")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lon-field")
@click.option("--lat-field")
@click.option("--category", help="category for every row of the file")
@click.option("--crs", help="the coordinates' system: WGS84 (default), GCJ02, BD09 or an EPSG code (EPSG:4490)")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a TOML file naming the export's columns and words (see gridmap/mapping.py)")
@click.pass_obj
def import_incidents(service: Gridmap, file: Path, lon_field: str | None, lat_field: str | None,
                     category: str | None, crs: str | None, mapping: Path | None) -> None:
    """Import incidents from a CSV or GeoJSON file; bad rows are listed, good rows kept."""
    lines = line_count(file)
    rows = max(1, lines - 1)           # about: a quoted field may hold a line break
    try:
        rules = ImportMapping.parse(mapping.read_bytes(), name=mapping.name) if mapping else None
        with click.progressbar(length=2 * rows, label=f"{file.name}: reading and storing", file=sys.stderr,
                               show_pos=False) as bar:
            result = service.import_incidents(file, filename=file.name, options=FileOptions(
                lon_field=lon_field, lat_field=lat_field, category=category, crs=crs, mapping=rules),
                progress=lambda _stage, count: bar.update(count), lines=lines)
    except GridmapError as error:
        _fail(error)
        return
    _echo_result(result)
    if result.errors and not result.stored:
        sys.exit(2)


def _echo_result(result: ReportResult) -> None:
    click.echo(f"created {result.created}, already stored {result.stored - result.created}, "
               f"outside every unit {int(result.unassigned.sum())}, refused rows {len(result.errors)}")
    for error in result.errors:
        click.echo(f"row {error.row}: {error.as_dict()['error']}", err=True)


# -- exports and reassignment (GeoParquet, Dask) ---------------------------------------------------

@cli.command("export-incidents")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--category", multiple=True, help="a category code (repeat for several: any of them)")
@click.option("--status", multiple=True, help="a status (repeat for several)")
@click.option("--source", multiple=True, help="where reports came from (repeat for several)")
@click.option("--from", "start", help="first day, YYYY-MM-DD")
@click.option("--to", "end", help="last day, YYYY-MM-DD (the whole day)")
@click.option("--unit", help="a unit code of any level")
@click.option("--partition-rows", type=click.IntRange(min=1),
              help="write OUT as a folder of GeoParquet files (part-00000.parquet, …) of at most this many rows")
@click.pass_obj
def export_incidents(service: Gridmap, out: Path, category: tuple[str, ...], status: tuple[str, ...],
                     source: tuple[str, ...], start: str | None, end: str | None, unit: str | None,
                     partition_rows: int | None) -> None:
    """Write the incidents (filtered as on the map) as GeoParquet, for geopandas, DuckDB, QGIS or Dask."""
    try:
        query = parse_query({"category": category, "status": status, "source": source, "from": start, "to": end,
                             "unit": unit})
        written = exports.export_incidents(service.store, out, query, partition_rows=partition_rows,
                                           timezone=service.tz.key)
    except GridmapError as error:
        _fail(error)
        return
    click.echo(f"wrote {out}: {written.rows:,} incidents in {len(written.files)} file(s), units of "
               f"{exports.versions_text(written.versions)}")


@cli.command("export-units")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice([lv.value for lv in ORDER]))
@click.option("--version", type=int, help="default: the current version")
@click.pass_obj
def export_units(service: Gridmap, out: Path, level: str, version: int | None) -> None:
    """Write a level's units (any version) as GeoParquet: code, name, parent_code, area_m2, properties."""
    try:
        layer = service.layer_at(Level(level), version)
        written = exports.export_units(layer, out)
    except GridmapError as error:
        _fail(error)
        return
    click.echo(f"wrote {out}: {written.rows:,} {level} units of version {layer.version}")


@cli.command("reassign")
@click.option("--level", required=True, type=click.Choice([lv.value for lv in ORDER]))
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True)
@click.option("--scheduler", help="with --engine dask: a cluster's scheduler, tcp://host:8786 (default: a "
                                  "LocalCluster of 2 worker processes here)")
@click.option("--partition-rows", type=click.IntRange(min=1), default=200_000, show_default=True,
              help="with --engine dask: incidents per exported GeoParquet file (a partition of the work)")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="with --engine dask: where the export goes; every worker must read it at the same path "
                   "(a shared filesystem); default: a temporary folder, which only local workers can read")
@click.pass_obj
def reassign(service: Gridmap, level: str, engine: str, scheduler: str | None, partition_rows: int,
             workdir: Path | None) -> None:
    """Work out every stored incident's unit under the level's current version again (as a commit
    would) and write back the ones that differ, in one transaction."""
    if engine == "local" and (scheduler or workdir):
        raise click.UsageError("--scheduler and --workdir need --engine dask")
    try:
        done = reassign_incidents(service, Level(level), engine=engine, scheduler=scheduler,
                                partition_rows=partition_rows, workdir=workdir)
    except GridmapError as error:
        _fail(error)
        return
    click.echo(f"{level} version {done.version}: read {done.read:,} incidents, {done.changed:,} changed unit "
               f"(written back)")
    click.echo("stages: " + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in done.seconds.items()))
