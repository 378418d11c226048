"""The round trip: a model checks its answer by asking for the prompt back.

For a task whose inverse is a task of its own (reversal is its own inverse: the
answer "cba" to "abc>" asks "cba>", which must give "abc" back), the model is
asked the inverse question of each of its answers, and the score is the
probability it gives the prompt's string as the answer, EOS included:
P(prompt | inverse question), teacher-forced in one forward pass. Both sides of
the trip come from the prompt and the answer alone; no ground truth is read.

A wrong answer changes the inverse question where it is wrong, and the model,
where it answers that question right, then gives the prompt's letters little
probability there; a right answer is recovered wherever the model can answer
the inverse question. So the check is independent evidence: an error has to be
made twice, and made to cancel, to pass. It is blind to an error that undoes
itself on the way back (a model that swaps the same two mirrored letters in
both directions), and it needs the model to answer the inverse as well as it
answers the question.
"""

import jax
import numpy as np

from selfimprove_jax.core import data
from selfimprove_jax.core.train import member
from selfimprove_jax.grading.scoring import Candidates
from selfimprove_jax.grading.tasks import Task


def probabilities(devices, task: Task, params, cands: Candidates) -> np.ndarray:
  """[N, K] P(prompt back | the inverse question of the answer) for every valid candidate,
  averaged over the ensemble's members (0 for the rest); each distinct answer asked once."""
  pairs = cands.distinct_answers()
  if not pairs:
    return np.zeros(cands.shape)
  questions, expected = zip(*(task.inverse(p, c) for p, c in pairs))
  longest = max(len(devices.tok.encode(q, bos=True)) + len(devices.tok.encode(e, eos=True))
                for q, e in zip(questions, expected))
  width = data.bucket(longest - 1)  # inputs drop the last token
  members = jax.tree.leaves(params)[0].shape[0]
  total = np.zeros(len(pairs))
  for e in range(members):
    logprob, _ = devices.logprobs(member(params, e), list(expected), width,
                                  prompts=list(questions))
    total += np.exp(np.minimum(np.asarray(logprob, np.float64), 0.0))
  return cands.spread(dict(zip(pairs, total / members)))
