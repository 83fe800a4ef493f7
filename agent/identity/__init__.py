"""Identity of consenting members: the encrypted face gallery, consent records, audit chain, enrollment and
erasure, and member cards (keyed hashes of card UIDs)."""

#: RuntimeContext service: a callable returning the member identified at this terminal lately, or None (set by the
#: face pipeline, read by speech).
MEMBER_AT_TERMINAL_SERVICE = "identity.member_at_terminal"
