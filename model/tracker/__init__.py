"""The SAM 3 tracker (`tracker.*` keys): SAM prompt encoder, two-way transformer and mask decoder,
memory encoder, memory attention, object pointers, and the bounded per-object memory bank."""
