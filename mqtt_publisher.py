"""Publish detection events to an MQTT broker with paho-mqtt 2.x, and survive broker outages.

Topics under a prefix (default audio2mqtt/<device name>):
    <prefix>/event          one JSON object per event (QoS 1, not retained)
    <prefix>/<label>/state  ON / OFF (retained)
    <prefix>/availability   online / offline (retained; offline is also the last will)
    <prefix>/<label>/not_this   PRESS: the last event of <label> was a false alarm (with feedback on)
    <prefix>/level          dBFS of the audio heard, every few seconds (QoS 0, only while connected)
    <prefix>/heard          {"event_type": <label>, ...} per start event, for HA's event entity (with discovery)
    homeassistant/binary_sensor/<node>/<label>/config   Home Assistant discovery (retained, optional)
    homeassistant/button/<node>/<label>_not_this/config  its "Not a <label>" button (with feedback on)
    homeassistant/sensor/<node>/level/config, homeassistant/event/<node>/heard/config  the listener's own

Events wait in a bounded queue (when full the oldest is dropped, with a warning) and go to paho
one at a time, each after the broker acknowledged the previous one, so a reconnect never loses
or reorders them: paho itself resends the one in flight.
"""

import collections
import json
import os
import re
import socket
import ssl
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from audio_util import to_stderr
from detection import SensorStates
from params import LISTEN, MQTT_CONFIG_FILE, MQTT_PASSWORD_ENV_VAR, MQTT_USERNAME_ENV_VAR

_SENDING = -1  # _in_flight while publish() runs: paho's message ids are 1..65535

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: a certificate for another host.
HOST_MISMATCH_CODES = {62, 64}

# CONNACK refusals that retrying cannot fix (paho names them alike for MQTT 3.1.1 and 5).
LOGIN_REFUSALS = {"Bad user name or password", "Not authorized"}


class MqttError(Exception):
    """A fatal MQTT problem (refused login, failed TLS, unreadable config); one actionable line."""


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to connect. Credentials come from `read_credentials`, never from the command line."""

    host: str
    port: int = LISTEN.mqtt_port
    username: str | None = None
    password: str | None = None
    tls: bool = False
    cafile: Path | None = None
    keepalive: int = LISTEN.keepalive_seconds


def read_credentials(config_path=None, environ=os.environ) -> tuple[str | None, str | None]:
    """(username, password) from $AUDIO2MQTT_MQTT_USERNAME/_PASSWORD, else from the [mqtt] table of
    a TOML file (`config_path`, or ~/.config/audio2mqtt/mqtt.toml when it exists)."""
    username, password = environ.get(MQTT_USERNAME_ENV_VAR), environ.get(MQTT_PASSWORD_ENV_VAR)
    path = Path(config_path or MQTT_CONFIG_FILE).expanduser()
    if (username is None or password is None) and (config_path is not None or path.is_file()):
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("mqtt", {})
        except OSError as e:
            raise MqttError(f"cannot read MQTT config {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise MqttError(f"MQTT config {path} is not valid TOML ({e})") from e
        if not isinstance(table, dict) or not all(isinstance(table.get(k, ""), str) for k in ("username", "password")):
            raise MqttError(f'MQTT config {path}: expected [mqtt] with username = "..." and password = "..."')
        username = username if username is not None else table.get("username")
        password = password if password is not None else table.get("password")
    if password is not None and username is None:
        raise MqttError(f"an MQTT password without a username: set {MQTT_USERNAME_ENV_VAR} too")
    return username, password


def slug(text: str) -> str:
    """A topic- and Home-Assistant-safe id: 'Smoke detector, smoke alarm' -> 'smoke_detector_smoke_alarm'."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unnamed"


@dataclass(frozen=True)
class Topics:
    """The topic names of one listener."""

    prefix: str                  # e.g. audio2mqtt/kitchen-pi
    node: str                    # Home Assistant node id, e.g. kitchen_pi
    discovery_prefix: str = LISTEN.ha_discovery_prefix

    @property
    def event(self) -> str:
        return f"{self.prefix}/event"

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def state(self, label: str) -> str:
        return f"{self.prefix}/{slug(label)}/state"

    def discovery(self, label: str) -> str:
        return self.entity_discovery("binary_sensor", slug(label))

    @property
    def level(self) -> str:
        return f"{self.prefix}/level"

    @property
    def heard(self) -> str:
        return f"{self.prefix}/heard"

    def entity_discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    def not_this(self, label: str) -> str:
        """The command topic of the label's false-alarm button."""
        return f"{self.prefix}/{slug(label)}/not_this"

    def button_discovery(self, label: str) -> str:
        return self.entity_discovery("button", f"{slug(label)}_not_this")


