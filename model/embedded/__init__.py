"""The embedded default model's training application: the concept world it learns from (`world/`),
its vocabulary, training (`train/`) and evaluation (`eval/`).

The runtime never imports this package (tests/test_dependencies.py checks it): the shipped
weights in model/assets carry their tokenizer, and the `world://` source loads the world only
when such a stream is opened."""
