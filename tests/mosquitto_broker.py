"""A real Mosquitto broker on 127.0.0.1 and a real paho subscriber, for the MQTT tests and bench/listen.py.

The broker binds a free port and can be stopped and restarted on it; with `users` it refuses
anonymous clients and checks passwords (mosquitto_passwd); with `persistent` it keeps retained
messages and offline sessions across a restart, as a real installation does.
"""

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

STARTUP_SECONDS = 10.0


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
                 persistent: bool = False):
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
    messages for it while it is away, like a Home Assistant that reconnects.
    """

    def __init__(self, port: int, topics=("#",), client_id: str | None = None, username=None, password=None):
        self.messages = []
        self.arrival_times = []  # time.time() of each message, for latency measurements
        self._cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  clean_session=client_id is None)
        if username:
            self.client.username_pw_set(username, password)
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
