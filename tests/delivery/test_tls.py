"""TLS against mosquitto requiring client certificates, all made with openssl here."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.schema import MqttSection
from agent.delivery.broker import BrokerTls, Mosquitto
from agent.delivery.client import DeliveryError, MqttConnection
from tests.delivery.conftest import need_mosquitto


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        cwd=d,
    )


def make_cert(d: Path, name: str, ca: str, san: str | None) -> None:
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        cwd=d,
    )
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        f"{name}.pem",
        cwd=d,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", "DNS:localhost")
    make_cert(d, "client", "ca", None)
    return d


@pytest.fixture(scope="module")
def tls_broker(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    need_mosquitto()
    tls = BrokerTls(pki / "ca.pem", pki / "server.pem", pki / "server.key", require_certificate=True)
    server = Mosquitto(tmp_path_factory.mktemp("tls-broker"), tls=tls).start()
    yield server
    server.stop()


def attempt(settings: MqttSection, client_id: str, timeout: float = 6.0) -> MqttConnection:
    conn = MqttConnection(settings, client_id)
    conn.start()
    conn.wait_connected(timeout)
    conn.stop()
    return conn


def settings(port: int, pki: Path, host: str = "localhost", ca: str = "ca", client: bool = True) -> MqttSection:
    tls: dict[str, object] = {"ca_file": pki / f"{ca}.pem"}
    if client:
        tls |= {"cert_file": pki / "client.pem", "key_file": pki / "client.key"}
    return MqttSection.model_validate({"host": host, "port": port, "tls": tls})


def test_tls_with_client_certificate_connects(tls_broker: Mosquitto, pki: Path) -> None:
    conn = attempt(settings(tls_broker.port, pki), "tls-ok")
    assert conn.connects == 1 and conn.last_error is None


def test_wrong_ca_is_refused_clearly(tls_broker: Mosquitto, pki: Path) -> None:
    conn = attempt(settings(tls_broker.port, pki, ca="other-ca"), "tls-wrong-ca", 3)
    assert conn.connects == 0
    assert conn.last_error is not None and "broker certificate rejected" in conn.last_error
    assert "certificate verify failed" in conn.last_error or "unable to get local issuer" in conn.last_error


def test_host_name_is_checked(tls_broker: Mosquitto, pki: Path) -> None:
    conn = attempt(settings(tls_broker.port, pki, host="127.0.0.1"), "tls-wrong-host", 3)
    assert conn.connects == 0 and conn.last_error is not None and "mismatch" in conn.last_error


def test_missing_client_certificate_is_refused_clearly(tls_broker: Mosquitto, pki: Path) -> None:
    conn = attempt(settings(tls_broker.port, pki, client=False), "tls-no-cert", 3)
    assert conn.connects == 0
    assert conn.last_error is not None and "client certificate" in conn.last_error, conn.last_error


def test_unreadable_tls_files_are_a_clear_error(pki: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(DeliveryError, match=r"mqtt\.tls\.ca_file: cannot load CA certificate"):
        MqttConnection(MqttSection.model_validate({"tls": {"ca_file": bogus}}), "x")
