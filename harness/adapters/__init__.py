"""Models in: the registry of adapter kinds a config may name, multi-stage pipelines, and
batched retrieval with every output checked where it enters."""
