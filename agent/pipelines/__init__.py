"""Pipelines as plugins: one package per recognition feature, each a settings model, event types and a ``build``.

See ``agent/pipelines/registry.py`` for the list, ``base.py`` for what a plugin
declares, ``stage.py`` for the per-source stage the runtime drives, and
``shared.py`` for what pipelines share.
"""
