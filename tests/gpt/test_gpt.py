"""The GPT model, decoding, parameter counts, compute and the data mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jdl.data.mixture import Mixture
from jdl.gpt import compute, figures
from jdl.models import sampling as sample
from jdl.models.gpt import GPT, GPTConfig
from jdl.train import cost
from tests.conftest import run_jdl

pytestmark = pytest.mark.usefixtures('no_mesh')  # see conftest

TINY = GPTConfig(vocab_size=50, context=24, n_layer=2, n_head=2, d_model=16)


def stacked_copy(model: GPT, **changes) -> GPT:
  """The same weights in a model with other options (scan_layers stacks the blocks)."""
  cfg = GPTConfig(**{**TINY.__dict__, **changes})
  other = GPT(cfg, rngs=nnx.Rngs(1))
  pure = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  if cfg.scan_layers:
    pure['blocks'] = jax.tree.map(lambda *xs: jnp.stack(xs), *pure['blocks'].values())
  state = nnx.state(other, nnx.Param)
  nnx.replace_by_pure_dict(state, pure)
  nnx.update(other, state)
  return other


def test_no_position_sees_the_future():
  model = GPT(TINY, rngs=nnx.Rngs(0))
  tokens = jnp.arange(10)[None] % 50
  changed = tokens.at[0, 6:].set(7)
  both = nnx.jit(lambda m, t: m(t))(model, jnp.concatenate([tokens, changed]))
  np.testing.assert_allclose(both[0, :6], both[1, :6], rtol=1e-6)
  assert not np.allclose(both[0, 6:], both[1, 6:])


def test_scan_and_remat_give_the_same_logits_and_gradients():
  model = GPT(TINY, rngs=nnx.Rngs(0))
  tokens = (jnp.arange(20).reshape(2, 10) * 7) % 50
  loss = lambda m: m(tokens).astype(jnp.float32).std()
  value_and_grad = nnx.jit(nnx.value_and_grad(loss))
  ref_loss, ref_grads = value_and_grad(model)
  other = stacked_copy(model, scan_layers=True, remat=True)
  other_loss, grads = value_and_grad(other)
  np.testing.assert_allclose(other_loss, ref_loss, rtol=1e-5)
  grads = nnx.to_pure_dict(grads)
  ref = nnx.to_pure_dict(ref_grads)
  np.testing.assert_allclose(
    grads['blocks']['fc_kernel'][1], ref['blocks'][1]['fc_kernel'], rtol=1e-4, atol=1e-7
  )
  np.testing.assert_allclose(grads['wte'], ref['wte'], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('options', [{'scan_layers': True}, {'post_ln': True}])
def test_kv_cache_decoding_equals_full_recomputation(options):
  model = GPT(GPTConfig(**{**TINY.__dict__, **options}), rngs=nnx.Rngs(0))
  prompt = jnp.array([[3, 14, 15, 9], [2, 6, 5, 35]])
  for kwargs in ({'temperature': 0.0}, {'temperature': 1.0, 'top_k': 10, 'top_p': 0.9}):
    cached = sample.generate(model, prompt, 12, key=jax.random.key(3), **kwargs)
    full = sample.generate_uncached(model, prompt, 12, key=jax.random.key(3), **kwargs)
    np.testing.assert_array_equal(cached, full)
  assert cached.shape == (2, 16)


def test_top_k_and_top_p_filters():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  keep = lambda **kw: np.asarray(
    sample.filter_logits(logits, 1.0, kw.get('k', 0), kw.get('p', 1.0)) > -1e30
  )[0].tolist()
  assert keep(k=2) == [True, True, False, False]
  assert keep(p=0.7) == [True, True, False, False]  # 0.5 < 0.7, 0.5 + 0.3 reaches it
  assert keep(p=0.81) == [True, True, True, False]
  assert keep(p=0.1) == [True, False, False, False]


def test_published_parameter_counts():
  assert cost.param_count(GPTConfig(40478, 512, 12, 12, 768, post_ln=True)) == 116_534_784
  assert cost.param_count(GPTConfig(50257, 1024, 12, 12, 768)) == 124_439_808
  assert cost.param_count(GPTConfig(50257, 1024, 48, 25, 1600)) == 1_557_611_200
  # The analytic count is the model's own (built abstractly).
  n = sum(
    x.size
    for x in jax.tree.leaves(
      jax.eval_shape(lambda: nnx.state(GPT(TINY, rngs=nnx.Rngs(0)), nnx.Param))
    )
  )
  assert n == cost.param_count(TINY)


def test_params_of_gpt3_175b_in_seconds_without_allocating():
  proc = run_jdl('params', '--config', 'experiments/gpt/gpt3_175b.py', timeout=60, check=True)
  assert 'total' in proc.stdout and '174,604,259,328' in proc.stdout


def test_compute_command(capsys):
  assert (
    compute.main(
      [
        '--config',
        'experiments/gpt/gpt3_175b.py',
        '--tokens',
        '300B',
        '--mfu',
        '0.4',
        '--chips',
        '1024',
        '--hardware',
        'h100',
      ]
    )
    == 0
  )
  out = capsys.readouterr().out
  assert '3.143e+23 FLOPs' in out and '3638 PF-days' in out and 'h100' in out
  # 6ND for GPT-3 175B on 300B tokens, as the GPT-3 paper's table (3.14e23).
  rows = {r['model']: r for r in figures.compute_rows()}
  assert rows['GPT-3 175B']['jdl_six_nd'] == pytest.approx(3.14e23, rel=2e-3)
  assert rows['T5-11B']['six_nd'] == pytest.approx(3.30e22, rel=1e-3)


def test_mixture_is_deterministic_and_weighted():
  mix = Mixture.of({'a': 3.0, 'b': 1.0})
  corpora = {'a': np.arange(1000, dtype=np.int32), 'b': np.arange(5000, 5100, dtype=np.int32)}
  rows, src = mix.windows(corpora, 4000, 9, seed=7)
  rows2, src2 = mix.windows(corpora, 4000, 9, seed=7)
  np.testing.assert_array_equal(rows, rows2)
  assert not np.array_equal(src, mix.windows(corpora, 4000, 9, seed=8)[1])
  assert abs(np.mean(src == 0) - 0.75) < 0.03
  assert np.all(rows[src == 1] >= 5000) and np.all(np.diff(rows, axis=1) == 1)
  epochs = {r['dataset']: r for r in figures.mix_rows()}
  assert epochs['Common Crawl (filtered)']['epochs_weight_as_given'] == pytest.approx(0.439, 1e-2)


def test_figures(tmp_path):
  for render in (figures.render_gpt3_compute, figures.render_gpt3_data_mix):
    assert all(p.is_file() for p in render(tmp_path))


def test_gpt_family_table_uses_the_exact_counts(tmp_path):
  rows = {r['model']: r for r in figures.family_rows()}
  assert rows['GPT-1 (2018)']['jdl_params'] == 116_534_784
  assert rows['GPT-2 (2019)']['jdl_params'] == 1_557_611_200
  assert rows['GPT-3 (2020)']['jdl_params'] == 174_604_259_328
  assert rows['GPT-3 (2020)']['d_head'] == 128
  paths = figures.render_gpt_family(tmp_path)
  assert '174,604,259,328' in paths[1].read_text()
