"""Inference batches: similar lengths together, one key per batch when asked, answers in input order."""

from nlpkit.batching import by_length, map_by_length


def test_batches_are_shortest_first_and_stable():
    assert [list(batch) for batch in by_length([3, 1, 2, 1], 2)] == [[1, 3], [2, 0]]


def test_a_batch_holds_one_key_and_the_answers_come_back_in_input_order():
    items, lengths, keys = list("abcdefg"), [3, 1, 2, 1, 3, 2, 1], [0, 0, 1, 1, 0, 1, 0]
    key_of, batches = dict(zip(items, keys)), []

    def upper(batch):
        batches.append(batch)
        return [item.upper() for item in batch]

    assert map_by_length(items, lengths, 2, upper, keys=keys) == list("ABCDEFG")
    assert all(len(batch) <= 2 and len({key_of[item] for item in batch}) == 1 for batch in batches)
    assert sorted(item for batch in batches for item in batch) == items
