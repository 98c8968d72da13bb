"""GPT tools: `jdl compute` (over jdl.train.cost), Hugging Face import, `jdl sample`, figures and
the benchmark."""
