"""Building blocks with no SAM 3 knowledge: attention and MLP layers, sine and rotary position
encodings, and pure box and mask geometry."""
