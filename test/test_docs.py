"""The documentation a clone ships: every relative link in README.md and docs/*.md points to
a file in the repository (none to ../shared or elsewhere outside it), and .gitignore keeps
the folders the README's commands write out of git."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target "title") and ![alt](target), and reference definitions "[name]: target"
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)


def relative_links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code blocks hold commands, not links
    targets = INLINE.findall(text) + REFERENCE.findall(text)
    return [t for t in targets if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t) and not t.startswith("#")]


def test_the_link_finder_sees_links_and_skips_urls_and_code():
    text = ('See [a](docs/a.md#part), ![img](images/x.png "t") and [web](https://x.org), [top](#top).\n'
            '[ref]: ../outside.md\n```\n[not](a_link.md)\n```\n')
    assert relative_links(text) == ["docs/a.md#part", "images/x.png", "../outside.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_in_the_repo(doc):
    broken = []
    for target in relative_links(doc.read_text()):
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)}: {broken}"


def test_readme_links_the_algorithm_facts():
    assert "docs/algorithm.md" in relative_links((REPO / "README.md").read_text())


@pytest.mark.skipif(not (shutil.which("git") and (REPO / ".git").exists()), reason="not a git checkout")
def test_gitignore_covers_what_the_commands_write():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO).returncode == 0
    for folder in ("bags", "runs", "data", "demo_out"):
        assert ignored(f"{folder}/episode_0001/x.mcap"), folder
    assert not ignored("crl_ros/bags/new_module.py") and not ignored("test/bags/test_new.py")
