"""Words that carry no topic, in one place: for the grounding scorer's evidence, the query rewrite's
fallback and the BM25 index.

`FUNCTION_WORDS` are English function words and fillers ("the", "which", "please"); `STOPWORDS` adds the
words answers use to talk about their sources ("according to the passage", "the information given") and
currency and percent words, which the grounding scorer's weights were trained to ignore.
"""

from __future__ import annotations

FUNCTION_WORDS = frozenset(
    """
    a an the and or but nor so yet if then than that this these those there here of in on at to for
    from by with without within into onto over under about above below between among through during
    before after since until while as is are was were be been being am do does did done doing have has
    had having can could may might must shall should will would it its it's itself they them their theirs
    he him his she her hers we us our ours you your yours i me my mine who whom whose which what when
    where why how all any both each either neither few more most other some such no not only own same
    very too also just can't cannot don't doesn't isn't aren't wasn't weren't won't however now
    therefore thus hence although though because whether etc e.g i.e one ones s t up down out off
    again further once per via like well even still much many lot lots get got gets make makes made
    please tell
    """.split()
)

STOPWORDS = FUNCTION_WORDS | frozenset(
    """
    use used using include includes including based provided passage passages information according
    mentioned mention mentions text context answer question given specific specifically
    dollar dollars percent usd
    """.split()
)
