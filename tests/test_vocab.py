from conftest import make_bytebpe, make_sentencepiece, make_wordpiece

from harness.vocab import OverlapOptions, VocabForms, canonical, detect_style, find_overlap, fuzzy, is_symbol


def test_canonical_forms_agree_across_styles():
    assert canonical("##ing", "wordpiece") == canonical("ing", "sentencepiece") == canonical("ing", "bytebpe") == "ing"
    assert canonical("the", "wordpiece") == canonical("▁the", "sentencepiece") == canonical("Ġthe", "bytebpe") == "▁the"
    # byte-level pieces decode to UTF-8 text: "Ġé" is " é"
    assert canonical("ĠÃ©", "bytebpe") == "▁é"
    assert fuzzy("▁Paris") == "paris"
    assert is_symbol("▁7") and is_symbol(".") and not is_symbol("▁the")


def test_detect_style_of_each_tokenizer():
    assert VocabForms.of(make_wordpiece(["a", "##b", "##c"])).style == "wordpiece"
    assert VocabForms.of(make_sentencepiece(["▁a", "▁b", "c"])).style == "sentencepiece"
    assert VocabForms.of(make_bytebpe(["Ġa", "Ġb", "c"])).style == "bytebpe"
    assert detect_style(["x", "y"]) in ("wordpiece", "sentencepiece", "bytebpe")


def test_overlap_wordpiece_source_sentencepiece_target():
    src = make_wordpiece(["the", "city", "##s", "paris", "7", "."])
    tgt = make_sentencepiece(["▁the", "s", "▁PARIS", "▁7", ".", "▁서울"])
    sv, tv = src.get_vocab(), tgt.get_vocab()
    ov = find_overlap(src, tgt)
    assert ov.pairs[tv["▁the"]] == sv["the"] and ov.reasons[tv["▁the"]] == "exact"
    assert ov.pairs[tv["s"]] == sv["##s"]  # continuation <-> continuation
    assert ov.pairs[tv["▁PARIS"]] == sv["paris"] and ov.reasons[tv["▁PARIS"]] == "fuzzy"
    assert ov.reasons[tv["▁7"]] == "exact" and ov.pairs[tv["▁7"]] == sv["7"]  # "▁7" is the canonical form of "7"
    assert ov.reasons[tv["."]] == "symbol"  # a continuation "." matches the word-start "."
    assert tv["▁서울"] not in ov.pairs
    # special tokens match by role: <s> is the CLS of a SentencePiece tokenizer
    assert ov.pairs[tv["<s>"]] == sv["[CLS]"] and ov.pairs[tv["<mask>"]] == sv["[MASK]"]


def test_overlap_options_switch_tests_off():
    src = make_wordpiece(["the", "paris", "7"])
    tgt = make_bytebpe(["Ġthe", "ĠPARIS", "Ġ7"])
    tv = tgt.get_vocab()
    exact_only = find_overlap(src, tgt, OverlapOptions(match_symbols=False, exact_match_all=True, fuzzy_match_all=False))
    assert tv["Ġthe"] in exact_only.pairs and tv["ĠPARIS"] not in exact_only.pairs
    assert tv["<s>"] not in exact_only.pairs and tv["Ġ7"] in exact_only.pairs  # "▁7" matches exactly
    with_fuzzy = find_overlap(src, tgt, OverlapOptions(False, True, True))
    assert tv["ĠPARIS"] in with_fuzzy.pairs
    nothing = find_overlap(src, tgt, OverlapOptions(False, False, False))
    assert nothing.pairs == {}


def test_first_source_id_wins():
    src = make_wordpiece(["Paris", "paris"])  # both lower-case to "paris" under fuzzy matching
    tgt = make_sentencepiece(["▁PARIS"])
    ov = find_overlap(src, tgt, OverlapOptions(False, False, True))
    assert ov.pairs[tgt.get_vocab()["▁PARIS"]] == min(src.get_vocab()["Paris"], src.get_vocab()["paris"])


def test_exact_match_comes_before_the_symbol_match():
    """The authors' order (FOCUS / SemBridge): a continuation "##9" copies the source "##9", not "9"."""
    src = make_wordpiece(["9", "##9", "7", "%"])
    tgt = make_wordpiece(["##9", "9", "##7", "##%"])
    sv, tv = src.get_vocab(), tgt.get_vocab()
    ov = find_overlap(src, tgt)
    assert ov.pairs[tv["##9"]] == sv["##9"] and ov.reasons[tv["##9"]] == "exact"
    assert ov.pairs[tv["9"]] == sv["9"] and ov.reasons[tv["9"]] == "exact"
    # no exact form: the symbol test still matches across the word-start marker
    assert ov.pairs[tv["##7"]] == sv["7"] and ov.reasons[tv["##7"]] == "symbol"
    assert ov.pairs[tv["##%"]] == sv["%"] and ov.reasons[tv["##%"]] == "symbol"
    assert ov.reasons[tv["[CLS]"]] == "special:cls_token"  # special tokens by role still come first
