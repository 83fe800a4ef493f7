"""The hub side: what runs centrally for a chain of stores (fleet coordinator; consumers)."""
