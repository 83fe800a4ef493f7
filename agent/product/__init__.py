"""Product recognition: visual search against the catalogue, barcode tie-in, interest events."""
