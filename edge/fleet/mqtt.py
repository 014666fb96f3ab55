"""One way to open an MQTT connection to the site's broker: TLS with the site CA pinned,
a client certificate, a user and a password; paho-mqtt 2 with automatic reconnects.

Certificates come as PEM text (from a bundle or the hub's folder); the ssl module
wants files for the client key, so they are written once into a private folder.
"""
from __future__ import annotations

import ssl
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.gallery.files import write_private

KEEPALIVE_S = 15
RECONNECT = (1, 4)  # paho's own back-off, seconds: first try, longest wait (a door back on the network catches up within ~4 s)


def tls_context(ca_pem: str, cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def write_client_files(folder: Path, cert_pem: str, key_pem: str) -> tuple[Path, Path]:
    cert_path, key_path = folder / "client.pem", folder / "client.key"
    if not cert_path.exists() or cert_path.read_text() != cert_pem:
        write_private(cert_path, cert_pem.encode())
        write_private(key_path, key_pem.encode())
    return cert_path, key_path


def client(client_id: str, username: str, password: str, context: ssl.SSLContext, will: tuple | None = None,
           clean_start: bool = True) -> mqtt.Client:
    """A paho client, not yet connected. ``will``: (topic, payload, qos, retain) sent by the broker
    if this connection dies without saying goodbye."""
    connection = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_start,
                             protocol=mqtt.MQTTv311)
    connection.username_pw_set(username, password)
    connection.tls_set_context(context)
    connection.reconnect_delay_set(*RECONNECT)
    connection.max_inflight_messages_set(100)
    connection.max_queued_messages_set(0)
    if will is not None:
        topic, payload, qos, retain = will
        connection.will_set(topic, payload, qos=qos, retain=retain)
    return connection
