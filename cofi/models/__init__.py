"""Models: loading (Hugging Face, GGUF, the embedded one), weights, the memory plan and cluster requests."""
