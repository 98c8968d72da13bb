"""Generative models' tools: image grids, classifier-based scores (class distribution, Frechet
distance, translation accuracy) and the `jdl figures generative` figures."""
