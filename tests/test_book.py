"""The offline book: a strict jupyter-book build, and every page of the built site checked in headless Chromium.

A copy of `_book/` is made in a temporary folder, a demo notebook with two plotly figures (drawn through
`register_offline_plotly`) and math (markdown `$$...$$` and a LaTeX output) is executed into it, and the copy is
built with `build_book` and checked page by page with `check_site`. Nothing is written into `_book/` itself;
screenshots go to `screenshots/test_book/` at the repository root (gitignored).
"""
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from moons_vae.book import BookBuildError, build_book, notebook_problems, toc_pages
from moons_vae.sitecheck import SiteCheckError, check_site, site_pages

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "_book"
SCREENSHOTS = ROOT / "screenshots" / "test_book"
DEMO = "_demo/figure_demo"


# The test book has its own table of contents: the real one will also list generated pages (executed runs, copies
# of the implementation notebooks) that a fresh checkout does not have. The configuration is the real one.
TEST_TOC = {"format": "jb-book", "root": "theory/vae", "parts": [   # the real root, report/intro, is a generated chapter
    {"caption": "Report", "chapters": [{"file": "theory/cvae"}]},
    {"caption": "Implementation", "chapters": [{"file": "implementation"}]},
    {"caption": "Runs", "chapters": [{"file": "runs"}]}]}


def copy_book(dst: Path) -> Path:
    "The book's configuration and hand-written pages copied to `dst`, with the test's table of contents."
    shutil.copytree(BOOK, dst, ignore=shutil.ignore_patterns("_build", "_generated", ".ipynb_checkpoints", "runs", "library", "_toc.yml"))
    (dst / "_toc.yml").write_text(yaml.safe_dump(TEST_TOC, sort_keys=False))
    return dst


def add_to_toc(book: Path, caption: str, *files: str):
    toc_path = book / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    part = next(p for p in toc["parts"] if p["caption"] == caption)
    part.setdefault("chapters", []).extend({"file": f} for f in files)
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))


