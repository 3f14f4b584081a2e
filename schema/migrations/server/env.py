from schema.migrations.env_common import run
from schema.server import metadata

run(metadata, render_as_batch=False)
