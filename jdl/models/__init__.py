"""flax.nnx models, one family per file.

Weights carry logical axis names (`nnx.with_partitioning`); the training loop turns them into
shardings from the config's rules. Eager sharding is off, so building a model never needs a mesh.
"""

from flax import nnx

nnx.use_eager_sharding(False)
