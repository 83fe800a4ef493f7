"""The terminal's side of trust, loaded at start: its own key, the hub keys it trusts, the replay memory, and
what follows from them (the command authority, the sealer that MACs everything published)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.config.schema import StoreConfig
from agent.errors import AgentError
from agent.trust.commands import CommandAuthority
from agent.trust.keys import HubPublicKey, TerminalKey, TrustKeyError, load_or_create_terminal_key, read_hub_keys
from agent.trust.messages import TerminalSealer
from agent.trust.nonces import NonceStore
from drivers.secrets import SecretError, read_secret

TRUST_DIR = "trust"


@dataclass
class TerminalTrust:
    terminal_key: TerminalKey
    hub_keys: list[HubPublicKey]
    authority: CommandAuthority
    nonces: NonceStore
    sealer: TerminalSealer | None

    def seal(self, topic: str, body: bytes) -> bytes:
        """The payload as published: with the terminal's MAC when a hub key is configured."""
        return self.sealer.seal(topic, body) if self.sealer is not None else body

    def close(self) -> None:
        self.nonces.close()


def terminal_key_path(config: StoreConfig) -> Path:
    return Path(config.trust.terminal_key_file or Path(config.storage.state_dir) / TRUST_DIR / "terminal.key")


def load_trust(config: StoreConfig, state_dir: Path) -> TerminalTrust:
    """Everything the daemon needs to authenticate; a clear error naming the setting when a key is unusable."""
    trust = config.trust
    try:
        terminal_key = load_or_create_terminal_key(terminal_key_path(config))
        credential = read_secret(None, trust.hub_keys_credential)
        hub_keys = read_hub_keys([Path(p) for p in trust.hub_keys], credential)
    except (TrustKeyError, SecretError) as exc:
        raise AgentError(f"trust: {exc}") from None
    nonces = NonceStore(state_dir / TRUST_DIR / "nonces.sqlite3")
    authority = CommandAuthority(
        hub_keys, nonces, trust.open_commands, max_ttl_s=trust.max_command_ttl_s, clock_skew_s=trust.clock_skew_s
    )
    sealer = TerminalSealer(terminal_key, hub_keys[0], config.store.id, config.terminal.id) if hub_keys else None
    return TerminalTrust(terminal_key, hub_keys, authority, nonces, sealer)
