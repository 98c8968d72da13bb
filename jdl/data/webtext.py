"""Web text for GPT-2-style pre-training: documents read through tfds as array_record (C4's
English split, `c4/en:3.0.1`), tokenized with GPT-2's BPE inside the grain pipeline, an
end-of-text token before every document, packed into rows of context + 1 tokens, batched.

The training rows of one process (`packed`, then `PackedDocuments.batches`):

  documents          a tfds array_record source (no TensorFlow needed to read it) or local text
  -> shuffle         grain's index shuffle from the run's seed, a new order every epoch
  -> share           process p of P takes documents p, p + P, p + 2P, ... of that order
  -> Tokenize        [<|endoftext|>] + the BPE of the text (tiktoken), in grain's read threads
  -> pack            grain.experimental.ConcatThenSplitIterDataset: the documents concatenated
                     in order and cut into rows of context + 1 tokens; a document that does not
                     fit continues in the next row, so no position is padding
  -> batch           B / P rows

As in the public GPT-2 reproductions (nanoGPT, llm.c), attention is not masked at document
boundaries: the end-of-text token is what tells the model a new document starts. A row's last
token is only a target and the next row's first only an input. The pipeline's position (the
packer's buffer included) is part of every checkpoint, so a resumed run reads on where it left.
Each process packs its own share of the documents, so which rows meet in a global batch depends
on the number of processes (unlike the row sources of jdl.data.pipeline); their mix does not.

Evaluation: the first `eval_rows` packed rows of the validation split in its stored order (no
shuffle), read once at start-up and held in memory, the same rows on every process.

Why C4: it is the web-text corpus that tfds serves as array_record, which grain reads with no
TensorFlow at training time; OpenWebText and FineWeb come through Hugging Face `datasets`
instead. C4's English split holds 364,868,892 training and 364,608 validation documents (about
800 GB of text). tfds's own builder makes C4 from Common Crawl with Apache Beam (days of a
Dataflow cluster), so the prepared copy that MaxText and others use is taken instead, once, on a
machine with internet (a TPU VM has it); TensorFlow is needed for this conversion only:

  gsutil -u PROJECT -m cp -r gs://allennlp-tensorflow-datasets/c4/en/3.0.1 /data/tfrecord/c4/en/
  pip install tensorflow    # tfds reads the TFRecord files through tf.data
  tfds convert_format --dataset_version_dir=/data/tfrecord/c4/en/3.0.1 \\
      --out_file_format=array_record --out_dir=/data/tensorflow_datasets/c4/en/3.0.1
  export TFDS_DATA_DIR=/data/tensorflow_datasets    # or data_dir='/data/tensorflow_datasets'

(The allennlp bucket is requester-pays: PROJECT is billed for the copy.) grain reads
array_record from a local disk, or from a bucket mounted with Cloud Storage FUSE.

Offline, for `gpt2_small.py:smoke` and the tests, `corpus='kjv'` takes the King James Bible
(`apt-get install -y diatheke sword-text-kjv`) as documents: the runs of 100 verses of jdl.data.
text's fixed split, each a passage of consecutive verses, through the same tokenizing and
packing.
"""

from __future__ import annotations

import itertools

import grain
import numpy as np

from jdl.data import text, tokenizers
from jdl.data.errors import DataError
from jdl.data.splits import Splits
from jdl.data.tfds_images import data_source

C4 = 'c4/en:3.0.1'
LOCAL = ('kjv', 'kjv_ot', 'kjv_nt')  # the offline corpora of jdl.data.text
PREPARE_C4 = (
  'prepare it once on a machine with internet: copy gs://allennlp-tensorflow-datasets/c4/en/'
  '3.0.1 and convert it with `tfds convert_format --out_file_format=array_record` (see '
  'jdl/data/webtext.py), then set TFDS_DATA_DIR or data_dir'
)


class Tokenize(grain.transforms.Map):
  """A document (a tfds record with a text feature, or a string) -> {'tokens': int32 ids}, the
  end-of-text token first, so that in the packed stream it stands between documents."""

  def __init__(self, tokenizer: str = 'gpt2', feature: str = 'text'):
    if tokenizer != 'gpt2':
      raise ValueError(f"webtext packs with GPT-2's BPE (tokenizer='gpt2'), not {tokenizer!r}")
    self.encoding = tokenizers.gpt2().encoding
    self.feature = feature

  def map(self, document) -> dict[str, np.ndarray]:
    body = document[self.feature] if isinstance(document, dict) else document
    if isinstance(body, bytes):
      body = body.decode('utf-8')
    ids = self.encoding.encode_ordinary(body)  # the exact GPT-2 encoding of the whole text
    return {'tokens': np.asarray([self.encoding.eot_token, *ids], np.int32)}


