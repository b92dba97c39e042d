"""Reading SAM 3 weights (official `sam3.pt`, Hugging Face folders, our native safetensors) and
loading them strictly into a meta-built model."""
