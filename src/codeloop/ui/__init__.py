"""`codeloop ui`: a local web app over agents and the run store (Starlette; `pip install "codeloop[ui]"`).

Nothing heavy loads with this package: import the part you use (`codeloop.ui.runs` for the run browser).
"""
