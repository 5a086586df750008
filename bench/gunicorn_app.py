"""WSGI entry point for running connect-health under gunicorn, for the memory comparison in bench/run.py only.

It builds exactly what `connect-health serve` builds (connect_health.app.build, from the CONNECT_HEALTH_*
environment twins of the serve flags) and starts the poller thread. gunicorn imports this module in each worker
after the fork (no --preload), so every worker has its own poller: that is the cost of a forking server this
benchmark measures.

    CONNECT_HEALTH_CONNECT_URL=http://127.0.0.1:8083 CONNECT_HEALTH_POLL_INTERVAL=1 \\
        gunicorn -w 1 --threads 8 -b 127.0.0.1:8091 --chdir bench gunicorn_app:app
"""

from __future__ import annotations

import atexit

from connect_health import config
from connect_health.app import build
from connect_health.cli import setup_logging

settings = config.serve_settings(config.build_parser().parse_args(["serve"]))
setup_logging(settings.log_format)
sidecar = build(settings)
app = sidecar.wsgi  # the WSGI chain serve runs (Flask only behind it, for the /status pages)
sidecar.start()
atexit.register(sidecar.stop)
