"""Training: Siamese embedding models and the attribute/liveness model."""
