"""Command line: ``python -m gridmap …`` or ``flask --app app gridmap …`` (the same commands).

Uses click (which Flask also uses) but not Flask, so it runs without the web layer.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .config import Settings
from .errors import GridmapError
from .incidents import FileOptions
from .levels import ORDER, Level
from .service import Gridmap, LayerOptions, ReportResult
from .storage import open_store


def build_service(settings: Settings | None = None) -> Gridmap:
    settings = settings or Settings.from_env()
    return Gridmap(open_store(settings.database_url), timezone=settings.timezone)


@click.group(name="gridmap")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """gridmap: micro-grid boundaries and incidents."""
    if not isinstance(ctx.obj, Gridmap):   # under `flask`, ctx.obj is Flask's ScriptInfo
        ctx.obj = build_service()


def _fail(error: GridmapError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


@cli.command("init-db")
@click.pass_obj
def init_db(service: Gridmap) -> None:
    """Create the database tables (safe to run again)."""
    click.echo(f"database ready: {service.count_summary()}")


@cli.command("load-demo")
@click.pass_obj
def load_demo(service: Gridmap) -> None:
    """Load the demo community (5 grids, 20 micro-grids, one year of incidents)."""
    if not service.store.is_empty():
        click.echo("error: the database is not empty; the demo loads only into an empty one", err=True)
        sys.exit(2)
    counts = service.load_demo()
    click.echo(", ".join(f"{k}: {v}" for k, v in counts.items()))


@cli.command("import-boundaries")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--level", required=True, type=click.Choice([lv.value for lv in ORDER]))
@click.option("--crs", help="CRS of the file when it does not say, e.g. EPSG:4547")
@click.option("--code-field")
@click.option("--name-field")
@click.option("--parent-field")
@click.option("--note", default="")
@click.pass_obj
def import_boundaries(service: Gridmap, file: Path, level: str, crs: str | None, code_field: str | None,
                      name_field: str | None, parent_field: str | None, note: str) -> None:
    """Import a boundary file as the new version of a level."""
    try:
        summary = service.import_layer(Level(level), file.read_bytes(), LayerOptions(
            filename=file.name, crs=crs, code_field=code_field, name_field=name_field,
            parent_field=parent_field, author="cli", note=note))
    except GridmapError as error:
        _fail(error)
        return
    click.echo(f"{summary.level.value} version {summary.version}: {summary.count} units, "
               f"{summary.area_m2:,.0f} m², parents: {summary.parent_source or 'none'}, "
               f"{summary.reassigned} incidents reassigned ({summary.unassigned} outside every unit)")
    for warning in summary.warnings:
        click.echo(f"warning: {warning}")


@cli.command("import-incidents")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--lon-field")
@click.option("--lat-field")
@click.option("--category", help="category for every row of the file")
@click.pass_obj
def import_incidents(service: Gridmap, file: Path, lon_field: str | None, lat_field: str | None,
                     category: str | None) -> None:
    """Import incidents from a CSV or GeoJSON file; bad rows are listed, good rows kept."""
    try:
        result = service.import_incidents(file.read_bytes(), filename=file.name, options=FileOptions(
            lon_field=lon_field, lat_field=lat_field, category=category))
    except GridmapError as error:
        _fail(error)
        return
    _echo_result(result)
    if result.errors and not result.items:
        sys.exit(2)


def _echo_result(result: ReportResult) -> None:
    unassigned = sum(all(v is None for v in item.units.values()) for item in result.items)
    click.echo(f"created {result.created}, already stored {len(result.items) - result.created}, "
               f"outside every unit {unassigned}, refused rows {len(result.errors)}")
    for error in result.errors:
        click.echo(f"row {error.row}: {error.as_dict()['error']}", err=True)