def demo_notebook() -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md("# Figure demo\n\nA page made by `tests/test_book.py`: inline math $\\beta\\,D_{\\mathrm{KL}}$ and a display\n\n"
           "$$\n\\log p_\\theta(\\mathbf x)=\\mathrm{ELBO}(\\mathbf x)+D_{\\mathrm{KL}}\\big(q_\\phi(\\mathbf z\\mid\\mathbf x)"
           "\\,\\|\\,p_\\theta(\\mathbf z\\mid\\mathbf x)\\big)\n$$\n\nand an `amsmath` environment:\n\n"
           "\\begin{align}\n\\mathbf z &= \\boldsymbol\\mu + \\varepsilon_w\\,\\boldsymbol\\sigma\\odot\\boldsymbol\\varepsilon\n\\end{align}"),
        code("from moons_vae.offline import register_offline_plotly\nregister_offline_plotly()",
             metadata={"tags": ["remove-cell"]}),
        code("import plotly.graph_objects as go\n"
             "fig = go.Figure(go.Scatter(x=[0, 1, 2, 3], y=[0, 1, 0, 1], mode='lines+markers', name='demo'))\n"
             "fig.update_layout(title='A line', height=350)\nfig.show()"),
        code("go.Figure(go.Heatmap(z=[[1, 2, 3], [3, 2, 1]]), layout=dict(height=300)).show()"),
        code("from IPython.display import Math\nMath(r'\\int_0^1 x\\,\\mathrm dx=\\tfrac12')"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


@pytest.fixture(scope="module")
def demo_book(tmp_path_factory):
    "A copy of the book with the executed demo notebook in its 'Runs' part, built strictly."
    book = copy_book(tmp_path_factory.mktemp("book") / "_book")
    nb_path = book / f"{DEMO}.ipynb"
    nb_path.parent.mkdir(parents=True)
    nb = demo_notebook()
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    nbformat.write(nb, nb_path)
    add_to_toc(book, "Runs", DEMO)
    index = build_book(book)
    return book, index


def test_executed_notebook_has_figures_but_no_plotly_library(demo_book):
    book, _ = demo_book
    text = (book / f"{DEMO}.ipynb").read_text()
    assert text.count('class=\\"plotly-graph-div\\"') == 2
    assert "application/vnd.plotly.v1+json" in text
    assert "plotly.js v" not in text and "cdn.plot.ly" not in text and "cdn.jsdelivr" not in text
    assert len(text) < 100_000, f"executed demo notebook is {len(text)} bytes"


def test_build_output(demo_book):
    book, index = demo_book
    html = index.parent
    assert index == book / "_build" / "html" / "index.html"
    assert (html / "_static" / "plotly.min.js").stat().st_size > 3_000_000
    assert (html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    # one MathJax and one plotly.js per page, both local; no CDN anywhere in the page sources
    page = (html / f"{DEMO}.html").read_text()
    assert len(re.findall(r'<script[^>]+src="[^"]*mathjax/tex-mml-chtml\.js', page)) == 1
    assert len(re.findall(r'<script[^>]+src="[^"]*plotly\.min\.js', page)) == 1
    for p in site_pages(html):
        src = (html / p).read_text()
        assert not re.search(r'src="(https?:)?//', src), f"{p} loads a script from another host"
    assert set(site_pages(html)) >= {"index.html", "theory/vae.html", "theory/cvae.html", f"{DEMO}.html"}


def test_every_page_renders_offline_in_chromium(demo_book):
    book, index = demo_book
    html = index.parent
    reports = check_site(html, SCREENSHOTS)      # raises SiteCheckError naming any broken page
    by_page = {r.page: r for r in reports}
    assert set(by_page) == set(site_pages(html))
    demo = by_page[f"{DEMO}.html"]
    assert (demo.plotly_divs, demo.plotly_drawn) == (2, 2)
    assert demo.math_elements >= 3 and demo.mjx_containers >= demo.math_elements and demo.mjx_errors == 0
    assert (demo.plotly_js_loads, demo.mathjax_loads) == (1, 1)
    for page in ("theory/vae.html", "theory/cvae.html"):
        r = by_page[page]
        assert r.math_elements > 0 and r.mjx_containers >= r.math_elements and r.mathjax_loads == 1, r
    assert by_page["index.html"].redirect == "theory/vae.html"
    for r in reports:
        assert r.external_requests == [] and r.console_errors == [] and r.failed_requests == []
        if r.redirect is None:
            assert r.plotly_js_loads == 1 and r.mathjax_loads <= 1 and r.requests > 0
            assert Path(r.screenshot).stat().st_size > 10_000


def test_check_site_reports_broken_pages(demo_book, tmp_path):
    "The checker itself can fail: a CDN script, a TeX error and a figure drawn without plotly.js are each caught."
    _, index = demo_book
    html = shutil.copytree(index.parent, tmp_path / "html")
    demo = html / f"{DEMO}.html"
    demo.write_text(demo.read_text().replace("</body>", '<script src="https://cdn.example.org/x.js"></script></body>'))
    vae = html / "theory" / "vae.html"
    vae.write_text(vae.read_text().replace("\\mathrm{ELBO}", "\\left(\\mathrm{ELBO}", 1))   # "Missing \\right"
    nofig = html / "_demo" / "no_plotly.html"
    nofig.write_text(demo.read_text().replace("plotly.min.js", "missing-plotly.min.js"))
    with pytest.raises(SiteCheckError) as e:
        check_site(html, None, pages=[f"{DEMO}.html", "theory/vae.html", "_demo/no_plotly.html", "theory/cvae.html"])
    msg = str(e.value)
    assert "3 of 4 pages" in msg
    assert re.search(r"_demo/figure_demo\.html: .*cdn\.example\.org", msg)
    assert re.search(r"theory/vae\.html: .*TeX error", msg)
    assert re.search(r"_demo/no_plotly\.html: .*2 of 2 plotly figures did not draw", msg)
    assert "- theory/cvae.html" not in msg
    assert next(r for r in e.value.reports if r.page == "theory/cvae.html").ok


def test_strict_build_names_broken_pages(tmp_path):
    "A missing toc entry, a broken cross-reference and a saved error output each fail the build, naming the page."
    book = copy_book(tmp_path / "_book")
    (book / "runs.md").write_text((book / "runs.md").read_text() + "\nSee also {doc}`theory/nowhere`.\n")
    err_cell = nbformat.v4.new_code_cell("1/0")
    err_cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken run"), err_cell]),
                   book / "broken_run.ipynb")
    add_to_toc(book, "Runs", "does_not_exist", "broken_run")
    assert "broken_run.ipynb" in toc_pages(book) and "broken_run.ipynb" in notebook_problems(book)
    with pytest.raises(BookBuildError) as e:
        build_book(book)
    msg, pages = str(e.value), e.value.pages
    assert "does_not_exist" in pages and "runs.md" in pages and "broken_run.ipynb" in pages, pages
    assert "nonexisting document 'does_not_exist'" in msg and "theory/nowhere" in msg and "ZeroDivisionError" in msg
    assert (book / "_build" / "build.log").is_file()


def test_build_book_rejects_a_folder_that_is_not_a_book(tmp_path):
    with pytest.raises(FileNotFoundError, match="book_dir=.*_toc.yml"):
        (tmp_path / "_config.yml").write_text("title: x\n")
        build_book(tmp_path)
