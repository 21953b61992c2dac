"""``python -m gridmap.storage.migrations "what changed"``: autogenerate a revision (read it after)."""
import sys

from . import revision

revision(" ".join(sys.argv[1:]) or "a schema change")
