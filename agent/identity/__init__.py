"""Identity of consenting members: the encrypted face gallery, consent records, audit chain, enrollment and
erasure, and member cards (keyed hashes of card UIDs)."""
