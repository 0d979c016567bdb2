"""Inference form of a trained network: BatchNorm folding and the fused native cells."""
