"""jdl's reward-model and DPO training against trl 1.16 (jdl.rlhf.peer_trl): on the same exported
model, the same pairs in the same order and pinned settings, every step's loss agrees to float32
rounding; trl's byte tokenizer is jdl's ByteTokenizer."""

import numpy as np
import pytest

from jdl import config as config_lib
from jdl.data import review_prompts
from jdl.data.reviews import ByteTokenizer
from jdl.rlhf import peer_trl
from jdl.train.loop import Trainer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures('no_mesh')]

LN2 = float(np.log(2.0))


@pytest.fixture(scope='module')
def sft_run(tmp_path_factory):
  """A tiny SFT policy (experiments/rlhf/sft.py:smoke, 2 layers, d 32, context 32) trained a
  few steps on the reviews, so its weights are not an initialisation."""
  workdir = tmp_path_factory.mktemp('sft')
  config = config_lib.load('experiments/rlhf/sft.py:smoke')
  config.update(num_train_steps=3, eval_every_steps=-1, log_every_steps=3, sample_prompts=())
  config.mesh.update(data=1, fsdp=1, tensor=1)
  Trainer(config).fit(str(workdir))
  return str(workdir)


def review_pairs(n: int) -> list[dict]:
  """n pairs of real review text that fit the smoke context (32): a 14-byte opening, a chosen
  continuation of up to 12 bytes (its own review's) and a rejected one of 3 to 12 bytes (the next
  review's), so the rows of a batch have different lengths and right padding."""
  texts = review_prompts.prompts('train', n + 1, length=40)
  rng = np.random.default_rng(0)
  pairs = []
  for i in range(n):
    prompt = review_prompts.cut(texts[i], 14)
    rest = lambda t, p: t.encode()[len(p.encode()) :].decode('utf-8', 'ignore')
    chosen = review_prompts.cut(rest(texts[i], prompt), 12)
    other = texts[i + 1]
    rejected = review_prompts.cut(
      rest(other, review_prompts.cut(other, 14)), int(rng.integers(3, 13))
    )
    pairs.append(dict(prompt=prompt, chosen=chosen, rejected=rejected))
  # one multi-byte character, so that trl's tokenisation is seen to give bytes, not characters
  pairs[1]['chosen'] = review_prompts.cut('a café ' + pairs[1]['chosen'], 12)
  return pairs


def test_byte_tokenizer_gives_jdls_byte_ids():
  tok = peer_trl.byte_tokenizer()
  texts = ['the film is good', 'café — naïve\n', ' \t"quoted"']
  for text in texts:
    ids = tok(text)['input_ids']
    np.testing.assert_array_equal(ids, ByteTokenizer().encode(text))
    assert tok.decode(ids) == text
  assert tok.pad_token_id == tok.eos_token_id == 0 and len(tok) == 256
  # trl appends eos as a string: it must become exactly one byte 0, which is what jdl is given
  assert tok('ok' + tok.eos_token)['input_ids'] == [111, 107, 0]
  assert ByteTokenizer().encode('ok' + peer_trl.END_BYTE).tolist() == [111, 107, 0]


def test_reward_model_and_dpo_losses_equal_trls(sft_run, tmp_path):
  pairs = review_pairs(12)
  rm = peer_trl.Pinned(steps=10, batch_size=4, learning_rate=2e-3, warmup_steps=2)
  dpo = peer_trl.Pinned(steps=10, batch_size=4, learning_rate=1e-3, warmup_steps=2, beta=0.5)
  out = peer_trl.compare(sft_run, pairs, rm, dpo, str(tmp_path))
  for kind in ('reward', 'dpo'):
    jdl, trl = np.asarray(out[kind]['jdl']), np.asarray(out[kind]['trl'])
    assert jdl.shape == trl.shape == (10,)
    # Step 0 runs at learning rate 0 (the warm-up starts there on both sides) from a zero head /
    # a policy equal to its reference: exactly ln 2. Later steps learn: the curves move.
    np.testing.assert_allclose(jdl[:2], LN2, atol=1e-6)
    assert np.abs(jdl[2:] - LN2).max() > 1e-3, (kind, jdl)
    np.testing.assert_allclose(jdl, trl, rtol=0, atol=2e-5, err_msg=kind)
    assert out[kind]['trl_version'] == '1.16.0'
