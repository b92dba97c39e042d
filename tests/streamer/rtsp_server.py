#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's gst-rtsp-server, driven from Debian's python3-gi.

Run it under the system interpreter (the gi bindings are not in the venv):

    /usr/bin/python3 tests/streamer/rtsp_server.py --port 8554

Mounts (all on 127.0.0.1):
  /test    PLAY    a live synthetic H.264 stream (videotestsrc ball), WIDTHxHEIGHT at FPS
  /objects PLAY    two coloured objects on grey, WIDTHxHEIGHT at FPS: a red ball wandering slowly
                   (about 20 px/s from the centre; it starts over when the server does) and a
                   still blue square near the top right

With --auth every mount requires basic auth as user `viewer` with --password.
Prints one `ready` line on stdout once the port is bound; stop it with SIGTERM/SIGKILL.
"""

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def play_factory(launch: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    return factory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--auth", action="store_true", help="require basic auth on every mount")
    parser.add_argument("--password", default="s3cret-Pa55")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    testsrc = (
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={args.width},"
        f"height={args.height},framerate={args.fps}/1 ! videoconvert ! x264enc tune=zerolatency "
        f"speed-preset=ultrafast key-int-max={args.fps} bitrate=500 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    mounts.add_factory("/test", play_factory(testsrc))

    # the ball pattern advances one step per generated frame: 5 steps/s, repeated to FPS
    objects = (
        f"( compositor name=mix background=black sink_1::xpos={args.width * 3 // 4} "
        f"sink_1::ypos={args.height // 12} ! video/x-raw,width={args.width},height={args.height} "
        f"! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        "bitrate=500 ! rtph264pay name=pay0 pt=96 config-interval=1 "
        "videotestsrc is-live=true pattern=ball foreground-color=0xffff0000 "
        f"background-color=0xff808080 ! video/x-raw,width={args.width},height={args.height},"
        f"framerate=5/1 ! videorate ! video/x-raw,framerate={args.fps}/1 ! mix.sink_0 "
        "videotestsrc is-live=true pattern=solid-color foreground-color=0xff0000ff "
        f"! video/x-raw,width={args.width // 8},height={args.width // 8},framerate={args.fps}/1 "
        "! mix.sink_1 )"
    )
    mounts.add_factory("/objects", play_factory(objects))

    if args.auth:
        # Every mount needs `viewer:PASSWORD`: gst-rtsp-server only sends the 401 challenge that
        # makes FFmpeg present credentials when no anonymous default token is set.
        auth = GstRtspServer.RTSPAuth()
        viewer = GstRtspServer.RTSPToken()
        viewer.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic("viewer", args.password), viewer)
        server.set_auth(auth)
        allow = "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        for path in ("/test", "/objects"):
            mounts.match(path)[0].add_role_from_structure(Gst.Structure.from_string(allow)[0])

    if server.attach(None) == 0:
        print(f"failed to bind 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"ready rtsp://127.0.0.1:{args.port}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
