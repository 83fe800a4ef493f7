"""Model manifest, provisioning and thin inference wrappers.

``models`` may import ``drivers`` (for frame types) but never ``agent``.
"""
