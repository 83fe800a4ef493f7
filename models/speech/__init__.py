"""Speech models: provisioning of multi-part models, voice activity detection and recognisers."""
