"""End-to-end trust between the hub and its terminals, independent of the broker (which is not trusted).

- The hub signs what changes a terminal's state or deletes its events (commands, acks) with Ed25519.
- A terminal authenticates what it sends (events, status, health, replies) with HMAC-SHA256 under a key only it
  and the hub can derive (X25519 between the terminal's key and the hub's): fast enough for every event.

``keys`` holds the keys, ``envelope`` how an authenticator rides in a JSON payload, ``nonces`` the replay memory.
"""
