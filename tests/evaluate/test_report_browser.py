"""The evaluation report in headless Chromium, at laptop and phone widths."""

from __future__ import annotations

import json

from browser import PHONE, check_layout
from evaluate.test_report import CONFIG, write_saves
from evaluate.tiny import save_random_model

from brightscan.evaluate.report import evaluate


def test_report_reads_on_laptop_and_phone(browser, tmp_path, tiny_model, tiny_dataset):
    saves = write_saves(tiny_dataset, tmp_path / "saves.csv")
    out = tmp_path / "report"
    evaluate(tiny_model, tiny_dataset, out=out, scanner_saves=saves, config=CONFIG,
             compare=save_random_model(tmp_path / "other", seed=3), command="brightscan evaluate ...")
    metrics = json.loads((out / "metrics.json").read_text())
    pages = check_layout(browser, (out / "index.html").as_uri())
    page = pages[PHONE]
    figures = page.images("figure[id^=fig-] img")
    assert {"roc", "outcomes", "completeness_purity", "delay", "reliability", "compare_sources"} <= {
        f["alt"] for f in figures}
    assert all(f["natural"] >= 400 for f in figures)  # real plots, not placeholders
    # one row per policy in each model's table, plus a side-by-side table
    policy_rows = page.rows("#sources ~ .scroll table")
    names = [r.split("\t")[0].split(" ")[0] for r in policy_rows]
    for policy in metrics["policies"]:
        assert names.count(policy) >= 3  # main model, compared model, side by side
    triplets = page.images(".gallery img")
    assert len(triplets) == sum(len(v) for k, v in metrics["galleries"].items() if k != "counts")
    # wide tables scroll inside their own box at phone width, never the page
    boxes = page.page.eval_on_selector_all(".scroll", "bs => bs.map(b => b.getBoundingClientRect().right)")
    assert boxes and max(boxes) <= PHONE
    header = page.page.inner_text("#provenance + dl")
    assert "brightscan evaluate ..." in header and "mi_cnn.tiny" in header
    for p in pages.values():
        p.close()
