"""The shared vision-language backbone: the PE ViT trunk, its SimpleFPN necks, the CLIP-style text
encoder and its tokenizer (`detector.backbone.*` keys)."""
