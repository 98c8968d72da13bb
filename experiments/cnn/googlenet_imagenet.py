"""GoogLeNet (paper variant) on ImageNet, the TPU recipe: 224x224 crops, SGD with momentum 0.9,
the paper's schedule (learning rate cut by 4% every 8 epochs), weight decay 2e-4 (through
optax's add_decayed_weights), batch 1024 for a v4-32 slice (16 chips, 64 per chip), data parallel
(`mesh.data=-1`) or FSDP (`--config.mesh.data=1 --config.mesh.fsdp=-1`).

Launch on every worker of a v4-32 slice:
  jdl train --multihost --config experiments/cnn/googlenet_imagenet.py --workdir gs://BUCKET/googlenet

Data: tfds `imagenet2012` prepared in $TFDS_DATA_DIR (array_record), read with tfds.data_source
and grain. Expected: the paper's single-model top-1 error is about 31% (its Table 3 reports
top-5 10.07% for one model, one crop); the paper trained with asynchronous SGD for weeks, so
expect to tune the schedule for synchronous large-batch training.
`:smoke` runs the same code on tfds mock data, 64x64 images, 8 steps: the tests run it on
8 simulated CPU devices.
"""

from jdl.config import base_config

EPOCHS = 90
TRAIN_IMAGES = 1_281_167


def get_config(arg: str | None = None):
  c = base_config()
  c.task = 'classification'
  c.data.name = 'tfds_images'
  c.data.kwargs = dict(name='imagenet2012', image_size=224)
  c.data.mean = (0.485, 0.456, 0.406)
  c.data.std = (0.229, 0.224, 0.225)
  c.model.name = 'googlenet'
  c.model.variant = 'paper'
  c.model.stem = 'imagenet'
  c.model.aux_heads = True
  c.model.num_classes = 1000
  c.model.in_channels = 3
  c.model.image_size = 224
  c.batch_size = 1024
  c.eval_batch_size = 1024
  c.num_epochs = EPOCHS
  c.dtype = 'bfloat16'
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.04  # 0.01 per 256 images, scaled to the batch
  c.optimizer.schedule = 'staircase'
  c.optimizer.kwargs.momentum = 0.9
  c.optimizer.weight_decay = 2e-4
  c.optimizer.decay_every_steps = 8 * (TRAIN_IMAGES // 1024)  # every 8 epochs ...
  c.optimizer.decay_factor = 0.96  # ... by 4%, as the paper
  c.checkpoint_every_steps = 2000
  c.eval_every_steps = 5 * (TRAIN_IMAGES // 1024)
  c.log_every_steps = 100
  if arg == 'smoke':
    c.data.kwargs = dict(name='imagenet2012', image_size=64)
    c.model.image_size = 64
    c.batch_size = 16
    c.eval_batch_size = 16
    c.num_epochs = 0
    c.num_train_steps = 8
    c.log_every_steps = 4
    c.eval_every_steps = 8
    c.checkpoint_every_steps = 8
    c.dtype = 'float32'
    c.optimizer.learning_rate = 0.01
    c.optimizer.decay_every_steps = 4
  elif arg is not None:
    raise ValueError(f'googlenet_imagenet: unknown variant {arg!r} (smoke)')
  return c
