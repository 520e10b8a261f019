"""Tests of the figure readers (raw USPTO, DeepPatent2, generic) on the real data and on folders built here."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pir.ingest.deeppatent2 import parse_deeppatent2_filename
from pir.ingest.normalize import normalize_patent_id, normalize_viewpoint, parse_date, split_codes
from pir.ingest.readers import detect_format, read_figures
from pir.ingest.schema import PatentFigure, ReadIssue
from pir.ingest.uspto import parse_figure_descriptions, parse_uspc

USPTO = "impact_uspto_design_raw/sample_data"


def _png(path: Path, size: tuple[int, int] = (60, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("L", size, 255)
    ImageDraw.Draw(img).rectangle((5, 5, size[0] - 5, size[1] - 5), outline=0, width=2)
    img.save(path)
    return path


def _tif(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("1", (80, 120), 1)
    ImageDraw.Draw(img).line((5, 5, 70, 110), fill=0, width=2)
    img.save(path, compression="group4")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


def test_normalize_patent_id() -> None:
    cases = {
        "USD0907292": "USD0907292",
        "D0907292": "USD0907292",
        "D907292": "USD0907292",
        "US D907,292 S": "USD0907292",
        "USD0907292-20210105": "USD0907292",
        "usd0907292s1": "USD0907292",
        "10524395": "US10524395",
        "US 10,524,395 B2": "US10524395",
        "RE47890": "USRE047890",
        "EP1234567A1": "EP1234567",
        "chair_01": "chair_01",
    }
    assert {k: normalize_patent_id(k) for k in cases} == cases
    with pytest.raises(ValueError):
        normalize_patent_id("NULL")


def test_normalize_viewpoint() -> None:
    cases = {
        "FIG. 1 is a front perspective view of an ornamental design for a lamp;": "perspective",
        "FIG. 2 is a bottom view thereof;": "bottom",
        "FIG. 3 is a bottom thereof;": "bottom",
        "FIG. 4 is a left side view thereof;": "left side",
        "FIG. 5 is a right side elevational view thereof": "right side",
        "FIG. 6 is a back view thereof;": "rear",
        "FIG. 7 is a top plan view": "top",
        "FIGS. 8 and 9 are side views thereof": "side",
        "FIG. 1 is a perspective view of a shoe with a front strap and a rear heel": "perspective",
        "FIG. 10 is a cross-sectional view taken along line 10-10": "cross-section",
        "FIG. 3 is an enlarged fragmentary elevation view of the bottom portion": "detail",
        "1.4 : Left": "left side",
        "The FIGURE is a front view of a display screen": "front",
        "front view": "front",
        "FIG. 2 is a second image thereof;": None,
        "": None,
    }
    assert {k: normalize_viewpoint(k) for k in cases} == cases


def test_parse_date_and_split_codes() -> None:
    assert parse_date(20200107) == parse_date("2020-01-07") == parse_date("20200107") == date(2020, 1, 7)
    assert parse_date("NULL") is None and parse_date("garbage") is None
    assert split_codes("D6-484; D6-485|D6-486") == ["D6-484", "D6-485", "D6-486"]
    assert split_codes('["D6-484", "D6-485"]') == ["D6-484", "D6-485"]
    assert split_codes(["D6-484", None, ""]) == ["D6-484"]
    assert split_codes(None) == [] and split_codes("") == []


def test_parse_uspc_fixed_width() -> None:
    cases = {"D28 47": "D28-47", "D 2728": "D2-728", " D2840": "D2-840", "D142034": "D14-203.4"}
    cases |= {"D18  46": "D18-46", "D 5 32": "D5-32", "345 11": "345-11", "D14/486": "D14-486"}
    assert {k: parse_uspc(k) for k in cases} == cases


def test_parse_figure_descriptions_styles() -> None:
    figs = parse_figure_descriptions(
        [
            "FIG. 1 is a perspective view of a lamp;",
            "FIGS. 2 and 3 are side views thereof; and,",
            "FIG. 4 a top view thereof.",  # verb missing in a real grant (USD0928323)
            "The broken lines shown in FIGS. 1-4 form no part of the claimed design.",
        ]
    )
    assert list(figs) == ["1", "2", "3", "4"]
    assert figs["3"] == "FIGS. 2 and 3 are side views thereof"
    hague = parse_figure_descriptions(["1. Belt buckle", "1.1 : Perspective", "1.2 : Front"])
    assert hague == {"1.1": "1.1 : Perspective", "1.2": "1.2 : Front"}
    assert parse_figure_descriptions(["The FIGURE is a front view of a screen."]) == {
        "1": "The FIGURE is a front view of a screen"
    }


# ---------------------------------------------------------------------------------------------------------------
# Raw USPTO
# ---------------------------------------------------------------------------------------------------------------


def test_uspto_real_sample_all_sheets(shared_data: Path) -> None:
    root = shared_data / USPTO
    assert detect_format(root) == "uspto_raw"
    assert detect_format(shared_data / "impact_uspto_design_raw") == "uspto_raw"
    issues: list[ReadIssue] = []
    figs = list(read_figures(root, issues=issues))
    assert issues == []
    assert len(figs) == 438
    assert len({f.patent_id for f in figs}) == 50
    assert len({f.key for f in figs}) == 438
    assert all(f.source_format == "uspto_raw" and f.image_path.is_file() for f in figs)
    assert all(f.title and f.class_label and f.uspc and f.locarno and f.publication_date for f in figs)
    assert Counter(f.figure_id == "D00000" for f in figs)[True] == 50

    by_key = {f.key: f for f in figs}
    f = by_key["USD0907292/D00004"]
    assert f.title == "Shaving blade cartridge" and f.object_name == "shaving blade cartridge"
    assert f.uspc == ["D28-47"] and f.class_label == "D28" and f.locarno == ["28-03"]
    assert f.publication_date == date(2021, 1, 5)
    assert f.description == "FIG. 4 is a left side view thereof"
    assert f.viewpoint == "left side" and f.extra["figure_mapping"] == "exact"
    assert f.image_path.name == "USD0907292-20210105-D00004.TIF"
    assert by_key["USD0907292/D00000"].extra["figure_mapping"] == "front_page"
    assert by_key["USD0907292/D00000"].description.startswith("FIG. 1 is a front perspective view")

    # further classes, CPC, Hague-style descriptions, "The FIGURE is", more figures than sheets
    assert by_key["USD0911448/D00001"].uspc == ["D21-335", "D21-342", "D21-478", "D21-479"]
    assert by_key["USD0928323/D00001"].cpc == ["A61C 8/006"]
    assert by_key["USD0913174/D00003"].description.startswith("1.3 : Back")
    assert by_key["USD0913174/D00003"].viewpoint == "rear"
    assert by_key["USD0910059/D00001"].description.startswith("The FIGURE is a front view")
    amb = by_key["USD0934827/D00002"]  # 9 figures on 7 sheets
    assert amb.extra["figure_mapping"] == "ambiguous" and amb.extra["figures"] == ["2", "3", "4"]
    assert amb.viewpoint is None

    # every exactly-mapped sheet has its own figure description; most have a viewpoint
    exact = [f for f in figs if f.extra["figure_mapping"] == "exact"]
    assert len(exact) >= 200 and all(f.description for f in exact)
    assert sum(f.viewpoint is not None for f in exact) / len(exact) > 0.9


def test_uspto_matches_sample_csv(shared_data: Path) -> None:
    """The reader agrees with the repository's own CSV summary (title, id, date, number of figures and sheets)."""
    with open(shared_data / USPTO / "sample_data.csv", newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    figs = {f.patent_id: f for f in read_figures(shared_data / USPTO) if f.figure_id == "D00001"}
    assert len(rows) == len(figs) == 50
    for doc, row in rows.items():
        f = figs[normalize_patent_id(doc)]
        assert f.title == row["title"]
        assert f.publication_date == parse_date(row["date"])
        assert f.extra["number_of_figures"] == int(row["no_figs"])
        assert f.extra["number_of_sheets"] == int(row["sheets"])


def test_uspto_without_front_page(shared_data: Path) -> None:
    figs = list(read_figures(shared_data / USPTO / "USD0907292-20210105", include_front_page=False))
    assert [f.figure_id for f in figs] == [f"D0000{i}" for i in range(1, 9)]


GRANT = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE us-patent-grant SYSTEM "us-patent-grant-v45-2014-04-03.dtd" [
<!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<us-patent-grant lang="EN" file="{stem}.XML" date-publ="20200107">
<us-bibliographic-data-grant>
<publication-reference><document-id><country>US</country><doc-number>{doc}</doc-number><kind>S1</kind>
<date>20200107</date></document-id></publication-reference>
<classification-locarno><edition>12</edition><main-classification>2601</main-classification></classification-locarno>
<classification-national><country>US</country><main-classification>D26 24</main-classification>
<further-classification>D26 29</further-classification></classification-national>
<invention-title id="t1">Lamp &lsquo;Nova&rsquo; &xxe;</invention-title>
<figures><number-of-drawing-sheets>{sheets}</number-of-drawing-sheets><number-of-figures>{nfigs}</number-of-figures>
</figures>
</us-bibliographic-data-grant>
<drawings id="DRAWINGS">{drawings}</drawings>
<description id="description"><description-of-drawings>{paras}</description-of-drawings></description>
</us-patent-grant>
"""


def _grant(folder: Path, doc: str, views: list[str], sheets: int, *, missing: int | None = None) -> Path:
    stem = f"US{doc}-20200107"
    d = folder / stem
    d.mkdir(parents=True)
    drawings = "".join(
        f'<figure id="Fig-EMI-D{n:05d}" num="{n:05d}"><img file="{stem}-D{n:05d}.TIF"/></figure>'
        for n in range(sheets + 1)
    )
    paras = "".join(f"<p>FIG. {i} is a {v} view thereof;</p>" for i, v in enumerate(views, start=1))
    xml = GRANT.format(stem=stem, doc=doc, sheets=sheets, nfigs=len(views), drawings=drawings, paras=paras)
    (d / f"{stem}.XML").write_text(xml, encoding="utf-8")
    for n in range(sheets + 1):
        if n != missing:
            _tif(d / f"{stem}-D{n:05d}.TIF")
    return d


def test_uspto_tmp_folder_with_problems(tmp_path: Path) -> None:
    _grant(tmp_path, "D0871001", ["perspective", "front", "rear"], 3)
    _grant(tmp_path, "D0871002", ["perspective", "front", "rear", "top", "bottom"], 2, missing=2)
    bad = tmp_path / "USD0871003-20200107"
    bad.mkdir()
    (bad / "USD0871003-20200107.XML").write_text("<us-patent-grant><unclosed></us-patent-grant>")
    _tif(bad / "USD0871003-20200107-D00001.TIF")
    orphan = tmp_path / "USD0871004-20200107"
    _tif(orphan / "USD0871004-20200107-D00001.TIF")
    (tmp_path / "notes.XML").write_text("<?xml version='1.0'?><catalog/>")

    assert detect_format(tmp_path) == "uspto_raw"
    issues: list[ReadIssue] = []
    figs = list(read_figures(tmp_path, "uspto_raw", issues=issues))
    keys = [f.key for f in figs]
    assert keys == [f"USD0871001/D0000{i}" for i in range(4)] + ["USD0871002/D00000", "USD0871002/D00001"]
    one = figs[2]
    assert one.title == "Lamp \u2018Nova\u2019"  # named entities decoded, the external entity never expanded
    assert "root:" not in (one.title or "")
    assert one.uspc == ["D26-24", "D26-29"] and one.class_label == "D26" and one.locarno == ["26-01"]
    assert one.viewpoint == "front" and one.description == "FIG. 2 is a front view thereof"
    two = figs[5]
    assert two.extra["figure_mapping"] == "ambiguous" and two.extra["figures"] == ["1", "2", "3", "4"]
    reasons = {Path(i.path).name: i.reason for i in issues}
    assert "malformed XML" in reasons["USD0871003-20200107.XML"]
    assert "not found" in reasons["USD0871002-20200107-D00002.TIF"]
    assert "no grant XML" in reasons["USD0871004-20200107"]
    assert "not a USPTO grant XML" in reasons["notes.XML"]


# ---------------------------------------------------------------------------------------------------------------
# DeepPatent2
# ---------------------------------------------------------------------------------------------------------------


def test_parse_deeppatent2_filename_all_real_names(shared_data: Path) -> None:
    path = shared_data / "deeppatent2_techdrawfinder_segmented/data/imageonly.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        names = [row["img_only"] for row in csv.DictReader(fh)]
    assert len(names) == 67515
    failures, patents, years = 0, set(), set()
    for name in names:
        try:
            meta = parse_deeppatent2_filename(name)
        except ValueError:
            failures += 1
            continue
        patents.add(meta["patent_id"])
        years.add(meta["date"].year)
        assert meta["kind"] == "segmented" and meta["figure_id"] == f"{meta['sheet']}_{meta['fig']}"
    assert failures == 0
    assert len(patents) == 9133
    assert min(years) == 2007 and max(years) == 2020


def test_parse_deeppatent2_filename_examples() -> None:
    m = parse_deeppatent2_filename("USD0871741-20200107-D00006.png")
    assert m == {
        "patent_id": "USD0871741",
        "date": date(2020, 1, 7),
        "sheet": "D00006",
        "fig": None,
        "figure_id": "D00006",
        "kind": "original",
    }
    m = parse_deeppatent2_filename("./../static/US10524395-20200107-D00012_12.png")
    assert (m["patent_id"], m["figure_id"], m["fig"]) == ("US10524395", "D00012_12", "12")
    for bad in ("corrupt.png", "USD0871741-2020-D00006.png", "USD0871741-20200107-D00006.txt"):
        with pytest.raises(ValueError, match="not a DeepPatent2 file name"):
            parse_deeppatent2_filename(bad)


def test_deeppatent2_real_images_by_name(shared_data: Path) -> None:
    for folder, n, kind in [
        ("deeppatent2_lamps_original_figures", 15, "original"),
        ("deeppatent2_lamps_original_figures/images", 15, "original"),
        ("deeppatent2_techdrawfinder_segmented", 13, "segmented"),
        ("deeppatent2_techdrawfinder_segmented/exampledata", 13, "segmented"),
    ]:
        root = shared_data / folder
        assert detect_format(root) == "deeppatent2", folder
        issues: list[ReadIssue] = []
        figs = list(read_figures(root, issues=issues))
        assert issues == [] and len(figs) == n, folder
        assert all(f.extra["image_kind"] == kind and f.publication_date for f in figs)
    lamp = next(f for f in read_figures(shared_data / "deeppatent2_lamps_original_figures") if f.figure_id == "D00006")
    assert lamp.patent_id in {"USD0871741", "USD0871744"} and lamp.publication_date == date(2020, 1, 7)
    seg = {f.key for f in read_figures(shared_data / "deeppatent2_techdrawfinder_segmented")}
    assert "USD0739807/D00004_5" in seg


def _dp2_corpus(tmp_path: Path, shared_lamps: Path | None = None) -> Path:
    """Three DeepPatent2 years with every record variant of the README."""
    root = tmp_path / "dp2"
    y20, y12, y13 = root / "2020", root / "2012", root / "2013"
    _png(y20 / "Original" / "USD0871741-20200107-D00006.png")
    _png(y20 / "Segmented" / "USD0871741-20200107-D00006_6.png")
    _png(y20 / "Segmented" / "USD0871741-20200107-D00006_7.png")
    _png(y20 / "Original" / "USD0871750-20200107-D00002.png")  # two figures, no segmented images
    _png(y12 / "Original_2012" / "Original" / "USD0654321-20120103-D00001.png")
    _png(y12 / "Original_2012" / "Segmented" / "USD0654321-20120103-D00001_1.png")
    _png(y13 / "Segmentednew" / "US08765432-20130101-D00003_4.png")
    base = {"x_figure": 10, "y_figure": 20, "w_figure": 300, "h_figure": 400}
    records20 = [
        {
            "id": 1,
            "patentID": "USD0871741",
            "patentdate": "20200107",
            "figid": 6,
            "caption": "FIG. 6 is a front view of the lamp.",
            "object": "Lamp",
            "aspect": "front view",
            "figure_file": "USD0871741-20200107-D00006.png",
            "subfigure_file": "USD0871741-20200107-D00006_6.png",
            "object_title": "Lamp",
            **base,
        },
        {  # missing values spelled four ways; object only as object_infer; figid as a string
            "id": 2,
            "patentID": "USD0871741",
            "patentdate": "2020-01-07",
            "figid": "7",
            "caption": None,
            "object": "NULL",
            "object_infer": "lamp",
            "aspect": "",
            "figure_file": "USD0871741-20200107-D00006.png",
            "subfigure_file": "USD0871741-20200107-D00006_7.png",
        },
        {  # segmented image missing -> original sheet; merged with the next record of the same sheet
            "id": 3,
            "patentID": "USD0871750",
            "patentdate": 20200107,
            "figid": 3,
            "caption": "FIG. 3 is a top view.",
            "object": "desk lamp",
            "aspect": "top view",
            "figure_file": "USD0871750-20200107-D00002.png",
            "subfigure_file": "USD0871750-20200107-D00002_3.png",
        },
        {
            "id": 4,
            "patentID": "USD0871750",
            "figid": 4,
            "caption": "FIG. 4 is a bottom view.",
            "object": "desk lamp",
            "aspect": "bottom view",
            "figure_file": "USD0871750-20200107-D00002.png",
        },
        {"id": 5, "patentID": "USD0871799", "figid": 1, "figure_file": "USD0871799-20200107-D00001.png"},
        "not a record",
        {"id": 7, "patentID": "NULL", "figid": 1, "object": "lamp"},
        dict(
            {"id": 8, "patentID": "USD0871741", "figid": 6},
            subfigure_file="USD0871741-20200107-D00006_6.png",
        ),
    ]
    (y20 / "design2020.json").write_text(json.dumps(records20), encoding="utf-8")
    records12 = [
        {  # no patentID: taken from the file name
            "id": 1,
            "patentdate": None,
            "figid": "1",
            "caption": "FIG. 1 is a perspective view of a chair.",
            "object_infer": "chair",
            "aspect": "perspective view",
            "figure_file": "USD0654321-20120103-D00001.png",
            "subfigure_file": "USD0654321-20120103-D00001_1.png",
            "object_title": "Chair",
            "boxes": [[1, 2, 3, 4]],
        }
    ]
    (y12 / "design2012.json").write_text(json.dumps(records12), encoding="utf-8")
    records13 = [
        {
            "id": 9,
            "patentID": "US8765432",
            "patentdate": "20130101",
            "figid": 4,
            "object": "bicycle frame",
            "aspect": "side view",
            "caption": "",
            "figure_file": "US08765432-20130101-D00003.png",
            "subfigure_file": "US08765432-20130101-D00003_4.png",
        }
    ]
    (y13 / "utility2013.json").write_text(json.dumps(records13), encoding="utf-8")
    (root / "broken").mkdir()
    (root / "broken" / "design2019.json").write_text('[{"patentID": "USD1", "figid": 1,', encoding="utf-8")
    if shared_lamps is not None:
        y20b = root / "2020b"
        y20b.mkdir()
        (y20b / "Original").symlink_to(shared_lamps, target_is_directory=True)
        rec = [
            {
                "id": i,
                "patentID": p.name.split("-")[0],
                "patentdate": "20200107",
                "figid": i,
                "object": "lamp",
                "aspect": "perspective view",
                "figure_file": p.name,
                "subfigure_file": p.stem + f"_{i}.png",
            }
            for i, p in enumerate(sorted(shared_lamps.glob("*.png")), start=1)
        ]
        (y20b / "design2020.json").write_text(json.dumps(rec), encoding="utf-8")
    return root


def test_deeppatent2_json_variants(tmp_path: Path) -> None:
    root = _dp2_corpus(tmp_path)
    assert detect_format(root) == "deeppatent2"
    issues: list[ReadIssue] = []
    figs = {f.key: f for f in read_figures(root, issues=issues)}
    assert set(figs) == {
        "USD0654321/D00001_1",
        "USD0871741/D00006_6",
        "USD0871741/D00006_7",
        "USD0871750/D00002",
        "US08765432/D00003_4",
    }
    a = figs["USD0871741/D00006_6"]
    assert (a.object_name, a.class_label, a.viewpoint, a.title) == ("lamp", "lamp", "front", "Lamp")
    assert a.description == "FIG. 6 is a front view of the lamp." and a.publication_date == date(2020, 1, 7)
    assert a.source_format == "deeppatent2" and a.image_path.parent.name == "Segmented"
    assert a.extra["bbox"] == [10, 20, 300, 400] and a.extra["figid"] == "6"
    b = figs["USD0871741/D00006_7"]
    assert (b.object_name, b.viewpoint, b.description, b.title) == ("lamp", None, None, None)
    assert b.extra["figid"] == "7" and b.publication_date == date(2020, 1, 7)
    sheet = figs["USD0871750/D00002"]
    assert sheet.extra["image_kind"] == "original" and sheet.image_path.parent.name == "Original"
    assert sheet.description == "FIG. 3 is a top view. FIG. 4 is a bottom view."
    assert sheet.viewpoint is None and sheet.extra["figids"] == ["3", "4"]
    chair = figs["USD0654321/D00001_1"]
    assert chair.object_name == "chair" and chair.publication_date == date(2012, 1, 3)
    assert chair.image_path.parent.parent.name == "Original_2012"
    bike = figs["US08765432/D00003_4"]
    assert bike.viewpoint == "side" and bike.description is None and bike.image_path.parent.name == "Segmentednew"

    reasons = [(Path(i.path.split("#")[0]).name, i.path.rsplit("#", 1)[-1], i.reason) for i in issues]
    assert ("design2020.json", "4", "image not found: USD0871799-20200107-D00001.png") in reasons
    assert any(r[1] == "5" and "not a JSON object" in r[2] for r in reasons)
    assert any(r[1] == "6" and "no patentID" in r[2] for r in reasons)
    assert any(r[1] == "7" and "duplicate record for USD0871741/D00006_6" in r[2] for r in reasons)
    assert any(r[0] == "design2019.json" and "unreadable DeepPatent2 JSON" in r[2] for r in reasons)
    assert len(issues) == 5

    originals = {f.key for f in read_figures(root, prefer="original")}
    assert "USD0871741/D00006" in originals
    one_file = list(read_figures(root / "2012" / "design2012.json", "deeppatent2"))
    assert [f.key for f in one_file] == ["USD0654321/D00001_1"] and one_file[0].extra["boxes"] == [[1, 2, 3, 4]]
    one_image = list(read_figures(bike.image_path, "deeppatent2"))
    assert [f.key for f in one_image] == ["US08765432/D00003_4"]


def test_deeppatent2_json_on_real_images(shared_data: Path, tmp_path: Path) -> None:
    lamps = shared_data / "deeppatent2_lamps_original_figures" / "images"
    root = _dp2_corpus(tmp_path, shared_lamps=lamps)
    issues: list[ReadIssue] = []
    refused = list(read_figures(root / "2020b", issues=issues))  # Original/ is a symlink to ../shared: outside
    assert refused == [] and len(issues) == 15 and all("outside the ingest folder" in i.reason for i in issues)
    issues = []
    figs = list(read_figures(root / "2020b", issues=issues, follow_outside=True))
    assert issues == [] and len(figs) == 15
    assert all(f.extra["image_kind"] == "original" and f.image_path.is_file() for f in figs)
    assert all(f.class_label == "lamp" and f.viewpoint == "perspective" for f in figs)
    assert {f.image_path.name for f in figs} == {p.name for p in lamps.glob("*.png")}


# ---------------------------------------------------------------------------------------------------------------
# Generic
# ---------------------------------------------------------------------------------------------------------------


def test_generic_labels_csv(shared_data: Path) -> None:
    root = shared_data / "uspto_design_2007_uspc"
    assert detect_format(root) == "generic"
    issues: list[ReadIssue] = []
    figs = list(read_figures(root, issues=issues))
    assert issues == [] and len(figs) == 541
    counts = Counter(f.class_label for f in figs)
    assert len(counts) == 19 and counts["D14"] == 105 and counts["D6"] == 64 and counts["D3"] == 2
    assert len({f.uspc[0] for f in figs}) == 317
    first = next(f for f in figs if f.patent_id == "USD0534379")
    assert first.uspc == ["D6-484"] and first.title == "Furniture unit" and first.object_name == "furniture unit"
    assert first.figure_id == "USD0534379" and first.image_path.name == "USD0534379.png"
    assert first.extra == {"uspc_main_class": "D6"}
    assert not any("unlabelled_distractors" in str(f.image_path) for f in figs)  # only listed rows
    with_col = list(read_figures(root, class_column="uspc_main_class"))
    assert [f.class_label for f in with_col] == [f.class_label for f in figs]
    by_code = Counter(f.class_label for f in read_figures(root, columns={"class_label": "uspc"}))
    assert len(by_code) == 317
    distractors = list(read_figures(root / "unlabelled_distractors"))
    assert len(distractors) == 87 and distractors[0].patent_id == "USD0535367" and distractors[0].class_label is None


def test_generic_class_per_folder_and_flat(tmp_path: Path) -> None:
    root = tmp_path / "classes"
    _png(root / "chair" / "001.png")
    _png(root / "lamp" / "001.png")
    _png(root / "lamp" / "sub" / "USD0534379_2.png")
    _png(root / "lamp" / "USD0871741-20200107-D00006_6.png")
    (root / "lamp" / "drawing.pdf").write_bytes(b"%PDF-1.4")
    (root / "lamp" / "readme.txt").write_text("ignored")
    assert detect_format(root) == "generic"
    issues: list[ReadIssue] = []
    figs = {f.key: f for f in read_figures(root, issues=issues)}
    assert set(figs) == {"chair_001/001", "lamp_001/001", "USD0534379/2", "USD0871741/D00006_6"}
    assert figs["chair_001/001"].class_label == "chair" and figs["USD0534379/2"].object_name == "lamp"
    assert [i.reason for i in issues] == ["PDF drawings cannot be rasterised by pir; convert to PNG or TIFF"]

    flat = tmp_path / "flat"
    _png(flat / "USD0534380.png")
    _png(flat / "query.jpg")
    figs = {f.key: f for f in read_figures(flat)}
    assert set(figs) == {"USD0534380/USD0534380", "query/query"}
    assert figs["query/query"].class_label is None
    single = list(read_figures(flat / "query.jpg"))
    assert [f.key for f in single] == ["query/query"]


def test_generic_jsonl_synthetic_roundtrip(tmp_path: Path) -> None:
    """The synthetic corpus layout: metadata.jsonl with PatentFigure field names plus ``file``."""
    out = tmp_path / "synthetic"
    _png(out / "images" / "SYN0001_1.png")
    _png(out / "images" / "SYN0001_2.png")
    written = [
        PatentFigure(
            patent_id="SYN0001",
            figure_id=str(i),
            image_path=out / "images" / f"SYN0001_{i}.png",
            title="Table lamp",
            object_name="table lamp",
            viewpoint=v,
            uspc=["D26-24"],
            locarno=["26-01"],
            publication_date=date(2020, 1, 7),
            description=f"FIG. {i} is a {v} view of a table lamp",
            class_label="table lamp",
            source_format="synthetic",
            extra={"seed": 7},
        )
        for i, v in ((1, "front"), (2, "top"))
    ]
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for f in written:
            row = f.model_dump(mode="json", exclude={"image_path"})
            row["file"] = f"images/{f.image_path.name}"
            fh.write(json.dumps(row) + "\n")
    assert detect_format(out) == "generic"
    issues: list[ReadIssue] = []
    read = list(read_figures(out, issues=issues))
    assert issues == []
    assert [f.model_dump() for f in read] == [f.model_dump() for f in written]


def test_generic_jsonl_column_mapping_and_bad_rows(tmp_path: Path) -> None:
    root = tmp_path / "mapped"
    _png(root / "a.png")
    _png(root / "b.png")
    lines = [
        {"img": "a.png", "pn": "D907292", "cls": "D28", "view": "FIG. 1 is a perspective view", "when": "2021-01-05"},
        {"img": "b.png", "pn": "D907292", "fig_no": "2", "cls": "D28", "uspc": "D28-47;D28-46", "extra_note": "x"},
        {"img": "missing.png", "pn": "D1"},
        {"pn": "D2"},
        {"img": "a.png", "pn": "D3", "when": "not a date"},
        {"img": "a.png", "pn": "D907292", "cls": "D28"},  # duplicate key of the first row
    ]
    text = "\n".join(json.dumps(r) for r in lines[:2]) + "\n{not json\n" + "\n".join(json.dumps(r) for r in lines[2:])
    (root / "metadata.jsonl").write_text(text + "\n", encoding="utf-8")
    cols = {"image_path": "img", "patent_id": "pn", "class_label": "cls", "publication_date": "when"}
    cols |= {"figure_id": "fig_no"}
    issues: list[ReadIssue] = []
    figs = list(read_figures(root, "generic", issues=issues, columns=cols))
    assert [f.key for f in figs] == ["USD0907292/a", "USD0907292/2"]
    a, b = figs
    assert a.class_label == "D28" and a.publication_date == date(2021, 1, 5)
    assert a.viewpoint == "FIG. 1 is a perspective view"  # passthrough
    assert b.uspc == ["D28-47", "D28-46"] and b.extra == {"extra_note": "x"}
    lines_with_issue = sorted(int(i.path.rsplit(":", 1)[1]) for i in issues)
    assert lines_with_issue == [3, 4, 5, 6, 7]
    text_of = {int(i.path.rsplit(":", 1)[1]): i.reason for i in issues}
    assert "invalid JSON" in text_of[3]
    assert "image not found" in text_of[4]
    assert "no image file column" in text_of[5]
    assert "unparseable publication date" in text_of[6]
    assert "duplicate figure USD0907292/a" in text_of[7]
    with pytest.raises(ValueError, match="unknown PatentFigure field"):
        read_figures(root, "generic", columns={"colour": "c"})


def test_generic_csv_sidecar_choice(tmp_path: Path) -> None:
    root = tmp_path / "two_csv"
    _png(root / "x.png")
    (root / "a.csv").write_text("file,patent\nx.png,USD1234567\n")
    (root / "b.csv").write_text("file,patent\nx.png,USD7654321\n")
    issues: list[ReadIssue] = []
    figs = list(read_figures(root, "generic", issues=issues))
    assert [f.key for f in figs] == ["x/x"]  # no sidecar chosen: flat images
    assert "several .csv files" in issues[0].reason
    figs = list(read_figures(root, "generic", sidecar=root / "b.csv"))
    assert [f.key for f in figs] == ["USD7654321/x"]
    figs = list(read_figures(root / "a.csv", "generic"))
    assert [f.key for f in figs] == ["USD1234567/x"]


def test_read_figures_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_figures(tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown format"):
        read_figures(tmp_path, "pdf")
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "absent")
    assert list(read_figures(tmp_path)) == []


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def test_registry_names_detectors_readers_in_one_place() -> None:
    """Every registered reader module has ``detect`` and ``read``; the CLI choices come from the registry."""
    from click.testing import CliRunner

    from pir.cli import main
    from pir.ingest.registry import READERS, get_reader, reader_names

    assert reader_names() == ("uspto_raw", "deeppatent2", "generic")
    # `pir ingest --format` refuses an unknown reader and offers exactly "auto" and the registered ones
    r = CliRunner().invoke(main, ["ingest", "--format", "nope", str(Path(__file__).parent)])
    offered = re.findall(r"'([a-z0-9_]+)'", r.output.split("is not one of", 1)[-1])
    assert r.exit_code == 2 and offered == ["auto", *reader_names()], r.output
    for spec in READERS:
        mod = spec.load()
        assert callable(mod.detect) and callable(mod.read) and get_reader(spec.name) is spec
    with pytest.raises(ValueError, match="unknown format 'nope'"):
        get_reader("nope")


def test_readers_do_not_import_the_dispatcher() -> None:
    """No import loop: reader modules import the shared helpers, never pir.ingest.readers (which imports them)."""
    import ast

    for name in ("uspto", "deeppatent2", "generic", "normalize", "confine", "conflicts", "registry"):
        tree = ast.parse((Path(__file__).parents[1] / "pir" / "ingest" / f"{name}.py").read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "pir.ingest.readers" not in mods, name
