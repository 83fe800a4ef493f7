"""Identity: the encrypted gallery of consenting members, consent records, audit chain, enrollment and erasure."""
