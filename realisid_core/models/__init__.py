"""Weights and what they expect: branch descriptions, the ID projector, the Resampler, InstantID's adapter."""
