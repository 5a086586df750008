"""connect-health against a REAL Connect worker whose REST API is HTTPS with client certificates required (mTLS).

The worker listens twice: plain HTTP (advertised, so its worker id and the launcher's readiness check use it) and
HTTPS with `ssl.client.auth=required`. The sidecar talks only to the HTTPS listener with --connect-ca-file,
--connect-client-cert and --connect-client-key. Certificates are made by openssl for this test: a CA, a server
certificate for 127.0.0.1, and a client certificate.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import launcher
from probing import connector_entry, wait_for

SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
PASSWORD = "test-store-pass"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)
    # The worker's keystore (its key and certificate) and truststore (the CA that signs client certificates).
    openssl("pkcs12", "-export", "-in", "server.pem", "-inkey", "server.key", "-name", "server",
            "-passout", f"pass:{PASSWORD}", "-out", "server.p12", cwd=d)
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-storetype",
                    "PKCS12", "-keystore", "trust.p12", "-storepass", PASSWORD], cwd=d, check=True,
                   capture_output=True, timeout=60)


def test_sidecar_reaches_an_https_worker_with_a_client_certificate(
        stack_factory: Callable[..., launcher.Stack], kafka_version: str, workdir: Path) -> None:
    certs = workdir / "certs"
    make_certs(certs)
    http_port, https_port = launcher.free_port(), launcher.free_port()
    stack = stack_factory(kafka_version, rest_port=http_port, worker_props={
        "listeners": f"http://127.0.0.1:{http_port},https://127.0.0.1:{https_port}",
        "rest.advertised.listener": "http",
        "listeners.https.ssl.keystore.location": str(certs / "server.p12"),
        "listeners.https.ssl.keystore.type": "PKCS12",
        "listeners.https.ssl.keystore.password": PASSWORD,
        "listeners.https.ssl.key.password": PASSWORD,
        "listeners.https.ssl.truststore.location": str(certs / "trust.p12"),
        "listeners.https.ssl.truststore.type": "PKCS12",
        "listeners.https.ssl.truststore.password": PASSWORD,
        "listeners.https.ssl.client.auth": "required",
    })
    src = workdir / "in.txt"
    src.write_text("x\n")
    stack.worker.put_connector("tls-src", {"connector.class": SOURCE, "tasks.max": "1", "file": str(src),
                                           "topic": "tls-lines"})
    stack.worker.wait_connector_state("tls-src")
    url = f"https://127.0.0.1:{https_port}"
    common = ["--poll-interval", "0.5", "--connect-ca-file", str(certs / "ca.pem"),
              "--worker-id", stack.worker.worker_id]

    # A CA bundle in the environment (as many images set) must not override --connect-ca-file.
    env = {"REQUESTS_CA_BUNDLE": str(certs / "client.pem"), "CURL_CA_BUNDLE": str(certs / "client.pem")}
    with_cert = launcher.Sidecar(workdir, url, [*common, "--connect-client-cert", str(certs / "client.pem"),
                                                  "--connect-client-key", str(certs / "client.key")],
                                   name="sidecar-mtls", env=env).start()
    without_cert = launcher.Sidecar(workdir, url, common, name="sidecar-no-cert", env=env).start()
    try:
        entry = wait_for(lambda: connector_entry(with_cert, "tls-src"), 30, "the connector over HTTPS")
        assert entry["connector"]["state"] == "RUNNING" and entry["connector"]["on_this_worker"] is True
        for path in ("/livez", "/readyz", "/startupz"):
            assert with_cert.get(path)[0] == 200, path
        # The worker refuses a client without a certificate: the sidecar reports why, never the startup as done.
        status, body = wait_for(lambda: (lambda r: r if r[1]["polls"] >= 2 else None)(without_cert.get("/status")),
                                30, "two polls without a client certificate")
        assert body["worker"]["reachable"] is False and "[SSL: " in (body["worker"]["error"] or ""), body
        assert without_cert.get("/startupz")[0] == 503
    finally:
        with_cert.stop()
        without_cert.stop()
