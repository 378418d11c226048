"""Text mode: the same loop on plain text, to measure model collapse. A procedural language
whose probabilities are known (`language`), human text through TFDS (`corpora`), the
collapse metrics (`collapse`), and `lm`: the mode itself, with its table and figures
(`report`)."""
