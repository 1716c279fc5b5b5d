"""Private helpers shared by sourceclf's modules.

Nothing here is public API: the modules are private (``_validation``,
``_files``, ``_threads``...) and their functions may change without notice.
Every other layer may import from here; this package imports nothing of
sourceclf but `sourceclf.exceptions`.
"""
