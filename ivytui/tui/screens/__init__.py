"""Screens: the main screen, and the modals and full-screen views over it."""
