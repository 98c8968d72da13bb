"""Word-embedding tools: `jdl embed` (analogies, neighbours, evaluation, gensim, phrases), the
comparison with gensim over seeds, `jdl figures embeddings` and `jdl bench word2vec`."""
