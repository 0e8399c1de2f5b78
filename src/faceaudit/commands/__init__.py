"""The command line's commands, one module each: parse the options, call the library, print.

``faceaudit.cli`` assembles them into the ``faceaudit`` app; ``compare`` lives with its engine
(:mod:`faceaudit.compare.command`).
"""
