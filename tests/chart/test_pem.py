"""PEM stores (issue 19): a cert-manager Secret (`ca.crt`, `tls.crt`, `tls.key`) works for the worker and every
client prefix with no password rendered: Kafka refuses `ssl.truststore.password` / `ssl.keystore.password` with
PEM stores at startup. tests/integration/test_kafka_security.py runs the same properties against a real SSL listener."""

from __future__ import annotations

from typing import Any

from .render import Render, one, properties

BOOT = {"bootstrapServers": "kafka:9093"}
PREFIXES = ("", "producer.", "consumer.", "admin.")
TLS = "/mnt/kafka/tls"


def client_props(render: Render, tls: dict[str, Any]) -> dict[str, str]:
    values = {**BOOT, "kafka": {"tls": {"enabled": True, "existingSecret": "connect-tls", **tls}}}
    cm = one(render(values, show_only=["templates/configmap.yaml"]), "ConfigMap")
    return properties(cm["data"]["connect-distributed.properties"])


CERT_MANAGER = {"truststore": {"key": "ca.crt", "type": "PEM"}, "keystore": {"key": "tls.crt", "type": "PEM"}}


def test_cert_manager_secret_renders_pem_stores_for_every_client(render: Render) -> None:
    props = client_props(render, CERT_MANAGER)
    for p in PREFIXES:
        assert props[f"{p}security.protocol"] == "SSL"
        assert props[f"{p}ssl.truststore.type"] == "PEM"
        assert props[f"{p}ssl.truststore.location"] == f"{TLS}/ca.crt"
        assert props[f"{p}ssl.keystore.type"] == "PEM"
        # Two files in the Secret: the chain and the key, read by the directory provider at startup.
        assert props[f"{p}ssl.keystore.certificate.chain"] == "@@kafka-secret:tls/tls.crt@@"
        assert props[f"{p}ssl.keystore.key"] == "@@kafka-secret:tls/tls.key@@"
        assert f"{p}ssl.keystore.location" not in props
    assert not [k for k in props if "password" in k]


def test_pem_truststore_alone_renders_no_password(render: Render) -> None:
    props = client_props(render, {"truststore": {"key": "ca.crt", "type": "PEM"}})
    assert props["ssl.truststore.type"] == "PEM" and "ssl.keystore.type" not in props
    assert not [k for k in props if "password" in k]


def test_an_encrypted_pem_key_gets_only_its_key_password(render: Render) -> None:
    tls = {**CERT_MANAGER, "keystore": {**CERT_MANAGER["keystore"], "keyPasswordKey": "key.password"}}
    props = client_props(render, tls)
    for p in PREFIXES:
        assert props[f"{p}ssl.key.password"] == "@@kafka-secret:tls/key.password@@"
    assert [k for k in props if "password" in k and not k.endswith("ssl.key.password")] == []


def test_the_private_key_item_is_a_value(render: Render) -> None:
    tls = {**CERT_MANAGER, "keystore": {**CERT_MANAGER["keystore"], "privateKeyKey": "client.key"}}
    assert client_props(render, tls)["consumer.ssl.keystore.key"] == "@@kafka-secret:tls/client.key@@"


def test_pkcs12_stores_keep_their_passwords(render: Render) -> None:
    props = client_props(render, {"keystore": {"key": "keystore.p12"}})
    assert props["admin.ssl.truststore.password"] == "@@kafka-secret:tls/truststore.password@@"
    assert props["admin.ssl.keystore.password"] == "@@kafka-secret:tls/keystore.password@@"
    assert props["admin.ssl.keystore.location"] == f"{TLS}/keystore.p12"
