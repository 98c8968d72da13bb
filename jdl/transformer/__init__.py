"""Translation with the encoder-decoder Transformer: the Ding dictionary's German-English sentence
pairs (offline) and WMT14 (tfds), a subword tokenizer, greedy and beam decoding with a KV cache,
BLEU/chrF, the lecture's attention and next-token figures, and the PyTorch `nn.Transformer` peer.
"""
