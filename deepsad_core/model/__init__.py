"""Networks and how they learn: the paper's networks, the Deep SAD trainer, the pretrained image
backbone, attributions, and training across processes (torchrun)."""
