"""GPT tools: compute estimates, the hardware table, data mixtures, Hugging Face import,
sampling, figures and the benchmark."""
