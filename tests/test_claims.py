"""The claims a notebook shows: a verdict line instead of a bare ``True``, and a readable table."""

import math

from nclab.claims import Claims


def test_verdict_is_truthy_only_when_the_claim_holds_and_reads_as_a_sentence():
    c = Claims("nb")
    ok = c.check("gap_small", 1e-9, 1e-6, says="GD reaches the optimum")
    bad = c.check("ratio_large", 0.5, 1.0, ">")
    nan = c.check("undefined", math.nan, 1.0)
    assert bool(ok) and not bad and not nan
    assert repr(ok) == "✓ GD reaches the optimum: 1.00e-09 < 1.00e-06"
    assert repr(bad).startswith("✗ ratio large: 0.5 > 1")


def test_table_names_every_claim_in_words_with_marks_and_the_reasons_as_notes():
    c = Claims("nb")
    c.check("a", 0.1, 1.0, says="a holds", why="solver tolerance 1e-8")
    c.check("b", 2.0, 1.0, why="theory <b>bound</b>")
    page = c._repr_html_()
    assert "1 of 2 claims hold" in page
    assert page.count("<tr>") == 3 and "a holds" in page and ">b<" not in page.split("<table>")[1].split("<code>")[0]
    assert page.index("✓") < page.index("✗")
    assert "solver tolerance 1e-8" in page and "&lt;b&gt;bound" in page  # reasons escaped, listed once each
    assert page.count("<sup>") == 2
