"""chunks_split: token-bounded chunks that know their pages (a unit test: the tokenizer is injected)."""

from ingestion.chunking import chunks_split


def words(text: str) -> int:
    return len(text.split())


def test_chunks_stay_within_budget_and_know_their_pages() -> None:
    pages = [
        (1, " ".join(f"alpha{i}." for i in range(120))),
        (2, ""),
        (3, " ".join(f"gamma{i}." for i in range(80))),
    ]
    drafts = chunks_split(pages=pages, count_tokens=words, chunk_tokens=50, overlap_tokens=5)
    assert all(d.token_count <= 50 for d in drafts)
    assert [d.ordinal for d in drafts] == list(range(len(drafts)))
    for d in drafts:
        assert d.page_start == d.page_end
        assert ("alpha" in d.text) == (d.page_start == 1)
        assert ("gamma" in d.text) == (d.page_start == 3)
    # The empty page 2 is skipped, and every word of pages 1 and 3 is in some chunk.
    joined = " ".join(d.text for d in drafts)
    assert all(f"alpha{i}." in joined for i in range(120)) and all(f"gamma{i}." in joined for i in range(80))


def test_chunks_never_cross_a_page_break() -> None:
    pages = [(4, "end of the fourth page"), (5, "start of the fifth page")]
    drafts = chunks_split(pages=pages, count_tokens=words, chunk_tokens=100, overlap_tokens=0)
    assert [(d.text, d.page_start, d.page_end) for d in drafts] == [
        ("end of the fourth page", 4, 4),
        ("start of the fifth page", 5, 5),
    ]


def test_no_text_gives_no_chunks() -> None:
    assert (
        chunks_split(pages=[(1, "  "), (2, "")], count_tokens=words, chunk_tokens=10, overlap_tokens=2) == []
    )
