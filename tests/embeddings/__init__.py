import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
W2V = str(ROOT / 'experiments/embeddings/word2vec.py')
GLOVE = str(ROOT / 'experiments/embeddings/glove.py')
FASTTEXT = str(ROOT / 'experiments/embeddings/fasttext.py')
