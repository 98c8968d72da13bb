from tests.conftest import ROOT

CONFIG = str(ROOT / 'experiments/multimodal/clip_fmnist.py')
