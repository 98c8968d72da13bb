"""Interpretability: the indirect-object-identification task (ioi.py) and the tools that find
its circuit in a GPT through jdl.models.hooks (patching.py: direct logit attribution, activation
patching)."""
