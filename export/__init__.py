"""The export stage: checkpoint → ONNX (FP32, FP16 with FP32 I/O) → TensorRT engine.

Modules: `srx.export.layouts` (export_module), `srx.export.onnx` (onnx_from_checkpoint,
fp16_onnx_from_onnx, check_srx_onnx), `srx.export.tensorrt` (engine_from_onnx, check_engine_sidecar,
tensorrt_status, TENSORRT_API). Nothing heavy is imported here.

Stages depend one way: train → export → runtime → camera. Export never imports srx.runtime; the
parity check, which runs the exported files on runners, lives in `srx.runtime.parity`.
"""
