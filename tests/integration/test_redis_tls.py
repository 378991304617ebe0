"""Redis over TLS (issue 26): a real redis-server with --tls-port and
certificates that openssl makes here. A rediss:// url with the right CA
works end to end; a wrong CA, a certificate for another name, and a server
that requires a client certificate sidepush does not have are each refused,
with the reason in the log and publishes answering 503; the certificate's
name given as redis.tls.server_name, and a client certificate, are taken."""
import subprocess
import time

import pytest

from conftest import free_port, wait_port
from pushutil import CurlSSE, metric, publish, publish_ok, wait_subscribers

ROUTES = "routes:\n  - path: /events/{channel}\n    subscribe: {}\n"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def make_cert(d, name, ca, sans):
    """A certificate for name with those subjectAltNames, signed by ca."""
    (d / f"{name}.ext").write_text(f"subjectAltName={sans}\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
            cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", "IP:127.0.0.1,DNS:localhost")
    make_cert(d, "elsewhere", "ca", "DNS:redis.example")
    make_cert(d, "client", "ca", "DNS:sidepush")
    return d


class TlsRedis:
    def __init__(self, tmp, certs, cert="server", clients="no"):
        self.port = free_port()
        run = tmp / f"redis-tls-{self.port}"
        run.mkdir()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(self.port),
             "--tls-cert-file", str(certs / f"{cert}.crt"),
             "--tls-key-file", str(certs / f"{cert}.key"),
             "--tls-ca-cert-file", str(certs / "ca.crt"), "--tls-auth-clients", clients,
             "--save", "", "--appendonly", "no", "--dir", str(run)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "redis-server (TLS)")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def tls_redis(tmp_path, certs):
    servers = []

    def start(**kw):
        servers.append(TlsRedis(tmp_path, certs, **kw))
        return servers[-1]
    yield start
    for s in servers:
        s.stop()


def config(redis, host="127.0.0.1", **tls):
    keys = ", ".join(f"{k}: '{v}'" for k, v in tls.items())
    return (ROUTES + f"redis: {{ url: 'rediss://{host}:{redis.port}', key_prefix: 'test:', "
            f"reconnect_max: 200ms, tls: {{ {keys} }} }}\n")


def wait_up(sp, value=1, timeout=10):
    deadline = time.monotonic() + timeout
    while metric(sp.url, "sidepush_redis_up") != value:
        assert time.monotonic() < deadline, f"sidepush_redis_up never became {value}"
        time.sleep(0.05)


def refused(sp, reason):
    time.sleep(1)
    assert metric(sp.url, "sidepush_redis_up") == 0
    assert publish(sp, "c", "x").status_code == 503
    sp.stop()
    assert reason in sp.output, sp.output


def test_rediss_with_the_right_ca_works_end_to_end(make_sidepush, tls_redis, certs):
    redis = tls_redis()
    a, b = (make_sidepush(config(redis, ca_file=certs / "ca.crt")) for _ in range(2))
    wait_up(a)
    wait_up(b)
    s = CurlSSE(f"{b.url}/events/tls")
    try:
        wait_subscribers(b, "tls", 1)
        ids = [publish_ok(a, "tls", f"m{i}")["id"] for i in range(3)]
        assert [(e["id"], e["data"]) for e in s.events(3)] == list(zip(ids, ["m0", "m1", "m2"]))
    finally:
        s.close()


def test_a_wrong_ca_is_refused(make_sidepush, tls_redis, certs):
    redis = tls_redis()
    refused(make_sidepush(config(redis, ca_file=certs / "other-ca.crt")),
            "the server's certificate is refused: self-signed certificate in certificate chain")


def test_a_certificate_for_another_name_is_refused_unless_that_name_is_given(
        make_sidepush, tls_redis, certs):
    redis = tls_redis(cert="elsewhere")
    refused(make_sidepush(config(redis, ca_file=certs / "ca.crt")),
            "the server's certificate is refused: IP address mismatch")
    named = make_sidepush(config(redis, ca_file=certs / "ca.crt", server_name="redis.example"))
    wait_up(named)
    unchecked = make_sidepush(config(redis, ca_file=certs / "ca.crt") .replace(
        "tls: {", "tls: { verify_hostname: false,"))
    wait_up(unchecked)


def test_a_server_that_requires_a_client_certificate(make_sidepush, tls_redis, certs):
    redis = tls_redis(clients="yes")
    # The alert, or the reset that may overtake it: "TLS: ..." either way.
    refused(make_sidepush(config(redis, ca_file=certs / "ca.crt")), "commands: TLS: ")
    with_cert = make_sidepush(config(redis, ca_file=certs / "ca.crt",
                                     cert_file=certs / "client.crt",
                                     key_file=certs / "client.key"))
    wait_up(with_cert)
    assert publish(with_cert, "c", "x").status_code == 202


def test_tls_settings_are_checked_with_the_file_position(tmp_path, certs):
    from conftest import SIDEPUSH
    cases = [
        ("redis: { url: 'redis://127.0.0.1:1', tls: { ca_file: '%s' } }" % (certs / "ca.crt"),
         "redis.tls needs a rediss://"),
        ("redis: { url: 'rediss://127.0.0.1:1', tls: { cert_file: '%s' } }"
         % (certs / "client.crt"), "go together"),
        ("redis: { url: 'rediss://127.0.0.1:1', tls: { ca_file: '/nonexistent/ca.pem' } }",
         "cannot read '/nonexistent/ca.pem'"),
        ("redis: { url: 'redisx://127.0.0.1:1' }", "only redis:// and rediss://"),
    ]
    for text, message in cases:
        cfg = tmp_path / "redis.yaml"
        cfg.write_text("backend: { url: 'http://127.0.0.1:9' }\n" + text + "\n")
        r = subprocess.run([SIDEPUSH, "--check-config", str(cfg)], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 1 and message in r.stderr and f"{cfg}:" in r.stderr, r.stderr
