"""The set identity: one name per set, read back to the same set, and what each set is."""

import pytest

from foundation.sets import SetId


@pytest.mark.parametrize("set_id, name, kind", [
    (SetId(), "original", "original"),
    (SetId.of(4), "q4", "learned"),
    (SetId("jpeg", 30), "jpeg30", "classical"),
    (SetId("webp", 50), "webp50", "classical"),
])
def test_a_set_has_one_name_that_reads_back_to_it(set_id, name, kind):
    assert (set_id.name, str(set_id), set_id.kind) == (name, name, kind)
    assert SetId.parse(name) == set_id
    assert set_id.learned == (kind == "learned") and set_id.coded == (kind != "original")


@pytest.mark.parametrize("bad", ["q", "jpeg", "png30", "Q4", "q4.tar", "q0", "original1", ""])
def test_a_name_that_is_no_set_says_which_forms_exist(bad):
    with pytest.raises(ValueError, match="not a set name: original, q<Q> .*jpeg<P>, webp<P>"):
        SetId.parse(bad)


def test_a_set_that_cannot_exist_is_refused_with_what_to_give():
    with pytest.raises(ValueError, match="codec 'avif' is not one of learned, jpeg, webp"):
        SetId("avif", 30)
    with pytest.raises(ValueError, match="a jpeg set needs its Pillow quality"):
        SetId("jpeg")
    with pytest.raises(ValueError, match="quality '4': give a whole number"):
        SetId.of("4")


def test_sets_sort_as_the_report_lists_them():
    shuffled = [SetId("webp", 5), SetId.of(8), SetId("jpeg", 60), SetId(), SetId("jpeg", 5),
                SetId.of(1)]
    assert [s.name for s in sorted(shuffled)] == ["original", "q1", "q8", "jpeg5", "jpeg60",
                                                  "webp5"]
