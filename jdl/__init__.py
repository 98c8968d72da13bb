"""jdl: the classic systems of deep learning in JAX/Flax, trained by one sharded loop."""

__version__ = '0.1.0'
