"""Layouts and themes of preview pages: constants only, so the command line can offer them without
loading the preview machinery."""
MODES = {"desktop": 1600, "phone": 375}   # page width in CSS pixels
THEMES = ("dark", "light")
