"""An AsyncAPI 3.0 document of the terminal's MQTT interface, generated from the JSON Schemas (docs/asyncapi.yaml).

docs/mqtt.md is for people; this is for tools (code generators, catalogues, contract tests). Both come from
``agent/schemas/*.json`` and the command table, so they cannot drift from what the agent publishes:
``python -m agent.apidocs --write`` rewrites both and a test fails while either is stale.

Payload schemas are embedded as JSON Schema draft 2020-12 (``schemaFormat``), each as published under its
``$id``, except that the ``$id`` becomes an ``x-schema-id`` and ``$ref: envelope.json`` points inside this
document: an AsyncAPI parser resolves references against the document, and the URLs are not served yet.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from agent import __version__
from agent.commands import COMMANDS
from agent.pipelines.registry import EVENT_TYPES
from agent.schemas import load_schema

SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
TERMINAL = "{prefix}/{store_id}/{terminal_id}"
PARAMETERS: dict[str, dict[str, Any]] = {
    "prefix": {"description": "mqtt.topic_prefix of the terminal's config.", "default": "store"},
    "store_id": {"description": "store.id: the store the terminal belongs to."},
    "terminal_id": {"description": "terminal.id: the terminal, unique within its store."},
}
QOS1 = {"mqtt": {"qos": 1, "bindingVersion": "0.2.0"}}
RETAINED = {"mqtt": {"qos": 1, "retain": True, "bindingVersion": "0.2.0"}}


def _embedded(name: str) -> dict[str, Any]:
    """The schema ``name`` ready to sit inside this document (see the module docstring)."""
    schema = copy.deepcopy(load_schema(name))
    schema_id = schema.pop("$id")
    schema.pop("$schema", None)

    def local(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("#/components/schemas/envelope/schema" if k == "$ref" and v == "envelope.json" else local(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [local(v) for v in node]
        return node

    return {"x-schema-id": schema_id, **local(schema)}


def _message(name: str, title: str, summary: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
    }


def _channel(address: str, message: str, description: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters = {p: {"$ref": f"#/components/parameters/{p}"} for p in (*PARAMETERS, *(extra or {}))}
    return {
        "address": f"{TERMINAL}/{address}",
        "description": description,
        "parameters": parameters,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }


def _operation(action: str, channel: str, message: str, summary: str, bindings: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "bindings": bindings,
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document, from the terminal's point of view (``send`` is what it publishes)."""
    commands = ", ".join(sorted(COMMANDS))
    channels: dict[str, Any] = {
        "status": _channel("status", "status", "Retained online/offline state; also the terminal's last will."),
        "health": _channel("health", "health", "Retained health report, every mqtt.health_interval_s."),
        "ack": _channel("ack", "ack", "The hub's signed acknowledgements (mqtt.ack: hub)."),
        "command": _channel("cmd/{command}", "command", "Signed commands from the hub.", {"command": None}),
        "commandReply": _channel(
            "cmd/{command}/reply", "command-reply", "The terminal's reply to each command.", {"command": None}
        ),
    }
    operations: dict[str, Any] = {
        "publishStatus": _operation("send", "status", "status", "Birth, last will and clean stop.", RETAINED),
        "publishHealth": _operation("send", "health", "health", "The terminal's health.", RETAINED),
        "receiveAck": _operation("receive", "ack", "ack", "Acknowledged events leave the outbox.", QOS1),
        "receiveCommand": {
            **_operation("receive", "command", "command", f"A command ({commands}).", QOS1),
            "reply": {
                "channel": {"$ref": "#/channels/commandReply"},
                "messages": [{"$ref": "#/channels/commandReply/messages/command-reply"}],
            },
        },
    }
    messages = {
        "status": _message("status", "Status", "online / offline, version, pipelines, terminal key."),
        "health": _message("health", "Health", "Sources, queues, outbox, MQTT, commands, the board."),
        "ack": _message("ack", "Ack", "event_ids the hub stored, signed."),
        "command": _message("command", "Command", "A signed request (issued_at, expires_at, nonce)."),
        "command-reply": _message("command-reply", "Command reply", "ok, result or error, with the request id."),
    }
    schemas: dict[str, Any] = {
        name: {"schemaFormat": SCHEMA_FORMAT, "schema": _embedded(name)}
        for name in ("envelope", "status", "health", "ack", "command", "command-reply")
    }
    for event_type, cls in sorted(EVENT_TYPES.items()):
        schema = load_schema(event_type)
        key = f"event.{event_type}"
        summary = (cls.__doc__ or "").strip().split("\n")[0]
        channels[key] = _channel(f"events/{event_type}", event_type, str(schema.get("description") or summary))
        operations[f"publish.{event_type}"] = _operation(
            "send", key, event_type, f"{summary} Retention when the outbox is full: {cls.RETENTION.value}.", QOS1
        )
        messages[event_type] = _message(event_type, event_type, summary)
        schemas[event_type] = {"schemaFormat": SCHEMA_FORMAT, "schema": _embedded(event_type)}
    parameters: dict[str, Any] = {
        **PARAMETERS,
        "command": {"description": "Command name.", "enum": sorted(COMMANDS)},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Store edge agent: terminal MQTT interface",
            "version": __version__,
            "description": (
                "What one store terminal publishes and accepts over MQTT (generated from agent/schemas by "
                "`python -m agent.apidocs --write`; docs/mqtt.md says the same for people: delivery guarantees, "
                "trust). Payloads are UTF-8 JSON; events are at-least-once: de-duplicate by event_id."
            ),
            "license": {"name": "Apache-2.0", "url": "https://www.apache.org/licenses/LICENSE-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "store-broker": {
                "host": "{host}:{port}",
                "protocol": "mqtt",
                "description": "The store's broker (mqtt.host, mqtt.port; MQTT 5 or 3.1.1, TLS optional).",
                "variables": {"host": {"default": "127.0.0.1"}, "port": {"default": "1883"}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages, "parameters": parameters},
    }


def render() -> str:
    header = "# Generated by `python -m agent.apidocs --write` from agent/schemas/*.json; do not edit by hand.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=120)
