"""The file contracts between the stages (DESIGN.md): how every file the project reads or writes is laid out.

The bottom layer: every stage imports it, and it imports no stage.
"""
