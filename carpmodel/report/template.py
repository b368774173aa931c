"""The report's one jinja2 template, ``templates/report.html.j2``: its environment (autoescaping
on, undefined names an error), its macros and the page.

Autoescaping is why the report is a template and not f-strings: strategy, scenario and parameter
names come from users' files, and the template escapes every value it prints; what a macro
returns is :class:`markupsafe.Markup` and passes through the page as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

#: the template file in carpmodel/report/templates (package data)
TEMPLATE_NAME = "report.html.j2"


def anchor(heading: str) -> str:
    """The id of a heading: lower case, every character that is not a letter or digit a '-'."""
    return "".join(ch if ch.isalnum() else "-" for ch in str(heading).lower()).strip("-")


@cache
def template() -> jinja2.Template:
    """The report template, loaded once from the package's templates directory."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("carpmodel.report", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["anchor"] = anchor
    return environment.get_template(TEMPLATE_NAME)


def macro(name: str) -> Callable[..., Markup]:
    """A macro of the template (``table``, ``finding_recovery``, ``limitation_runs`` …): called
    with its arguments it returns escaped HTML (Markup)."""
    return getattr(template().module, name)


def render_page(**page: Any) -> str:
    """The whole report page from the template, ``page`` its context (see the template's end)."""
    return template().render(page=page)
