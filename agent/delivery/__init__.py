"""Delivery: the durable outbox, the MQTT publisher, status / health / commands, sd_notify and the daemon."""
