"""Training of the embedded model on the concept world (model/embedded/world): losses, matching, loops.

The library modules here are pure (no file I/O); `python -m model.embedded.train` is the script that
reads and writes checkpoints.
"""
