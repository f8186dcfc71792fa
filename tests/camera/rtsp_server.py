"""A real RTSP server for the camera tests: GStreamer's gst-rtsp-server (Debian
gir1.2-gst-rtsp-server-1.0, installed by .ci/system-packages.sh), run with the *system* python3
because PyGObject comes from Debian, not from the virtual environment.

    /usr/bin/python3 tests/camera/rtsp_server.py CLIP.avi PORT [MOUNT] [--auth USER:PASSWORD]
    /usr/bin/python3 tests/camera/rtsp_server.py --record FOLDER PORT MOUNT [MOUNT ...]

Serves the MJPEG AVI clip as H.264 (x264, a keyframe every 10 frames so a client that joins or
rejoins decodes within a second) at rtsp://127.0.0.1:PORT/MOUNT, in real time. With --record it
takes published streams instead (RTSP ANNOUNCE/RECORD, as MediaMTX does) at each
rtsp://127.0.0.1:PORT/MOUNT and writes what arrives, as it is (H.264 in MPEG-TS, readable even when
the server is killed), to FOLDER/MOUNT.ts. With --auth the clip needs that login (HTTP Basic, as
many cameras take it). Prints "ready" once it listens. Runs until killed.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def record(folder: str, port: str, mounts: list[str]) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    for mount in mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        factory.set_launch(f'( rtph264depay name=depay0 ! h264parse ! mpegtsmux ! filesink location="{folder}/{mount}.ts" )')
        server.get_mount_points().add_factory("/" + mount, factory)
    return server


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help") or (sys.argv[1] == "--record" and len(sys.argv) < 5):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2)
    Gst.init(None)
    if sys.argv[1] == "--record":
        server = record(sys.argv[2], sys.argv[3], sys.argv[4:])
        if server.attach(None) == 0:
            print(f"cannot listen on 127.0.0.1:{sys.argv[3]}", flush=True)
            sys.exit(1)
        print("ready", flush=True)
        GLib.MainLoop().run()
        return
    args = sys.argv[1:]
    login = None
    if "--auth" in args:
        at = args.index("--auth")
        login = args[at + 1]
        del args[at:at + 2]
    clip, port = args[0], args[1]
    mount = "/" + (args[2] if len(args) > 2 else "clip").lstrip("/")
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{clip}" ! avidemux ! jpegdec ! videoconvert ! video/x-raw,format=I420 '
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 bframes=0 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    if login is not None:  # the clip for the "viewer" role only, which the login gives
        user, _, password = login.partition(":")
        auth, token = GstRtspServer.RTSPAuth(), GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        allowed = GstRtspServer.RTSPPermissions()
        for action in ("media.factory.access", "media.factory.construct"):
            allowed.add_permission_for_role("viewer", action, True)
        factory.set_permissions(allowed)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
