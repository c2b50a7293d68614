"""The exported detector: writing a bundle (ONNX + manifest), reading it back as a detector, scoring
files with it (one process, or Spark)."""
