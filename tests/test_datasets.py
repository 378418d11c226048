"""The TFDS builder: deterministic, array_record, read back with tfds.data_source, no TensorFlow."""

import sys

import tensorflow_datasets as tfds  # a core dependency: a broken import fails, never skips

from selfimprove_jax.grading import datasets
from selfimprove_jax.grading.tasks import get_task


def small(seed=0):
  return datasets.make_config("reverse_addition", seed, (1, 3), 300, (1, 4), 5)


def test_builds_array_record_and_reads_back_the_ground_truth(tmp_path):
  splits = datasets.load(small(), tmp_path)
  assert len(splits["train"]) == 300 and len(splits["eval"]) == 4 * 5
  files = list(tmp_path.rglob("*.array_record*"))
  assert files, "expected array_record files"
  task = get_task("reverse_addition")
  train = splits["train"].all()
  assert {p.difficulty for p in train} == {1, 2, 3}
  assert all(task.verify(p, p.answer) for p in train)
  # TFDS stores examples in a fixed, hashed order; the eval split has 5 per difficulty.
  assert sorted(p.difficulty for p in splits["eval"].all()) == [d for d in (1, 2, 3, 4) for _ in range(5)]
  assert "tensorflow" not in sys.modules


def test_the_train_split_is_the_tasks_ground_truth_and_eval_what_it_is_asked(tmp_path):
  # padded_reverse_addition teaches operands of mixed lengths and asks equal ones.
  config = datasets.make_config("padded_reverse_addition", 0, (3, 3), 200, (3, 3), 20)
  splits = datasets.load(config, tmp_path)
  shapes = lambda split: {tuple(map(len, p.prompt[:-1].split("+"))) for p in splits[split].all()}
  assert shapes("eval") == {(3, 3)}
  assert shapes("train") == {(3, 1), (3, 2), (3, 3), (1, 3), (2, 3)}


def test_same_config_same_data_and_the_seed_matters(tmp_path):
  one = datasets.load(small(), tmp_path / "a")["train"].all()
  two = datasets.load(small(), tmp_path / "b")["train"].all()
  other = datasets.load(small(seed=1), tmp_path / "c")["train"].all()
  assert one == two and one != other
  # Indexing by position gives the same examples as reading them all.
  assert datasets.load(small(), tmp_path / "a")["train"][[7, 3]] == [one[7], one[3]]


def test_mock_data_stands_in_for_the_builder():
  # Code that reads the builder through tfds.data_source can be tested without building it.
  with tfds.testing.mock_data(num_examples=6):
    source = tfds.data_source("selfimprove_problems", split="train",
                              builder_kwargs=dict(config=small()))
    records = [source[i] for i in range(len(source))]
  assert len(records) == 6
  assert {"prompt", "answer", "difficulty"} <= set(records[0])


def test_problems_decode_each_record_once_and_keep_the_order_asked():
  reads = []

  class Source:  # a data source of 10 records, counting what it is asked for
    def __len__(self):
      return 10

    def __getitems__(self, indices):
      reads.append(list(indices))
      return [{"prompt": f"{i}+0=".encode(), "answer": str(i).encode(), "difficulty": 1}
              for i in indices]

  problems = datasets.Problems(Source())
  assert [p.answer for p in problems[[7, 3, 7]]] == ["7", "3", "7"]
  assert [p.answer for p in problems[[3, 5]]] == ["3", "5"]
  assert reads == [[3, 7], [5]]
