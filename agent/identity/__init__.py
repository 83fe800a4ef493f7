"""Identity of consenting members: the encrypted face gallery, consent records, audit chain, enrollment and
erasure, member cards (keyed hashes of card UIDs), identity fusion over person tracks, presence at a terminal."""
