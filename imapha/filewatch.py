"""Watch one file an operator edits (a user map, DHCP registrations) and react.

watchdog observes the file's directory (editors replace files by rename, so
watching the file itself would lose it after the first save); every event
that names the file, as source or destination, is handed to the reactor
thread, and ``callback`` runs once per burst of events after ``debounce``
seconds, so a save that writes, renames and chmods triggers one reload.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEBOUNCE = 0.2


class FileWatch:
    def __init__(self, reactor: Any, path: Path | str, callback: Callable[[], object],
                 debounce: float = DEBOUNCE) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        self.reactor = reactor
        self.callback = callback
        self.debounce = debounce
        self._pending: Any = None
        target = os.path.abspath(path)
        watch = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                paths = {os.path.abspath(str(event.src_path))}
                dest = getattr(event, "dest_path", "")
                if dest:
                    paths.add(os.path.abspath(str(dest)))
                if target in paths:
                    reactor.callFromThread(watch._changed)

        self._observer = Observer()
        self._observer.schedule(Handler(), os.path.dirname(target) or ".", recursive=False)
        self._observer.daemon = True
        self._observer.start()

    def _changed(self) -> None:
        if self._pending is None or not self._pending.active():
            self._pending = self.reactor.callLater(self.debounce, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self.callback()

    def stop(self) -> None:
        if self._pending is not None and self._pending.active():
            self._pending.cancel()
        self._observer.stop()
