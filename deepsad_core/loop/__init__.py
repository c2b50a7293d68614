"""The labeling loop: one round (train, score, threshold, queue), the queue's strategies, estimates over
the pool, the label audit, the latent map, and the simulated expert."""
