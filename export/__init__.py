"""The export stage: checkpoint → ONNX (FP32, FP16 with FP32 I/O) → TensorRT engine, and the parity
check of every exported form against PyTorch.

Modules: `srx.export.onnx` (onnx_from_checkpoint, fp16_onnx_from_onnx, check_srx_onnx),
`srx.export.tensorrt` (engine_from_onnx, check_engine_sidecar, tensorrt_status, TENSORRT_API),
`srx.export.parity` (parity_report, format_parity_table). Nothing heavy is imported here.
"""
