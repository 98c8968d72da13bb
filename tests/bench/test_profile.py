"""The profile's op classes: a small compiled step's HLO classed by what each op computes, and
the tables' arithmetic on hand-made events (no timing)."""

import jax
import jax.numpy as jnp
import pytest

from jdl.bench import profile


def _hlo(fn, *args) -> profile.Hlo:
  return profile.Hlo(jax.jit(fn).lower(*args).compile().as_text())


def test_hlo_ops_are_classed_by_what_they_compute():
  x = jnp.ones((8, 16))
  w = jnp.ones((16, 4))
  q = jnp.ones((2, 3, 5, 7))  # batch, heads, positions, features

  def loss(w, x, q):
    h = x @ w  # a dense product: 8 x 16 x 4
    k = q * h.mean()  # (the gradient flows through the attention too)
    scores = jnp.einsum('bhtd,bhsd->bhts', q, k)  # attention's batched product
    probs = jax.nn.softmax(scores, axis=-1)
    norm = (h - h.mean(-1, keepdims=True)) * jax.lax.rsqrt(h.var(-1, keepdims=True) + 1e-5)
    return jax.nn.gelu(norm).sum() + probs.sum()

  def step(w, x, q):
    g = jax.grad(loss)(w, x, q)
    return w - 0.1 * jnp.sqrt(jnp.abs(g))  # an update outside the gradient

  hlo = _hlo(step, w, x, q)
  classes = {}
  for name in hlo.instrs:
    if hlo.instrs[name].computation.startswith('main'):  # the entry: what the executor runs
      cls, flops = hlo.classify(name)
      classes.setdefault(cls, []).append(flops)
  assert profile.CLASSES[0] in classes  # the dense products, with their FLOPs counted
  assert profile.CLASSES[1] in classes  # attention's batched products
  assert profile.CLASSES[2] in classes  # softmax
  assert profile.CLASSES[6] in classes  # the update
  shapes = hlo.gemm_shapes()
  assert (1, 8, 16, 4) in shapes  # forward x @ w: 2 * 8 * 16 * 4 FLOPs
  assert (6, 5, 7, 5) in shapes  # 2 x 3 heads, 5 x 7 by 7 x 5
  dense = [f for f in classes[profile.CLASSES[0]] if f]
  assert 2.0 * 8 * 16 * 4 in dense


def test_jax_breakdown_scales_op_time_to_the_busy_part_of_the_step():
  # two ops on two threads overlapping by 1 ms, over one 10 ms step: busy 5 ms (0-5), outside 5 ms
  events = [('dot.1', 0, 3_000_000), ('copy.2', 2_000_000, 3_000_000)]
  table = profile.jax_breakdown(events, None, steps=1, wall_seconds=0.010)
  rows = table['rows']
  assert table['busy_ms'] == pytest.approx(5.0)
  assert rows[profile.CLASSES[0]]['ms'] == pytest.approx(3.0)
  assert rows[profile.CLASSES[7]]['ms'] == pytest.approx(3.0)
  # op time 6 ms shared out over the 5 busy ms of the 10 ms step
  assert rows[profile.CLASSES[0]]['share'] == pytest.approx(0.5 * 0.5)
  assert rows[profile.OUTSIDE]['ms'] == pytest.approx(5.0)
  assert sum(r['share'] for r in rows.values()) == pytest.approx(1.0)


def test_torch_ops_are_classed_by_name_and_the_rest_is_overhead():
  ops = [
    {'name': 'aten::addmm', 'self_cpu_us': 4000.0, 'count': 2},
    {'name': 'aten::_scaled_dot_product_flash_attention_for_cpu', 'self_cpu_us': 1000.0},
    {'name': 'aten::native_layer_norm', 'self_cpu_us': 500.0},
    {'name': 'aten::_foreach_mul_', 'self_cpu_us': 1500.0},
    {'name': 'AddmmBackward0', 'self_cpu_us': 100.0},
    {'name': 'aten::copy_', 'self_cpu_us': 400.0},
  ]
  table = profile.torch_breakdown(ops, steps=2, wall_seconds=0.010)  # 5 ms a step
  rows = table['rows']
  assert rows[profile.CLASSES[0]]['ms'] == pytest.approx(2.0)
  assert rows[profile.CLASSES[1]]['ms'] == pytest.approx(0.5)
  assert rows[profile.CLASSES[3]]['ms'] == pytest.approx(0.25)
  assert rows[profile.CLASSES[6]]['ms'] == pytest.approx(0.75)
  assert rows[profile.CLASSES[7]]['ms'] == pytest.approx(0.2)
  # autograd's node (0.05 ms) and the 1.25 ms the operators do not account for
  assert rows[profile.OUTSIDE]['ms'] == pytest.approx(0.05 + 5.0 - 3.75)
  assert sum(r['share'] for r in rows.values()) == pytest.approx(1.0)
