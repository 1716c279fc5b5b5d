# Sphinx configuration of the sourceclf documentation (sphinx-astropy, conf v3).
import datetime
import sys
from pathlib import Path

from sphinx_astropy.conf.v3 import *  # noqa: F401,F403

sys.path.insert(0, str(Path(__file__).parent))
import _modelpages  # noqa: E402

import sourceclf  # noqa: E402

project = "sourceclf"
author = "The sourceclf developers"
copyright = f"{datetime.date.today().year}, {author}"
version = sourceclf.__version__.split("+")[0]
release = sourceclf.__version__

exclude_patterns.extend(["_build", "**.ipynb_checkpoints", "reports/*.md"])  # noqa: F405
automodapi_inheritance_diagram = False
automodsumm_inherited_members = False
numpydoc_show_class_members = False
nitpicky = False

html_title = f"{project} v{release}"
html_static_path = ["_static"]
html_theme_options = {"github_url": "", "use_edit_page_button": False}
html_theme_options.pop("github_url")
suppress_warnings = ["config.cache"]

# Model pages are generated from the shipped model cards at every build.
_modelpages.write_model_pages(Path(__file__).parent / "generated" / "models")
