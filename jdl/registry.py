"""What the `jdl` command knows by name: the runs figures read, the figures, the benchmarks and the
tools with their own sub-commands.

Modules are named by string and imported only when a command uses them, so reading this file
imports nothing of jdl. A new system adds its entries here (and nothing in jdl/cli.py).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Training:
  """A run that figures read: its conventional workdir and the command that makes it."""

  workdir: str  # relative to the repository
  command: str
  time: str  # how long the command takes (the docs' measurement)


RUNS = {
  'mlp': Training(
    'runs/mlp',
    'jdl train --config experiments/mlp/keras_regression.py --workdir runs/mlp',
    '5 s on 2 CPU cores',
  ),
  'simple_fmnist': Training(
    'runs/simple_fmnist',
    'jdl train --config experiments/cnn/simple_fmnist.py --workdir runs/simple_fmnist',
    '27 min on 2 CPU cores',
  ),
  'googlenet_fmnist': Training(
    'runs/googlenet_fmnist',
    'jdl train --config experiments/cnn/googlenet_fmnist.py --workdir runs/googlenet_fmnist',
    '3 h 25 min on 2 CPU cores; 90 s on one H100 (--config.steps_per_call=39)',
  ),
  'de_en': Training(
    'runs/transformer/de_en',
    'python -m jdl.transformer.race --framework jdl --config '
    'experiments/transformer/ding_de_en.py:race --threads 1 --workdir runs/transformer/de_en',
    '30 min (the budget of the equal-time race)',
  ),
  'torch_de_en': Training(
    'runs/transformer/torch_de_en',
    'python -m jdl.transformer.race --framework torch --config '
    'experiments/transformer/ding_de_en.py:race --threads 1 --workdir runs/transformer/torch_de_en',
    '30 min, beside the jdl run',
  ),
  'race_es_en_jdl_s0': Training(
    'runs/transformer/race_es_en_jdl_s0',
    'python -m jdl.transformer.race --framework jdl --config '
    'experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 '
    '--config.seed=0 --workdir runs/transformer/race_es_en_jdl_s0',
    '60 min (the budget of the equal-time race)',
  ),
  'race_es_en_torch_s0': Training(
    'runs/transformer/race_es_en_torch_s0',
    'python -m jdl.transformer.race --framework torch --config '
    'experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 '
    '--config.seed=0 --workdir runs/transformer/race_es_en_torch_s0',
    '60 min, beside the jdl run',
  ),
  'race_es_en_jdl_s1': Training(
    'runs/transformer/race_es_en_jdl_s1',
    'python -m jdl.transformer.race --framework jdl --config '
    'experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 '
    '--config.seed=1 --workdir runs/transformer/race_es_en_jdl_s1',
    '60 min (the budget of the equal-time race)',
  ),
  'race_es_en_torch_s1': Training(
    'runs/transformer/race_es_en_torch_s1',
    'python -m jdl.transformer.race --framework torch --config '
    'experiments/transformer/bible_es_en.py:race,small --threads 1 --eval-sentences 100 '
    '--config.seed=1 --workdir runs/transformer/race_es_en_torch_s1',
    '60 min, beside the jdl run',
  ),
  'es_en': Training(
    'runs/transformer/es_en',
    'jdl train --config experiments/transformer/bible_es_en.py --workdir runs/transformer/es_en',
    'about 4 hours on 2 idle CPU cores (8,000 steps; resumable)',
  ),
  'rnn_es_en': Training(
    'runs/transformer/rnn_es_en',
    'python -m jdl.transformer.race --framework jdl --threads 1 --eval-sentences 100 '
    '--config experiments/transformer/seq2seq_es_en.py:race --workdir runs/transformer/rnn_es_en',
    "60 min of one thread (the Transformer race's budget)",
  ),
  'attn_es_en': Training(
    'runs/transformer/attn_es_en',
    'python -m jdl.transformer.race --framework jdl --threads 1 --eval-sentences 100 '
    '--config experiments/transformer/seq2seq_es_en.py:race,attention '
    '--workdir runs/transformer/attn_es_en',
    "60 min of one thread (the Transformer race's budget)",
  ),
  'vae': Training(
    'runs/generative/vae_fmnist',
    'jdl train --config experiments/generative/vae_fmnist.py --workdir runs/generative/vae_fmnist',
    '5-12 min on 2 CPU cores',
  ),
  'vae2d': Training(
    'runs/generative/vae2d_fmnist',
    'jdl train --config experiments/generative/vae_fmnist.py:2d '
    '--workdir runs/generative/vae2d_fmnist',
    '4-10 min on 2 CPU cores',
  ),
  'gan': Training(
    'runs/generative/gan_fmnist',
    'jdl train --config experiments/generative/gan_fmnist.py --workdir runs/generative/gan_fmnist',
    '35 min on 2 shared CPU cores',
  ),
  'cyclegan_sneaker_boot': Training(
    'runs/generative/cyclegan_sneaker_boot',
    'jdl train --config experiments/generative/cyclegan_fmnist.py:sneaker_boot '
    '--workdir runs/generative/cyclegan_sneaker_boot',
    '30 min on 2 shared CPU cores',
  ),
  'cyclegan_tshirt_shirt': Training(
    'runs/generative/cyclegan_tshirt_shirt',
    'jdl train --config experiments/generative/cyclegan_fmnist.py:tshirt_shirt '
    '--workdir runs/generative/cyclegan_tshirt_shirt',
    '19 min on 2 idle CPU cores',
  ),
  'ioi_gpt': Training(
    'runs/interp/ioi_gpt',
    'jdl train --config experiments/interp/ioi_gpt.py --workdir runs/interp/ioi_gpt',
    '50 min (3,010 s) on 2 shared CPU cores',
  ),
  'word2vec': Training(
    'runs/embeddings/word2vec',
    'jdl train --config experiments/embeddings/word2vec.py --workdir runs/embeddings/word2vec',
    '4-5 min on 2 shared CPU cores',
  ),
  'clip': Training(
    'runs/multimodal/clip_s0',
    'jdl train --config experiments/multimodal/clip_fmnist.py --workdir runs/multimodal/clip_s0',
    '13-17 min on 2 shared CPU cores',
  ),
  **{
    f'sentiment_{w}': Training(
      f'runs/sentiment/mlstm_{w}',
      f'jdl train --config experiments/sentiment/mlstm_reviews.py:{w} --workdir '
      f'runs/sentiment/mlstm_{w} && jdl sentiment probe --workdir runs/sentiment/mlstm_{w}',
      time,
    )
    for w, time in (
      (64, '9 min + 9 min probe on 2 heavily shared CPU cores'),
      (128, '6 min + 15 min probe on 2 shared CPU cores'),
      (256, '21 min + 22 min probe on 2 heavily shared CPU cores'),
    )
  },
}
# Learning from preferences (docs/rlhf.md): the supervised policy, the labeller, the reward model,
# PPO and DPO at several betas; each policy run is then scored by `jdl rlhf eval`.
RLHF_DPO_BETAS = ('0.05', '0.1', '0.3', '1')
RUNS.update(
  {
    'rlhf_sft': Training(
      'runs/rlhf/sft',
      'jdl train --config experiments/rlhf/sft.py --workdir runs/rlhf/sft '
      '&& jdl rlhf eval --workdir runs/rlhf/sft',
      '34 min on the 2 idle CPU cores',
    ),
    'rlhf_rm': Training(
      'runs/rlhf/rm_mean',
      'jdl rlhf bow-labeller && jdl rlhf pairs && jdl rlhf pairs --relabel --every-pair '
      '--samples runs/rlhf/prefs4.jsonl.samples.json '
      '--heldout-samples runs/rlhf/prefs4_heldout.jsonl.samples.json '
      '--out runs/rlhf/prefs4all.jsonl --heldout-out runs/rlhf/prefs4all_heldout.jsonl '
      '&& jdl train --config experiments/rlhf/reward_model.py --workdir runs/rlhf/rm_mean',
      'pairs 5 min, then the reward model 18-30 min',
    ),
    'rlhf_ppo': Training(
      'runs/rlhf/ppo',
      'jdl train --config experiments/rlhf/ppo.py --workdir runs/rlhf/ppo '
      '&& jdl rlhf eval --workdir runs/rlhf/ppo',
      'up to 30 min on 2 CPU cores',
    ),
    **{
      f'rlhf_dpo_b{beta}': Training(
        f'runs/rlhf/dpo_b{beta}',
        f'jdl train --config experiments/rlhf/dpo.py:b{beta} --workdir runs/rlhf/dpo_b{beta} '
        f'&& jdl rlhf eval --workdir runs/rlhf/dpo_b{beta}',
        'about 10 min on 2 CPU cores',
      )
      for beta in RLHF_DPO_BETAS
    },
  }
)


@dataclasses.dataclass(frozen=True)
class Figure:
  """`module.function(outdir, **workdirs)` draws it and returns the files it wrote; `runs` maps
  the function's keyword arguments to the RUNS it reads (a keyword in `optional` gets None when
  its run is missing, and the figure is drawn without it)."""

  module: str
  function: str
  caption: str
  section: str  # the lecture's section it reproduces (lecture.txt has headings, no slide numbers)
  runs: dict = dataclasses.field(default_factory=dict)
  optional: tuple = ()


GENERATIVE_RUNS = ('vae', 'vae2d', 'gan', 'cyclegan_sneaker_boot', 'cyclegan_tshirt_shirt')
FIGURES = {
  'mlp': Figure(
    'jdl.mlp.figures',
    'render',
    'The Keras MLP (Dense 10-2-1, SGD) on the diabetes data: its whole training history from '
    "metrics.jsonl, and its test MSE beside sklearn's MLPRegressor and the mean predictor",
    '«Код MLP в Keras» (the MLP in Keras and scikit-learn)',
    {'workdir': 'mlp'},
  ),
  'tensors': Figure(
    'jdl.cnn.figures',
    'render_tensors',
    "Tensors of rank 2 to 5 (tabular, sequence, image, video), as real batches from jdl's "
    'loaders with their shapes and dtypes',
    '«Представление данных для нейронных сетей: тензоры, примеры тензоров» '
    '(data representation: tensors)',
  ),
  'cnn': Figure(
    'jdl.cnn.figures',
    'render_cnn',
    'The simple convnet on Fashion-MNIST: training curves, 32 test images with predicted and '
    'true labels, and the confusion matrix of the 10,000 test images',
    '«Компьютерное зрение. Сверточные нейронные сети» (computer vision: convolutional networks)',
    {'workdir': 'simple_fmnist'},
  ),
  'googlenet': Figure(
    'jdl.cnn.figures',
    'render_googlenet',
    'GoogLeNet (batch-norm variant, small stem) on Fashion-MNIST: training curves, test '
    'predictions and the confusion matrix',
    '«Реальная нейросеть: GoogLeNet (2014)» (a real network: GoogLeNet)',
    {'workdir': 'googlenet_fmnist'},
  ),
  'rnn_memory': Figure(
    'jdl.rnn.figures',
    'render',
    "The adding problem's test MSE against the sequence length T for LSTM, Elman and Jordan "
    "cells at an equal parameter budget, beside the trivial predictor's 1/6 (measured runs in "
    'docs/rnn_adding.json)',
    '«Elman network, Jordan network, Long Short-Term Memory (LSTM)» (recurrent networks)',
  ),
  'attention': Figure(
    'jdl.transformer.figures',
    'render_attention',
    'Encoder self-attention and decoder cross-attention of the es->en Transformer trained in the '
    '60-minute race, one heatmap per head and layer, for a held-out verse',
    '«Transformer: Attention Is All You Need; механизм внимания» (the attention mechanism)',
    {'workdir': 'race_es_en_jdl_s0'},
  ),
  'next_token': Figure(
    'jdl.transformer.figures',
    'render_next_token',
    "The trained Transformer's top next-token probabilities at each output position of a short "
    'sentence ("Yo soy tu siervo."), as in the lecture\'s "je suis étudiant" table',
    '«Как работает трансформер: Trained Model Outputs» (how a transformer works)',
    {'workdir': 'race_es_en_jdl_s0'},
  ),
  'bleu_time': Figure(
    'jdl.transformer.figures',
    'render_bleu_time',
    'Validation BLEU against wall time on the Spanish-English verses: jdl and a PyTorch '
    'nn.Transformer of the same size on the same batches, one thread each, two seeds',
    '«Задача машинного перевода» (the machine translation task)',
    {
      'jdl_run': 'race_es_en_jdl_s0',
      'torch_run': 'race_es_en_torch_s0',
      'jdl_run_1': 'race_es_en_jdl_s1',
      'torch_run_1': 'race_es_en_torch_s1',
    },
    optional=('torch_run', 'jdl_run_1', 'torch_run_1'),
  ),
  'translation_examples': Figure(
    'jdl.transformer.figures',
    'render_translation_examples',
    'Ten Spanish test verses with the reference and the translations of both models of the '
    '60-minute race (jdl and PyTorch nn.Transformer, greedy), as a Markdown table',
    '«Задача машинного перевода» (the machine translation task)',
    {'jdl_run': 'race_es_en_jdl_s0', 'torch_run': 'race_es_en_torch_s0'},
    optional=('torch_run',),
  ),
  'translation_length': Figure(
    'jdl.transformer.figures',
    'render_translation_length',
    'Test BLEU and chrF by source length (words) on the Spanish-English Bible verses: the LSTM '
    'encoder-decoder, the attentive one and the Transformer',
    '«Задача машинного перевода» (the machine translation task: problems with long sequences)',
    {'rnn_run': 'rnn_es_en', 'attention_run': 'attn_es_en', 'transformer_run': 'race_es_en_jdl_s0'},
    optional=('rnn_run', 'attention_run', 'transformer_run'),
  ),
  'gpt_family': Figure(
    'jdl.gpt.figures',
    'render_gpt_family',
    "The GPT-1/2/3 table with jdl's exact parameter counts of the same shapes, and a line on "
    'each gap',
    '«Семейство GPT» (the GPT family)',
  ),
  'gpt3_compute': Figure(
    'jdl.gpt.figures',
    'render_gpt3_compute',
    "GPT-3's training-compute table (paper Table D.1: T5-3B, T5-11B, GPT-3 13B and 175B) beside "
    "jdl's 6ND and per-layer FLOP counts",
    '«Чему и как учили GPT-3: вычислительные ресурсы» (how GPT-3 was trained: compute)',
  ),
  'gpt3_data_mix': Figure(
    'jdl.gpt.figures',
    'render_gpt3_data_mix',
    "GPT-3's training mix: the published epochs at 300B tokens beside the epochs jdl "
    'recomputes from the weights and sizes',
    '«Чему и как учили GPT-3: данные» (how GPT-3 was trained: data)',
  ),
  'generative': Figure(
    'jdl.generative.figures',
    'render',
    'VAE 2-D latent manifold and scatter, VAE and GAN samples, CycleGAN rows in both '
    'directions, loss curves, and classifier-based scores (each panel whose run exists)',
    '«Генеративные модели: Variational Autoencoder; Horse → Zebra» (generative models)',
    {**{name: name for name in GENERATIVE_RUNS}, 'classifier': 'simple_fmnist'},
    optional=(*GENERATIVE_RUNS, 'classifier'),
  ),
  'funsearch': Figure(
    'jdl.binpack.figures',
    'funsearch',
    "FunSearch's Table 1 (excess bins, lower is better) recomputed, with jdl's search row, "
    "and the search's best program over time, one panel per training set",
    '«Кейс в науке: задача об упаковке рюкзака» (a case in science: packing, FunSearch)',
  ),
  'embeddings': Figure(
    'jdl.embeddings.figures',
    'render',
    "PCA of jdl's skip-gram vectors (king/queen/man/woman, country-capital pairs) and the "
    'analogy accuracy per section of word2vec, GloVe and fastText beside gensim '
    '(docs/embeddings.json)',
    '«Векторное представление слов. Embedding; Word2Vec» (word embeddings)',
    {'workdir': 'word2vec'},
  ),
  'multimodal': Figure(
    'jdl.multimodal.figures',
    'render',
    'A small CLIP on Fashion-MNIST and dictionary descriptions (Trouser and Sneaker held out): '
    'the image-text similarity matrix of a batch, zero-shot predictions, and a 2-D projection '
    'of image and text embeddings in the shared space',
    '«Unimodal -> Multimodal» (CLIP)',
    {'workdir': 'clip'},
  ),
  'sentiment': Figure(
    'jdl.sentiment.figures',
    'render',
    "The sentiment neuron at this machine's scale: the best L1 unit's cell state on the test "
    'reviews by label, the probe against TF-IDF by number of labelled reviews, and the best '
    "unit's accuracy per mLSTM width against a random-init network and label permutation",
    '«Первый эксперимент OpenAI – определение эмоциональной окраски» (the sentiment neuron)',
    {f'w{w}': f'sentiment_{w}' for w in (64, 128, 256)},
    optional=('w64', 'w128', 'w256'),
  ),
}
FIGURES['ioi'] = Figure(
  'jdl.interp.figures',
  'render',
  'The indirect-object-identification circuit of a 4-layer GPT trained here: direct logit '
  "attribution, activation and path patching by head and layer, the name movers' attention, and "
  'the circuit with its faithfulness',
  '«Что выучивают модели? Interpretability in the wild» (what models learn: IOI in GPT-2 small)',
  {'workdir': 'ioi_gpt'},
)
FIGURES['rlhf'] = Figure(
  'jdl.rlhf.figures',
  'render',
  "Learning from preferences on a byte GPT of movie reviews: the labeller's p(positive) against "
  'KL to the supervised policy for PPO over training and for DPO at several betas (the '
  "frontier), the reward model's held-out pair accuracy, and over-optimisation (the reward "
  "model's score and the labeller's against KL over PPO training)",
  '«Human evaluation: which response do you prefer?» (learning from human preferences, RLHF)',
  {
    'sft': 'rlhf_sft',
    'rm': 'rlhf_rm',
    'ppo': 'rlhf_ppo',
    **{f'dpo_b{beta}': f'rlhf_dpo_b{beta}' for beta in RLHF_DPO_BETAS},
  },
  optional=tuple(f'dpo_b{beta}' for beta in RLHF_DPO_BETAS),
)
# name -> (module, function, what it measures)
BENCHMARKS = {
  'mlp': ('jdl.mlp.bench', 'main', 'MLP seconds per epoch against Keras 3 (JAX backend)'),
  'cnn': ('jdl.cnn.bench', 'main', 'simple convnet images/s against Keras 3 (JAX backend)'),
  'binpack': (
    'jdl.binpack.bench',
    'main',
    'scoring a heuristic on Weibull 100k (JAX vs NumPy); candidates per minute',
  ),
  'gpt': (
    'jdl.gpt.bench',
    'main',
    'GPT 6L/d384 tokens/s and MFU against HF transformers GPT-2 (PyTorch, CPU)',
  ),
  'transformer': ('jdl.transformer.bench', 'main', 'tokens/s vs PyTorch nn.Transformer'),
  'word2vec': (
    'jdl.embeddings.bench',
    'main',
    'skip-gram words/s against gensim Word2Vec (2 workers, its C Hogwild loop)',
  ),
  'lstm': (
    'jdl.rnn.bench',
    'main',
    'char LSTM (512 units, batch 64, seq 128) characters/s against PyTorch nn.LSTM',
  ),
  'ioi': (
    'jdl.interp.bench',
    'main',
    'per-head activation-patching sweep of the IOI GPT (4L/8H/d128) against TransformerLens 4',
  ),
  'dpo': (
    'jdl.rlhf.bench',
    'main',
    'DPO training pairs/s on the RLHF SFT policy (4L/d256, bytes) against trl 1.16 DPOTrainer',
  ),
}
# Tools that bring their own sub-commands: `jdl NAME ...` -> module.main(argv)
TOOLS = {
  'binpack': 'jdl.binpack.cli',
  'compute': 'jdl.gpt.compute',
  'embed': 'jdl.embeddings.cli',
  'hf': 'jdl.gpt.hf',
  'ioi': 'jdl.interp.cli',
  'launch': 'jdl.train.launch',
  'multimodal': 'jdl.multimodal.cli',
  'rlhf': 'jdl.rlhf.cli',
  'sample': 'jdl.gpt.sample',
  'sentiment': 'jdl.sentiment.cli',
  'translate': 'jdl.transformer.evaluate',
}
TOOL_HELP = {
  'binpack': "FunSearch's bin-packing table, search, benchmark and figures",
  'compute': 'training FLOPs and days of a GPT config for N tokens on a number of chips',
  'hf': 'a GPT run as a Hugging Face GPT-2 folder (`jdl hf export --workdir RUN --out DIR`)',
  'ioi': 'the indirect-object-identification task and circuit of a GPT (eval, circuit)',
  'launch': 'a `jdl train` run on a Cloud TPU slice, through the gcloud CLI',
  'multimodal': 'a CLIP run: image search from text (PNG grid), zero-shot evaluation, summary',
  'rlhf': 'learning from preferences: preference pairs (auto or by hand) and policy evaluation',
  'sample': 'text from a trained language model run (GPT or RNN)',
  'sentiment': "a byte mLSTM run's sentiment unit over a text; its probe and steered samples",
  'translate': 'translate sentences (or score the test set) with a trained translation run',
}
