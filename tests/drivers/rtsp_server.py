"""A real RTSP server for tests: gst-rtsp-server streaming an MJPEG AVI file as RTP/JPEG.

Run with the system Python that has PyGObject and the GstRtspServer typelib
(Debian: python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good):

    python3 rtsp_server.py PORT /path/to/video_mjpeg.avi [--user NAME --password SECRET] [--tcp-only]

It prints ``READY`` once it listens on 127.0.0.1:PORT at /live; the stream
ends with the file. Tests kill and restart it mid-stream. With ``--user`` the
stream needs HTTP basic credentials; with ``--tcp-only`` it refuses RTP over UDP.
"""

import argparse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port")
    parser.add_argument("path")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tcp-only", action="store_true")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(args.port)
    factory = GstRtspServer.RTSPMediaFactory()
    # re-encoded by jpegenc: rtpjpegpay needs baseline JPEG without the extras some AVI writers add
    factory.set_launch(
        f'( filesrc location="{args.path}" ! avidemux ! jpegdec ! videoconvert ! jpegenc quality=85 '
        "! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password or ""), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role("viewer", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        raise SystemExit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
