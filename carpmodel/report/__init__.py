"""What a researcher reads: figures and the HTML report.

:mod:`~carpmodel.report.figures` draws every plot; report.html is rendered from the one jinja2
template ``templates/report.html.j2`` (autoescaping) by :mod:`~carpmodel.report.html`, with its
tables (:mod:`~carpmodel.report.tables`), statements in words (:mod:`~carpmodel.report.statements`),
figure captions (:mod:`~carpmodel.report.captions`) and number formats
(:mod:`~carpmodel.report.formatting`).
"""
