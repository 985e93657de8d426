"""Sphinx configuration of the sklearn-scan site: `make docs` builds it into docs/_build/html."""

import sklearn_scan

project = "sklearn-scan"
author = "the sklearn-scan developers"
copyright = "the sklearn-scan developers"
release = version = sklearn_scan.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb", "auto_examples/*.zip"]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The examples are rendered, not run: each one trains networks for a minute or more on a CPU.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"^$",
    "plot_gallery": "False",
    "download_all_examples": False,
    "show_signature": False,
    "write_computation_times": False,
}

# Offline builds: no inventories are fetched, so links to other projects' docs stay plain text.
intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = "sklearn-scan"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}
html_static_path = []
templates_path = ["_templates"]