def packed(
  documents,
  context: int,
  tokenizer: str = 'gpt2',
  *,
  seed: int | None = None,
  process_index: int = 0,
  process_count: int = 1,
  repeat: bool = False,
  read_threads: int = 1,
) -> grain.IterDataset:
  """Rows {'tokens': int32 [context + 1]} of the documents tokenized and concatenated in order
  (shuffled by `seed` when given, this process's share of them), endless with `repeat`. A finite
  stream's last, incomplete row is dropped: every row is full."""
  ds = grain.MapDataset.source(documents)
  if seed is not None:
    ds = ds.shuffle(seed=seed)
  ds = ds[process_index::process_count]
  if repeat:
    ds = ds.repeat()  # epoch e of the shuffle is drawn from seed + e
  ds = ds.map(Tokenize(tokenizer))
  # Tokenizing runs in the read threads, ahead of the packer and the training step. One core
  # encodes about 8 MB of text (2M tokens) a second here; a v5e-16 host needs 0.4M tokens a second.
  rows = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4 * read_threads)
  )
  rows = grain.experimental.ConcatThenSplitIterDataset(rows, length_struct={'tokens': context + 1})
  # Segment id 0 marks padding, which only the end of a finite stream has.
  rows = rows.filter(lambda row: row['tokens_segment_ids'][-1] > 0)
  return rows.map(lambda row: {'tokens': row['tokens']})


class PackedDocuments:
  """The training split: documents that `batches` turns into packed, shuffled batches (the
  pipeline asks for them in place of rows drawn by index, jdl.data.pipeline.train_dataset).

  `len` is the number of rows of one epoch, estimated from the tokens of up to `sample`
  documents spread over the corpus (exact when it has no more); the loop counts epochs by it."""

  def __init__(
    self,
    documents,
    context: int,
    tokenizer: str = 'gpt2',
    read_threads: int = 1,
    sample: int = 256,
  ):
    self.documents, self.context, self.tokenizer = documents, context, tokenizer
    self.read_threads = read_threads
    n = len(documents)
    picked = np.unique(np.linspace(0, n - 1, min(sample, n)).astype(int))
    tokenize = Tokenize(tokenizer)
    tokens = sum(len(tokenize.map(documents[int(i)])['tokens']) for i in picked)
    self.rows = max(round(tokens / len(picked) * n / (context + 1)), 1)

  def __len__(self) -> int:
    return self.rows

  def batches(
    self, local_batch: int, seed: int, process_index: int = 0, process_count: int = 1
  ) -> grain.IterDataset:
    """Endless batches {'tokens': [local_batch, context + 1]} of this process's documents."""
    rows = packed(
      self.documents,
      self.context,
      self.tokenizer,
      seed=seed,
      process_index=process_index,
      process_count=process_count,
      repeat=True,
      read_threads=self.read_threads,
    )
    return rows.batch(local_batch, drop_remainder=True)


def evaluation_rows(
  documents, context: int, limit: int, tokenizer: str = 'gpt2', read_threads: int = 1
) -> np.ndarray:
  """The first `limit` packed rows of the documents in order (all of them for `limit` 0)."""
  rows = iter(packed(documents, context, tokenizer, read_threads=read_threads))
  out = [row['tokens'] for row in itertools.islice(rows, limit or None)]
  if not out:
    raise ValueError(f'the evaluation documents hold less than one row of {context} + 1 tokens')
  return np.stack(out)


def passages(corpus: str, split: str) -> list[str]:
  """The runs of `text.RUN` consecutive verses of one local corpus split, as documents."""
  lines = text.corpus_texts(corpus)[split].splitlines(keepends=True)
  return [''.join(lines[i : i + text.RUN]) for i in range(0, len(lines), text.RUN)]


def documents(corpus: str, split: str, data_dir: str = ''):
  """A split's documents: a random-access source of tfds records, or a list of strings."""
  if corpus in LOCAL:
    return passages(corpus, split)
  try:
    return data_source(corpus, split, data_dir or None)
  except DataError as e:
    if not corpus.startswith('c4/'):
      raise
    raise DataError(
      e.path, f"C4's split '{split}' is not prepared as array_record", PREPARE_C4
    ) from None


def load(
  corpus: str = C4,
  tokenizer: str = 'gpt2',
  context: int = 1024,
  eval_rows: int = 0,
  read_threads: int = 1,
  length_sample: int = 256,
  data_dir: str = '',
) -> Splits:
  """Packed rows of `context` + 1 tokens: training documents shuffled and packed as they are
  read, evaluation rows packed once from the validation split (and the test split of a local
  corpus), at most `eval_rows` of each."""
  train = PackedDocuments(
    documents(corpus, 'train', data_dir), context, tokenizer, read_threads, length_sample
  )
  splits = ('validation', 'test') if corpus in LOCAL else ('validation',)
  evals = {
    split: {
      'tokens': evaluation_rows(
        documents(corpus, split, data_dir), context, eval_rows, tokenizer, read_threads
      )
    }
    for split in splits
  }
  return Splits(train=train, evals=evals)
