"""Q-Ponder's reasoning/score consistency, rule-based (the paper's formula is unpublished; qthink's own).

The reasoning should conclude the quality level its score claims. The level the reasoning states is the
LAST level word of the think text (conclusions come last), from a lexicon of five levels and their common
synonyms; a negated word (a negator up to one word before it: "not good", "isn't very good") maps through
`NEGATED_LEVEL` ("not good" -> fair, "not bad" -> fair, "not excellent" -> good; a negated "fair" states
nothing). Words of a phrase may be joined by spaces or hyphens ("low-quality"). The score's band:
[4.2, 5] excellent, [3.4, 4.2) good, [2.6, 3.4) fair, [1.8, 2.6) poor, [1, 1.8) bad. Reward: 1 same
level, 0.5 adjacent, 0 otherwise, when the reasoning states no level, or the score is unparsed or outside
[1, 5].
"""

import re

import numpy as np

BAD, POOR, FAIR, GOOD, EXCELLENT = range(5)
LEVEL_WORDS = {
    EXCELLENT: (
        "excellent",
        "outstanding",
        "superb",
        "exceptional",
        "pristine",
        "flawless",
        "impeccable",
        "perfect",
    ),
    GOOD: ("good", "great", "decent", "nice", "pleasing", "high quality"),
    FAIR: ("fair", "average", "moderate", "acceptable", "mediocre", "passable", "okay", "medium quality"),
    POOR: ("poor", "subpar", "low quality", "inferior"),
    BAD: (
        "bad",
        "terrible",
        "awful",
        "horrible",
        "dreadful",
        "unacceptable",
        "unusable",
        "very poor",
        "extremely poor",
    ),
}
NEGATED_LEVEL = {EXCELLENT: GOOD, GOOD: FAIR, FAIR: None, POOR: FAIR, BAD: FAIR}
_LEVEL_OF = {re.sub(r"[\s-]+", " ", w): level for level, words in LEVEL_WORDS.items() for w in words}


def _reversed_phrase(phrase: str) -> str:
    return r"[\s-]+".join(re.escape(word[::-1]) for word in reversed(phrase.split()))


# Only the LAST mention matters, so the lexicon is searched in the reversed text: the first match there is
# the last one here, and a reasoning is scanned from its end only as far as its conclusion (the forward
# scan over a 4096-response batch took ~150 ms). Longer phrases first: "very poor" before "poor".
_LAST_MENTION = re.compile(
    r"\b(?:" + "|".join(_reversed_phrase(p) for p in sorted(_LEVEL_OF, key=len, reverse=True)) + r")\b"
)
_NEGATED = re.compile(
    r"\b(?:not|no|never|hardly|barely|isn't|isnt|aren't|wasn't|weren't|doesn't|don't|cannot|can't)\s+(?:[a-z]+\s+)?$"
)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
BAND_LOWER_EDGES = (1.0, 1.8, 2.6, 3.4, 4.2)  # bad, poor, fair, good, excellent


def stated_level(reasoning: str) -> int | None:
    """The quality level the reasoning concludes (its last level word, negation-aware), or None."""
    text = reasoning.lower()
    mention = _LAST_MENTION.search(text[::-1])
    if mention is None:
        return None
    level = _LEVEL_OF[re.sub(r"[\s-]+", " ", mention.group()[::-1])]
    start = len(text) - mention.end()
    return NEGATED_LEVEL[level] if _NEGATED.search(text[max(0, start - 40) : start]) else level


def score_band(score: float) -> int | None:
    if not 1.0 <= score <= 5.0:  # NaN and out-of-scale scores have no band
        return None
    return int(np.searchsorted(BAND_LOWER_EDGES, score, side="right")) - 1


def reasoning_text(response: str) -> str:
    """The last think block; without one, everything before the first answer tag."""
    thoughts = _THINK.findall(response)
    return thoughts[-1] if thoughts else response.split("<answer>", 1)[0]


def rule_based_consistency(responses: list[str], pred: np.ndarray) -> np.ndarray:
    reward = np.zeros(len(responses))
    for k, (response, score) in enumerate(zip(responses, pred, strict=True)):
        level, band = stated_level(reasoning_text(response)), score_band(score)
        if level is not None and band is not None:
            reward[k] = {0: 1.0, 1: 0.5}.get(abs(level - band), 0.0)
    return reward
