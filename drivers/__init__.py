"""Device drivers: cameras, microphones and serial sensors.

Drivers never import ``agent``; heavy or platform-only imports (picamera2,
sounddevice, serial) happen inside ``open()`` so that a config can be
validated on any machine.
"""
