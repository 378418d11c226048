"""Task mode: problems with answers, and how the model's own answers are graded. The
tasks and their ground-truth datasets (`tasks`, `datasets`), the self-scorers and the
verifier (`scoring`), the self-judge (`judge`) and its lessons from the models' own
answers (`judge_lessons`), the round trip (`round_trip`), users' ratings (`ratings`),
keeping labels (`filtering`), the frontier and its gate (`curriculum`), accuracy against
ground truth (`evaluate`), what it says of the kept labels and the avalanche experiment
(`label_truth`), and `labelling`: the mode itself (sample -> score -> filter, the judge's
lessons, measurement), with its table and figure (`report`)."""
