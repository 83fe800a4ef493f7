"""The store edge agent daemon: pipelines, identity, events, delivery, config and CLI."""

__version__ = "0.1.0"
