"""The model and what runs on the devices, about 950 lines: characters to tokens
(`tokenizer`), the transformer and its KV cache (`model`), the one-axis data mesh and
pmap-style steps (`sharding`), strings to padded batches (`data`), KV-cached sampling
(`sampling`), the optimizer and the train step (`train`), the programs a run compiles
once for its devices (`devices`), and what a generation trains on: examples, their sources
and the data policies (`mixture`)."""
