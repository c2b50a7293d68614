"""The ground floor: what every layer above may use and that imports nothing of the engine but its
exceptions: atomic folder writes, the label vocabulary, scores to flags and thresholds, the ONNX writer."""
