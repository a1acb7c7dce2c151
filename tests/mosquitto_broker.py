"""A real Mosquitto broker on 127.0.0.1 and a real paho subscriber, for the MQTT tests and bench/listen.py.

The broker binds a free port and can be stopped and restarted on it; with `users` it refuses
anonymous clients and checks passwords (mosquitto_passwd); with `persistent` it keeps retained
messages and offline sessions across a restart, as a real installation does; with `tls` it speaks
only TLS, with a server certificate from a throwaway CA made by `make_ca` and `issue_server_cert`
(the openssl command line).
"""

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

STARTUP_SECONDS = 10.0
CERT_DAYS = 2  # throwaway certificates: valid long enough for one test run


@dataclass(frozen=True)
class ServerTls:
    """PEM files for a TLS listener: the server's certificate and key, and the CA that signed them."""

    cafile: Path
    certfile: Path
    keyfile: Path


def _openssl(*args: str) -> None:
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not installed: apt-get install -y openssl")
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr}")


def make_ca(workdir: Path, name: str = "audio2mqtt test CA") -> tuple[Path, Path]:
    """A self-signed CA (EC P-256: quick to make) in `workdir`; returns (ca.crt, ca.key)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "ca.crt", workdir / "ca.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", str(CERT_DAYS), "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def issue_server_cert(workdir: Path, ca: tuple[Path, Path], names=("127.0.0.1", "localhost")) -> ServerTls:
    """A server certificate signed by `ca` for the host `names` (IP addresses or DNS names)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = ca
    key, request, cert = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(request), "-subj", f"/CN={names[0]}")
    alt_names = ",".join(f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in names)
    extensions = workdir / "server.ext"
    extensions.write_text(f"subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n"
                          "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-set_serial", "1",
             "-days", str(CERT_DAYS), "-extfile", str(extensions), "-out", str(cert))
    return ServerTls(cafile=ca_cert, certfile=cert, keyfile=key)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Broker:
    """`mosquitto -c <config>` on 127.0.0.1:<port>; `start`, `stop` (SIGTERM, saves persistence), `restart`."""

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None,
                 persistent: bool = False, tls: ServerTls | None = None):
        if shutil.which("mosquitto") is None:
            raise RuntimeError("mosquitto not installed: apt-get install -y mosquitto")
        self.port = port or free_port()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1",
                 f"user {pwd.getpwuid(os.geteuid()).pw_name}",  # as root, mosquitto would switch to 'mosquitto'
                 f"log_dest file {self.log_path}"]
        if users:
            password_file = self.workdir / "passwords"
            password_file.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password], check=True)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if persistent:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        if tls:  # options of the listener above: it speaks only TLS
            lines += [f"cafile {tls.cafile}", f"certfile {tls.certfile}", f"keyfile {tls.keyfile}"]
        self.config = self.workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process = None

    def start(self) -> "Broker":
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read().decode(errors="replace") if self.process.poll() is not None else ""
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {err}{self.log_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""


class Subscriber:
    """A paho client that records every message under `topics` as (topic, payload str, retain flag).

    With `client_id` it keeps a persistent session (clean_session=False), so the broker queues
    messages for it while it is away, like a Home Assistant that reconnects. With `cafile` it
    connects with TLS and checks the broker's certificate against that CA.
    """

    def __init__(self, port: int, topics=("#",), client_id: str | None = None, username=None, password=None,
                 cafile: Path | None = None):
        self.messages = []
        self.arrival_times = []  # time.time() of each message, for latency measurements
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        if username:
            self.client.username_pw_set(username, password)
        if cafile:
            self.client.tls_set(ca_certs=str(cafile))
        self.client.reconnect_delay_set(0.2, 1.0)
        self.topics = list(topics)
        self.client.on_connect = lambda client, *_: [client.subscribe(t, qos=1) for t in self.topics]
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self._subscribed = threading.Event()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(STARTUP_SECONDS):
            raise RuntimeError(f"subscriber could not subscribe on port {port}")

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.arrival_times.append(time.time())
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout: float = 30.0) -> list:
        """Wait until predicate(messages) is true; return the messages (the test asserts on them)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages) and time.monotonic() < deadline:
                self._cond.wait(0.1)
            return list(self.messages)

    def payloads(self, topic: str) -> list[str]:
        with self._cond:
            return [payload for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic_filter: str, settle: float = 0.5) -> dict[str, str]:
    """The retained messages a fresh client gets for `topic_filter`: {topic: payload}."""
    subscriber = Subscriber(port, [topic_filter])
    time.sleep(settle)
    subscriber.close()
    return {topic: payload for topic, payload, was_retained in subscriber.messages if was_retained}
