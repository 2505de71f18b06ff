from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from web.reports.charts import Bar, horizontal_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - markup our own code just wrote, not untrusted input


def test_a_chart_is_well_formed_svg_with_bars_proportional_to_their_values():
    svg = horizontal_bar_chart(
        title="Stars gained", bars=[Bar("a/one", 400), Bar("b/two", 100), Bar("c/none", 0)]
    )

    root = parse(svg)
    widths = [int(rect.get("width")) for rect in root.iter(f"{SVG}rect")]
    assert widths[0] == 4 * widths[1] > 0
    assert widths[2] == 0
    assert root.get("aria-label") == "Stars gained"
    assert "400" in svg
    assert "a/one" in svg


def test_labels_are_escaped_and_non_ascii_names_survive():
    svg = horizontal_bar_chart(
        title="<b>title</b>", bars=[Bar('<script>alert("x")</script>', 5), Bar("東京dev/ツール", 3)]
    )

    assert "<script>" not in svg
    assert "<b>" not in svg
    texts = [t.text for t in parse(svg).iter(f"{SVG}text")]
    assert "東京dev/ツール" in texts
    assert '<script>alert("x")</script>' in "".join(t.text or "" for t in parse(svg).iter(f"{SVG}title"))


def test_a_chart_with_no_bars_says_so():
    svg = horizontal_bar_chart(title="Nothing", bars=[])

    assert re.search(r">No data yet\.<", svg)
