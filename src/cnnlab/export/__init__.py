"""Export trained models to ONNX and TorchScript, and run the exported files."""
