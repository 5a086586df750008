"""Kafka with TLS and SASL/SCRAM on 127.0.0.1, and a Connect worker started on properties given as they are (the
chart's rendered ones).

- ``make_tls(dir)``: a CA, the broker's keystore (certificate for IP 127.0.0.1), a client keystore for mutual TLS
  and a truststore holding the CA, made by openssl and the JDK's keytool, all PKCS12 with one password.
- ``SecureBroker``: the single-node KRaft broker of ``broker.Broker`` with three more listeners: ``SSL`` (client
  certificates required), ``SASL_PLAINTEXT`` (SCRAM-SHA-512) and ``SASL_SSL`` (SCRAM-SHA-256). Its SCRAM users are
  written by Kafka's own storage tool (``kafka-storage format --add-scram``) when the storage is formatted.
- ``PropertiesWorker``: a ``worker.Worker`` whose properties file is exactly the mapping it is given; extra JVM
  options (a log configuration, a java agent) and environment (``POD_IP``) as a pod would have them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .broker import Broker
from .errors import StackError
from .jvm import java_command, kafka_cluster_id, write_properties
from .net import HOST, Port, claim_port
from .pins import KAFKA_VERSION
from .process import log_tail
from .tools import require_java
from .worker import Worker


@dataclass(frozen=True)
class TlsFiles:
    """What make_tls wrote: PKCS12 stores sharing one password, the CA certificate in PEM, and the client's
    certificate and PKCS#8 key in PEM (what a cert-manager Secret holds as tls.crt and tls.key)."""

    ca_pem: Path
    truststore: Path
    broker_keystore: Path
    client_keystore: Path
    password: str
    client_cert_pem: Path
    client_key_pem: Path


def _run(cmd: Sequence[str], cwd: Path) -> None:
    try:
        r = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise StackError(f"{cmd[0]} is missing (apt-get install -y openssl; a JDK brings keytool)") from None
    if r.returncode != 0:
        raise StackError(f"{Path(cmd[0]).name} {cmd[1]} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")


def make_tls(directory: Path, password: str, version: str = KAFKA_VERSION) -> TlsFiles:
    """A CA, a broker certificate for 127.0.0.1, a client certificate, and the PKCS12 stores Kafka reads."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
          "-keyout", "ca.key", "-out", "ca.pem"], d)
    for name, ext in (("broker", f"subjectAltName=IP:{HOST}"), ("client", "extendedKeyUsage=clientAuth")):
        _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
              "-out", f"{name}.csr"], d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem"], d)
        _run(["openssl", "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key", "-name", name,
              "-passout", f"pass:{password}", "-out", f"{name}.p12"], d)
    keytool = Path(os.path.realpath(require_java(version))).with_name("keytool")
    _run([str(keytool), "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-storetype", "PKCS12",
          "-keystore", "truststore.p12", "-storepass", password], d)
    return TlsFiles(d / "ca.pem", d / "truststore.p12", d / "broker.p12", d / "client.p12", password,
                    d / "client.pem", d / "client.key")


class SecureBroker(Broker):
    """A Broker with SSL (mutual TLS), SASL_PLAINTEXT (SCRAM-SHA-512) and SASL_SSL (SCRAM-SHA-256) listeners beside
    PLAINTEXT (inter-broker traffic and the readiness check). ``scram_users``: {user: password}, each created for
    both SCRAM mechanisms."""

    def __init__(self, workdir: str | os.PathLike[str], tls: TlsFiles, scram_users: Mapping[str, str],
                 version: str = KAFKA_VERSION, name: str = "secure-broker") -> None:
        super().__init__(workdir, version, name=name)
        self.tls = tls
        self.scram_users = dict(scram_users)
        self.ssl = claim_port(None, "Kafka SSL listener", "-")
        self.sasl_plaintext = claim_port(None, "Kafka SASL_PLAINTEXT listener", "-")
        self.sasl_ssl = claim_port(None, "Kafka SASL_SSL listener", "-")

    def ports(self) -> list[Port]:
        return [*super().ports(), self.ssl, self.sasl_plaintext, self.sasl_ssl]

    def bootstrap_of(self, protocol: str) -> str:
        port = {"SSL": self.ssl, "SASL_PLAINTEXT": self.sasl_plaintext, "SASL_SSL": self.sasl_ssl}[protocol]
        return f"{HOST}:{port.number}"

    def properties(self) -> dict[str, Any]:
        props = super().properties()
        extra = {name: self.bootstrap_of(name) for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL")}
        props["listeners"] += "".join(f",{name}://{address}" for name, address in extra.items())
        props["advertised.listeners"] += "".join(f",{name}://{address}" for name, address in extra.items())
        props["listener.security.protocol.map"] += "".join(f",{name}:{name}" for name in extra)
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        props.update({
            "ssl.keystore.location": str(self.tls.broker_keystore),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.password": self.tls.password,
            "ssl.key.password": self.tls.password,
            "ssl.truststore.location": str(self.tls.truststore),
            "ssl.truststore.type": "PKCS12",
            "ssl.truststore.password": self.tls.password,
            "listener.name.ssl.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-256",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        })
        return props

    def prepare(self) -> None:
        """Format the storage with the SCRAM users (Kafka's storage tool, --add-scram), then as Broker does."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "meta.properties").exists():
            write_properties(self.config, self.properties())
            args = ["format", "-t", kafka_cluster_id(), "-c", str(self.config)]
            for user, password in self.scram_users.items():
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
            cmd = java_command(self.version, "256m", "broker", "kafka.tools.StorageTool", args)
            log = self.dir / "format.log"
            with open(log, "wb") as out:
                r = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=90,
                                   cwd=self.dir, start_new_session=True, check=False)
            if r.returncode != 0:
                raise StackError(f"formatting KRaft storage with SCRAM users failed (exit {r.returncode}); last "
                                 f"lines of {log}:\n{log_tail(log)}")
        super().prepare()

    def describe(self) -> str:
        return (f"Kafka {self.version} broker on {self.bootstrap} (SSL {self.bootstrap_of('SSL')}, SASL_PLAINTEXT "
                f"{self.bootstrap_of('SASL_PLAINTEXT')}, SASL_SSL {self.bootstrap_of('SASL_SSL')})")


class PropertiesWorker(Worker):
    """A Connect worker started on exactly ``props`` (e.g. the chart's rendered worker properties with its mount
    paths replaced by local ones); its REST port is taken from ``listeners`` (``http://host:port``). ``jvm_options``
    are added to the java command line (a log configuration, a -javaagent), ``env`` to the environment."""

    def __init__(self, workdir: str | os.PathLike[str], props: Mapping[str, str], version: str = KAFKA_VERSION,
                 jvm_options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 name: str = "chart-worker") -> None:
        listener = props.get("listeners", "")
        port = listener.rsplit(":", 1)[-1]
        if not listener.startswith(f"http://{HOST}:") or not port.isdigit():
            raise ValueError(f"listeners must be http://{HOST}:<port>, got {listener!r}")
        super().__init__(workdir, version, bootstrap=props["bootstrap.servers"], rest_port=int(port),
                         group_id=props.get("group.id", "connect-local"), name=name, jvm_options=jvm_options)
        self.props = dict(props)
        self.extra_env = dict(env or {})

    def properties(self) -> dict[str, Any]:
        return dict(self.props)

    def env(self) -> Mapping[str, str] | None:
        return {**os.environ, **self.extra_env}
