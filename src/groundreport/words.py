"""Which caption words carry content: what per-word scores and unknown-word notes count.

Articles, conjunctions, common prepositions and pronouns name nothing in the image; a word
of punctuation alone is not a word a map can be checked against.
"""

from __future__ import annotations

FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet of in on at to for from by with without into onto over under
above below near behind beside between through up down out off while as is are was were be
been being it its this that these those there their his her he she they them who which what
""".split())


def is_punctuation(text: str) -> bool:
    return not any(ch.isalnum() for ch in text)


def is_content_word(text: str) -> bool:
    return not is_punctuation(text) and text.lower() not in FUNCTION_WORDS
