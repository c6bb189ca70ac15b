"""The official SQuAD scoring logic, for test/eval/squad.test.ts to compare our TypeScript port against.

normalize_answer, f1_score, exact_match_score and metric_max_over_ground_truths are copied unchanged from
the official evaluate-v1.1.py (Rajpurkar et al., 2016; https://rajpurkar.github.io/SQuAD-explorer/);
compute_f1 / get_tokens are copied from the official evaluate-v2.0.py. Only the JSON driver at the bottom is
ours. Reads {"cases": [{"prediction": str, "ground_truths": [str, ...]}, ...]} on stdin and writes one
result per case on stdout.
"""
from collections import Counter
import collections
import json
import re
import string
import sys


# ---- evaluate-v1.1.py (verbatim)

def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


# ---- evaluate-v2.0.py (verbatim; its normalize_answer equals v1.1's in Python 3)

def get_tokens(s):
    if not s: return []
    return normalize_answer(s).split()


def compute_f1(a_gold, a_pred):
    gold_toks = get_tokens(a_gold)
    pred_toks = get_tokens(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        # If either is no-answer, then F1 is 1 if they agree, 0 otherwise
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


# ---- driver (ours)

def unicode_tables():
    """Which code points Python's `re` calls word characters, which str.isspace() accepts, and str.lower() of
    every code point, as ranges / pairs, for the code points this Python's Unicode database assigns."""
    import unicodedata

    word_re = re.compile(r'\w')
    assigned, word, space, lower = [], [], [], {}

    def add(rs, c):
        if rs and rs[-1][1] == c - 1:
            rs[-1][1] = c
        else:
            rs.append([c, c])
    for c in range(0x110000):
        ch = chr(c)
        if ch.isspace():
            space.append(c)
        if unicodedata.category(ch) in ('Cn', 'Cs'):
            continue
        add(assigned, c)
        if word_re.match(ch):
            add(word, c)
        lo = ch.lower()
        if lo != ch:
            lower[c] = lo
    json.dump({'unicode': unicodedata.unidata_version, 'assigned': assigned, 'word': word, 'space': space, 'lower': lower}, sys.stdout)


def main():
    if sys.argv[1:] == ['--unicode-tables']:
        return unicode_tables()
    cases = json.load(sys.stdin)['cases']
    out = []
    for c in cases:
        p, gs = c['prediction'], c['ground_truths']
        out.append({
            'normalized': normalize_answer(p),
            'exact_match': float(metric_max_over_ground_truths(exact_match_score, p, gs)),
            'f1': float(metric_max_over_ground_truths(f1_score, p, gs)),
            'squad_v2_f1': float(max(compute_f1(g, p) for g in gs)),
        })
    json.dump({'python': sys.version.split()[0], 'results': out}, sys.stdout)


if __name__ == '__main__':
    main()
