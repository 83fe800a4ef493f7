"""A real RTSP server for tests: gst-rtsp-server streaming an MJPEG AVI file as RTP/JPEG.

Run with the system Python that has PyGObject and the GstRtspServer typelib
(Debian: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good):

    python3 rtsp_server.py PORT /path/to/video_mjpeg.avi

It prints ``READY`` once it listens on 127.0.0.1:PORT at /live; the stream
ends with the file. Tests kill and restart it mid-stream.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, path = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    # re-encoded by jpegenc: rtpjpegpay needs baseline JPEG without the extras some AVI writers add
    factory.set_launch(
        f'( filesrc location="{path}" ! avidemux ! jpegdec ! videoconvert ! jpegenc quality=85 '
        "! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
