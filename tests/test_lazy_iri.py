"""The IRI-grammar stand-in: importing nclab's plots no longer compiles rfc3987_syntax, IRI checks still work."""

import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax", reason="rfc3987_syntax not installed: jsonschema has no IRI grammars to defer")

PROBE = """
import sys
import nclab.plots
import jsonschema
loaded_at_import = "rfc3987_syntax.syntax_helpers" in sys.modules
check = jsonschema.FormatChecker()
ok = check.conforms("https://example.org/ä?q=1", "iri")
bad = check.conforms("not an iri", "iri")
after = "rfc3987_syntax.syntax_helpers" in sys.modules
print(loaded_at_import, ok, bad, after, type(sys.modules["rfc3987_syntax"]).__name__)
"""


def test_plots_import_defers_the_grammars_and_iri_checks_still_work():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "False", "True", "module"]


def test_without_the_stand_in_the_grammars_load_with_jsonschema():  # what the stand-in saves
    probe = "import sys, jsonschema; print('rfc3987_syntax.syntax_helpers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_install_is_a_no_op_once_jsonschema_is_loaded():
    import jsonschema  # noqa: F401  (loaded in this test process, stand-in or not)

    from nclab import _lazy_iri

    assert _lazy_iri.install() is False
