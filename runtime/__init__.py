"""srx.runtime: inference backends behind one Runner interface, and the Upscaler around them.

- `base.Runner`: LR Y batch in, HR Y batch out (numpy), activate/infer/deactivate.
- `torch_runner.TorchRunner` (reference), `onnxruntime_runner.OnnxRuntimeRunner` (CPU/CUDA/TensorRT
  providers), `tensorrt_runner.TensorRTRunner` (engines, GPU pre/post-processing).
- `select.make_runner`: the backend for a model file, `auto` = the fastest that works here.
- `upscaler.Upscaler` / `create_upscaler`: frames in, frames out (colour, alpha, tiling).
- `batch.upscale_files`: images, folders and videos (`srx upscale`); `bench.run_bench` (`srx bench`).
- `parity.parity_report`: every exported form of a model, run on its runner, against PyTorch
  (`srx parity`, `srx export --check`).

Runtime may import srx.export (the ONNX cache exports on first use; engines' sidecars are checked);
srx.export never imports srx.runtime (stages depend one way: train → export → runtime → camera).

Nothing heavy is imported here: import the module you need.
"""
