"""Answer parsing, one rule per paper, never raising on any string.

Every parser returns a `ParsedResponses`: the prediction per response (NaN where nothing parsed), the
PreResQ aspect ratings (empty for single-score presets) and a failure mask; parse failures are counted
per batch from that mask.

Absurd numbers: a parsed number whose magnitude exceeds `MAX_ABS_SCORE` (1e30; "1e309"-style overflow,
10 000-digit numbers) counts as a parse failure. The official code would feed it into float32 sums that
overflow to inf and end in NaN rewards; below 1e30 every float32 sum of a batch stays finite, so the
official arithmetic is reproduced unchanged for every number it can represent.
"""

import re
from dataclasses import dataclass

import numpy as np

from rewards.torch_float32 import torch_mean

MAX_ABS_SCORE = 1e30

# Batch statistics (group mean/variance of the Thurstone rank) need a value for a response that did not
# parse. The official code draws random.randint(1, 5); qthink uses its expectation, 3.0, so a batch is
# deterministic. The failed response's own score components are 0 either way.
FAILED_PARSE_STAND_IN = 3.0

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# The official patterns. On PreResQ's, a leading lookahead on the first character changes no match but
# lets the regex engine skip non-candidate positions quickly (4096 responses: 39 -> 17 ms).
_SIGNED_NUMBER = re.compile(r"-?\d+(\.\d+)?")  # VQAThinker / VisualQuality-R1 extract_first_number
_JSON_RATING = re.compile(r"\"rating\"\s*:\s*([\d\.]+)")  # Q-Insight score_reward
_PRERESQ_NUMBER = re.compile(r"(?=[-+.\d])(?:[-+]?\d*\.\d+|\d+)")  # PreResQ-R1: only decimals keep a sign


@dataclass(frozen=True)
class ParsedResponses:
    pred: np.ndarray  # float64 (N,): the parsed score, NaN where the response did not parse
    aspects: np.ndarray  # float64 (N, k): PreResQ aspect ratings as parsed (k = 0 for other presets)
    failed: np.ndarray  # bool (N,)

    @classmethod
    def concat(cls, parts: list["ParsedResponses"]) -> "ParsedResponses":
        return cls(
            pred=np.concatenate([p.pred for p in parts]),
            aspects=np.concatenate([p.aspects for p in parts]),
            failed=np.concatenate([p.failed for p in parts]),
        )

    def take(self, index: np.ndarray) -> "ParsedResponses":
        return ParsedResponses(self.pred[index], self.aspects[index], self.failed[index])

    def group_scores(self, group_size: int) -> np.ndarray:
        """The score of each group of `group_size` consecutive answers, one rule for training metrics,
        evaluation and Serve: the mean of the answers that parsed, each clipped to the 1-5 scale first (one
        stray "1080" must not drag a mean of N samples off it); a group with none scores the scale's middle,
        so a model that never answers gets SRCC 0, not a flattering subset."""
        pred = np.where(self.failed, np.nan, np.clip(self.pred, 1.0, 5.0)).reshape(-1, group_size)
        parsed = ~self.failed.reshape(-1, group_size)
        sums = np.where(parsed, pred, 0.0).sum(axis=1)
        counts = parsed.sum(axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), FAILED_PARSE_STAND_IN)


def _to_score(text: str) -> float:
    """float(text) when it is a number of sane magnitude, else NaN."""
    try:
        value = float(text)
    except ValueError:
        return float("nan")
    return value if abs(value) <= MAX_ABS_SCORE else float("nan")


def _single_scores(scores: list[float]) -> ParsedResponses:
    pred = np.array(scores, dtype=np.float64).reshape(-1)
    return ParsedResponses(pred, np.zeros((pred.size, 0)), np.isnan(pred))


def r1_answer_text(response: str) -> str:
    """The LAST <answer> block, stripped; the whole response (stripped) when there is none."""
    answers = _ANSWER.findall(response)
    return answers[-1].strip() if answers else response.strip()


def first_signed_number(text: str) -> float:
    match = _SIGNED_NUMBER.search(text)
    return _to_score(match.group()) if match else float("nan")


def parse_r1_scores(responses: list[str]) -> ParsedResponses:
    """VQAThinker / VisualQuality-R1 rule: first `-?\\d+(\\.\\d+)?` of the last answer block.

    "3.47/5" -> 3.47, "4." -> 4.0, and with no tags "Across the 16 frames ..." -> 16 (quirks kept).
    """
    return _single_scores([first_signed_number(r1_answer_text(r)) for r in responses])


def _json_rating(response: str) -> float:
    answer = _ANSWER.search(response)  # Q-Insight reads the FIRST answer block
    if answer is None:
        return float("nan")
    rating = _JSON_RATING.search(answer.group(1).strip())
    return _to_score(rating.group(1)) if rating else float("nan")  # "3.47.5" -> ValueError -> NaN


def parse_json_ratings(responses: list[str]) -> ParsedResponses:
    """Q-Insight rule: `"rating": <digits and dots>` inside the first answer block (unsigned, unquoted)."""
    return _single_scores([_json_rating(r) for r in responses])


def _aspect_ratings(response: str, n_aspects: int) -> tuple[list[float], bool]:
    found = _PRERESQ_NUMBER.findall(response)
    used = [float(x) for x in (found[-n_aspects:] if len(found) >= n_aspects else found)]
    if not used:
        return [3.0] * n_aspects, True  # the official "no number" value
    return used + [used[0]] * (n_aspects - len(used)), False


def parse_aspect_ratings(responses: list[str], n_aspects: int) -> ParsedResponses:
    """PreResQ-R1 rule: every number of the WHOLE response, the last `n_aspects` of them.

    `[-+]?\\d*\\.\\d+|\\d+` keeps a minus only on decimals ("-2" -> 2, "-2.5" -> -2.5, ".5" -> 0.5,
    "1080p" -> 1080). Too few numbers are padded with copies of the FIRST one; none gives 3.0 for every
    aspect (the official value; qthink also counts it as a parse failure), and so does a used number
    beyond `MAX_ABS_SCORE` (an unused huge number changes nothing, as in the official code). The
    prediction is the float32 torch mean of the aspects, as `last5_tensor.mean()` computes it.
    """
    rows = [_aspect_ratings(r, n_aspects) for r in responses]
    aspects = np.array([values for values, _ in rows], dtype=np.float64).reshape(len(rows), n_aspects)
    absurd = ~(np.abs(aspects) <= MAX_ABS_SCORE).all(axis=1)
    aspects[absurd] = 3.0
    pred = torch_mean(aspects.astype(np.float32)).astype(np.float64)
    return ParsedResponses(pred, aspects, np.array([failed for _, failed in rows], dtype=bool) | absurd)
