"""The README's model table is the one the registry generates (regenerate: make model-table)."""

from pathlib import Path

import visiongates  # noqa: F401
from visiongates.models._registry import replace_model_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_model_table_is_current():
    text = README.read_text()
    assert replace_model_table(text) == text, "README model table is stale: run `make model-table`"


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
