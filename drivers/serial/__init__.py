"""Serial sensors: NFC member-card readers (PN532, ASCII/RDM6300) and barcode scanners, live or replayed."""
