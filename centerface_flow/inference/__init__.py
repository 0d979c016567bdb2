"""Images -> network -> decoded candidates: pre-processing, runners (MindSpore / ONNX Runtime), decoding, the
candidates file."""
