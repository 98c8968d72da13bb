"""The CLIP-style image-text system: zero-shot evaluation, the linear probe, image search from
free text (`jdl multimodal`), and the figures (`jdl figures multimodal`)."""
