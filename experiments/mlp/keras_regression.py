"""The lecture's Keras MLP: Dense(10, relu) -> Dense(2, relu) -> Dense(1), MSE loss, plain SGD.

On scikit-learn's diabetes data (standardized; fixed train/validation/test split, see
jdl/data/diabetes.py), 10 epochs of batch 32 as `model.fit(epochs=10, validation_split=0.2)`.

Launch:
  jdl train --config experiments/mlp/keras_regression.py --workdir runs/mlp
  jdl train --config experiments/mlp/keras_regression.py:sklearn --workdir runs/mlp_sklearn

Expected: prints the per-epoch `loss` / `val_loss` history and writes history.png; the
validation and test MSE end below the mean predictor's (about 0.6 against 1.0 here, in seconds).
`:sklearn` also trains sklearn's MLPRegressor((10, 2), relu, adam) and prints both test MSEs.
`:smoke` is the same run, used by the tests.
"""

from jdl.config import base_config


def get_config(arg: str | None = None):
  c = base_config()
  c.task = 'regression'
  c.data.name = 'diabetes'
  c.model.name = 'mlp'
  c.model.in_features = 10
  c.model.features = (10, 2, 1)
  c.batch_size = 32
  c.num_epochs = 10
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.01  # Keras' SGD default
  c.compare_sklearn = arg == 'sklearn'
  if arg not in (None, 'sklearn', 'smoke'):
    raise ValueError(f'keras_regression: unknown variant {arg!r} (sklearn, smoke)')
  return c