def _device(topics: Topics, device_name: str) -> dict:
    return {
        "identifiers": [f"audio2mqtt_{topics.node}"],
        "name": f"audio2mqtt {device_name}",
        "manufacturer": "audio2mqtt",
        "model": "audio2mqtt sound listener",
    }


def discovery_config(topics: Topics, label: str, device_name: str) -> dict:
    """Home Assistant MQTT discovery payload: one binary sensor (device class `sound`) per label."""
    return {
        "name": label,
        "unique_id": f"audio2mqtt_{topics.node}_{slug(label)}",
        "state_topic": topics.state(label),
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "sound",
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(topics, device_name),
    }


def _listener_entity(topics: Topics, device_name: str, object_id: str) -> dict:
    return {"unique_id": f"audio2mqtt_{topics.node}_{object_id}", "availability_topic": topics.availability,
            "payload_available": "online", "payload_not_available": "offline", "device": _device(topics, device_name)}


def level_config(topics: Topics, device_name: str) -> dict:
    """Home Assistant discovery payload of the listener's level sensor (dBFS of what it hears)."""
    return {"name": "Sound level", "state_topic": topics.level, "unit_of_measurement": "dBFS",
            "state_class": "measurement", "icon": "mdi:waveform", **_listener_entity(topics, device_name, "level")}


def heard_config(topics: Topics, device_name: str, labels: list[str]) -> dict:
    """Home Assistant discovery payload of the listener's event entity: one event per sound heard."""
    return {"name": "Heard", "state_topic": topics.heard, "event_types": list(labels),
            **_listener_entity(topics, device_name, "heard")}


def button_config(topics: Topics, label: str, device_name: str) -> dict:
    """Home Assistant MQTT discovery payload of a label's "Not a <label>" button (false-alarm feedback)."""
    return {
        "name": f"Not a {label}",
        "unique_id": f"audio2mqtt_{topics.node}_{slug(label)}_not_this",
        "command_topic": topics.not_this(label),
        "payload_press": "PRESS",
        "icon": "mdi:thumb-down",
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(topics, device_name),
    }


def _reason(e: OSError) -> str:
    """The most telling short text of a socket or TLS error: the certificate check's own words first."""
    text = getattr(e, "verify_message", None) or getattr(e, "reason", None) or e.strerror or str(e)
    return text.rstrip(".") or type(e).__name__


