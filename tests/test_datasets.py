"""Every loader turns its format into the same Example record; bad rows are skipped with a reason."""

from __future__ import annotations

import json

import pytest

from groundreport.datasets import detect_format, load_dataset
from groundreport.datasets.entities import parse_sentence
from groundreport.errors import UserError
from groundreport.sampling import sample_pairs

from conftest import write_scene_images


def test_notebook_csv_groups_five_captions_per_image(tmp_path):
    write_scene_images(tmp_path / "Images", 2)
    rows = ["image,caption"] + [f"img{i}.jpg,caption {k} of {i}" for i in range(2) for k in range(5)]
    (tmp_path / "captions.txt").write_text("\n".join(rows))
    fmt, ex = load_dataset(tmp_path / "captions.txt", None)
    assert fmt == "csv"
    assert [e.image_id for e in ex] == ["img0", "img1"]
    assert [c.text for c in ex[1].captions] == [f"caption {k} of 1" for k in range(5)]
    assert ex[0].image_path == (tmp_path / "Images" / "img0.jpg").resolve()


def test_csv_messy_rows(tmp_path):
    write_scene_images(tmp_path / "Images", 1)
    raw = ('image,caption\nimg0.jpg,"a dog, a cat and a man"\nimg0.jpg,"a dog, a cat and a man"\n'
           'img0.jpg\nimg0.jpg,\nimg0.jpg,caf\xe9 au lait\n../../etc/passwd,escape\n/etc/passwd,abs\n')
    (tmp_path / "captions.txt").write_bytes(raw.encode("latin-1"))
    skipped = []
    _, ex = load_dataset(tmp_path / "captions.txt", None, skipped=skipped)
    texts = [c.text for c in ex[0].captions]
    assert texts[0] == "a dog, a cat and a man"  # quoted commas kept, duplicate dropped
    assert len(texts) == 2 and "\ufffd" in texts[1]  # the non-UTF-8 byte is replaced, not fatal
    reasons = " | ".join(r for _, r in skipped)
    assert "one column" in reasons and "empty caption" in reasons
    assert "escapes the images folder" in reasons and "absolute image path refused" in reasons
    assert len(ex) == 1


def test_karpathy_split(tmp_path):
    write_scene_images(tmp_path / "images", 3)
    data = {"images": [
        {"filename": "img0.jpg", "imgid": 0, "split": "test", "sentences": [{"raw": "a red star"}, {"raw": "x"}]},
        {"filename": "img1.jpg", "imgid": 1, "split": "train", "sentences": [{"raw": "a blue square"}]},
        {"filename": "img2.jpg", "imgid": 2, "split": "test", "sentences": [{"raw": "a green cross"}]},
    ]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(data))
    fmt, ex = load_dataset(tmp_path / "dataset_flickr30k.json", tmp_path / "images", split="test")
    assert fmt == "karpathy" and [e.image_id for e in ex] == ["img0", "img2"]
    _, ex = load_dataset(tmp_path / "dataset_flickr30k.json", tmp_path / "images", split="train")
    assert [c.text for c in ex[0].captions] == ["a blue square"]


def test_entities_sentence_parsing():
    text, phrases = parse_sentence("[/EN#18/people A man] in [/EN#19/clothing/colors a red jacket] "
                                   "sits on [/EN#0/notvisual it] .")
    assert text == "A man in a red jacket sits on it ."
    assert phrases[0] == (18, "A man", (0, 5))
    assert phrases[1][0] == 19 and text[slice(*phrases[1][2])] == "a red jacket"
    assert phrases[2][0] == 0


