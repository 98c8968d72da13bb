"""Times a Keras 3 model's `fit` per epoch: the harness of the peers `jdl/<system>/peer_keras.py`.

A peer module defines `build() -> (model, x, y, batch_size, optimizer, loss)` and ends with
`keras_fit.main(build)`; run as `python -m jdl.<system>.peer_keras EPOCHS STEPS_PER_EPOCH
STEPS_PER_EXECUTION`, it prints one JSON line with the seconds of each epoch. Each peer runs in
its own process so that its JAX state and threads do not mix with jdl's.
"""

import json
import os
import sys
import time

os.environ.setdefault('KERAS_BACKEND', 'jax')


def main(build) -> None:
  epochs, steps_per_epoch, steps_per_execution = map(int, sys.argv[1:4])
  import keras

  model, x, y, batch, optimizer, loss = build()
  model.compile(
    optimizer=optimizer, loss=loss, jit_compile=True, steps_per_execution=steps_per_execution
  )
  times = []

  class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      times.append(time.perf_counter() - self.t)

  history = model.fit(
    x,
    y,
    batch_size=batch,
    epochs=epochs,
    verbose=0,
    callbacks=[Timer()],
    steps_per_epoch=steps_per_epoch or None,
  )
  print(
    json.dumps(
      {'epoch_seconds': times, 'loss': history.history['loss'], 'keras': keras.__version__}
    )
  )
