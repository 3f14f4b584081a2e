from schema.device import metadata
from schema.migrations.env_common import run

# SQLite cannot ALTER most things in place: batch mode rebuilds the table.
run(metadata, render_as_batch=True)
