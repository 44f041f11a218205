"""The repository's promises to a new user: the README's two commands and what CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    """The lines of the README's first code block."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_the_readme_starts_with_exactly_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# nlpkit\n\n```bash\n")
    install_and_run, install_and_test = readme_commands()
    assert "pip install" in install_and_run and "nlpkit train" in install_and_run and "nlpkit predict" in install_and_run
    assert "pip install" in install_and_test and "pytest" in install_and_test


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == readme_commands()[1]


def test_every_bundled_corpus_is_attributed():
    notice = (ROOT / "data" / "NOTICE").read_text(encoding="utf-8")
    for corpus in sorted(p.relative_to(ROOT / "data") for p in (ROOT / "data").rglob("*") if p.is_file()):
        if corpus.name != "NOTICE":
            assert str(corpus.parent) in notice or str(corpus) in notice, corpus
