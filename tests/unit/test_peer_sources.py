"""What a peer sees of this node's sources: file names, never the owner's paths."""

from __future__ import annotations

from agent.peer_asks import public_answer, public_source


def test_paths_become_file_names_and_names_and_urls_stay() -> None:
    assert public_source("/home/alice/notes/bees.md") == "bees.md"
    assert public_source("C:\\Users\\alice\\bees.txt") == "bees.txt"
    assert public_source("notes/bees.md") == "bees.md"
    assert public_source("bees.md") == "bees.md"
    assert public_source("https://example.org/bees") == "https://example.org/bees"


def test_every_path_in_an_answer_is_cut_to_its_name_longest_first() -> None:
    sources = ["/home/alice/notes/bees.md", "/home/alice/notes/bees.md.bak", "cat.md"]
    answer = (
        "Bees make honey (see /home/alice/notes/bees.md).\n\n"
        "Sources: /home/alice/notes/bees.md; /home/alice/notes/bees.md.bak; cat.md"
    )
    shown = public_answer(answer, sources)
    assert shown == "Bees make honey (see bees.md).\n\nSources: bees.md; bees.md.bak; cat.md"
    assert "/home/alice" not in shown


def test_a_degenerate_source_does_not_mangle_the_answer() -> None:
    assert public_answer("a/b and c", ["/"]) == "a/b and c"
