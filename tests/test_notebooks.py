"""Every notebook in examples/ runs from top to bottom in a fresh Jupyter kernel (nbclient),
imports only fastinit (and what the lab extra brings), draws its figures inline, and raises
nothing; each cell explained by a markdown cell before it."""
import glob
import os
import re

# nbclient and nbformat are in the test extra (pyproject.toml): a missing one is an error,
# never a skip
import nbclient
import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "examples", "*.ipynb")))
TOPICS = ("initialization_and_signal", "depth", "dynamics", "clipping", "batch_norm",
          "kernels_3x3")


def test_one_notebook_per_topic():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    for topic in TOPICS:
        assert any(topic in n for n in names), topic


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_is_short_explained_and_imports_only_fastinit(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert len(code) <= 8
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert i > 0 and nb.cells[i - 1].cell_type == "markdown", (path, i)
            for module in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", cell.source, re.M):
                assert module.split(".")[0] == "fastinit", (path, module)
            assert not cell.outputs, f"{path}: committed with outputs"


# Slow: runs each experiment at the size its command runs it (about 1.5 min in all, warm);
# the rerun with the C backend disabled (-m "not slow") need not repeat it.
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()          # raises CellExecutionError, with the cell, on any error
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{path}: no figure was drawn inline"
    assert not any(o.get("name") == "stderr" and "Traceback" in o.get("text", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)
