"""Identity of consenting members: the encrypted face gallery, consent records, audit chain, enrollment and
erasure, and member cards (keyed hashes of card UIDs)."""

#: RuntimeContext service: the member last identified at this terminal (face pipeline), read by speech.
MEMBER_AT_TERMINAL_SERVICE = "identity.member_at_terminal"
