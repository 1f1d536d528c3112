"""The documentation a clone ships: every relative link in README.md and docs/*.md points to
a file in the repository (none to ../shared or elsewhere outside it), .gitignore keeps
the folders the README's commands write out of git, and the demo figures in README.md and
the model card are the ones in the result files they cite."""
import json
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


# --- demo figures: every table row citing a bench/results/demo_*.json says what that file holds ---

def seed_list(text: str) -> list[int]:
    """'100-103' -> [100, 101, 102, 103]; '100 and 102-104' and '100, 101' too."""
    seeds = []
    for part in re.split(r",|\band\b", text):
        low, _, high = part.strip().partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def demo_cell_problems(cell: str, episodes: list[dict]) -> list[str]:
    """A task's cell, e.g. '4/5 (seeds 100-103 in 0.9-5.0 s, 4-25 actions; seed 104 timed out)',
    against the task's episodes; each figure the cell gives is checked, and the count always."""
    reached = [e for e in episodes if e["success"]]
    problems = []

    def check(what, said, held):
        if said != held:
            problems.append(f"{what}: says {said}, the file has {held}")
    count = re.search(r"(\d+)/(\d+)", cell)
    check("reached", count and count.groups(), (str(len(reached)), str(len(episodes))))
    seconds = re.search(r"(\d+\.\d)-(\d+\.\d) s\b", cell)
    if seconds and reached:
        check("seconds", seconds.groups(), (f"{min(e['seconds'] for e in reached):.1f}",
                                            f"{max(e['seconds'] for e in reached):.1f}"))
    actions = re.search(r"(\d+)-(\d+) actions", cell)
    if actions and reached:
        check("actions", actions.groups(), (str(min(e["actions"] for e in reached)),
                                            str(max(e["actions"] for e in reached))))
    succeeded = re.search(r"seeds? ([\d, and-]+?) in ", cell)
    if succeeded:
        check("seeds reached", seed_list(succeeded.group(1)), [e["seed"] for e in reached])
    timed_out = re.search(r"seeds? ([\d, and-]+?) timed out", cell)
    if timed_out:
        check("seeds timed out", seed_list(timed_out.group(1)), [e["seed"] for e in episodes if not e["success"]])
    return problems


def demo_table_problems(text: str) -> tuple[int, list[str]]:
    """(rows checked, problems) for every markdown table with reach and push_block columns."""
    rows, problems = 0, []
    for table in re.findall(r"(?:^\|.*\|[ \t]*\n)+", text, flags=re.MULTILINE):
        lines = table.strip().splitlines()
        header = [c.strip() for c in lines[0].strip("|").split("|")]
        if "reach" not in header or "push_block" not in header:
            continue
        for line in lines[2:]:
            cited = re.search(r"bench/results/(demo_[\w.-]+\.json)", line)
            if not cited:
                continue
            rows += 1
            report = json.loads((REPO / "bench" / "results" / cited.group(1)).read_text())
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            in_all = re.search(r"(\d+) s in all", line)
            if in_all and "seconds_in_all" in report and int(in_all.group(1)) != round(report["seconds_in_all"]):
                problems.append(f"{cited.group(1)}: says {in_all.group(1)} s in all, the file has "
                                f"{report['seconds_in_all']:.0f}")
            for task in ("reach", "push_block"):
                episodes = [e for e in report["episodes"] if e["task"] == task]
                problems += [f"{cited.group(1)} {task}: {p}"
                             for p in demo_cell_problems(cells[header.index(task)], episodes)]
    return rows, problems


def test_the_demo_cell_checker_finds_a_stale_figure():
    episodes = [{"seed": 100 + i, "success": i < 4, "seconds": 1.0 + i, "actions": 5 + i} for i in range(5)]
    assert demo_cell_problems("4/5 (seeds 100-103 in 1.0-4.0 s, 5-8 actions; seed 104 timed out)", episodes) == []
    assert demo_cell_problems("**4/5** (the same seeds, 1.0-4.0 s)", episodes) == []
    assert demo_cell_problems("4/5 (1.0-4.0 s; seed 103 timed out)", episodes) == [
        "seeds timed out: says [103], the file has [104]"]
    stale = demo_cell_problems("5/5 (seeds 100 and 101-103 in 1.0-4.5 s, 4-8 actions)", episodes)
    assert len(stale) == 3 and stale[0].startswith("reached: says ('5', '5')")
    assert seed_list("100 and 102-104") == [100, 102, 103, 104] and seed_list("100, 101") == [100, 101]


@pytest.mark.parametrize("doc", ["README.md", "models/MODEL_CARD.md"])
def test_demo_figures_are_the_result_files(doc):
    rows, problems = demo_table_problems((REPO / doc).read_text())
    assert rows >= 2, f"{doc}: no demo table rows citing bench/results/demo_*.json"
    assert not problems, f"{doc}: {problems}"