def test_entities_boxes_are_converted_and_chained(tmp_path):
    root = tmp_path / "entities"
    (root / "Sentences").mkdir(parents=True)
    (root / "Annotations").mkdir()
    write_scene_images(tmp_path / "flickr30k-images", 1)
    (tmp_path / "flickr30k-images" / "img0.jpg").rename(tmp_path / "flickr30k-images" / "42.jpg")
    (root / "Sentences" / "42.txt").write_text(
        "[/EN#1/people Two dogs] play with [/EN#2/other a ball] .\n[/EN#0/notvisual Nothing] here .\n")
    (root / "Annotations" / "42.xml").write_text("""<annotation><size><width>96</width><height>96</height></size>
<object><name>1</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
<object><name>1</name><bndbox><xmin>31</xmin><ymin>41</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>
<object><name>2</name><nobndbox>1</nobndbox></object></annotation>""")
    (root / "test.txt").write_text("42\n")
    fmt, ex = load_dataset(root, tmp_path / "flickr30k-images", split="test")
    assert fmt == "entities"
    cap = ex[0].captions[0]
    assert cap.text == "Two dogs play with a ball ."
    assert cap.phrases[0].boxes == ((0, 0, 10, 20), (30, 40, 50, 60))  # 1-based inclusive -> 0-based exclusive
    assert cap.phrases[1].text == "a ball" and cap.phrases[1].boxes == ()
    assert ex[0].captions[1].phrases == []  # chain 0 is not visual


def test_grounding_jsonl(grounding_jsonl):
    fmt, ex = load_dataset(grounding_jsonl, None)
    assert fmt == "jsonl" and len(ex) == 3
    ph = ex[0].captions[0].phrases[0]
    assert ph.boxes and ph.span is not None
    assert ex[0].captions[0].text[slice(*ph.span)] == ph.text


def test_grounding_jsonl_bad_lines(tmp_path):
    write_scene_images(tmp_path, 1, "png")
    lines = ['{"image": "img0.png", "caption": "a red star", "phrases": [{"text": "red star", "boxes": [[1, 2, 3]]}]}',
             "not json", '{"image": "img0.png"}', '{"image": "../x.png", "caption": "a"}',
             '{"image": "img0.png", "caption": "a blue cross"}']
    (tmp_path / "d.jsonl").write_text("\n".join(lines))
    skipped = []
    _, ex = load_dataset(tmp_path / "d.jsonl", None, skipped=skipped)
    assert [c.text for c in ex[0].captions] == ["a blue cross"]
    assert len(skipped) == 4


def test_flickr_token_and_pipe_formats(tmp_path):
    write_scene_images(tmp_path / "Images", 2)
    (tmp_path / "results_20130124.token").write_text("img0.jpg#0\ta red star\nimg0.jpg#1\ta star\nimg1.jpg#0\ta cross\n")
    fmt, ex = load_dataset(tmp_path / "results_20130124.token", None)
    assert fmt == "token" and [len(e.captions) for e in ex] == [2, 1]
    (tmp_path / "results.csv").write_text("image_name| comment_number| comment\nimg0.jpg| 0| a red star\n"
                                          "img1.jpg| 0| a cross | with a pipe\n")
    fmt, ex = load_dataset(tmp_path / "results.csv", None)
    assert fmt == "pipe" and ex[1].captions[0].text == "a cross | with a pipe"


def test_unknown_format_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello world\n")
    with pytest.raises(UserError, match="cannot tell its format"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "missing.txt", None)


def test_sampling_is_seeded(flickr_csv):
    _, ex = load_dataset(flickr_csv, None)
    a = sample_pairs(ex, 2, 2, seed=3)
    b = sample_pairs(ex, 2, 2, seed=3)
    key = lambda ps: [(p.example.image_id, p.caption_index) for p in ps]
    assert key(a) == key(b) and len(a) == 4
    assert len({tuple(key(sample_pairs(ex, 2, 2, seed=s))) for s in range(10)}) > 1  # the seed matters


def test_a_phrase_is_located_as_whole_words():
    """"man" is not inside "woman"; "a red" is not inside "a reddish"; case and punctuation as before."""
    from groundreport.records import locate_phrase

    assert locate_phrase("a woman and a man", "man") == (14, 17)
    assert locate_phrase("a bored dog", "red") is None
    assert locate_phrase("a reddish circle", "a red") is None
    assert locate_phrase("A Red circle", "a red") == (0, 5)
    assert locate_phrase("the man's hat", "man") == (4, 7)
    assert locate_phrase("a dog.", "dog.") == (2, 6)
    assert locate_phrase("a red circle and a red square", "a red", 3) == (17, 22)
