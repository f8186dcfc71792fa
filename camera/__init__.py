"""srx.camera: live streaming. A source (camera, file, RTSP/HTTP URL, GStreamer pipeline, image
folder, the built-in demo scene) is read by a capture thread that always hands over the newest
frame; the runtime's Upscaler upscales it; outputs (window, recording, MJPEG web server) take the
result; stats report per-stage time, fps, drops and capture-to-output latency.

    from srx.camera.stream import stream            # the loop: stream(spec, upscaler, outputs, ...)
    from srx.camera.sources import parse_source     # --camera / --source / --demo -> SourceSpec
    from srx.camera.outputs import recording_output # .mp4 / .mkv (FFV1) / .avi / folder/ of PNGs
    from srx.camera.server import MjpegServer       # --serve HOST:PORT
"""
