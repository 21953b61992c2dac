import sys

from .import_worker import prestart

prestart(sys.argv[1:])     # a big file's worker starts now, and imports on the other core while the command does

from .cli import cli  # noqa: E402 - after the worker's start

cli(prog_name="python -m gridmap")
