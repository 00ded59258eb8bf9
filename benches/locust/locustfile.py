"""Locust with locust-plugins' MqttUser, in the shape of `lampi swarm raw --pattern echo`.

Each user is one lamp-shaped client with one connection: it subscribes to its own
`{prefix}/{id}/lamp/set_config` and `…/lamp/changed`, sends `set_config` at its share of the
rate, republishes every `set_config` it receives to `changed` unchanged (the echo), and times
set_config → changed from a timestamp in the payload. Through the broker that is the same four
PUBLISH packets per round trip as raw echo's app → echo client → app.

Stats rows (one per kind of message, not one per topic, which would be one per lamp):
- `publish:1:set_config`, `publish:1:changed`: publish → PUBACK (locust-plugins' own measure);
- `deliver`: set_config sent → its echo on `changed` received, in ms.

Run by benches/fleet-baselines.sh; settings come from the environment:
LAMPI_MQTT_PORT (broker port; the host is Locust's --host), LAMPI_LOCUST_RATE (set_config a
second per user), LAMPI_MQTT_QOS (0 or 1, default 1), LAMPI_LOCUST_PREFIX (topic prefix).
"""

import itertools
import json
import os
import time

import gevent
from locust import constant_throughput, task
from locust.exception import StopUser
from locust_plugins.users.mqtt import MqttClient, MqttUser

PORT = int(os.environ.get("LAMPI_MQTT_PORT", "1883"))
RATE = float(os.environ.get("LAMPI_LOCUST_RATE", "1"))
QOS = int(os.environ.get("LAMPI_MQTT_QOS", "1"))
PREFIX = os.environ.get("LAMPI_LOCUST_PREFIX", "locust")
CONNECT_TIMEOUT_S = 30

_users = itertools.count()


class KindClient(MqttClient):
    """Names events by the topic's last level (`set_config`, `changed`), not the whole topic."""

    def _generate_event_name(self, event_type, qos, topic):
        return f"{event_type}:{qos}:{topic.rsplit('/', 1)[-1]}"


class Lamp(MqttUser):
    client_cls = KindClient
    port = PORT
    wait_time = constant_throughput(RATE)

    def __init__(self, environment):
        # Unique across Locust's --processes workers, which each count their users from 0.
        self.client_id = f"{PREFIX}-{os.getpid()}-{next(_users)}"
        super().__init__(environment)
        self.lamp = f"{PREFIX}/{self.client_id}/lamp/"
        self.seq = 0
        self.client.on_message = self._on_message

    def on_start(self):
        deadline = time.time() + CONNECT_TIMEOUT_S
        while not self.client.is_connected():
            if time.time() > deadline:
                raise StopUser()
            gevent.sleep(0.05)
        self.client.subscribe(self.lamp + "set_config", qos=QOS)
        self.client.subscribe(self.lamp + "changed", qos=QOS)
        # Until the SUBACKs, a set_config could pass its subscription by.
        while self.client._subscribe_requests and time.time() < deadline:
            gevent.sleep(0.01)

    def on_stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client, userdata, message):
        if message.topic.endswith("/set_config"):
            client.publish(self.lamp + "changed", message.payload, qos=QOS)
            return
        sent = json.loads(message.payload)["t"]
        self.environment.events.request.fire(
            request_type="MQTT",
            name="deliver",
            response_time=(time.time() - sent) * 1000,
            response_length=len(message.payload),
            exception=None,
            context={"client_id": self.client_id},
        )

    @task
    def set_config(self):
        self.seq += 1
        payload = {
            "client": f"{self.client_id}-{self.seq}",
            "on": True,
            "brightness": self.seq % 1000 / 1000,
            "t": time.time(),
        }
        self.client.publish(self.lamp + "set_config", json.dumps(payload).encode(), qos=QOS)
