"""The Textual face: screens and widgets over OpsService.

Store access happens only in thread workers (``feed.py`` and ``App.call_service``);
widgets never poll on their own timers and never touch the store.
"""
