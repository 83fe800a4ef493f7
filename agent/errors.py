"""Errors the CLI maps to exit codes, importable without loading the runtime."""

from __future__ import annotations


class AgentError(Exception):
    """The agent cannot run with this config (a message for the operator; exit code 78)."""
