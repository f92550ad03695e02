"""expected_text from quoted spans (apostrophes are not quotes) and the rough script → language tag."""

from __future__ import annotations

import pytest

from prompts.text_features import expected_text_guess, language_guess, quoted_spans


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A storefront with 'Hello World' written on it.", "Hello World"),
        ("A sign that says 'Google Research Pizza Cafe'.", "Google Research Pizza Cafe"),
        ('A green sign that says "Very Deep Learning" and is at the edge of the Grand Canyon.', "Very Deep Learning"),
        ("a book with the words 'Don't Panic!' written on it", "Don't Panic!"),
        ('a robot holding a sign with "Let\'s PAINT!" written on it', "Let's PAINT!"),
        ("a store front that has the word ‘openai’ written on it.", "openai"),
        ("a poster titled “Night Shift” in bold type", "Night Shift"),
        ("the word 'START' written above the word 'SMILING'", "START | SMILING"),
        ("一家咖啡店的招牌上写着“早安”", "早安"),
        ("看板に「こんにちは」と書かれている", "こんにちは"),
        # Apostrophes only: no span.
        ("a dog's bone and a cat's toy written on a sign", ""),
        ("a kids' book cover", ""),
        ("Photo of an athlete cat explaining it's latest scandal", ""),
        # Quotes but no request for writing: scare quotes, not text to render.
        ('a "cozy" cabin in the woods', ""),
        ("a painting of 'the scream' style sunset", ""),
        # Asks for writing but quotes nothing.
        ("a sign that says hello", ""),
    ],
)
def test_expected_text_guess(text, expected):
    assert expected_text_guess(text=text) == expected


def test_text_category_takes_quotes_without_a_cue_word():
    assert expected_text_guess(text="'Hello' in gold", category="Text") == "Hello"
    assert expected_text_guess(text="'Hello' in gold", challenge="Writing & Symbols") == "Hello"
    assert expected_text_guess(text="'Hello' in gold", category="Colors") == ""


def test_quoted_spans_keep_inner_text():
    assert quoted_spans("“ a  b ” and 'x'") == ["a  b", "x"]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("a cat on a mat", ""),
        ("Porträt einer Bäckerin", ""),  # Latin script: unknown, not guessed
        ("一只在雪地里奔跑的红狐狸", "zh"),
        ("雪の中を走る赤いキツネ", "ja"),
        ("東京タワー", "ja"),
        ("눈 속을 달리는 붉은 여우", "ko"),
        ("Рыжая лиса бежит по снегу", "und-Cyrl"),
        ("Μια κόκκινη αλεπού", "el"),
        ("a neon sign saying 你好 on a street at night", ""),  # mostly Latin
        ("42", ""),
    ],
)
def test_language_guess(text, language):
    assert language_guess(text) == language