class MqttPublisher:
    """A paho client that publishes events in order through broker outages.

    `start` connects (or warns and keeps trying), `publish_event` queues, `close` flushes and says
    offline. A refused login while running sets `fatal`, which the caller checks.
    """

    def __init__(self, settings: MqttSettings, topics: Topics, labels: list[str], device_name: str,
                 ha_discovery: bool = False, queue_size: int = LISTEN.queue_size, log=to_stderr,
                 reconnect_seconds: tuple[float, float] = (LISTEN.reconnect_min_seconds, LISTEN.reconnect_max_seconds),
                 on_feedback=None, feedback_labels: list[str] | None = None):
        """`on_feedback(label)`: listen on the not_this topic of each of `feedback_labels` (default: all;
        with discovery, offer its button); a press calls it, on paho's network thread."""
        import paho.mqtt.client as mqtt

        self.settings, self.topics, self.labels = settings, topics, list(dict.fromkeys(labels))
        self.device_name, self.ha_discovery, self.queue_size, self.log = device_name, ha_discovery, queue_size, log
        self.fatal: str | None = None
        self.dropped = 0
        self.on_feedback = on_feedback
        self._by_command = {topics.not_this(label): label
                            for label in (self.labels if feedback_labels is None else feedback_labels)}
        # OFF for every label we own until an event says otherwise, re-sent on every connect: a listener
        # killed while a sound was ON leaves that retained ON, and its restart clears it
        self._states = {label: "OFF" for label in self.labels}
        self._sensors = SensorStates(self.labels)
        self._pending = collections.deque()  # (topic, payload, retain) not yet handed to paho
        self._in_flight = None               # mid handed to paho and not yet acknowledged
        self._acked = set()
        self._cond = threading.Condition()
        self._connected = False
        self._was_connected = False
        self._closing = False
        self._connack = threading.Event()
        self._refused = False            # a CONNACK said no (already reported)
        self._closed_unanswered = False  # the broker hung up before any CONNACK, e.g. plain MQTT to a TLS port

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"audio2mqtt-{topics.node}-{os.getpid()}", protocol=mqtt.MQTTv311)
        client.will_set(topics.availability, "offline", qos=1, retain=True)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            try:
                client.tls_set(ca_certs=str(settings.cafile) if settings.cafile else None)
            except OSError as e:  # missing or unreadable file, or not PEM (ssl.SSLError is an OSError)
                raise MqttError(f"cannot load CA certificate {settings.cafile} ({_reason(e)}): "
                                f"--cafile wants the broker's CA certificate as a PEM file") from e
        client.reconnect_delay_set(*reconnect_seconds)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged by the broker."""
        with self._cond:
            return len(self._pending) + (self._in_flight is not None)

    def start(self, timeout: float = LISTEN.connect_timeout_seconds) -> bool:
        """Connect and start the network and sender threads; True once the broker accepted us.

        An unreachable broker is not fatal (we keep retrying with backoff); a refused login or a
        failed TLS handshake raises MqttError.
        """
        reachable = True
        try:
            self._client.connect(self.settings.host, self.settings.port, self.settings.keepalive)
        except ssl.SSLError as e:
            if getattr(e, "verify_code", None) in HOST_MISMATCH_CODES:
                hint = "give --mqtt-host as a name or address the broker's certificate was issued for"
            else:
                hint = "check --cafile and that the broker speaks TLS on this port"
            raise MqttError(f"TLS with MQTT broker {self.where} failed ({_reason(e)}): {hint}") from e
        except OSError as e:  # refused, unreachable, unknown host: the broker may come up later
            if self.settings.tls and isinstance(e, (ConnectionResetError, ConnectionAbortedError)):
                raise MqttError(f"TLS with MQTT broker {self.where} failed: it closed the connection during the "
                                f"handshake ({_reason(e)}); check that it speaks TLS on this port "
                                f"(usually {LISTEN.mqtt_tls_port})") from e
            self.log(f"warning: MQTT broker {self.where} unreachable ({_reason(e)}); listening anyway, "
                     f"events are queued and sent when it is back")
            reachable = False
        self._client.loop_start()
        self._sender.start()
        if reachable:
            self._connack.wait(timeout)
        if self.fatal:
            self._client.loop_stop()
            raise MqttError(self.fatal)
        with self._cond:
            connected = self._connected
        if reachable and not connected and not self._refused:
            why = "closed the connection without answering" if self._closed_unanswered else \
                f"did not answer within {timeout:g} s"
            hint = "" if self.settings.tls else f" (if it speaks only TLS, as on port {LISTEN.mqtt_tls_port}, add --tls)"
            self.log(f"warning: MQTT broker {self.where} {why}{hint}; listening anyway, retrying")
        return connected

    def publish_event(self, event: dict) -> None:
        """Queue an event for `<prefix>/event` and, when it changes, its label's retained ON/OFF state
        (ON while any method hears the label: see detection.SensorStates)."""
        with self._cond:
            state = self._sensors.update(event)
            if state is not None:
                self._states[event["label"]] = state
        self._enqueue(self.topics.event, json.dumps(event), False)
        if state is not None:
            self._enqueue(self.topics.state(event["label"]), state, True)
        if self.ha_discovery and event["event"] == "start":  # HA's event entity wants "event_type"
            self._enqueue(self.topics.heard, json.dumps({"event_type": event["label"], **event}), False)

    def publish_level(self, dbfs: float) -> None:
        """The level sensor's value: sent at once while connected, else dropped (a stale level is no news)."""
        with self._cond:
            connected = self._connected and not self._closing
        if connected:
            self._client.publish(self.topics.level, f"{dbfs:.1f}", qos=0, retain=False)

    def close(self, timeout: float = LISTEN.shutdown_flush_seconds, warn: bool = True) -> int:
        """Deliver what is queued (waiting up to `timeout`, also for a reconnect), publish `offline`,
        disconnect. Returns how many messages were not delivered (`warn`: and says so on the log)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if (self._pending or self._in_flight is not None) and not self._connected and not self.fatal:
                self.log(f"MQTT: waiting up to {timeout:g} s for broker {self.where} to deliver "
                         f"{len(self._pending) + (self._in_flight is not None)} queued message(s)")
            while (self._pending or self._in_flight is not None) and not self.fatal and time.monotonic() < deadline:
                self._cond.wait(0.05)
            undelivered = len(self._pending) + (self._in_flight is not None)
            connected = self._connected
            self._closing = True
            self._cond.notify_all()
        if connected and not self.fatal:
            info = self._client.publish(self.topics.availability, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except RuntimeError:
                pass  # the connection dropped meanwhile: the broker publishes our will instead
        self._client.disconnect()
        self._client.loop_stop()
        if undelivered and warn:
            self.log(f"warning: {undelivered} MQTT message(s) not delivered: broker {self.where} unreachable at exit")
        return undelivered

    # --- internals -------------------------------------------------------------------------------

    def _on_message(self, client, userdata, message) -> None:
        label = self._by_command.get(message.topic)
        # a retained PRESS (mosquitto_pub -r) would come back with every reconnect: only live presses count
        if label is not None and not message.retain and message.payload.decode(errors="replace").strip().upper() == "PRESS":
            self.on_feedback(label)

    def _enqueue(self, topic: str, payload: str, retain: bool) -> None:
        with self._cond:
            if len(self._pending) >= self.queue_size:
                self._pending.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % self.queue_size == 0:
                    self.log(f"warning: MQTT queue full ({self.queue_size} messages, broker {self.where} away): "
                             f"dropped the oldest ({self.dropped} so far)")
            self._pending.append((topic, payload, retain))
            self._cond.notify_all()

    def _send_loop(self) -> None:
        """Hand queued messages to paho one at a time, each once the previous one was acknowledged.

        paho is never called with our lock held: it runs on_publish with its own lock held.
        """
        while True:
            with self._cond:
                while not self._closing and not (self._pending and self._connected and self._in_flight is None):
                    self._cond.wait()
                if self._closing:
                    return
                topic, payload, retain = self._pending.popleft()
                self._acked.clear()
                self._in_flight = _SENDING  # counted as pending; no ack can match it yet
            mid = self._client.publish(topic, payload, qos=1, retain=retain).mid
            with self._cond:  # the broker may have been quicker than publish() returning
                self._in_flight = None if mid in self._acked else mid
                self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            if mid == self._in_flight:
                self._in_flight = None
                self._cond.notify_all()
            else:
                self._acked.add(mid)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            name = reason_code.getName()
            if name in LOGIN_REFUSALS:
                given = "" if self.settings.username is not None else "; no username was given"
                self.fatal = (f"MQTT broker {self.where} refused the login ({name}{given}): set "
                              f"{MQTT_USERNAME_ENV_VAR}/{MQTT_PASSWORD_ENV_VAR} or [mqtt] username/password in {MQTT_CONFIG_FILE}")
                client.disconnect()
            else:
                self.log(f"warning: MQTT broker {self.where} refused the connection ({name}); retrying")
            self._refused = True
            self._connack.set()
            with self._cond:
                self._cond.notify_all()
            return
        # Session-level messages first; queued events follow in order from the sender thread.
        if self.ha_discovery:
            client.publish(self.topics.entity_discovery("sensor", "level"),
                           json.dumps(level_config(self.topics, self.device_name)), qos=1, retain=True)
            client.publish(self.topics.entity_discovery("event", "heard"),
                           json.dumps(heard_config(self.topics, self.device_name, self.labels)), qos=1, retain=True)
            for label in self.labels:
                client.publish(self.topics.discovery(label),
                               json.dumps(discovery_config(self.topics, label, self.device_name)), qos=1, retain=True)
                if self.on_feedback and self.topics.not_this(label) in self._by_command:
                    client.publish(self.topics.button_discovery(label),
                                   json.dumps(button_config(self.topics, label, self.device_name)), qos=1, retain=True)
        if self.on_feedback and self._by_command:  # paho refuses an empty list
            client.subscribe([(topic, 1) for topic in self._by_command])
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        with self._cond:
            states = dict(self._states)
        for label, state in states.items():  # retained states may have been lost with a broker restart
            client.publish(self.topics.state(label), state, qos=1, retain=True)
        with self._cond:
            queued = len(self._pending) + (self._in_flight is not None)
            if self._was_connected or queued:
                self.log(f"MQTT: connected to {self.where}; delivering {queued} queued message(s)"
                         + (f", {self.dropped} dropped while away" if self.dropped else ""))
            self._connected = self._was_connected = True
            self._cond.notify_all()
        self._connack.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connack.is_set():  # during start(): let it report now instead of at its timeout
            self._closed_unanswered = True
            self._connack.set()
        with self._cond:
            was_connected, self._connected = self._connected, False
            self._cond.notify_all()
        if was_connected and not self._closing:
            self.log(f"warning: lost MQTT broker {self.where} ({reason_code.getName()}); "
                     f"listening on, events are queued and sent when it is back")


def default_device_name() -> str:
    """This machine's host name: the default --device-name."""
    return socket.gethostname().split(".")[0] or "audio2mqtt"
