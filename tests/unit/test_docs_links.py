"""The README and docs/ hold together: every doc is linked from the README, and every relative
link and image of a doc points at a file that exists (and at a heading that exists, for #anchors)."""
import re
from pathlib import Path

import pytest

from flightdelay.config import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_every_doc_is_linked_from_the_readme():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README)}
    assert DOCS and not [d.name for d in DOCS if d.resolve() not in linked]


@pytest.mark.parametrize("doc", [README, *DOCS, REPO_ROOT / "training" / "README.md"],
                         ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_point_at_what_exists(doc):
    broken = []
    for target in relative_links(doc):
        file, _, fragment = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (fragment and path.suffix == ".md" and fragment not in anchors(path)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO_ROOT)}: {broken}"


def test_a_broken_link_is_caught(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Top\n\n[ok](#top) [missing](nowhere.md) [bad anchor](#bottom)\n```\n[in code](x.md)\n```\n")
    assert relative_links(doc) == ["#top", "nowhere.md", "#bottom"]
    assert anchors(doc) == {"top"}
    assert anchor("Spark as a cluster (`FD_SPARK_CLUSTER=1`)") == "spark-as-a-cluster-fd_spark_cluster1"
