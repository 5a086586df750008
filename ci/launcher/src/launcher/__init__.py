"""The local stack: a KRaft Kafka broker, Kafka Connect workers, PostgreSQL and connect-health on 127.0.0.1.

One piece of code for the Makefile (``python -m launcher fetch``), the integration and e2e tests, the demo
(``python -m launcher.demo``) and the benchmarks. Standard library only (Python >= 3.11), so that CI can run it
before anything else is installed. ``make venv`` installs it (editable) into .tools/venv.

Modules, by role:

=============  ==================================================================================================
``pins``       the repository, the .tools/ cache (LAUNCHER_TOOLS=DIR overrides it), ci/versions.env
``errors``     StackError and its kinds (PortInUse, MissingTool, NotFetched, ServiceFailed, ...), with attributes
``tools``      java, mvn, PostgreSQL, connect-health found on this machine (MissingTool otherwise)
``fetch``      Kafka jars and the Debezium plugin from Maven Central into .tools/, stamped and locked
``process``    child processes in their own groups that never outlive the launcher; the `up` foreground loop
``net``        ports (Port, claim_port, PortInUse), a JSON HTTP client, wait_until, the Kafka wire probe
``service``    Service: the one start/stop/pause/state of every process, and supervise()
``jvm``        the java command line and .properties files of the broker and the worker
``broker``     Broker          ``worker``  Worker, its REST helpers and its request log (RequestLog)
``postgres``   Postgres        ``sidecar`` Sidecar (`connect-health serve`) and sidecar_env()
``registry``   Registry: a CNCF Distribution OCI registry (make release, the e2e cluster)
``prometheus`` Prometheus: a real Prometheus scraping the stack with the chart's rules (demo, observability tests)
``kafka_security`` make_tls, SecureBroker (SSL and SASL/SCRAM listeners), PropertiesWorker (the chart's properties)
``jmx_exporter`` the Prometheus JMX exporter agent jar from Maven Central (make kafka; the worker metrics test)
``stack``      Stack: a broker, workers and added services, started and stopped together
``state``      state files of `up` processes, and down()
``cli``        python -m launcher / connect-health-stack: fetch, up, down, status
``demo``       make demo: the stack, the sidecar and a failure to cause (up, break, heal, stop)
=============  ==================================================================================================

Python API::

    import launcher
    with launcher.Stack(workdir, "4.3.1", debezium=True) as stack:
        stack.connect_url                     # http://127.0.0.1:<rest port>
        stack.worker.request("GET", "/connectors")
        stack.worker.pause(); stack.worker.resume()
    pg = launcher.Postgres(workdir).start(); pg.sql("select 1"); pg.stop()

Adding a service (a registry, Prometheus, ...): one module with a subclass of ``launcher.Service`` that

1. calls ``super().__init__(workdir, name, "<name>.log")`` and claims its port with
   ``self.listener = claim_port(port, "what listens there", "--its-flag")`` (a free one when port is None; that
   gives it ``.port`` and ``ports()``; a service with more ports claims each and overrides ``ports()``);
2. implements ``command()`` (argv) and ``ready()`` (True once it serves);
3. overrides, when needed, ``prepare()`` (config files, run before each start), ``env()``, ``stop_signal``,
   ``start_timeout``, ``describe()``, ``waiting_for()`` and ``state()`` (add what a caller reads back: its URL);

then export it here. ``Service.start()`` checks the ports are free, prepares, starts the process in its own process
group (logging to ``<workdir>/<name>/<name>.log``), waits for ``ready()`` and raises ServiceFailed with the log's
tail if it dies or times out; ``stop()`` signals the group and waits for the ports to close. Run it alone
(``with MyService(workdir) as svc:``) or with a stack (``stack.add(svc)``: started after the workers, stopped
before them, recorded in the state file so ``down`` stops it too). A tool it needs goes into ``tools``
(MissingTool saying how to install it); something fetched goes into ``fetch`` and under .tools/.
"""

from __future__ import annotations

from .broker import Broker
from .errors import (
    FetchFailed,
    JavaTooOld,
    MissingTool,
    NotFetched,
    PortInUse,
    ServiceFailed,
    StackError,
    TimedOut,
)
from .fetch import fetch_debezium, fetch_kafka, require_fetched
from .net import HOST, Port, claim_port, free_port, http, is_listening, listening, port_is_free, wait_until
from .pins import (
    DEBEZIUM_VERSION,
    KAFKA_LEGACY_VERSION,
    KAFKA_VERSION,
    ROOT,
    TOOLS,
    has_health_endpoint,
)
from .postgres import Postgres
from .process import foreground, log_tail, pid_matches
from .progress import Progress
from .prometheus import Prometheus, ScrapeTarget, prometheus_executable, promtool_executable
from .registry import Registry, registry_executable
from .service import Service, supervise
from .sidecar import Sidecar, sidecar_env
from .stack import Stack
from .state import StateWriter, down, load_state, recorded_processes, state_file, state_ports, up_alive
from .tools import connect_health_executable, require_java
from .worker import Request, RequestLog, Worker

__all__ = [
    "Broker", "DEBEZIUM_VERSION", "FetchFailed", "HOST", "JavaTooOld", "KAFKA_LEGACY_VERSION", "KAFKA_VERSION",
    "MissingTool", "NotFetched", "Port", "PortInUse", "Postgres", "Progress", "ROOT", "Request", "RequestLog",
    "Service", "ServiceFailed", "Sidecar", "Stack", "StackError", "StateWriter", "TOOLS", "TimedOut", "Worker",
    "claim_port", "connect_health_executable", "down", "fetch_debezium", "fetch_kafka", "foreground", "free_port",
    "has_health_endpoint", "http", "is_listening", "listening", "load_state", "log_tail", "pid_matches",
    "port_is_free", "recorded_processes", "require_fetched", "require_java", "sidecar_env", "state_file",
    "state_ports", "supervise", "up_alive", "wait_until",
    "Registry", "registry_executable",
    "Prometheus", "ScrapeTarget", "prometheus_executable", "promtool_executable",
]
